//! `dawin zeroshot-head`, `dawin eval --zeroshot-classes` and `dawin eval-mtl --zeroshot-head`
//! end to end, against open_clip 3.3.0 and PyTorch on the fixtures of
//! `scripts/make_text_fixtures.py` (crates/dawin-vit/tests/fixtures/text).
use dawin::core::StateDict;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dawin"))
}

fn text_fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dawin-vit/tests/fixtures/text")
        .join(p)
}

fn demo(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("demo")
        .join(p)
        .display()
        .to_string()
}

/// The fixture `gz` decompressed to `dir/name`.
fn gunzip(gz: &str, dir: &Path, name: &str) -> String {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(text_fixture(gz)).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    let out = dir.join(name);
    std::fs::write(&out, bytes).unwrap();
    out.display().to_string()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

fn ok(o: &Output) -> (String, String) {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn fails_with(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
}

/// Largest `‖a_i − b_i‖∞ / ‖b_i‖∞` over rows of `w`.
fn max_rel(a: &[f32], b: &[f32], w: usize) -> f64 {
    assert_eq!(a.len(), b.len());
    a.chunks(w)
        .zip(b.chunks(w))
        .map(|(x, y)| {
            let d = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            (d / y.iter().map(|v| v.abs()).fold(0.0f32, f32::max)) as f64
        })
        .fold(0.0, f64::max)
}

/// The expected head, class names and templates of a fixture CLIP.
fn expected(variant: &str) -> (Vec<f32>, Vec<String>, Vec<String>, StateDict) {
    let sd = StateDict::open(text_fixture(&format!(
        "clip_{variant}/expected.safetensors"
    )))
    .unwrap();
    let meta = sd.metadata().unwrap();
    let json = |k: &str| -> Vec<String> { serde_json::from_str(&meta[k]).unwrap() };
    let (c, t) = (json("classnames"), json("templates"));
    let w = sd
        .tensor("classification_head.weight")
        .unwrap()
        .to_f32_vec();
    (w, c, t, sd)
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.display().to_string()
}

/// The CLI writes open_clip's head (within 1e-4 relative) in both namings, with the class names,
/// templates, tokenizer and checkpoint fingerprint in the metadata; the tokenizer used is said.
#[test]
fn zeroshot_head_writes_open_clips_head() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (variant, naming, extra) in [
        ("quickgelu", "open_clip", vec![]),
        (
            "gelu",
            "hf",
            vec!["--text-heads", "4", "--activation", "gelu"],
        ),
    ] {
        let (want, classes, templates, _) = expected(variant);
        let gz = match naming {
            "hf" => format!("clip_{variant}/hf/model.safetensors.gz"),
            _ => format!("clip_{variant}/open_clip.safetensors.gz"),
        };
        let sub = d.join(variant);
        std::fs::create_dir_all(&sub).unwrap();
        let ck = gunzip(&gz, &sub, "model.safetensors");
        let cl = write_lines(d, "classes.txt", &classes);
        let tp = write_lines(d, "templates.txt", &templates);
        let out = d.join(format!("{variant}_head.safetensors"));
        let mut args = vec![
            "zeroshot-head",
            "--clip",
            &ck,
            "--classes",
            &cl,
            "--templates",
            &tp,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ];
        args.extend(extra);
        let (stdout, stderr) = ok(&run(&args));
        assert!(
            stdout.contains("classification_head.weight [4, 32]"),
            "{stdout}"
        );
        assert!(stderr.contains("built-in CLIP vocabulary"), "{stderr}");
        let sd = StateDict::open(&out).unwrap();
        let got = sd
            .tensor("classification_head.weight")
            .unwrap()
            .to_f32_vec();
        let rel = max_rel(&got, &want, 32);
        println!("{variant} {naming}: head max rel {rel:.1e}");
        assert!(rel < 1e-4, "{rel}");
        assert_eq!(
            sd.tensor("classification_head.bias").unwrap().to_f32_vec(),
            vec![0.0; 4]
        );
        let meta = sd.metadata().unwrap();
        let cls: Vec<String> = serde_json::from_str(&meta["dawin.zeroshot.classes"]).unwrap();
        assert_eq!(cls, classes);
        let tms: Vec<String> = serde_json::from_str(&meta["dawin.zeroshot.templates"]).unwrap();
        assert_eq!(tms, templates);
        assert_eq!(meta["dawin.zeroshot.checkpoint_sha256"].len(), 64);
        assert_eq!(
            meta["dawin.zeroshot.tokenizer_merges_sha256"],
            dawin::vit::tokenizer::MERGES_FINGERPRINT
        );
    }
    // A tokenizer.json beside the checkpoint is found and said; the head is the same.
    let (want, classes, templates, _) = expected("quickgelu");
    let ck = d.join("quickgelu/model.safetensors").display().to_string();
    gunzip("tokenizer.json.gz", &d.join("quickgelu"), "tokenizer.json");
    let out = d.join("beside.safetensors");
    let cl = write_lines(d, "classes.txt", &classes);
    let tp = write_lines(d, "templates.txt", &templates);
    let (_, stderr) = ok(&run(&[
        "zeroshot-head",
        "--clip",
        &ck,
        "--classes",
        &cl,
        "--templates",
        &tp,
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(
        stderr.contains("tokenizer.json") && stderr.contains("found beside the checkpoint"),
        "{stderr}"
    );
    let got = StateDict::open(&out).unwrap();
    let got = got
        .tensor("classification_head.weight")
        .unwrap()
        .to_f32_vec();
    assert!(max_rel(&got, &want, 32) < 1e-4);
}

#[test]
fn zeroshot_head_bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = gunzip(
        "clip_quickgelu/open_clip.safetensors.gz",
        d,
        "clip.safetensors",
    );
    let out = d.join("h.safetensors").display().to_string();
    let good = write_lines(d, "classes.txt", &["cat".into(), "dog".into()]);
    let head = |classes: &str, templates: &str, extra: &[&str]| {
        let mut a = vec![
            "zeroshot-head",
            "--clip",
            &ck,
            "--classes",
            classes,
            "--templates",
            templates,
            "--out",
            &out,
        ];
        a.extend(extra);
        run(&a)
    };
    let empty = d.join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    fails_with(
        &head(empty.to_str().unwrap(), "simple", &[]),
        &["empty.txt", "empty"],
    );
    let bad_t = write_lines(d, "t.txt", &["a photo of a {}.".into(), "a photo.".into()]);
    fails_with(&head(&good, &bad_t, &[]), &["t.txt", "line 2", "{}"]);
    fails_with(
        &head(&good, "no-such-set", &[]),
        &["no-such-set", "openai-imagenet"],
    );
    // A checkpoint without a text tower: the demo's image classifier.
    let o = run(&[
        "zeroshot-head",
        "--clip",
        &demo("theta0.safetensors"),
        "--classes",
        &good,
        "--templates",
        "simple",
        "--out",
        &out,
    ]);
    fails_with(
        &o,
        &[
            "theta0.safetensors",
            "no CLIP text tower",
            "token_embedding.weight",
        ],
    );
    // A tokenizer that is not CLIP's.
    let wp = text_fixture("not_clip_wordpiece.json")
        .display()
        .to_string();
    fails_with(
        &head(&good, "simple", &["--tokenizer", &wp]),
        &["not_clip_wordpiece.json", "not CLIP's tokenizer"],
    );
    fails_with(
        &head(&good, "simple", &["--text-activation", "relu"]),
        &["--text-activation", "relu"],
    );
    assert!(!Path::new(&out).exists(), "nothing written on errors");
    // A class name past 77 tokens: truncated as open_clip does, said once.
    let long = write_lines(d, "long.txt", &["cat".into(), vec!["word"; 90].join(" ")]);
    let (_, stderr) = ok(&head(&long, "openai-imagenet-7", &["--quiet"]));
    assert_eq!(stderr.matches("truncated").count(), 1, "{stderr}");
    assert!(stderr.contains("1 class name(s)"), "{stderr}");
    let sd = StateDict::open(&out).unwrap();
    assert_eq!(
        sd.metadata().unwrap()["dawin.zeroshot.truncated_classes"],
        "[1]"
    );
}

/// PyTorch's zero-shot accuracy (and predictions) on the demo's `id` images, from a CLIP whose
/// vision tower is the demo's θ0 and whose random text tower builds the head from the demo's
/// class names (`clip_demo`).
fn demo_expected() -> (f64, Vec<i64>, Vec<f32>) {
    let sd = StateDict::open(text_fixture("clip_demo/expected.safetensors")).unwrap();
    let acc: f64 = sd.metadata().unwrap()["accuracy"].parse().unwrap();
    let pred = sd.tensor("predictions").unwrap().to_i64_vec().unwrap();
    let head = sd
        .tensor("classification_head.weight")
        .unwrap()
        .to_f32_vec();
    (acc, pred, head)
}

/// `dawin eval --zeroshot-classes`: θ0 = the demo's θ0 with a text tower instead of a head;
/// its zero-shot accuracy on the demo's id set is PyTorch's (30/200), the head is cached and
/// read back on a second run.
#[test]
fn eval_builds_theta0s_head_with_pytorchs_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = gunzip(
        "clip_demo/open_clip.safetensors.gz",
        d,
        "clip_demo.safetensors",
    );
    let classes = text_fixture("clip_demo/classes.txt").display().to_string();
    let out = d.join("out").display().to_string();
    let (acc, pred, head) = demo_expected();
    let eval = || {
        run(&[
            "eval",
            "--theta0",
            &ck,
            "--theta1",
            &demo("theta1.safetensors"),
            "--val",
            &demo("data/id.safetensors"),
            "--id",
            &demo("data/id.safetensors"),
            "--zeroshot-classes",
            &classes,
            "--templates",
            "mnist",
            "--methods",
            "zs,ft,dawin",
            "--out",
            &out,
            "--no-plots",
            "--device",
            "cpu",
            "--quiet",
        ])
    };
    let (_, stderr) = ok(&eval());
    assert!(stderr.contains("written to the cache"), "{stderr}");
    assert!(
        stderr.contains("text heads = 1 (not in the weights"),
        "{stderr}"
    );
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&out).join("report.json")).unwrap(),
    )
    .unwrap();
    let zs = r["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "zs")
        .unwrap();
    let got = zs["accuracy"]["id"].as_f64().unwrap();
    println!(
        "zero-shot accuracy on the demo's id set: {got:.2}% (PyTorch {:.2}%)",
        100.0 * acc
    );
    assert!((got - 100.0 * acc).abs() < 1e-9, "{got} vs {}", 100.0 * acc);
    let ours = dawin::core::npy::read_i64(Path::new(&out).join("id/pred_zs.npy")).unwrap();
    assert_eq!(ours.data, pred);
    // The cached head is open_clip's.
    let cached: Vec<PathBuf> = std::fs::read_dir(Path::new(&out).join(".dawin-cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("zeroshot-head-")
        })
        .collect();
    assert_eq!(cached.len(), 1);
    let sd = StateDict::open(&cached[0]).unwrap();
    let w = sd
        .tensor("classification_head.weight")
        .unwrap()
        .to_f32_vec();
    assert!(max_rel(&w, &head, 32) < 1e-4);
    // Second run: head and logits from the cache, same table.
    let (_, stderr) = ok(&eval());
    assert!(stderr.contains("read from the cache"), "{stderr}");
    assert!(
        stderr.contains("text heads = 1 (not in the weights"),
        "{stderr}"
    );
}

/// `dawin eval-mtl --zeroshot-head`: the base's zero-shot head for the digits task (the demo's id
/// images) gives PyTorch's accuracy in the base row.
#[test]
fn eval_mtl_builds_per_dataset_heads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = gunzip("clip_demo/open_clip.safetensors.gz", d, "base.safetensors");
    let classes = text_fixture("clip_demo/classes.txt").display().to_string();
    let out = d.join("out").display().to_string();
    let (acc, _, _) = demo_expected();
    let (stdout, stderr) = ok(&run(&[
        "eval-mtl",
        "--base",
        &ck,
        "--model",
        &format!("digits={}", demo("mtl/digits.safetensors")),
        "--zeroshot-head",
        &format!("mnist={classes}"),
        "--test",
        &format!("mnist={}", demo("mtl/data/digits.safetensors")),
        "--methods",
        "base",
        "--out",
        &out,
        "--quiet",
    ]));
    assert!(
        stderr.contains("dataset `mnist`: templates mnist"),
        "{stderr}"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| base"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains(&format!("{:.2}", 100.0 * acc)), "{row}");
    // Bad: a dataset with both a head and a zero-shot head.
    let o = run(&[
        "eval-mtl",
        "--base",
        &ck,
        "--model",
        &format!("digits={}", demo("mtl/digits.safetensors")),
        "--head",
        &format!("mnist={}", demo("mtl/heads/digits.safetensors")),
        "--zeroshot-head",
        &format!("mnist={classes}:simple"),
        "--test",
        &format!("mnist={}", demo("mtl/data/digits.safetensors")),
    ]);
    fails_with(&o, &["mnist", "already has a head"]);
}

/// The text tower's heads and activation come from open_clip's `open_clip_config.json` beside the
/// checkpoint (as the vision tower's do): with it, no flag is needed to get open_clip's head of
/// the exact-GELU, 4-head tower; without it, the stated defaults (width/64 heads, QuickGELU) give
/// another head, and say so.
#[test]
fn zeroshot_head_reads_the_text_tower_from_open_clip_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (want, classes, templates, _) = expected("gelu");
    let cl = write_lines(d, "classes.txt", &classes);
    let tp = write_lines(d, "templates.txt", &templates);
    let head = |ck: &str, out: &Path| {
        ok(&run(&[
            "zeroshot-head",
            "--clip",
            ck,
            "--classes",
            &cl,
            "--templates",
            &tp,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]))
    };
    let weight = |out: &Path| {
        StateDict::open(out)
            .unwrap()
            .tensor("classification_head.weight")
            .unwrap()
            .to_f32_vec()
    };
    let with = d.join("with");
    std::fs::create_dir_all(&with).unwrap();
    let ck = gunzip(
        "clip_gelu/open_clip.safetensors.gz",
        &with,
        "model.safetensors",
    );
    std::fs::copy(
        text_fixture("clip_gelu/open_clip_config.json"),
        with.join("open_clip_config.json"),
    )
    .unwrap();
    let out = d.join("with.safetensors");
    let (_, stderr) = head(&ck, &out);
    assert!(
        stderr.contains("text heads = 4 (open_clip_config.json")
            && stderr.contains("text activation = gelu (open_clip_config.json"),
        "{stderr}"
    );
    let rel = max_rel(&weight(&out), &want, 32);
    println!("clip_gelu with open_clip_config.json, no flags: head max rel {rel:.1e}");
    assert!(rel < 1e-4, "{rel}");
    let meta = StateDict::open(&out).unwrap().metadata().unwrap().clone();
    assert!(
        meta["dawin.zeroshot.text_assumptions"].contains("open_clip_config.json"),
        "{meta:?}"
    );
    // Built into a cache, then read from it: each line about the text tower said once, both times.
    let cache = d.join("cache");
    let spec = dawin::zeroshot::ZeroShotSpec {
        classes: cl.clone(),
        templates: tp.clone(),
        ..Default::default()
    };
    for from_cache in [false, true] {
        let b = dawin::zeroshot::zero_shot_head_cached(Path::new(&ck), &spec, Some(&cache), false)
            .unwrap();
        assert_eq!(b.from_cache, from_cache);
        for field in [
            "text heads = 4 (open_clip_config.json",
            "text activation = gelu (open",
        ] {
            let n = b.notes.iter().filter(|l| l.starts_with(field)).count();
            assert_eq!(n, 1, "{field} (from cache: {from_cache}): {:?}", b.notes);
        }
        assert!(
            !b.notes.iter().any(|l| l.ends_with("(given)")),
            "{:?}",
            b.notes
        );
        assert!(max_rel(&b.head.weight, &want, 32) < 1e-4);
    }

    let without = d.join("without");
    std::fs::create_dir_all(&without).unwrap();
    let ck = gunzip(
        "clip_gelu/open_clip.safetensors.gz",
        &without,
        "model.safetensors",
    );
    let out = d.join("without.safetensors");
    let (_, stderr) = head(&ck, &out);
    assert!(
        stderr.contains("text heads = 1 (not in the weights")
            && stderr.contains("text activation = quick-gelu (not in the weights"),
        "{stderr}"
    );
    let rel = max_rel(&weight(&out), &want, 32);
    assert!(
        rel > 1e-3,
        "defaults should not give open_clip's head: {rel}"
    );
}
