//! End-to-end tests of the data path through the `dawin` binary: image folders, WebDataset
//! shards, the dataset conventions (with a 1000-class head made from the demo's), sharded logits
//! in the cache, and bad input. Images are generated here (small JPEGs written by the `image`
//! crate); the models are the embedded demo's (16×16 inputs, 10 classes).
use dawin::core::{npy, write_safetensors, OwnedTensor, StateDict};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dawin"))
}

fn demo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("demo")
        .join(p)
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
        String::from_utf8(o.stdout.clone()).unwrap(),
        String::from_utf8(o.stderr.clone()).unwrap(),
    )
}

fn fails_with(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "should fail; stdout: {}\nstderr: {err}",
        String::from_utf8_lossy(&o.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
}

/// A JPEG of `w × h` whose content depends on `seed` (smooth ramps and a stripe pattern).
fn jpeg(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let s = seed.wrapping_mul(2654435761);
            px.push(((x * 255 / w.max(1)) ^ (s & 0x3f)) as u8);
            px.push(((y * 255 / h.max(1)).wrapping_add(s >> 8) & 0xff) as u8);
            px.push(if (x / 3 + y / 2 + seed) % 4 < 2 {
                40
            } else {
                220
            });
        }
    }
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 90)
        .encode(&px, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    buf
}

/// Class folders `classes`, `per` images each (sizes vary, some upscaled): returns the files
/// in dataset order.
fn folder(root: &Path, classes: &[&str], per: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..per {
            let seed = (c * 100 + i) as u32;
            let f = d.join(format!("img_{i:02}.jpg"));
            std::fs::write(&f, jpeg(14 + (seed % 13), 12 + (seed % 9), seed)).unwrap();
            files.push(f);
        }
    }
    files
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The shard files (or the whole file) of the one dataset cached in `dir` for the one model
/// given, concatenated in shard order.
fn assembled(dir: &Path) -> Vec<f32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npy") {
            return npy::read_f32(&p).unwrap().data;
        }
        if p.to_string_lossy().ends_with(".shards") {
            let mut shards: Vec<(usize, PathBuf)> = std::fs::read_dir(&p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|f| {
                    let name = f.file_name().unwrap().to_string_lossy().into_owned();
                    (name.split('-').next().unwrap().parse().unwrap(), f)
                })
                .collect();
            shards.sort();
            for (_, f) in shards {
                out.extend(npy::read_f32(&f).unwrap().data);
            }
        }
    }
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn sharded_logits_equal_the_unsharded_ones_and_eval_assembles_them() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("toy");
    folder(&data, &["ant", "bee", "cat"], 8); // 24 samples
    let spec = format!("toy={}", s(&data));
    let theta0 = s(&demo("theta0.safetensors"));
    let theta1 = s(&demo("theta1.safetensors"));
    let full = t.path().join("full.npy");
    ok(&run(&[
        "logits",
        "--checkpoint",
        &theta0,
        "--data",
        &spec,
        "--out",
        &s(&full),
        "--batch-size",
        "5",
    ]));
    let want = npy::read_f32(&full).unwrap();
    assert_eq!(want.shape, [24, 10]);
    for n in [1usize, 3, 7] {
        let cache = t.path().join(format!("cache{n}"));
        for i in 0..n {
            let (out, _) = ok(&run(&[
                "logits",
                "--checkpoint",
                &theta0,
                "--data",
                &spec,
                "--shard",
                &format!("{i}/{n}"),
                "--cache-dir",
                &s(&cache),
                "--batch-size",
                "4",
                "--workers",
                "2",
            ]));
            assert!(out.contains("stored in the cache"), "{out}");
        }
        assert_eq!(bits(&assembled(&cache)), bits(&want.data), "N = {n}");
    }
    // θ1's shards too, then eval reads both sets and computes no logits of θ0/θ1.
    let cache = t.path().join("cache7");
    for i in 0..7 {
        ok(&run(&[
            "logits",
            "--checkpoint",
            &theta1,
            "--data",
            &spec,
            "--shard",
            &format!("{i}/7"),
            "--cache-dir",
            &s(&cache),
        ]));
    }
    let eval = |extra: &[&str], cache: &Path, out: &Path| {
        let mut a = vec![
            "eval",
            "--theta0",
            &theta0,
            "--theta1",
            &theta1,
            "--val",
            &spec,
            "--id",
            &spec,
            "--methods",
            "zs,ft,dcs",
            "--no-plots",
            "-q",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        a.extend(["--cache-dir".into(), s(cache), "--out".into(), s(out)]);
        a.extend(extra.iter().map(|x| x.to_string()));
        bin().args(&a).output().unwrap()
    };
    let (stdout, _) = ok(&eval(&[], &cache, &t.path().join("out")));
    assert!(stdout.contains("assembled from 7 shards"), "{stdout}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("out/report.json")).unwrap())
            .unwrap();
    assert_eq!(r["cache_misses"], 0, "{r}");
    assert_eq!(
        r["data"]["toy"]["logits_from_shards"],
        serde_json::json!([7, 7])
    );
    // The same table as an evaluation that computes everything itself.
    ok(&eval(&[], &t.path().join("fresh"), &t.path().join("out2")));
    let r2: Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("out2/report.json")).unwrap())
            .unwrap();
    assert_eq!(r["methods"], r2["methods"]);
    // A missing shard is named; --compute-missing-shards fills it in.
    let shards = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".shards"))
        .collect::<Vec<_>>();
    assert_eq!(shards.len(), 2, "θ0's and θ1's");
    for sd in &shards {
        std::fs::remove_file(sd.join("3-of-7.npy")).unwrap();
    }
    fails_with(
        &eval(&[], &cache, &t.path().join("out3")),
        &[
            "6 of 7 shards present",
            "missing: 3/7",
            "--compute-missing-shards",
        ],
    );
    // Shards of another count beside an incomplete set: mismatched counts.
    for sd in &shards {
        std::fs::copy(sd.join("0-of-7.npy"), sd.join("0-of-3.npy")).unwrap();
    }
    fails_with(
        &eval(&[], &cache, &t.path().join("out4")),
        &["mismatched shard counts", "1 of 3 shards", "6 of 7 shards"],
    );
    for sd in &shards {
        std::fs::remove_file(sd.join("0-of-3.npy")).unwrap();
    }
    ok(&eval(
        &["--compute-missing-shards"],
        &cache,
        &t.path().join("out5"),
    ));
    assert!(shards.iter().all(|sd| sd.join("3-of-7.npy").is_file()));
    let r5: Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("out5/report.json")).unwrap())
            .unwrap();
    assert_eq!(r5["methods"], r2["methods"]);
}

#[test]
fn shard_arguments_out_of_range_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("d");
    folder(&data, &["a", "b"], 2);
    let theta0 = s(&demo("theta0.safetensors"));
    for (shard, needle) in [("3/3", "3/3"), ("0/0", "0/0"), ("x/2", "x/2"), ("1", "`1`")] {
        let o = run(&[
            "logits",
            "--checkpoint",
            &theta0,
            "--data",
            &s(&data),
            "--shard",
            shard,
            "--cache-dir",
            &s(&t.path().join("c")),
        ]);
        fails_with(&o, &["--shard", needle]);
    }
    fails_with(
        &run(&["logits", "--checkpoint", &theta0, "--data", &s(&data)]),
        &["--out", "--cache-dir"],
    );
}

#[test]
fn a_bad_jpeg_in_a_folder_is_named_or_skipped_and_counted() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("d");
    let files = folder(&data, &["a", "b", "c"], 4);
    // Truncated in the middle of the folder, and a file that is not an image at all.
    let bytes = std::fs::read(&files[5]).unwrap();
    std::fs::write(&files[5], &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(&files[9], b"not a jpeg").unwrap();
    let theta0 = s(&demo("theta0.safetensors"));
    let out = t.path().join("z.npy");
    let o = run(&[
        "logits",
        "--checkpoint",
        &theta0,
        "--data",
        &s(&data),
        "--out",
        &s(&out),
    ]);
    fails_with(&o, &["b/img_01.jpg", "truncated"]);
    let (_, err) = ok(&run(&[
        "logits",
        "--checkpoint",
        &theta0,
        "--data",
        &s(&data),
        "--out",
        &s(&out),
        "--labels-out",
        &s(&t.path().join("y.npy")),
        "--skip-bad-files",
    ]));
    assert!(
        err.contains("2 file(s) that cannot be decoded left out"),
        "{err}"
    );
    assert!(err.contains("b/img_01.jpg"), "{err}");
    assert_eq!(npy::read_f32(&out).unwrap().shape, [10, 10]);
    let y = npy::read_i64(t.path().join("y.npy")).unwrap().data;
    assert_eq!(y, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    // eval: the same error without the flag; with it the files are left out and recorded.
    let theta1 = s(&demo("theta1.safetensors"));
    let spec = s(&data);
    let o = run(&[
        "eval",
        "--theta0",
        &theta0,
        "--theta1",
        &theta1,
        "--val",
        &spec,
        "--id",
        &spec,
        "--methods",
        "zs",
        "--no-cache",
        "-q",
        "--no-plots",
    ]);
    fails_with(&o, &["b/img_01.jpg"]);
    let rep = t.path().join("rep");
    ok(&run(&[
        "eval",
        "--theta0",
        &theta0,
        "--theta1",
        &theta1,
        "--val",
        &spec,
        "--id",
        &spec,
        "--methods",
        "zs",
        "--no-cache",
        "-q",
        "--no-plots",
        "--skip-bad-files",
        "--out",
        &s(&rep),
    ]));
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(rep.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["n_samples"]["d"], 10);
    let notes = r["data"]["d"]["notes"].to_string();
    assert!(
        notes.contains("2 file(s) that cannot be decoded"),
        "{notes}"
    );
}

#[test]
fn folder_layouts_that_do_not_fit_are_named() {
    let t = tempfile::tempdir().unwrap();
    let theta0 = s(&demo("theta0.safetensors"));
    let out = s(&t.path().join("z.npy"));
    // An empty class folder.
    let d = t.path().join("empty");
    folder(&d, &["a", "b"], 2);
    std::fs::create_dir(d.join("c")).unwrap();
    fails_with(
        &run(&[
            "logits",
            "--checkpoint",
            &theta0,
            "--data",
            &s(&d),
            "--out",
            &out,
        ]),
        &["`c`", "no"],
    );
    // Integer class folders are labelled by their integer, and the tool says so.
    let d = t.path().join("ints");
    folder(&d, &["1", "2", "9"], 2);
    let y = s(&t.path().join("y.npy"));
    let (_, err) = ok(&run(&[
        "logits",
        "--checkpoint",
        &theta0,
        "--data",
        &s(&d),
        "--out",
        &out,
        "--labels-out",
        &y,
    ]));
    assert!(err.contains("label = the folder's integer"), "{err}");
    assert_eq!(npy::read_i64(&y).unwrap().data, [1, 1, 2, 2, 9, 9]);
    let (_, err) = ok(&run(&[
        "logits",
        "--checkpoint",
        &theta0,
        "--data",
        &s(&d),
        "--out",
        &out,
        "--labels-out",
        &y,
        "--sorted-labels",
    ]));
    assert!(err.contains("sorted name order"), "{err}");
    assert_eq!(npy::read_i64(&y).unwrap().data, [0, 0, 1, 1, 2, 2]);
    // A label outside the head's 10 classes.
    let d = t.path().join("big");
    folder(&d, &["2", "10"], 1);
    fails_with(
        &run(&[
            "logits",
            "--checkpoint",
            &theta0,
            "--data",
            &s(&d),
            "--out",
            &out,
        ]),
        &["label 10", "10 classes"],
    );
    let theta1 = s(&demo("theta1.safetensors"));
    let ok_set = t.path().join("ints");
    fails_with(
        &run(&[
            "eval",
            "--theta0",
            &theta0,
            "--theta1",
            &theta1,
            "--val",
            &s(&ok_set),
            "--id",
            &s(&ok_set),
            "--test",
            &s(&d),
            "--no-cache",
            "-q",
            "--no-plots",
            "--methods",
            "zs",
        ]),
        &["`big`", "label 10"],
    );
}

/// Writes a tar of `members` (name, bytes) in order.
fn tar_of(path: &Path, members: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.finish().unwrap();
}

#[test]
fn webdataset_shards_give_the_same_logits_as_the_folder() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("d");
    let files = folder(&data, &["a", "b", "c"], 3);
    // The same samples in two shards: key = class/file, .jpg + .cls.
    let member = |f: &PathBuf, label: usize| {
        let key = format!("{}/{}", label, f.file_stem().unwrap().to_string_lossy());
        [
            (format!("{key}.jpg"), std::fs::read(f).unwrap()),
            (format!("{key}.cls"), format!("{label}\n").into_bytes()),
        ]
    };
    let all: Vec<(String, Vec<u8>)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, f)| member(f, i / 3))
        .collect();
    tar_of(&t.path().join("shard-0.tar"), &all[..8]);
    tar_of(&t.path().join("shard-1.tar"), &all[8..]);
    let theta0 = s(&demo("theta0.safetensors"));
    let (a, b) = (t.path().join("a.npy"), t.path().join("b.npy"));
    let (ya, yb) = (t.path().join("ya.npy"), t.path().join("yb.npy"));
    ok(&run(&[
        "logits",
        "--checkpoint",
        &theta0,
        "--data",
        &s(&data),
        "--out",
        &s(&a),
        "--labels-out",
        &s(&ya),
    ]));
    let pattern = format!("wds={}/shard-{{0..1}}.tar", t.path().display());
    let (_, err) = ok(&run(&[
        "logits",
        "--checkpoint",
        &theta0,
        "--data",
        &pattern,
        "--out",
        &s(&b),
        "--labels-out",
        &s(&yb),
        "--workers",
        "2",
    ]));
    assert!(err.contains("2 WebDataset shard(s)"), "{err}");
    assert_eq!(
        bits(&npy::read_f32(&a).unwrap().data),
        bits(&npy::read_f32(&b).unwrap().data)
    );
    assert_eq!(
        npy::read_i64(&ya).unwrap().data,
        npy::read_i64(&yb).unwrap().data
    );
    // A .cls that is not an integer is named with its shard and key.
    let mut bad = all.clone();
    bad[3].1 = b"cat".to_vec();
    tar_of(&t.path().join("bad.tar"), &bad);
    fails_with(
        &run(&[
            "logits",
            "--checkpoint",
            &theta0,
            "--data",
            &s(&t.path().join("bad.tar")),
            "--out",
            &s(&b),
        ]),
        &["bad.tar", "0/img_01", "not an integer label"],
    );
}

/// θ0 or θ1 of the demo with a 1000-class head: row k is the demo's row k mod 10 plus a small
/// k-dependent term, so that every ImageNet class has its own logit.
fn imagenet_head(src: &Path, dst: &Path) {
    let sd = StateDict::open(src).unwrap();
    let mut tensors = Vec::new();
    for name in sd.names() {
        let t = sd.tensor(name).unwrap();
        let data = t.to_f32_vec();
        match name {
            "classification_head.weight" => {
                let e = data.len() / 10;
                let w: Vec<f32> = (0..1000 * e)
                    .map(|i| {
                        let (k, j) = (i / e, i % e);
                        data[(k % 10) * e + j] + 0.05 * (((k * 7 + j * 13) % 17) as f32 - 8.0)
                    })
                    .collect();
                tensors.push(OwnedTensor::from_f32(name, vec![1000, e], &w));
            }
            "classification_head.bias" => {
                let b: Vec<f32> = (0..1000).map(|k| data[k % 10]).collect();
                tensors.push(OwnedTensor::from_f32(name, vec![1000], &b));
            }
            _ => tensors.push(OwnedTensor::from_f32(name, t.shape.to_vec(), &data)),
        }
    }
    write_safetensors(dst, &tensors, sd.metadata().cloned()).unwrap();
}

/// ObjectNet's groups, read from the data file (folder → ImageNet indices).
fn objectnet_groups() -> Vec<(String, Vec<usize>)> {
    let tsv = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dawin-vit/data/objectnet_to_imagenet.tsv"),
    )
    .unwrap();
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                f[1].split(' ').map(|v| v.parse().unwrap()).collect(),
            )
        })
        .collect()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best
}

#[test]
fn named_conventions_label_map_and_report_what_they_applied() {
    let t = tempfile::tempdir().unwrap();
    let (th0, th1) = (
        t.path().join("t0.safetensors"),
        t.path().join("t1.safetensors"),
    );
    imagenet_head(&demo("theta0.safetensors"), &th0);
    imagenet_head(&demo("theta1.safetensors"), &th1);
    let wnids: Vec<String> = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dawin-vit/data/imagenet_wnids.txt"),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    .map(|l| l.trim().to_string())
    .collect();
    let r_wnids: Vec<String> = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../dawin-vit/data/imagenet_r_wnids.txt"),
    )
    .unwrap()
    .lines()
    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    .map(|l| l.trim().to_string())
    .collect();
    // imagenet (val and id): 3 wnid folders; imagenet-r: ImageNet-R's 1st, 2nd and 5th classes;
    // objectnet: two mapped folders and one that is not; imagenet-v2: integer folders.
    let inet = t.path().join("inet");
    folder(&inet, &[&wnids[0], &wnids[5], &wnids[999]], 3);
    let r = t.path().join("r");
    folder(&r, &[&r_wnids[0], &r_wnids[1], &r_wnids[4]], 3);
    let on = t.path().join("on");
    let groups = objectnet_groups();
    // alarm_clock (label 0) pools two ImageNet classes; a single-class folder after it.
    assert_eq!(groups[0].1.len(), 2);
    let single = groups.iter().position(|(_, g)| g.len() == 1).unwrap();
    folder(&on, &[&groups[0].0, &groups[single].0, "zz_not_mapped"], 3);
    let v2 = t.path().join("v2");
    folder(&v2, &["0", "2", "10"], 3);
    let cache = t.path().join("cache");
    let out = t.path().join("out");
    let imagenet = format!("imagenet={}", s(&inet));
    let o = run(&[
        "eval",
        "--theta0",
        &s(&th0),
        "--theta1",
        &s(&th1),
        "--val",
        &imagenet,
        "--id",
        &imagenet,
        "--test",
        &format!("imagenet-r={}", s(&r)),
        "--test",
        &format!("objectnet={}", s(&on)),
        "--test",
        &format!("imagenet-v2={}", s(&v2)),
        "--methods",
        "zs,ft,dawin",
        "--k",
        "1",
        "--cache-dir",
        &s(&cache),
        "--out",
        &s(&out),
        "--no-plots",
        "-q",
    ]);
    let (_, err) = ok(&o);
    for needle in [
        "data `imagenet-r`: imagenet-r",
        "restricted to the 200 head classes",
        "pooled to 113 classes",
        "border crop left 2",
        "data `imagenet-v2`: imagenet-v2",
        "label = the folder's integer",
        "left out",
    ] {
        assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    }
    let rep: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let applied = rep["data"]["objectnet"]["applied"].as_str().unwrap();
    assert!(
        applied.contains("pooled to 113") && applied.contains("crop"),
        "{applied}"
    );
    assert!(rep["data"]["objectnet"]["notes"]
        .to_string()
        .contains("left out"));
    // Labels: ImageNet-R by the index in its 200 list, ObjectNet by the index among its 113
    // folders, V2 by the folder's integer.
    let labels = |d: &str| npy::read_i64(out.join(d).join("labels.npy")).unwrap().data;
    assert_eq!(labels("imagenet-r"), [0, 0, 0, 1, 1, 1, 4, 4, 4]);
    let m = single as i64;
    assert_eq!(labels("objectnet"), [0, 0, 0, m, m, m]);
    assert_eq!(labels("imagenet-v2"), [0, 0, 0, 2, 2, 2, 10, 10, 10]);
    assert_eq!(labels("imagenet"), [0, 0, 0, 5, 5, 5, 999, 999, 999]);
    // ZS predictions by hand from θ0's cached head logits [N, 1000] (the cache holds the
    // head's logits; the mapping is applied after): ImageNet-R's argmax over its 200 columns,
    // ObjectNet's over the max of each group.
    let cached: Vec<Vec<f32>> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| npy::read_f32(e.unwrap().path()).unwrap())
        .map(|a| a.data)
        .collect();
    let pred = |d: &str| npy::read_i64(out.join(d).join("pred_zs.npy")).unwrap().data;
    let r_cols: Vec<usize> = r_wnids
        .iter()
        .map(|w| wnids.iter().position(|x| x == w).unwrap())
        .collect();
    let by_hand_r = |z: &[f32]| -> Vec<i64> {
        z.chunks(1000)
            .map(|row| argmax(&r_cols.iter().map(|&k| row[k]).collect::<Vec<_>>()) as i64)
            .collect()
    };
    let by_hand_on = |z: &[f32]| -> Vec<i64> {
        z.chunks(1000)
            .map(|row| {
                let pooled: Vec<f32> = groups
                    .iter()
                    .map(|(_, g)| g.iter().map(|&k| row[k]).fold(f32::NEG_INFINITY, f32::max))
                    .collect();
                argmax(&pooled) as i64
            })
            .collect()
    };
    // Each dataset's θ0 logits are one of the cached files of its length: the ZS predictions
    // must equal the by-hand mapping of one of them (θ0's), not of none.
    let rows = |n: usize| cached.iter().filter(move |z| z.len() == n * 1000);
    assert!(
        rows(9).any(|z| by_hand_r(z) == pred("imagenet-r")),
        "imagenet-r"
    );
    assert!(
        rows(6).any(|z| by_hand_on(z) == pred("objectnet")),
        "objectnet"
    );
    // A named convention needs an ImageNet head: the demo's 10 classes are refused, naming it.
    fails_with(
        &run(&[
            "logits",
            "--checkpoint",
            &s(&demo("theta0.safetensors")),
            "--data",
            &format!("imagenet-r={}", s(&r)),
            "--out",
            &s(&t.path().join("z.npy")),
        ]),
        &["imagenet-r", "ImageNet-1k head", "has 10"],
    );
    // imagenet-v2 needs an ImageNet head too, though these folders' labels fit 10 classes.
    let small = t.path().join("v2small");
    folder(&small, &["0", "3"], 1);
    fails_with(
        &run(&[
            "logits",
            "--checkpoint",
            &s(&demo("theta0.safetensors")),
            "--data",
            &format!("imagenet-v2={}", s(&small)),
            "--out",
            &s(&t.path().join("z.npy")),
        ]),
        &[
            "`imagenet-v2`",
            "ImageNet-1k head of 1000 classes",
            "has 10",
        ],
    );
    // --class-subset on a dataset whose convention has a mapping is refused.
    let sub = t.path().join("sub.txt");
    std::fs::write(&sub, "1 2 3").unwrap();
    fails_with(
        &run(&[
            "eval",
            "--theta0",
            &s(&th0),
            "--theta1",
            &s(&th1),
            "--val",
            &imagenet,
            "--id",
            &imagenet,
            "--test",
            &format!("imagenet-r={}", s(&r)),
            "--class-subset",
            &format!("imagenet-r={}", s(&sub)),
            "--no-cache",
            "-q",
            "--no-plots",
        ]),
        &["--class-subset", "already has the class mapping"],
    );
}
