//! `dawin demo --multi-task` and `dawin eval-mtl` end to end: the table against the JSON report
//! and against the accuracies demo/README.md gives (computed by scripts/make_demo.py's own JAX
//! forward, not by this code), and bad input.
use dawin::core::{npy, write_safetensors, OwnedTensor, StateDict};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dawin"))
}

fn demo(p: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("demo/mtl")
        .join(p)
        .display()
        .to_string()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails_with(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "should fail; stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "stderr lacks `{n}`: {err}");
    }
}

/// Table rows `| name | a | b | c | mean |` → name → cells.
fn table(stdout: &str) -> Vec<(String, Vec<String>)> {
    stdout
        .lines()
        .take_while(|l| !l.is_empty())
        .skip(2)
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect();
            (cells[0].clone(), cells[1..].to_vec())
        })
        .collect()
}

#[test]
fn demo_multi_task_table_agrees_with_the_json_and_the_scripts_accuracies() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&bin()
        .args(["demo", "--multi-task", "-q", "--out"])
        .arg(dir.path())
        .output()
        .unwrap());
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let datasets: Vec<&str> = json["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(datasets, ["digits", "rotation", "parity"]);
    let rows = table(&out);
    let methods = json["methods"].as_array().unwrap();
    assert_eq!(rows.len(), methods.len());
    assert_eq!(rows.len(), 10, "3 individual + individual† + 6 methods");
    for ((name, cells), m) in rows.iter().zip(methods) {
        assert_eq!(name, m["method"].as_str().unwrap());
        for (c, d) in cells.iter().zip(&datasets) {
            assert_eq!(c, &format!("{:.2}", m["accuracy"][d].as_f64().unwrap()));
        }
        assert_eq!(cells[3], format!("{:.2}", m["mean"].as_f64().unwrap()));
    }
    // demo/README.md's table (accuracy %, columns digits, rotation, parity); "DaWin s=0.3·M"
    // is the per-sample DaWin.
    let readme: [(&str, [f64; 3]); 8] = [
        ("ft:digits", [97.0, 60.0, 74.0]),
        ("ft:rotation", [68.0, 95.5, 72.0]),
        ("ft:parity", [74.0, 39.0, 90.5]),
        ("individual†", [97.0, 95.5, 90.5]),
        ("base", [92.0, 71.5, 81.5]),
        ("weight-avg", [95.5, 75.0, 85.5]),
        ("task-arithmetic", [95.5, 75.5, 85.0]),
        ("dawin-sample", [96.5, 80.5, 86.0]),
    ];
    for (name, want) in readme {
        let m = methods.iter().find(|m| m["method"] == name).unwrap();
        for (d, w) in datasets.iter().zip(want) {
            assert_eq!(m["accuracy"][d].as_f64().unwrap(), w, "{name} on {d}");
        }
    }
    // Mean λ of each dataset's own expert (README: 0.44, 0.48, 0.40), rows summing to 1.
    for (d, own) in [("digits", 0.44), ("rotation", 0.48), ("parity", 0.40)] {
        let row = json["mean_lambda"][d].as_object().unwrap();
        assert!(
            (row[d].as_f64().unwrap() - own).abs() < 0.005,
            "{d}: {row:?}"
        );
        let s: f64 = row.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((s - 1.0).abs() < 1e-5);
        let mix = &json["mixtures"][d];
        assert_eq!(mix["k"], 1);
    }
    assert!((json["scale"].as_f64().unwrap() - 0.9).abs() < 1e-6);
    // The Fig. 7 heat map (its pixels are checked in crates/dawin/tests/mtl.rs).
    assert!(dir.path().join("lambda_heatmap.png").exists());
    assert!(dir.path().join("lambda_heatmap.svg").exists());
    check_arrays(dir.path(), &json, 3);
}

/// The per-sample arrays under `out` against the report: every accuracy recomputed from
/// `correct_<row>.npy` (itself `pred == labels`), λ rows summing to 1 and equal to
/// softmax(−entropy) recomputed here, mean λ as in the report, components below K.
fn check_arrays(out: &Path, json: &Value, m: usize) {
    let file = |row: &str| -> String {
        if row == "individual†" {
            "individual-oracle".into()
        } else {
            row.replace(':', "_")
        }
    };
    let models: Vec<&str> = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(models.len(), m);
    for d in json["datasets"].as_array().unwrap() {
        let d = d.as_str().unwrap();
        let dir = out.join(d);
        let n = json["n_samples"][d].as_u64().unwrap() as usize;
        let labels = npy::read_i64(dir.join("labels.npy")).unwrap();
        assert_eq!(labels.shape, [n]);
        for row in json["methods"].as_array().unwrap() {
            let name = row["method"].as_str().unwrap();
            let f = file(name);
            let Some(want) = row["accuracy"][d].as_f64() else {
                assert!(!dir.join(format!("pred_{f}.npy")).exists(), "{name} on {d}");
                continue;
            };
            let pred = npy::read_i64(dir.join(format!("pred_{f}.npy"))).unwrap();
            let correct = npy::read_i64(dir.join(format!("correct_{f}.npy"))).unwrap();
            assert_eq!(pred.shape, [n]);
            assert_eq!(correct.shape, [n]);
            for i in 0..n {
                assert_eq!(
                    correct.data[i],
                    (pred.data[i] == labels.data[i]) as i64,
                    "{name} on {d}, sample {i}"
                );
            }
            let acc = 100.0 * correct.data.iter().sum::<i64>() as f64 / n as f64;
            assert!((acc - want).abs() < 1e-9, "{name} on {d}: {acc} vs {want}");
        }
        let h = npy::read_f32(dir.join("entropy.npy")).unwrap();
        let l = npy::read_f32(dir.join("lambda.npy")).unwrap();
        assert_eq!(h.shape, [n, m]);
        assert_eq!(l.shape, [n, m]);
        for i in 0..n {
            let hr = &h.data[i * m..(i + 1) * m];
            let lr = &l.data[i * m..(i + 1) * m];
            assert!(
                hr.iter().all(|&v| v >= 0.0 && v.is_finite()),
                "{d} {i}: {hr:?}"
            );
            let sum: f64 = lr.iter().map(|&v| v as f64).sum();
            assert!((sum - 1.0).abs() < 1e-5, "{d} {i}: λ sums to {sum}");
            // λ_j = exp(−H_j) / Σ_k exp(−H_k), computed here in f64.
            let z: f64 = hr.iter().map(|&v| (-(v as f64)).exp()).sum();
            for (hj, lj) in hr.iter().zip(lr) {
                let want = (-(*hj as f64)).exp() / z;
                assert!(
                    (want - *lj as f64).abs() < 1e-5,
                    "{d} {i}: {lr:?} vs H {hr:?}"
                );
            }
        }
        for (j, model) in models.iter().enumerate() {
            let mean: f64 = (0..n).map(|i| l.data[i * m + j] as f64).sum::<f64>() / n as f64;
            let want = json["mean_lambda"][d][model].as_f64().unwrap();
            assert!((mean - want).abs() < 1e-6, "{d}/{model}: {mean} vs {want}");
        }
        match json["mixtures"].get(d) {
            Some(mix) => {
                let k = mix["k"].as_i64().unwrap();
                let c = npy::read_i64(dir.join("cluster.npy")).unwrap();
                assert_eq!(c.shape, [n]);
                assert!(c.data.iter().all(|&v| (0..k).contains(&v)), "{d}");
                // Samples per component as the report counts them.
                for (kk, want) in mix["counts"].as_array().unwrap().iter().enumerate() {
                    let got = c.data.iter().filter(|&&v| v == kk as i64).count();
                    assert_eq!(got as u64, want.as_u64().unwrap(), "{d} component {kk}");
                }
            }
            None => assert!(!dir.join("cluster.npy").exists()),
        }
    }
}

fn eval_mtl(extra: &[String]) -> Output {
    let mut args: Vec<String> = vec!["eval-mtl".into(), "-q".into()];
    args.push(format!("--base={}", demo("base.safetensors")));
    for t in ["digits", "rotation"] {
        args.push(format!("--model={t}={}", demo(&format!("{t}.safetensors"))));
    }
    args.extend(extra.iter().cloned());
    bin().args(&args).output().unwrap()
}

fn write_copy(src: &str, dst: &Path, replace: (&str, Vec<usize>)) {
    let sd = StateDict::open(src).unwrap();
    let tensors: Vec<OwnedTensor> = sd
        .names()
        .iter()
        .map(|n| {
            if *n == replace.0 {
                let numel = replace.1.iter().product::<usize>();
                OwnedTensor::from_f32(*n, replace.1.clone(), &vec![0.01; numel])
            } else {
                sd.tensor(n).unwrap().to_owned_tensor()
            }
        })
        .collect();
    write_safetensors(dst, &tensors, None).unwrap();
}

#[test]
fn eval_mtl_runs_and_bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let head = |t: &str| format!("--head={t}={}", demo(&format!("heads/{t}.safetensors")));
    let test = |t: &str| format!("--test={t}={}", demo(&format!("data/{t}.safetensors")));
    let out = ok(&eval_mtl(&[
        head("digits"),
        test("digits"),
        "--methods=individual,base,ties,dawin".into(),
        "--k=2".into(),
        format!("--out={}", dir.path().display()),
    ]));
    let rows = table(&out);
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ft:digits", "ft:rotation", "base", "ties", "dawin"]);
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    check_arrays(dir.path(), &json, 2);
    assert_eq!(json["mixtures"]["digits"]["k"], 2);

    // A dataset without a head.
    fails_with(
        &eval_mtl(&[head("digits"), test("digits"), test("parity")]),
        &["parity", "has no head"],
    );
    // A head whose width is not the encoder's embedding width.
    let bad_head = dir.path().join("bad_head.safetensors");
    write_safetensors(
        &bad_head,
        &[
            OwnedTensor::from_f32("classification_head.weight", vec![10, 16], &[0.1; 160]),
            OwnedTensor::from_f32("classification_head.bias", vec![10], &[0.0; 10]),
        ],
        None,
    )
    .unwrap();
    fails_with(
        &eval_mtl(&[
            format!("--head=digits={}", bad_head.display()),
            test("digits"),
        ]),
        &["head `digits`", "bad_head.safetensors", "16", "32"],
    );
    // A fine-tuned checkpoint from another base (a tensor of another shape).
    let other = dir.path().join("other.safetensors");
    write_copy(
        &demo("parity.safetensors"),
        &other,
        ("visual.proj", vec![64, 16]),
    );
    fails_with(
        &eval_mtl(&[
            format!("--model=parity={}", other.display()),
            head("digits"),
            test("digits"),
        ]),
        &["model `parity`", "other.safetensors", "visual.proj"],
    );
    // A missing file, an unknown method, a malformed NAME=PATH.
    fails_with(
        &eval_mtl(&[
            format!(
                "--head=digits={}",
                dir.path().join("nope.safetensors").display()
            ),
            test("digits"),
        ]),
        &["nope.safetensors", "no such file"],
    );
    fails_with(
        &eval_mtl(&[head("digits"), test("digits"), "--methods=foo".into()]),
        &["unknown method `foo`"],
    );
    fails_with(
        &eval_mtl(&[head("digits"), "--test=digits".into()]),
        &["--test", "NAME=PATH"],
    );
}

/// `eval-mtl --device cuda` runs the multi-task device path (dawin::cuda::mtl; its GPU test is
/// crates/dawin/tests/cuda_pipeline.rs); without a GPU it is an error naming `--device`.
#[test]
fn eval_mtl_device_cuda_without_a_gpu_is_a_clear_error() {
    if dawin::kernels::Gpu::new().is_ok() {
        return;
    }
    let head = format!("--head=digits={}", demo("heads/digits.safetensors"));
    let test = format!("--test=digits={}", demo("data/digits.safetensors"));
    let o = eval_mtl(&[head, test, "--device=cuda".into(), "--methods=base".into()]);
    fails_with(&o, &["--device", "cuda:0"]);
}
