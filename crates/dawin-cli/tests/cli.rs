//! End-to-end tests of the `dawin` binary on a subset of the embedded demo and on NumPy-written
//! fixtures (scripts/make_npy_fixtures.py).
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

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
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

fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "should fail; stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
}

/// The first `n` samples of a demo data set, written as a safetensors file.
fn subset(name: &str, n: usize, dir: &Path) -> PathBuf {
    let sd = StateDict::open(demo(&format!("data/{name}.safetensors"))).unwrap();
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

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for f in ["theta0", "theta1"] {
            std::fs::copy(
                demo(&format!("{f}.safetensors")),
                dir.path().join(format!("{f}.safetensors")),
            )
            .unwrap();
        }
        subset("val", 80, dir.path());
        subset("id", 40, dir.path());
        subset("rotate", 40, dir.path());
        subset("invert", 40, dir.path());
        Setup { dir }
    }
    fn p(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }
    fn eval(&self, out: &str, extra: &[&str]) -> Output {
        let mut a = vec![
            "eval",
            "--theta0",
            &self.p("theta0.safetensors")[..],
            "--theta1",
            &self.p("theta1.safetensors")[..],
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        for (k, v) in [
            ("--val", "val"),
            ("--id", "id"),
            ("--test", "rotate"),
            ("--test", "invert"),
        ] {
            a.push(k.into());
            a.push(self.p(&format!("{v}.safetensors")));
        }
        a.push("--out".into());
        a.push(self.p(out));
        a.extend(extra.iter().map(|s| s.to_string()));
        bin().args(&a).output().unwrap()
    }
}

fn report(dir: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(Path::new(dir).join("report.json")).unwrap())
        .unwrap()
}

#[test]
fn eval_table_agrees_with_the_json_report_and_the_per_sample_arrays() {
    let s = Setup::new();
    let out_dir = s.p("out");
    let results = s.p("results.jsonl");
    let stdout = ok(&s.eval(
        "out",
        &["--device", "cpu", "--wise-curve", "--results-db", &results],
    ));
    let r = report(&out_dir);
    let datasets: Vec<String> = r["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(datasets, ["id", "rotate", "invert"]);
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| method"))
        .collect();
    assert_eq!(rows.len(), 10, "{stdout}");
    for (row, m) in rows.iter().zip(r["methods"].as_array().unwrap()) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let name = m["method"].as_str().unwrap();
        assert_eq!(cells[0], name);
        let mut accs = Vec::new();
        for (j, d) in datasets.iter().enumerate() {
            let json = m["accuracy"][d].as_f64().unwrap();
            assert_eq!(cells[1 + j], format!("{json:.2}"), "{name} on {d}");
            // Recompute from the per-sample arrays.
            let correct = npy::read_i64(
                Path::new(&out_dir)
                    .join(d)
                    .join(format!("correct_{name}.npy")),
            )
            .unwrap()
            .data;
            let pred = npy::read_i64(Path::new(&out_dir).join(d).join(format!("pred_{name}.npy")))
                .unwrap()
                .data;
            let labels = npy::read_i64(Path::new(&out_dir).join(d).join("labels.npy"))
                .unwrap()
                .data;
            assert_eq!(correct.len(), 40);
            for i in 0..40 {
                assert_eq!(correct[i], (pred[i] == labels[i]) as i64);
            }
            let acc = 100.0 * correct.iter().sum::<i64>() as f64 / 40.0;
            assert!((acc - json).abs() < 1e-9, "{name} on {d}: {acc} vs {json}");
            accs.push(acc);
        }
        let ood = (accs[1] + accs[2]) / 2.0;
        assert!((m["ood_mean"].as_f64().unwrap() - ood).abs() < 1e-9);
        assert_eq!(cells[1 + datasets.len()], format!("{ood:.2}"));
    }
    // Per-sample coefficient arrays, mixtures, temperatures, timings and the results file.
    for d in &datasets {
        let l = npy::read_f32(Path::new(&out_dir).join(d).join("lambda.npy")).unwrap();
        assert_eq!(l.shape, [40]);
        assert!(l.data.iter().all(|v| (0.0..=1.0).contains(v)));
        let cl = npy::read_i64(Path::new(&out_dir).join(d).join("cluster.npy"))
            .unwrap()
            .data;
        assert!(cl.iter().all(|&c| (0..3).contains(&c)));
        assert_eq!(r["mixtures"][d]["k"], 3);
    }
    assert!(r["temperatures"][0].as_f64().unwrap() > 0.0);
    assert_eq!(r["device"], "cpu");
    assert_eq!(r["wise_curve"].as_array().unwrap().len(), 11);
    assert!(r["timings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t[0] == "total"));
    for png in ["lambda_hist.png", "id_vs_ood.png"] {
        let bytes = std::fs::read(Path::new(&out_dir).join(png)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
    for svg in ["lambda_hist.svg", "id_vs_ood.svg"] {
        let text = std::fs::read_to_string(Path::new(&out_dir).join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("<text"), "{svg}");
    }
    let db = std::fs::read_to_string(&results).unwrap();
    assert_eq!(db.lines().count(), 1);
    let line: Value = serde_json::from_str(db.lines().next().unwrap()).unwrap();
    assert_eq!(line["methods"], r["methods"]);
}

#[test]
fn the_cache_is_used_on_a_second_run_and_invalidated_when_a_checkpoint_changes() {
    let s = Setup::new();
    let fast = ["--methods", "zs,ft,dcs", "--no-plots", "-q"];
    let out1 = ok(&s.eval("o1", &fast));
    let r1 = report(&s.p("o1"));
    // θ0 and θ1 on val, id, rotate, invert.
    assert_eq!(
        (r1["cache_hits"].as_u64(), r1["cache_misses"].as_u64()),
        (Some(0), Some(8))
    );
    let cache = s.p("cache");
    let with_cache: Vec<&str> = fast
        .iter()
        .copied()
        .chain(["--cache-dir", &cache[..]])
        .collect();
    ok(&s.eval("o2", &with_cache));
    let out3 = ok(&s.eval("o3", &with_cache));
    let r3 = report(&s.p("o3"));
    assert_eq!(
        (r3["cache_hits"].as_u64(), r3["cache_misses"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(r3["methods"], r1["methods"]);
    assert_eq!(out1.lines().next(), out3.lines().next());
    // Change θ1 in place (θ(0.3) written over it): its four entries are recomputed.
    let t1 = s.p("theta1.safetensors");
    let merged = s.p("merged.safetensors");
    ok(&run(&[
        "merge",
        "--theta0",
        &t1,
        "--theta1",
        &s.p("theta0.safetensors"),
        "--lambda",
        "0.3",
        "--out",
        &merged,
    ]));
    std::fs::rename(&merged, &t1).unwrap();
    ok(&s.eval("o4", &with_cache));
    let r4 = report(&s.p("o4"));
    assert_eq!(
        (r4["cache_hits"].as_u64(), r4["cache_misses"].as_u64()),
        (Some(4), Some(4))
    );
    assert_ne!(
        r4["methods"][1], r1["methods"][1],
        "θ1 changed, so must FT's numbers"
    );
}

#[test]
fn coef_round_trips_numpy_files_and_matches_numpy_formulas() {
    let dir = tempfile::tempdir().unwrap();
    for (eq, expected) in [("1", "expected_eq1.npy"), ("2", "expected_eq2.npy")] {
        let out = dir.path().join(format!("lambda{eq}.npy"));
        let js: Value = serde_json::from_str(&ok(&run(&[
            "coef",
            "--logits0",
            fixture("logits0.npy").to_str().unwrap(),
            "--logits1",
            fixture("logits1.npy").to_str().unwrap(),
            "--temperatures",
            "1,1",
            "--eq",
            eq,
            "--out",
            out.to_str().unwrap(),
        ])))
        .unwrap();
        assert_eq!(js["n"], 64);
        let got = npy::read_f32(&out).unwrap();
        let want = npy::read_f32(fixture(expected)).unwrap();
        assert_eq!(got.shape, [64]);
        for (g, w) in got.data.iter().zip(&want.data) {
            assert!((g - w).abs() < 1e-5, "eq {eq}: {g} vs {w}");
        }
    }
    // With labels: temperatures fitted, accuracies reported.
    let out = dir.path().join("l.npy");
    let js: Value = serde_json::from_str(&ok(&run(&[
        "coef",
        "--logits0",
        fixture("logits0.npy").to_str().unwrap(),
        "--logits1",
        fixture("logits1.npy").to_str().unwrap(),
        "--labels",
        fixture("labels.npy").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])))
    .unwrap();
    assert!(js["accuracy_theta1"].as_f64().unwrap() > js["accuracy_theta0"].as_f64().unwrap());
    assert!(js["temperatures"][0].as_f64().unwrap() != 1.0);
}

#[test]
fn mixture_round_trips_numpy_files() {
    let dir = tempfile::tempdir().unwrap();
    let assign = dir.path().join("assign.npy");
    let js: Value = serde_json::from_str(&ok(&run(&[
        "mixture",
        "--input",
        fixture("lambda_two_clusters.npy").to_str().unwrap(),
        "--k",
        "2",
        "--assignments",
        assign.to_str().unwrap(),
    ])))
    .unwrap();
    let means: Vec<f64> = js["means"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        (means[0] - 0.2).abs() < 0.03 && (means[1] - 0.8).abs() < 0.03,
        "{means:?}"
    );
    let a = npy::read_i64(&assign).unwrap();
    assert_eq!(a.shape, [300]);
    assert!(a.data[..150].iter().all(|&k| k == 0) && a.data[150..].iter().all(|&k| k == 1));

    let js: Value = serde_json::from_str(&ok(&run(&[
        "mixture",
        "--kind",
        "dirichlet",
        "--input",
        fixture("simplex_two_clusters.npy").to_str().unwrap(),
        "--k",
        "2",
    ])))
    .unwrap();
    assert_eq!(js["k"], 2);
    assert_eq!(js["dim"], 3);
    fails_with(
        &run(&[
            "mixture",
            "--input",
            fixture("simplex_two_clusters.npy").to_str().unwrap(),
        ]),
        "shape [N]",
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_a_non_zero_exit() {
    let s = Setup::new();
    // Missing file.
    let o = run(&[
        "eval",
        "--theta0",
        "/nonexistent/t0.safetensors",
        "--theta1",
        "x",
        "--val",
        "v",
        "--id",
        "i",
    ]);
    fails_with(&o, "/nonexistent/t0.safetensors");
    // Mismatched checkpoints: the parity model has a 2-class head.
    let parity = demo("mtl/parity.safetensors").display().to_string();
    let o = run(&[
        "eval",
        "--theta0",
        &s.p("theta0.safetensors"),
        "--theta1",
        &parity,
        "--val",
        &s.p("val.safetensors"),
        "--id",
        &s.p("id.safetensors"),
    ]);
    fails_with(&o, "different architectures");
    // Labels beyond the head's classes (digits 0-9 on a 2-class model).
    let o = run(&[
        "eval",
        "--theta0",
        &parity,
        "--theta1",
        &parity,
        "--val",
        &s.p("val.safetensors"),
        "--id",
        &s.p("id.safetensors"),
        "-q",
    ]);
    fails_with(&o, "2 classes");
    // Empty dataset.
    let empty = s.p("empty.safetensors");
    write_safetensors(
        &empty,
        &[
            OwnedTensor::from_f32("images", vec![0, 3, 16, 16], &[]),
            OwnedTensor::from_i64("labels", vec![0], &[]),
        ],
        None,
    )
    .unwrap();
    let o = run(&[
        "eval",
        "--theta0",
        &s.p("theta0.safetensors"),
        "--theta1",
        &s.p("theta1.safetensors"),
        "--val",
        &s.p("val.safetensors"),
        "--id",
        &empty,
    ]);
    fails_with(&o, "empty.safetensors");
    // Unwritable outputs: nothing half-written is left behind.
    let blocker = s.p("blocker");
    std::fs::write(&blocker, b"a file, not a directory").unwrap();
    let o = s.eval("blocker/out", &["--methods", "zs", "-q"]);
    fails_with(&o, "blocker");
    let o = run(&[
        "coef",
        "--logits0",
        fixture("logits0.npy").to_str().unwrap(),
        "--logits1",
        fixture("logits1.npy").to_str().unwrap(),
        "--out",
        &format!("{blocker}/l.npy"),
    ]);
    fails_with(&o, "blocker");
    let ro = s.dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let o = run(&[
        "merge",
        "--theta0",
        &s.p("theta0.safetensors"),
        "--theta1",
        &s.p("theta1.safetensors"),
        "--lambda",
        "2",
        "--out",
        ro.join("m.safetensors").to_str().unwrap(),
    ]);
    fails_with(&o, "lambda");
    assert_eq!(
        std::fs::read_dir(&ro).unwrap().count(),
        0,
        "no temporary or partial file left"
    );
    // Mismatched logits for coef, labels out of range.
    let o = run(&[
        "coef",
        "--logits0",
        fixture("logits0.npy").to_str().unwrap(),
        "--logits1",
        fixture("simplex_two_clusters.npy").to_str().unwrap(),
        "--out",
        &s.p("x.npy"),
    ]);
    fails_with(&o, "shape");
    assert!(!Path::new(&s.p("x.npy")).exists());
    // Unknown method, device.
    fails_with(&s.eval("o", &["--methods", "zs,nope"]), "nope");
    fails_with(&s.eval("o", &["--device", "tpu"]), "--device");
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["eval", "logits", "coef", "mixture", "merge", "demo"] {
        let o = ok(&run(&[sub, "--help"]));
        assert!(o.contains("Usage: dawin"), "{sub}: {o}");
    }
    let o = ok(&run(&["eval", "--help"]));
    for flag in [
        "--theta0",
        "--methods",
        "--k",
        "--wise-alpha",
        "--device",
        "--results-db",
        "--cache-dir",
        "--expertise",
    ] {
        assert!(o.contains(flag), "eval --help lacks {flag}");
    }
}

#[test]
fn logits_writes_npy_with_features() {
    let s = Setup::new();
    let (z, f, l) = (s.p("z.npy"), s.p("f.npy"), s.p("y.npy"));
    let o = ok(&run(&[
        "logits",
        "--checkpoint",
        &s.p("theta1.safetensors"),
        "--data",
        &s.p("id.safetensors"),
        "--out",
        &z,
        "--features",
        &f,
        "--labels-out",
        &l,
        "--device",
        "cpu",
    ]));
    assert!(o.contains("40 samples"));
    assert_eq!(npy::read_f32(&z).unwrap().shape, [40, 10]);
    let feat = npy::read_f32(&f).unwrap();
    assert_eq!(feat.shape, [40, 32]);
    let norm: f32 = feat.data[..32].iter().map(|v| v * v).sum();
    assert!((norm - 1.0).abs() < 1e-4);
    assert_eq!(npy::read_i64(&l).unwrap().shape, [40]);
}

#[test]
fn merge_task_arithmetic_with_one_model_equals_interpolation() {
    let dir = tempfile::tempdir().unwrap();
    let (t0, t1) = (demo("theta0.safetensors"), demo("theta1.safetensors"));
    let (a, b) = (
        dir.path().join("lerp.safetensors"),
        dir.path().join("ta.safetensors"),
    );
    ok(&run(&[
        "merge",
        "--theta0",
        t0.to_str().unwrap(),
        "--theta1",
        t1.to_str().unwrap(),
        "--lambda",
        "0.3",
        "--out",
        a.to_str().unwrap(),
    ]));
    ok(&run(&[
        "merge",
        "--theta0",
        t0.to_str().unwrap(),
        "--model",
        t1.to_str().unwrap(),
        "--scale",
        "0.3",
        "--out",
        b.to_str().unwrap(),
    ]));
    let (sa, sb) = (StateDict::open(&a).unwrap(), StateDict::open(&b).unwrap());
    assert_eq!(
        sa.names().len(),
        StateDict::open(&t0).unwrap().names().len()
    );
    assert_eq!(
        sa.metadata()
            .and_then(|m| m.get("dawin.vit.heads"))
            .map(String::as_str),
        Some("4")
    );
    for n in sa.names() {
        let (x, y) = (
            sa.tensor(n).unwrap().to_f32_vec(),
            sb.tensor(n).unwrap().to_f32_vec(),
        );
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "{n}: {p} vs {q}");
        }
    }
    fails_with(
        &run(&[
            "merge",
            "--theta0",
            t0.to_str().unwrap(),
            "--out",
            b.to_str().unwrap(),
        ]),
        "--lambda",
    );
}

#[test]
fn dawin_sample_blended_by_default_equals_exact_loop() {
    let s = Setup::new();
    let common = [
        "--device",
        "cpu",
        "--quiet",
        "--no-plots",
        "--methods",
        "zs,dawin-sample",
    ];
    let blended = ok(&s.eval("blended", &common));
    let mut args = common.to_vec();
    args.push("--exact-loop");
    let exact = ok(&s.eval("exact", &args));
    assert!(blended.contains("per-sample forward: blended"), "{blended}");
    assert!(
        exact.contains("per-sample forward: merge-per-lambda"),
        "{exact}"
    );
    let (rb, re) = (report(&s.p("blended")), report(&s.p("exact")));
    assert_eq!(rb["per_sample_forward"], "blended");
    assert_eq!(re["per_sample_forward"], "merge-per-lambda");
    // The exact path counts its merges; the blended one runs none.
    assert!(re["methods"][1]["merges"].as_u64().unwrap() > 1);
    assert_eq!(rb["methods"][1]["merges"], 0);
    for d in ["id", "rotate", "invert"] {
        let read = |dir: &str| {
            npy::read_i64(Path::new(&s.p(dir)).join(d).join("pred_dawin-sample.npy"))
                .unwrap()
                .data
        };
        let (pb, pe) = (read("blended"), read("exact"));
        assert_eq!(pb.len(), 40);
        assert_eq!(pb, pe, "{d}");
    }
}

#[test]
fn streaming_eq1_equals_dawin_sample_with_eq1() {
    let s = Setup::new();
    let common = ["--device", "cpu", "--quiet", "--no-plots", "--eq", "1"];
    let mut full = common.to_vec();
    full.extend(["--methods", "dawin-sample", "--batch-size", "64"]);
    ok(&s.eval("full", &full));
    let r = report(&s.p("full"));
    let mut st = common.to_vec();
    st.extend(["--streaming", "--batch-size", "9"]);
    let out = ok(&s.eval("stream", &st));
    for d in ["id", "rotate", "invert"] {
        let acc = r["methods"][0]["accuracy"][d].as_f64().unwrap();
        let correct = (acc * 40.0 / 100.0).round() as usize;
        let row = format!("| {d} | {acc:.2} | {correct}/40 |");
        assert!(out.contains(&row), "{row} not in\n{out}");
        // 40 samples in batches of 9: five batches.
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("| {d} |")))
            .unwrap();
        assert!(line.ends_with("| 5 |"), "{line}");
    }
    let mut mix = st.clone();
    mix.extend(["--streaming-mixture", "2"]);
    let out = ok(&s.eval("mix", &mix));
    assert!(out.contains("batch-wise Beta mixture K = 2"), "{out}");
    // --streaming-mixture needs --streaming.
    let o = s.eval("bad", &["--streaming-mixture", "2"]);
    assert!(!o.status.success());
}

#[test]
fn class_subsets_are_read_from_text_or_npy_and_bad_ones_are_named() {
    let s = Setup::new();
    let base = ok(&s.eval("a", &["--methods", "zs,ft,dawin-sample", "-q"]));
    let c = report(&s.p("a"))["methods"].as_array().unwrap().len();
    assert_eq!(c, 3);
    // The identity subset of the demo's 10 classes, as text (commas, newlines, a comment) and
    // as .npy: the table is unchanged.
    let txt = s.p("all.txt");
    std::fs::write(&txt, "# all classes\n0, 1, 2 3\n4 5 6 7 8 9\n").unwrap();
    let npy = s.p("all.npy");
    dawin::core::npy::write_i64(&npy, &(0..10).collect::<Vec<i64>>(), &[10]).unwrap();
    for (file, out) in [(&txt, "b"), (&npy, "c")] {
        let spec = format!("rotate={file}");
        let o = ok(&s.eval(
            out,
            &[
                "--methods",
                "zs,ft,dawin-sample",
                "-q",
                "--class-subset",
                &spec,
            ],
        ));
        assert_eq!(
            o.lines().take(6).collect::<Vec<_>>(),
            base.lines().take(6).collect::<Vec<_>>()
        );
    }
    // A subset of 3 classes: the rotate labels exceed it, and the error names the dataset.
    let three = s.p("three.txt");
    std::fs::write(&three, "0 1 2").unwrap();
    let spec = format!("rotate={three}");
    fails_with(&s.eval("d", &["--class-subset", &spec]), "`rotate`");
    let spec = format!("nope={three}");
    fails_with(&s.eval("d", &["--class-subset", &spec]), "`nope`");
    let bad = s.p("bad.txt");
    std::fs::write(&bad, "0 1\n2 x\n").unwrap();
    let spec = format!("rotate={bad}");
    fails_with(&s.eval("d", &["--class-subset", &spec]), "line 2: `x`");
    let spec = format!("id={}", s.p("missing.txt"));
    fails_with(&s.eval("d", &["--class-subset", &spec]), "missing.txt");
}

#[test]
fn device_cuda_without_a_gpu_is_a_clear_error() {
    if dawin::kernels::Gpu::new().is_ok() {
        // With a GPU, `--device cuda` runs: the pipeline's GPU test (crates/dawin/tests/
        // cuda_pipeline.rs) compares it with the CPU.
        return;
    }
    let s = Setup::new();
    let o = s.eval("o", &["--device", "cuda", "--methods", "zs"]);
    fails_with(&o, "--device");
    fails_with(&o, "cuda:0");
    fails_with(
        &s.eval("o", &["--device", "cuda:x"]),
        "expected auto, cpu, cuda or cuda:N",
    );
    let o = run(&[
        "logits",
        "--checkpoint",
        &s.p("theta1.safetensors"),
        "--data",
        &s.p("id.safetensors"),
        "--out",
        &s.p("z.npy"),
        "--device",
        "cuda",
    ]);
    fails_with(&o, "runs on the CPU");
    // auto stays on the CPU and says why.
    let o = s.eval("a", &["--methods", "zs", "-q"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("device: cpu (auto"));
}
