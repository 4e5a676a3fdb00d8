//! `dawin logits`, `inspect` and `convert` on checkpoints in every form researchers hold them
//! (issue #15), against PyTorch.
//!
//! Fixtures: `crates/dawin-core/tests/fixtures/torch/`, written by `scripts/make_torch_fixtures.py`
//! (torch 2.15.0, open_clip_torch 3.3.0). `tiny_io.safetensors` holds 3 normalised images and
//! the logits open_clip computes (in float64) for the TINY tower (width 64, 2 heads of 32,
//! QuickGELU) in f32 / f16 / bf16 and with an unnormalised head; `arch_<v>_io.safetensors` the
//! same for the `arch_<v>.pt` towers (exact GELU, LayerScale, head width 48), whose
//! `arch_<v>_open_clip_config.json` is put beside the checkpoint as `open_clip_config.json`.
//! The tiny files carry no config, so their tests pass `--heads 2` (nothing in a state dict
//! says the head count; the default width/64 would be 1).
use dawin::core::{npy, write_safetensors, CheckpointFile, OwnedTensor, StateDict, TensorSource};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Logits within this of PyTorch's: max |Δ| / max |reference|.
const TOL: f64 = 1e-4;

fn torch(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dawin-core/tests/fixtures/torch")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dawin"))
        .args(args)
        .output()
        .expect("runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(o)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails_with(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "should fail; stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
}

/// The lines of stderr saying that a default decided the activation.
fn activation_warnings(o: &Output) -> usize {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("activation is a DEFAULT"))
        .count()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A tensor of a safetensors file as f32.
fn tensor(file: &Path, name: &str) -> Vec<f32> {
    StateDict::open(file)
        .unwrap()
        .tensor(name)
        .unwrap()
        .to_f32_vec()
}

/// `dawin logits` of `checkpoint` over `data`; the logits.
fn logits(dir: &Path, checkpoint: &Path, data: &Path, extra: &[&str]) -> (Vec<f32>, Output) {
    let out = dir.join(format!(
        "logits_{}.npy",
        checkpoint.file_name().unwrap().to_string_lossy()
    ));
    let mut args = vec![
        "logits".to_string(),
        "--checkpoint".into(),
        path_str(checkpoint),
        "--data".into(),
        path_str(data),
        "--out".into(),
        path_str(&out),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args);
    ok(&o);
    (npy::read_f32(&out).unwrap().data, o)
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max);
    let den = want.iter().map(|b| (*b as f64).abs()).fold(0.0, f64::max);
    num / den
}

/// A labelled dataset file (labels 0, 1, 2, …) of the images `key` of a fixture's io file.
fn dataset_of(io: &Path, key: &str, out: &Path) -> PathBuf {
    let sd = StateDict::open(io).unwrap();
    let t = sd.tensor(key).unwrap();
    let n = t.shape[0];
    let labels: Vec<i64> = (0..n as i64).collect();
    write_safetensors(
        out,
        &[
            OwnedTensor::from_f32("images", t.shape.to_vec(), &t.to_f32_vec()),
            OwnedTensor::from_i64("labels", vec![n], &labels),
        ],
        None,
    )
    .unwrap();
    out.to_path_buf()
}

/// The tiny tower's 3 images, labelled, in `dir`.
fn tiny_data(dir: &Path) -> PathBuf {
    dataset_of(
        &torch("tiny_io.safetensors"),
        "images",
        &dir.join("tiny_data.safetensors"),
    )
}

/// Every tensor of a safetensors file, renamed by `rename` (dropped when it returns `None`).
fn tensors_of(file: &Path, rename: impl Fn(&str) -> Option<String>) -> Vec<OwnedTensor> {
    let sd = StateDict::open(file).unwrap();
    sd.names()
        .into_iter()
        .filter_map(|n| {
            let t = sd.tensor(n).unwrap();
            rename(n).map(|to| OwnedTensor::from_f32(to, t.shape.to_vec(), &t.to_f32_vec()))
        })
        .collect()
}

/// The tiny tower's safetensors twin split into two shards with a Hugging Face index, written
/// here by hand (the reader must not depend on our own writer).
fn shard_index(dir: &Path) -> PathBuf {
    let all = tensors_of(&torch("tiny_f32.safetensors"), |n| Some(n.to_string()));
    let (a, b) = all.split_at(all.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("m-00001-of-00002.safetensors", a),
        ("m-00002-of-00002.safetensors", b),
    ] {
        write_safetensors(dir.join(file), part, None).unwrap();
        for t in part {
            map.insert(t.name.clone(), Value::String(file.into()));
        }
    }
    let index = dir.join("model.safetensors.index.json");
    let json = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(&index, json.to_string()).unwrap();
    index
}

/// `arch_<tag>.pt` in its own directory with its open_clip config beside it, and a dataset of
/// its inputs; the PyTorch logits.
fn arch_setup(dir: &Path, tag: &str) -> (PathBuf, PathBuf, Vec<f32>) {
    let d = dir.join(tag);
    std::fs::create_dir_all(&d).unwrap();
    let ck = d.join(format!("arch_{tag}.pt"));
    std::fs::copy(torch(&format!("arch_{tag}.pt")), &ck).unwrap();
    std::fs::copy(
        torch(&format!("arch_{tag}_open_clip_config.json")),
        d.join("open_clip_config.json"),
    )
    .unwrap();
    let io = torch(&format!("arch_{tag}_io.safetensors"));
    let data = dataset_of(&io, "inputs", &d.join("data.safetensors"));
    (ck, data, tensor(&io, "logits"))
}

#[test]
fn logits_of_every_checkpoint_form_equal_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let io = torch("tiny_io.safetensors");
    let data = tiny_data(dir.path());
    let index = shard_index(dir.path());
    let head = path_str(&torch("head_Tiny.pt"));
    // (checkpoint, extra arguments, PyTorch's logits in tiny_io.safetensors)
    let forms: Vec<(PathBuf, Vec<&str>, &str)> = vec![
        (torch("sd_zip.pt"), vec![], "logits_f32"),
        (torch("sd_legacy.pt"), vec![], "logits_f32"),
        (torch("sd_f16.pt"), vec![], "logits_f16"),
        (torch("sd_bf16.pt"), vec![], "logits_bf16"),
        (torch("sd_bf16_legacy.pt"), vec![], "logits_bf16"),
        (torch("wiseft.pkl"), vec![], "logits_f32"),
        (torch("zeroshot.pt"), vec!["--head", &head], "logits_f32"),
        (torch("jit.pt"), vec!["--head", &head], "logits_f32"),
        (torch("tiny_f32.safetensors"), vec![], "logits_f32"),
        (index, vec![], "logits_f32"),
    ];
    for (ck, extra, key) in forms {
        let mut args = vec!["--heads", "2"];
        args.extend(extra);
        let (got, _) = logits(dir.path(), &ck, &data, &args);
        let e = rel_err(&got, &tensor(&io, key));
        eprintln!("{}: {e:.2e}", ck.display());
        assert!(e < TOL, "{}: relative error {e:e} vs PyTorch", ck.display());
    }
    // open_clip towers with their open_clip_config.json beside them: no flag needed.
    for tag in ["quickgelu", "gelu", "ls", "hw48"] {
        let (ck, data, want) = arch_setup(dir.path(), tag);
        let (got, o) = logits(dir.path(), &ck, &data, &[]);
        assert_eq!(activation_warnings(&o), 0, "{tag}: {}", stderr(&o));
        let e = rel_err(&got, &want);
        eprintln!("arch_{tag}: {e:.2e}");
        assert!(e < TOL, "arch_{tag}: relative error {e:e} vs PyTorch");
    }
}

#[test]
fn the_activation_default_is_warned_once_and_flags_and_configs_silence_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let (_, o) = logits(dir.path(), &torch("sd_zip.pt"), &data, &["--heads", "2"]);
    assert_eq!(activation_warnings(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("--activation gelu|quick-gelu"));
    let (_, o) = logits(
        dir.path(),
        &torch("sd_zip.pt"),
        &data,
        &["--heads", "2", "--activation", "quick-gelu"],
    );
    assert_eq!(activation_warnings(&o), 0, "{}", stderr(&o));
    // --arch says both the activation and the heads (ViT-B-32 would contradict the shapes).
    let o = run(&[
        "logits",
        "--checkpoint",
        &path_str(&torch("sd_zip.pt")),
        "--data",
        &path_str(&data),
        "--out",
        &path_str(&dir.path().join("x.npy")),
        "--arch",
        "ViT-B-32",
    ]);
    fails_with(&o, &["width", "--arch ViT-B-32"]);
    // A flag that disagrees with the config file beside the checkpoint overrides it (the
    // gelu tower run as QuickGELU is not PyTorch's any more).
    let (ck, data, want) = arch_setup(dir.path(), "gelu");
    let (got, o) = logits(dir.path(), &ck, &data, &["--activation", "quick-gelu"]);
    assert_eq!(activation_warnings(&o), 0);
    assert!(rel_err(&got, &want) > 1e-3);
}

/// The first `n` samples of a demo data set, written as a safetensors file.
fn demo_subset(name: &str, n: usize, dir: &Path) -> PathBuf {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo/data");
    let sd = StateDict::open(demo.join(format!("{name}.safetensors"))).unwrap();
    let img = sd.tensor("images").unwrap().to_f32_vec();
    let lab = sd.tensor("labels").unwrap().to_i64_vec().unwrap();
    let out = dir.join(format!("{name}.safetensors"));
    write_safetensors(
        &out,
        &[
            OwnedTensor::from_f32("images", vec![n, 3, 16, 16], &img[..n * 768]),
            OwnedTensor::from_i64("labels", vec![n], &lab[..n]),
        ],
        None,
    )
    .unwrap();
    out
}

#[test]
fn eval_warns_once_for_both_models_and_records_the_sources_in_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo");
    let val = demo_subset("val", 60, dir.path());
    let id = demo_subset("id", 30, dir.path());
    let test = demo_subset("rotate", 30, dir.path());
    let out = dir.path().join("out");
    let o = run(&[
        "eval",
        "--theta0",
        &path_str(&demo.join("theta0.safetensors")),
        "--theta1",
        &path_str(&demo.join("theta1.safetensors")),
        "--val",
        &path_str(&val),
        "--id",
        &path_str(&id),
        "--test",
        &path_str(&test),
        "--out",
        &path_str(&out),
        "--no-plots",
    ]);
    ok(&o);
    // One line, naming both checkpoints.
    assert_eq!(activation_warnings(&o), 1, "{}", stderr(&o));
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("activation is a DEFAULT"))
        .unwrap()
        .to_string();
    assert!(line.contains("theta0.safetensors") && line.contains("theta1.safetensors"));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for m in ["theta0", "theta1"] {
        let a = &report["architectures"][m];
        assert_eq!(a["activation"]["value"], "quick-gelu", "{a}");
        assert_eq!(a["activation"]["source"], "default", "{a}");
        assert_eq!(a["heads"]["value"], 4);
        assert_eq!(a["heads"]["source"], "metadata");
        assert_eq!(a["width"]["source"], "tensor shapes");
    }
}

#[test]
fn an_unused_vision_tensor_is_an_error_naming_it_unless_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let io = torch("tiny_io.safetensors");
    let data = tiny_data(dir.path());
    let mut tensors = tensors_of(&torch("tiny_f32.safetensors"), |n| Some(n.to_string()));
    let extra = "visual.transformer.resblocks.1.attn.extra_bias";
    tensors.push(OwnedTensor::from_f32(extra, vec![64], &[0.5; 64]));
    let ck = dir.path().join("extra.safetensors");
    write_safetensors(&ck, &tensors, None).unwrap();
    let args = [
        "logits",
        "--checkpoint",
        &path_str(&ck),
        "--data",
        &path_str(&data),
        "--out",
        &path_str(&dir.path().join("x.npy")),
        "--heads",
        "2",
    ];
    fails_with(
        &run(&args),
        &[extra, "extra.safetensors", "--ignore-unused"],
    );
    let (got, o) = logits(dir.path(), &ck, &data, &["--heads", "2", "--ignore-unused"]);
    assert!(stderr(&o).contains(extra), "{}", stderr(&o));
    assert!(rel_err(&got, &tensor(&io, "logits_f32")) < TOL);
    // The text tower and logit_scale (outside the vision prefix) are ignored, and listed so.
    let text = ok(&run(&["inspect", &path_str(&ck), "--heads", "2"]));
    let unused = text.split_once("\nunused").unwrap().1;
    assert!(unused.starts_with("          1 tensor(s)"), "{text}");
    assert!(unused.lines().nth(1).unwrap().trim() == extra, "{text}");
    for p in [
        "transformer.",
        "token_embedding.",
        "logit_scale",
        "ln_final.",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(p) && l.contains("outside the vision tower")),
            "`{p}` not listed as ignored:\n{text}"
        );
    }
}

#[test]
fn inspect_shows_every_field_with_its_source() {
    let dir = tempfile::tempdir().unwrap();
    // A tower whose head width is not 64, its config beside it.
    let (ck, _, _) = arch_setup(dir.path(), "hw48");
    let text = ok(&run(&["inspect", &path_str(&ck)]));
    let line = |k: &str| -> String {
        text.lines()
            .find(|l| l.trim_start().starts_with(k))
            .unwrap_or_else(|| panic!("no `{k}` line:\n{text}"))
            .to_string()
    };
    assert!(line("format").contains("torch.save (zip)"));
    assert!(line("naming").contains("`visual.`"));
    assert!(line("width").contains("96"));
    assert!(line("heads").contains(" 2 ") && line("heads").contains("open_clip_config.json"));
    assert!(line("head width").contains("48"));
    assert!(line("layers").contains(" 1 "));
    assert!(line("patch").contains(" 8 "));
    assert!(line("image size").contains("32"));
    assert!(line("embed dim").contains("32"));
    assert!(line("classes").contains(" 5 "));
    assert!(line("dtype").contains("f32"));
    let act = line("activation");
    assert!(
        act.contains("quick-gelu") && act.contains("quick_gelu = true"),
        "{act}"
    );
    assert!(line("LayerScale").contains("false"));
    assert!(!text.contains("DEFAULT: QuickGELU"));

    // LayerScale and exact GELU from open_clip's config (ls_init_value, quick_gelu absent).
    let (ck, _, _) = arch_setup(dir.path(), "ls");
    let j: Value = serde_json::from_str(&ok(&run(&["inspect", "--json", &path_str(&ck)]))).unwrap();
    assert_eq!(j["activation"]["value"], "gelu");
    assert_eq!(j["activation"]["source"], "open_clip_config.json");
    assert_eq!(j["layer_scale"]["value"], true);
    assert_eq!(j["unused"], serde_json::json!([]));

    // A WiSE-FT pickle: its prefix, and a DEFAULT activation shown as such.
    let text = ok(&run(&["inspect", &path_str(&torch("wiseft.pkl"))]));
    assert!(text.contains("pickle.dump (legacy storages)"), "{text}");
    assert!(text.contains("`image_encoder.model.visual.`"), "{text}");
    assert!(text.contains("DEFAULT: QuickGELU"), "{text}");

    // A TorchScript archive without a vision tower is a clear error naming the file.
    fails_with(
        &run(&["inspect", &path_str(&torch("jit_no_vision.pt"))]),
        &[
            "jit_no_vision.pt",
            "not a CLIP ViT image encoder",
            "visual.conv1.weight",
        ],
    );
}

/// Every tensor of a checkpoint, by name: (dtype, shape, bytes).
fn all_bytes(p: &Path) -> HashMap<String, (String, Vec<usize>, Vec<u8>)> {
    let ck = CheckpointFile::open(p).unwrap();
    ck.tensor_names()
        .into_iter()
        .map(|n| {
            let (d, s) = ck.tensor_meta(n).unwrap();
            (
                n.to_string(),
                (
                    d.name().to_string(),
                    s,
                    ck.tensor_bytes(n).unwrap().into_owned(),
                ),
            )
        })
        .collect()
}

/// The architecture fields `dawin inspect --json` gives, values only.
fn arch_values(j: &Value) -> Vec<Value> {
    [
        "image_size",
        "patch_size",
        "width",
        "layers",
        "heads",
        "head_width",
        "mlp_dim",
        "embed_dim",
        "activation",
        "layer_scale",
        "layer_norm_eps",
    ]
    .iter()
    .map(|k| j[*k]["value"].clone())
    .collect()
}

#[test]
fn convert_round_trips_bit_for_bit_with_the_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    // bf16 PyTorch file -> bf16 safetensors: every vision tensor bit-identical.
    let src = torch("sd_bf16.pt");
    let out = dir.path().join("tiny.safetensors");
    ok(&run(&[
        "convert",
        &path_str(&src),
        &path_str(&out),
        "--heads",
        "2",
        "--activation",
        "quick-gelu",
    ]));
    let (a, b) = (all_bytes(&src), all_bytes(&out));
    let mut n = 0;
    for (name, t) in &b {
        let from = if name.starts_with("visual.") {
            format!("model.{name}")
        } else {
            name.clone()
        };
        assert_eq!(a.get(&from), Some(t), "{name} differs from {from}");
        n += 1;
    }
    assert!(n >= 34, "{n} tensors");
    // The same architecture, now from the file's metadata: no flag and no warning needed.
    let j = |p: &Path, extra: &[&str]| -> Value {
        let mut args = vec!["inspect", "--json"];
        let s = path_str(p);
        args.push(&s);
        args.extend(extra);
        serde_json::from_str(&ok(&run(&args))).unwrap()
    };
    let ja = j(&src, &["--heads", "2", "--activation", "quick-gelu"]);
    let jb = j(&out, &[]);
    assert_eq!(arch_values(&ja), arch_values(&jb));
    assert_eq!(jb["activation"]["source"], "metadata");
    assert_eq!(jb["heads"]["source"], "metadata");
    let (l0, _) = logits(dir.path(), &src, &data, &["--heads", "2"]);
    let (l1, o) = logits(dir.path(), &out, &data, &[]);
    assert_eq!(l0, l1);
    assert_eq!(activation_warnings(&o), 0, "{}", stderr(&o));

    // A default is not turned into a fact: converted without --activation, the file does not
    // say the activation, and reading it warns again.
    let guessed = dir.path().join("guessed.safetensors");
    let o = run(&[
        "convert",
        &path_str(&src),
        &path_str(&guessed),
        "--heads",
        "2",
    ]);
    ok(&o);
    assert_eq!(activation_warnings(&o), 1, "{}", stderr(&o));
    let jg = j(&guessed, &[]);
    assert_eq!(jg["activation"]["source"], "default");
    assert_eq!(jg["heads"]["source"], "metadata");
    let meta = StateDict::open(&guessed)
        .unwrap()
        .metadata()
        .cloned()
        .unwrap();
    assert!(!meta.contains_key("dawin.vit.activation"), "{meta:?}");
    let (_, o) = logits(dir.path(), &guessed, &data, &[]);
    assert_eq!(activation_warnings(&o), 1, "{}", stderr(&o));

    // Sharded: a Hugging Face index and several shards, loading to the same logits.
    let sharded = dir.path().join("sharded");
    std::fs::create_dir(&sharded).unwrap();
    let out = sharded.join("model.safetensors");
    let (ck, data, want) = arch_setup(dir.path(), "ls");
    ok(&run(&[
        "convert",
        &path_str(&ck),
        &path_str(&out),
        "--shard-size",
        "20KB",
    ]));
    let index = sharded.join("model.safetensors.index.json");
    let ix: Value = serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    let shards: std::collections::BTreeSet<&str> = ix["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(shards.len() >= 3, "{shards:?}");
    // Each shard holds at most 20 kB of tensor data, or one tensor larger than that alone.
    for s in &shards {
        let sd = StateDict::open(sharded.join(s)).unwrap();
        let data: usize = sd
            .names()
            .iter()
            .map(|n| sd.tensor(n).unwrap().bytes.len())
            .sum();
        assert!(data <= 20_000 || sd.names().len() == 1, "{s}: {data} bytes");
    }
    assert!(!out.exists(), "the unsharded name is not written");
    // The directory opens through its index; LayerScale and exact GELU come from metadata.
    let jb = j(&sharded, &[]);
    let ja = j(&ck, &[]);
    assert_eq!(arch_values(&ja), arch_values(&jb));
    let (got, o) = logits(dir.path(), &index, &data, &[]);
    assert_eq!(activation_warnings(&o), 0);
    assert!(rel_err(&got, &want) < TOL);
    let (orig, _) = logits(dir.path(), &ck, &data, &[]);
    assert_eq!(got, orig);
    // No temporary file is left behind.
    for e in std::fs::read_dir(&sharded).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".safetensors") || name.ends_with(".index.json"),
            "{name}"
        );
    }
}

#[test]
fn heads_from_every_form_with_normalize_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let io = torch("tiny_io.safetensors");
    let data = tiny_data(dir.path());
    let (f32_, raw) = (tensor(&io, "logits_f32"), tensor(&io, "logits_raw"));
    assert!(rel_err(&raw, &f32_) > 0.1, "the two references must differ");
    // The head alone as safetensors `weight`/`bias`, with and without `normalize = false`.
    let head = tensors_of(&torch("tiny_f32.safetensors"), |n| {
        n.strip_prefix("classification_head.").map(str::to_string)
    });
    assert_eq!(head.len(), 2);
    let plain = dir.path().join("head.safetensors");
    write_safetensors(&plain, &head, None).unwrap();
    let unnormalised = dir.path().join("head_raw.safetensors");
    let meta = HashMap::from([("dawin.head.normalize".to_string(), "false".to_string())]);
    write_safetensors(&unnormalised, &head, Some(meta)).unwrap();
    let cases: Vec<(PathBuf, &Vec<f32>)> = vec![
        (torch("head_Tiny.pt"), &f32_), // pickled ClassificationHead, normalize=True
        (torch("head_Tiny_raw.pt"), &raw), // pickled ClassificationHead, normalize=False
        (torch("sd_zip.pt"), &f32_),    // a state dict holding classification_head.*
        (plain, &f32_),                 // safetensors, CLIP's default normalize
        (unnormalised, &raw),           // safetensors with dawin.head.normalize = false
    ];
    for (h, want) in cases {
        let hs = path_str(&h);
        let (got, _) = logits(
            dir.path(),
            &torch("zeroshot.pt"),
            &data,
            &["--heads", "2", "--head", &hs],
        );
        let e = rel_err(&got, want);
        eprintln!("head {}: {e:.2e}", h.display());
        assert!(e < TOL, "head {}: {e:e}", h.display());
    }
    // inspect shows where normalize came from.
    let text = ok(&run(&[
        "inspect",
        &path_str(&torch("zeroshot.pt")),
        "--head",
        &path_str(&torch("head_Tiny_raw.pt")),
        "--heads",
        "2",
    ]));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("head normalize"))
        .unwrap();
    assert!(
        line.contains("false") && line.contains("checkpoint"),
        "{line}"
    );
}

#[test]
fn eval_mtl_takes_pytorch_bases_models_and_heads() {
    let dir = tempfile::tempdir().unwrap();
    let io = torch("tiny_io.safetensors");
    let images = StateDict::open(&io).unwrap();
    let t = images.tensor("images").unwrap();
    let data = dir.path().join("tiny.safetensors");
    write_safetensors(
        &data,
        &[
            OwnedTensor::from_f32("images", t.shape.to_vec(), &t.to_f32_vec()),
            OwnedTensor::from_i64("labels", vec![3], &[0, 1, 2]),
        ],
        None,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = run(&[
        "eval-mtl",
        "--base",
        &path_str(&torch("zeroshot.pt")),
        "--model",
        &format!("A={}", path_str(&torch("jit.pt"))),
        "--model",
        &format!("B={}", path_str(&torch("sd_bf16_legacy.pt"))),
        "--head",
        &format!("Tiny={}", path_str(&torch("head_Tiny.pt"))),
        "--test",
        &format!("Tiny={}", path_str(&data)),
        "--vit-heads",
        "2",
        "--out",
        &path_str(&out),
        "-q",
    ]);
    ok(&o);
    assert_eq!(activation_warnings(&o), 1, "{}", stderr(&o));
    // Each fine-tuned model's predictions are PyTorch's (argmax of its logits).
    let argmax = |v: &[f32]| -> Vec<i64> {
        v.chunks(5)
            .map(|r| (0..5).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as i64)
            .collect()
    };
    for (m, key) in [("A", "logits_f32"), ("B", "logits_bf16")] {
        let pred = npy::read_i64(out.join(format!("Tiny/pred_ft_{m}.npy"))).unwrap();
        assert_eq!(pred.data, argmax(&tensor(&io, key)), "model {m}");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let archs = report["architectures"].as_object().unwrap();
    assert!(archs.len() >= 3, "{archs:?}");
    for a in archs.values() {
        assert_eq!(a["heads"]["value"], 2);
        assert_eq!(a["activation"]["source"], "default");
    }
}

#[test]
fn the_logits_cache_key_holds_the_architecture_and_the_head_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = tiny_data(dir.path());
    let cache = dir.path().join("cache");
    let go = |extra: &[&str]| -> String {
        let mut args = vec![
            "logits".to_string(),
            "--checkpoint".into(),
            path_str(&torch("zeroshot.pt")),
            "--data".into(),
            path_str(&data),
            "--cache-dir".into(),
            path_str(&cache),
            "--heads".into(),
            "2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(&run(&args))
    };
    let head = path_str(&torch("head_Tiny.pt"));
    let raw = path_str(&torch("head_Tiny_raw.pt"));
    assert!(go(&["--head", &head]).contains("stored in the cache"));
    assert!(go(&["--head", &head]).contains("already in the cache"));
    // Another activation, another head file: computed again, never served from the cache.
    assert!(go(&["--head", &head, "--activation", "gelu"]).contains("stored in the cache"));
    assert!(go(&["--head", &raw]).contains("stored in the cache"));
    assert!(go(&["--head", &raw]).contains("already in the cache"));
}

#[test]
fn a_hugging_face_directory_takes_its_config_json() {
    let dir = tempfile::tempdir().unwrap();
    // transformers' CLIPVisionModelWithProjection: exact GELU and 2 heads of 48, said only by
    // the config.json beside model.safetensors.
    let io = torch("hf_gelu_io.safetensors");
    let data = dataset_of(&io, "inputs", &dir.path().join("hf.safetensors"));
    let head = path_str(&torch("hf_gelu_head.safetensors"));
    let (got, o) = logits(dir.path(), &torch("hf_gelu"), &data, &["--head", &head]);
    assert_eq!(activation_warnings(&o), 0, "{}", stderr(&o));
    let e = rel_err(&got, &tensor(&io, "logits"));
    eprintln!("hf_gelu: {e:.2e}");
    assert!(e < TOL, "hf_gelu: relative error {e:e} vs transformers");
    let j: Value = serde_json::from_str(&ok(&run(&[
        "inspect",
        "--json",
        &path_str(&torch("hf_gelu")),
        "--head",
        &head,
    ])))
    .unwrap();
    assert_eq!(j["naming"], "huggingface");
    assert_eq!(j["activation"]["value"], "gelu");
    assert_eq!(j["activation"]["source"], "config.json");
    assert_eq!(j["heads"]["value"], 2);
    assert_eq!(j["head_width"]["value"], 48);
    // Without the config, the defaults are said (and are wrong here).
    let (got, o) = logits(
        dir.path(),
        &torch("hf_gelu"),
        &data,
        &["--head", &head, "--no-config-files", "--heads", "2"],
    );
    assert_eq!(activation_warnings(&o), 1, "{}", stderr(&o));
    assert!(rel_err(&got, &tensor(&io, "logits")) > 1e-3);
    // A flag contradicting the config.json's fact-checked fields is refused: width 96 is not
    // ViT-B-32's 768.
    let o = run(&[
        "inspect",
        &path_str(&torch("hf_gelu")),
        "--arch",
        "ViT-B-32",
    ]);
    fails_with(&o, &["width", "768", "96"]);
}

#[test]
fn merge_reads_pytorch_inputs_and_refuses_different_architectures() {
    let dir = tempfile::tempdir().unwrap();
    let (gelu, _, _) = arch_setup(dir.path(), "gelu");
    let (quick, _, _) = arch_setup(dir.path(), "quickgelu");
    let out = dir.path().join("merged.safetensors");
    let o = run(&[
        "merge",
        "--theta0",
        &path_str(&gelu),
        "--theta1",
        &path_str(&quick),
        "--lambda",
        "0.5",
        "--out",
        &path_str(&out),
    ]);
    fails_with(&o, &["activation", "arch_quickgelu.pt", "arch_gelu.pt"]);
    assert!(!out.exists());
    // A state dict saying nothing takes the base's architecture (same shapes: width 64, 2
    // layers), and the merge is (θ0 + θ1) / 2 of the vision tensors.
    let o = run(&[
        "merge",
        "--theta0",
        &path_str(&gelu),
        "--theta1",
        &path_str(&torch("sd_zip.pt")),
        "--lambda",
        "0.5",
        "--out",
        &path_str(&out),
    ]);
    ok(&o);
    assert_eq!(activation_warnings(&o), 0, "{}", stderr(&o));
    let name = "visual.transformer.resblocks.1.mlp.c_fc.weight";
    let m = tensor(&out, name);
    let a = CheckpointFile::open(&gelu)
        .unwrap()
        .tensor_f32(name)
        .unwrap();
    let b = CheckpointFile::open(torch("sd_zip.pt"))
        .unwrap()
        .tensor_f32(&format!("model.{name}"))
        .unwrap();
    for ((m, a), b) in m.iter().zip(&a).zip(&b) {
        assert!((m - 0.5 * (a + b)).abs() <= 1e-6 * (1.0 + m.abs()));
    }
    let j: Value =
        serde_json::from_str(&ok(&run(&["inspect", "--json", &path_str(&out)]))).unwrap();
    assert_eq!(j["activation"]["value"], "gelu");
}

#[test]
fn eval_takes_pytorch_checkpoints_and_head_files() {
    let dir = tempfile::tempdir().unwrap();
    let io = torch("tiny_io.safetensors");
    let data = tiny_data(dir.path());
    let out = dir.path().join("out");
    let o = run(&[
        "eval",
        "--theta0",
        &path_str(&torch("zeroshot.pt")),
        "--theta0-head",
        &path_str(&torch("head_Tiny.pt")),
        "--theta1",
        &path_str(&torch("sd_bf16.pt")),
        "--heads",
        "2",
        "--val",
        &path_str(&data),
        "--id",
        &path_str(&data),
        "--test",
        &format!("t={}", path_str(&data)),
        "--k",
        "1",
        "--out",
        &path_str(&out),
        "--no-plots",
        "-q",
    ]);
    ok(&o);
    assert_eq!(activation_warnings(&o), 1, "{}", stderr(&o));
    // θ0's and θ1's predictions are PyTorch's.
    let argmax = |v: &[f32]| -> Vec<i64> {
        v.chunks(5)
            .map(|r| (0..5).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap() as i64)
            .collect()
    };
    for (m, key) in [("zs", "logits_f32"), ("ft", "logits_bf16")] {
        let pred = npy::read_i64(out.join(format!("t/pred_{m}.npy"))).unwrap();
        assert_eq!(pred.data, argmax(&tensor(&io, key)), "{m}");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let a = &report["architectures"]["theta0"];
    assert_eq!(a["heads"]["source"], "flag");
    assert_eq!(a["format"], "torch.save (zip)");
    assert_eq!(a["head"]["normalize"]["source"], "checkpoint", "{a}");
}
