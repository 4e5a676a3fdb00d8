//! Pipeline tests on a subset of the embedded demo (crates/dawin-cli/demo).
use dawin::eval::{
    evaluate, forward_by_lambda, forward_per_sample_loop, EvalConfig, Method, Named,
};
use dawin::vit::{ClipClassifier, LoadOptions};
use dawin::{Dataset, InMemoryDataset, Interpolate, Model};
use std::path::PathBuf;

fn demo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dawin-cli/demo")
        .join(p)
}

fn models() -> (ClipClassifier, ClipClassifier) {
    let o = LoadOptions::default();
    (
        ClipClassifier::from_files(demo("theta0.safetensors"), None, &o).unwrap(),
        ClipClassifier::from_files(demo("theta1.safetensors"), None, &o).unwrap(),
    )
}

fn data(name: &str, n: usize) -> InMemoryDataset {
    InMemoryDataset::open(name, demo(&format!("data/{name}.safetensors")), 16)
        .unwrap()
        .head(n)
}

/// `evaluate` with θ0, θ1 named `t0`, `t1` (fingerprints `a`, `b`).
fn eval_ab(
    (m0, m1): (&ClipClassifier, &ClipClassifier),
    (val, id): (&dyn Dataset, &dyn Dataset),
    tests: &[&dyn Dataset],
    cfg: &EvalConfig,
) -> dawin::Result<dawin::eval::EvalOutput> {
    evaluate(
        &Named::new("t0", m0, "a"),
        &Named::new("t1", m1, "b"),
        val,
        id,
        tests,
        cfg,
    )
}

fn quiet(methods: Vec<Method>) -> EvalConfig {
    EvalConfig {
        methods,
        progress: false,
        ..EvalConfig::default()
    }
}

#[test]
fn dawin_sample_equals_an_explicit_per_sample_merge_and_forward_loop() {
    let (m0, m1) = models();
    let (val, id, rot) = (data("val", 60), data("id", 24), data("rotate", 24));
    let out = eval_ab(
        (&m0, &m1),
        (&val, &id),
        &[&rot],
        &quiet(vec![Method::DawinSample]),
    )
    .unwrap();
    for (ps, d) in out.per_sample.iter().zip([&id, &rot]) {
        // λ really varies per sample (otherwise the check would be weak).
        let mut distinct: Vec<u32> = ps.lambda.iter().map(|l| l.to_bits()).collect();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() > d.len() / 2,
            "{} distinct λ",
            distinct.len()
        );
        let z_loop = forward_per_sample_loop(&m0, &m1, d, &ps.lambda).unwrap();
        let bar = indicatif::ProgressBar::hidden();
        let (z_grouped, merges) = forward_by_lambda(&m0, &m1, d, &ps.lambda, 64, &bar).unwrap();
        assert_eq!(merges, distinct.len());
        for (a, b) in z_loop.iter().zip(&z_grouped) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
        let pred_loop = dawin::core::stats::argmax(&z_loop, 10).unwrap();
        assert_eq!(
            &pred_loop,
            &ps.predictions[&Method::DawinSample],
            "dataset {}",
            ps.dataset
        );
    }
}

#[test]
fn dawin_with_k_equal_to_the_number_of_distinct_lambdas_equals_dawin_sample() {
    let (m0, m1) = models();
    // Three distinct images, each repeated: λ takes exactly three values.
    let src = data("rotate", 3);
    let idx: Vec<usize> = (0..15).map(|i| i % 3).collect();
    let labels = idx.iter().map(|&i| src.labels()[i]).collect();
    let rep =
        InMemoryDataset::new("rep", src.load(&idx).unwrap(), src.sample_numel(), labels).unwrap();
    let val = data("val", 60);
    let out = evaluate(
        &Named::new("t0", &m0, "a"),
        &Named::new("t1", &m1, "b"),
        &val,
        &rep,
        &[],
        &EvalConfig {
            k: 3,
            // The merge-per-λ path, whose merges are counted.
            exact_loop: true,
            ..quiet(vec![Method::Dawin, Method::DawinSample])
        },
    )
    .unwrap();
    let ps = &out.per_sample[0];
    let mut distinct: Vec<u32> = ps.lambda.iter().map(|l| l.to_bits()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    // Each cluster is one distinct λ, and its mean is that λ.
    let mix = &out.report.mixtures["rep"];
    for (i, &l) in ps.lambda.iter().enumerate() {
        let k = ps.cluster[i] as usize;
        assert!(
            (mix.means[k] - l as f64).abs() < 1e-3,
            "cluster mean {} vs λ {l}",
            mix.means[k]
        );
    }
    assert_eq!(
        ps.predictions[&Method::Dawin],
        ps.predictions[&Method::DawinSample]
    );
    let r = &out.report.methods;
    assert_eq!(r[0].id, r[1].id);
    assert_eq!(r[0].merges, Some(3));
    assert_eq!(r[1].merges, Some(3));
}

#[test]
fn lambda_zero_and_one_reproduce_the_endpoints_exactly() {
    let (m0, m1) = models();
    let d = data("id", 8);
    let x = d.load(&(0..8).collect::<Vec<_>>()).unwrap();
    let z0 = Model::forward(&m0, &x, 8).unwrap();
    let z1 = Model::forward(&m1, &x, 8).unwrap();
    assert_eq!(
        Model::forward(&m0.interpolate(&m1, 0.0).unwrap(), &x, 8).unwrap(),
        z0
    );
    assert_eq!(
        Model::forward(&m0.interpolate(&m1, 1.0).unwrap(), &x, 8).unwrap(),
        z1
    );
    assert!(m0.interpolate(&m1, 1.5).is_err());
}

#[test]
fn zs_and_ft_match_the_demo_readme_and_the_cache_is_reused() {
    // demo/README.md (the Python/JAX forward): θ0 87.5 %, θ1 99.0 % on `id`.
    let (m0, m1) = models();
    let dir = tempfile::tempdir().unwrap();
    let cfg = EvalConfig {
        cache_dir: Some(dir.path().into()),
        ..quiet(vec![Method::Zs, Method::Ft])
    };
    let (val, id) = (data("val", 200), data("id", 200));
    let run = |fp1: &str| {
        evaluate(
            &Named::new("t0", &m0, "a"),
            &Named::new("t1", &m1, fp1),
            &val,
            &id,
            &[],
            &cfg,
        )
        .unwrap()
    };
    let r1 = run("b").report;
    assert_eq!((r1.cache_hits, r1.cache_misses), (0, 4));
    assert!((r1.methods[0].id - 87.5).abs() < 1e-9 && (r1.methods[1].id - 99.0).abs() < 1e-9);
    let r2 = run("b").report;
    assert_eq!((r2.cache_hits, r2.cache_misses), (4, 0));
    assert_eq!(r1.methods, r2.methods);
    // A new θ1 fingerprint: θ1's two entries are recomputed, θ0's reused.
    let r3 = run("b2").report;
    assert_eq!((r3.cache_hits, r3.cache_misses), (2, 2));
}

#[test]
fn bad_datasets_are_rejected_with_the_dataset_named() {
    let (m0, m1) = models();
    let val = data("val", 20);
    let n = |m| Named::new("t", m, "x");
    assert!(InMemoryDataset::new("empty", vec![], 768, vec![])
        .unwrap_err()
        .to_string()
        .contains("empty"));
    let bad = InMemoryDataset::new("big", vec![0.0; 768 * 2], 768, vec![3, 10]).unwrap();
    let e = evaluate(&n(&m0), &n(&m1), &val, &bad, &[], &quiet(vec![Method::Zs]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("big") && e.contains("10 classes"), "{e}");
    let small = InMemoryDataset::new("small", vec![0.0; 12], 12, vec![1]).unwrap();
    let e = evaluate(
        &n(&m0),
        &n(&m1),
        &val,
        &small,
        &[],
        &quiet(vec![Method::Zs]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("small") && e.contains("768"), "{e}");
}

#[test]
fn wise_alpha_scales_lambda_and_eq1_differs_from_eq2() {
    let (m0, m1) = models();
    let (val, id) = (data("val", 40), data("id", 30));
    let run = |cfg: EvalConfig| eval_ab((&m0, &m1), (&val, &id), &[], &cfg).unwrap();
    let base = run(quiet(vec![Method::Doe]));
    let half = run(EvalConfig {
        wise_alpha: Some(0.5),
        ..quiet(vec![Method::Doe])
    });
    for (a, b) in base.per_sample[0]
        .lambda
        .iter()
        .zip(&half.per_sample[0].lambda)
    {
        assert!((0.5 * a - b).abs() < 1e-6);
    }
    let eq1 = run(EvalConfig {
        coefficient: dawin::eval::Coefficient::Eq1,
        ..quiet(vec![Method::Doe])
    });
    // Eq. 1 by hand from the per-sample entropies: λ = e^{-H1} / (e^{-H0} + e^{-H1}).
    let ps = &eq1.per_sample[0];
    for i in 0..ps.lambda.len() {
        let (e0, e1) = ((-ps.h0[i] as f64).exp(), (-ps.h1[i] as f64).exp());
        assert!((ps.lambda[i] as f64 - e1 / (e0 + e1)).abs() < 1e-5);
    }
    assert_ne!(eq1.per_sample[0].lambda, base.per_sample[0].lambda);
}

#[test]
fn image_folder_datasets_are_read_lazily_and_their_fingerprint_follows_the_files() {
    use dawin::ImageFolderDataset;
    let dir = tempfile::tempdir().unwrap();
    let write = |class: &str, file: &str, side: u32, v: u8| {
        let d = dir.path().join(class);
        std::fs::create_dir_all(&d).unwrap();
        image::RgbImage::from_pixel(side, side, image::Rgb([v, 0, 255 - v]))
            .save(d.join(file))
            .unwrap();
    };
    write("a", "x.png", 16, 10);
    write("b", "y.png", 16, 200);
    let ds = ImageFolderDataset::open("folder", dir.path(), 16).unwrap();
    assert_eq!((ds.len(), ds.labels()), (2, &[0i64, 1][..]));
    let x = ds.load(&[1, 0]).unwrap();
    assert_eq!(x.len(), 2 * 768);
    assert_ne!(x[..768], x[768..]);
    let f1 = ds.fingerprint().unwrap();
    assert_eq!(
        f1,
        ImageFolderDataset::open("other-name", dir.path(), 16)
            .unwrap()
            .fingerprint()
            .unwrap()
    );
    write("b", "y.png", 24, 90); // another size on disk
    let f2 = ImageFolderDataset::open("folder", dir.path(), 16)
        .unwrap()
        .fingerprint()
        .unwrap();
    assert_ne!(f1, f2);
    let e = ImageFolderDataset::open("missing", dir.path().join("nope"), 16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn blended_per_sample_forward_equals_the_merge_per_lambda_path() {
    let (m0, m1) = models();
    let (val, id, rot) = (data("val", 60), data("id", 24), data("rotate", 24));
    let run = |exact_loop: bool| {
        eval_ab(
            (&m0, &m1),
            (&val, &id),
            &[&rot],
            &EvalConfig {
                exact_loop,
                ..quiet(vec![Method::Zs, Method::DawinSample, Method::OracleSample])
            },
        )
        .unwrap()
    };
    let (blended, exact) = (run(false), run(true));
    assert_eq!(
        blended.report.per_sample_forward.as_deref(),
        Some("blended")
    );
    assert_eq!(
        exact.report.per_sample_forward.as_deref(),
        Some("merge-per-lambda")
    );
    for (b, e) in blended.per_sample.iter().zip(&exact.per_sample) {
        assert_eq!(b.lambda, e.lambda);
        for m in [Method::DawinSample, Method::OracleSample] {
            assert_eq!(
                b.predictions[&m],
                e.predictions[&m],
                "{} {}",
                b.dataset,
                m.name()
            );
        }
    }
    // Only θ0 and θ1 run: the report names neither path.
    let zs = eval_ab((&m0, &m1), (&val, &id), &[], &quiet(vec![Method::Zs])).unwrap();
    assert_eq!(zs.report.per_sample_forward, None);
    assert_eq!(blended.report.methods[1].merges, Some(0));
    assert!(exact.report.methods[1].merges.unwrap() > 1);

    // Logits: blended (batches of 7, λ = 0 and 1 included) vs one merge per distinct λ.
    let blend = m0.per_sample_forward(&m1).unwrap().unwrap();
    let bar = indicatif::ProgressBar::hidden();
    let mut l = blended.per_sample[0].lambda.clone();
    l[0] = 0.0;
    l[1] = 1.0;
    let zb = dawin::eval::forward_blended(blend.as_ref(), &id, &l, 7, &bar).unwrap();
    let (ze, _) = forward_by_lambda(&m0, &m1, &id, &l, 5, &bar).unwrap();
    assert_eq!(zb.len(), ze.len());
    let worst = zb
        .iter()
        .zip(&ze)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "max |Δlogit| = {worst}");
    // A λ count that does not match the data is an error naming `lambdas`.
    let e = dawin::eval::forward_blended(blend.as_ref(), &id, &l[1..], 7, &bar).unwrap_err();
    assert!(e.to_string().contains("lambdas"), "{e}");
}

#[test]
fn streaming_eq1_equals_dawin_sample_with_eq1() {
    use dawin::eval::{evaluate_streaming, Coefficient};
    let (m0, m1) = models();
    let (val, id, rot) = (data("val", 60), data("id", 30), data("rotate", 30));
    for exact_loop in [false, true] {
        let cfg = EvalConfig {
            coefficient: Coefficient::Eq1,
            batch_size: 7,
            exact_loop,
            ..quiet(vec![Method::DawinSample])
        };
        let full = eval_ab((&m0, &m1), (&val, &id), &[&rot], &cfg).unwrap();
        let t = full.report.temperatures;
        for (ps, d) in full.per_sample.iter().zip([&id, &rot]) {
            let s = evaluate_streaming(&m0, &m1, d, (t[0], t[1]), &cfg, None).unwrap();
            let ok = ps.correct(Method::DawinSample).unwrap();
            assert_eq!(s.n, 30);
            assert_eq!(s.batches, 5);
            assert_eq!(s.correct, ok.iter().filter(|&&b| b).count(), "{}", d.name());
            let mean = ps.lambda.iter().map(|&l| l as f64).sum::<f64>() / 30.0;
            assert!((s.mean_lambda - mean).abs() < 1e-6);
        }
        // The batch-wise mixture with one component: every sample of a batch gets the fitted
        // Beta's mean, close to the batch's mean λ; K = 0 is an error naming the option.
        let s1 = evaluate_streaming(&m0, &m1, &id, (t[0], t[1]), &cfg, Some(1)).unwrap();
        let mean = full.per_sample[0]
            .lambda
            .iter()
            .map(|&l| l as f64)
            .sum::<f64>()
            / 30.0;
        assert_eq!(s1.n, 30);
        assert!(
            (s1.mean_lambda - mean).abs() < 0.05,
            "{} vs {mean}",
            s1.mean_lambda
        );
        let e = evaluate_streaming(&m0, &m1, &id, (t[0], t[1]), &cfg, Some(0)).unwrap_err();
        assert!(e.to_string().contains("--streaming-mixture"), "{e}");
    }
}

#[test]
fn results_db_appends_whole_lines_even_from_concurrent_runs() {
    let (m0, m1) = models();
    let (val, id) = (data("val", 8), data("id", 8));
    let report = eval_ab((&m0, &m1), (&val, &id), &[], &quiet(vec![Method::Zs]))
        .unwrap()
        .report;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("results.jsonl");
    // An existing database whose last line lacks its newline.
    std::fs::write(&db, "{\"old\": 1}").unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| dawin::report::append_results_db(&report, &db).unwrap());
        }
    });
    let text = std::fs::read_to_string(&db).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "{text}");
    assert!(text.ends_with('\n'));
    assert_eq!(lines[0], "{\"old\": 1}");
    for l in &lines[1..] {
        let r: dawin::report::Report = serde_json::from_str(l).unwrap();
        assert_eq!(r, report);
    }
    // Nothing but the database and its lock file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["results.jsonl", "results.jsonl.lock"]);
}

/// `id`'s samples whose class is in `subset`, relabelled as indices into `subset`.
fn subset_data(name: &str, subset: &[usize]) -> dawin::WithClassSubset<InMemoryDataset> {
    let d = data("id", 200);
    let keep: Vec<usize> = (0..d.len())
        .filter(|&i| subset.contains(&(d.labels()[i] as usize)))
        .collect();
    let labels: Vec<i64> = keep
        .iter()
        .map(|&i| {
            subset
                .iter()
                .position(|&k| k as i64 == d.labels()[i])
                .unwrap() as i64
        })
        .collect();
    let inner =
        InMemoryDataset::new(name, d.load(&keep).unwrap(), d.sample_numel(), labels).unwrap();
    dawin::WithClassMapping::subset(inner, subset.to_vec()).unwrap()
}

#[test]
fn class_subsets_restrict_the_logits_before_everything() {
    let (m0, m1) = models();
    let subset = [7usize, 2, 5, 0];
    let sd = subset_data("sub", &subset);
    let n = sd.len();
    assert!(n > 20, "{n} samples");
    let (val, id) = (data("val", 40), data("id", 40));
    let out = eval_ab(
        (&m0, &m1),
        (&val, &id),
        &[&sd],
        &quiet(vec![Method::Zs, Method::Ft, Method::DawinSample]),
    )
    .unwrap();
    // By hand: full logits, the subset's columns, their argmax, against the relabelled labels.
    let x = sd.load(&(0..n).collect::<Vec<_>>()).unwrap();
    let c = m0.config().num_classes;
    let by_hand = |m: &ClipClassifier| -> (f64, Vec<u32>) {
        let z = Model::forward(m, &x, n).unwrap();
        let pred: Vec<u32> = z
            .chunks(c)
            .map(|row| {
                let mut best = 0;
                for j in 1..subset.len() {
                    if row[subset[j]] > row[subset[best]] {
                        best = j;
                    }
                }
                best as u32
            })
            .collect();
        let ok = pred
            .iter()
            .zip(sd.labels())
            .filter(|(p, y)| **p as i64 == **y)
            .count();
        (100.0 * ok as f64 / n as f64, pred)
    };
    let ps = &out.per_sample[1];
    assert_eq!(ps.dataset, "sub");
    for (m, model) in [(Method::Zs, &m0), (Method::Ft, &m1)] {
        let (acc, pred) = by_hand(model);
        assert_eq!(ps.predictions[&m], pred, "{m:?}");
        let row = out
            .report
            .methods
            .iter()
            .find(|r| r.method == m.name())
            .unwrap();
        assert!((row.accuracy["sub"] - acc).abs() < 1e-9, "{m:?}");
    }
    // The entropies are the subset logits' (T = the fitted temperatures).
    let [t0, _] = out.report.temperatures;
    let z0 = Model::forward(&m0, &x, n).unwrap();
    let row0: Vec<f64> = subset.iter().map(|&k| z0[k] as f64 / t0 as f64).collect();
    let mx = row0.iter().cloned().fold(f64::MIN, f64::max);
    let lse = mx + row0.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
    let h: f64 = -row0
        .iter()
        .map(|v| (v - lse).exp() * (v - lse))
        .sum::<f64>();
    assert!((ps.h0[0] as f64 - h).abs() < 1e-4, "{} vs {h}", ps.h0[0]);
    // Bad subsets are named.
    let inner = data("id", 8);
    assert!(dawin::WithClassMapping::subset(inner.clone(), vec![]).is_err());
    assert!(dawin::WithClassMapping::subset(inner.clone(), vec![1, 1, 2]).is_err());
    let e = dawin::WithClassMapping::subset(inner.clone(), vec![0])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`id`") && e.contains("class subset"), "{e}");
    let big = dawin::WithClassMapping::subset(inner, (0..c).map(|k| k + 1).collect()).unwrap();
    let e = eval_ab((&m0, &m1), (&val, &id), &[&big], &quiet(vec![Method::Zs]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("class {c}")) && e.contains("`id`"),
        "{e}"
    );
}

#[test]
fn theta1_from_another_base_is_refused() {
    let (m0, m1) = models();
    // ‖θ1 − θ0‖/‖θ0‖ over the encoder: numpy (float64), scripts/task_distance.py.
    let d = m0.relative_distance(&m1).unwrap();
    assert!((d - 0.1626662456499501).abs() < 1e-6, "{d}");
    let other = dawin::vit::ClipWeights::random(m0.config(), 3).unwrap();
    let other = ClipClassifier::new(m0.config().clone(), other).unwrap();
    let (val, id) = (data("val", 8), data("id", 8));
    let cfg = quiet(vec![Method::Zs]);
    let e = eval_ab((&m0, &other), (&val, &id), &[], &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("θ1") && e.contains("another pre-trained model"),
        "{e}"
    );
    let loose = EvalConfig {
        max_distance: 10.0,
        ..quiet(vec![Method::Zs])
    };
    assert!(eval_ab((&m0, &other), (&val, &id), &[], &loose).is_ok());
    let e = dawin::eval::evaluate_streaming(&m0, &other, &id, (1.0, 1.0), &cfg, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("another pre-trained model"), "{e}");
}

/// ObjectNet-style pooling: dataset class k is a group of head classes and its logit is the
/// maximum over them, before entropies, λ and the argmax; checked by hand on the demo.
#[test]
fn pooled_class_mappings_take_the_max_over_each_group_before_everything() {
    let (m0, m1) = models();
    let groups = vec![vec![7usize, 2], vec![5], vec![0, 1, 3]];
    let d = data("rotate", 120);
    let group_of = |y: i64| groups.iter().position(|g| g.contains(&(y as usize)));
    let keep: Vec<usize> = (0..d.len())
        .filter(|&i| group_of(d.labels()[i]).is_some())
        .collect();
    let labels: Vec<i64> = keep
        .iter()
        .map(|&i| group_of(d.labels()[i]).unwrap() as i64)
        .collect();
    let n = keep.len();
    assert!(n > 30, "{n} samples");
    let x = d.load(&keep).unwrap();
    let inner = InMemoryDataset::new("pooled", x.clone(), d.sample_numel(), labels).unwrap();
    let mapping = dawin::vit::benchmarks::ClassMapping::new(groups.clone()).unwrap();
    let pd = dawin::WithClassMapping::new(inner, mapping).unwrap();
    let (val, id) = (data("val", 40), data("id", 40));
    let out = eval_ab(
        (&m0, &m1),
        (&val, &id),
        &[&pd],
        &quiet(vec![Method::Zs, Method::Ft, Method::Dcs]),
    )
    .unwrap();
    let c = m0.config().num_classes;
    let pooled = |m: &ClipClassifier| -> Vec<Vec<f32>> {
        let z = Model::forward(m, &x, n).unwrap();
        z.chunks(c)
            .map(|row| {
                groups
                    .iter()
                    .map(|g| g.iter().map(|&k| row[k]).fold(f32::MIN, f32::max))
                    .collect()
            })
            .collect()
    };
    let argmax = |r: &[f32]| (0..r.len()).fold(0, |b, j| if r[j] > r[b] { j } else { b }) as u32;
    let ps = &out.per_sample[1];
    assert_eq!(ps.dataset, "pooled");
    let (p0, p1) = (pooled(&m0), pooled(&m1));
    let zs: Vec<u32> = p0.iter().map(|r| argmax(r)).collect();
    let ft: Vec<u32> = p1.iter().map(|r| argmax(r)).collect();
    assert_eq!(ps.predictions[&Method::Zs], zs);
    assert_eq!(ps.predictions[&Method::Ft], ft);
    // H(softmax(z'/T0)) of the pooled logits, by hand in f64.
    let [t0, _] = out.report.temperatures;
    let h = |row: &[f32], t: f32| -> f64 {
        let v: Vec<f64> = row.iter().map(|&z| z as f64 / t as f64).collect();
        let mx = v.iter().cloned().fold(f64::MIN, f64::max);
        let lse = mx + v.iter().map(|a| (a - mx).exp()).sum::<f64>().ln();
        -v.iter().map(|a| (a - lse).exp() * (a - lse)).sum::<f64>()
    };
    for i in [0, n / 2, n - 1] {
        let want = h(&p0[i], t0);
        assert!(
            (ps.h0[i] as f64 - want).abs() < 1e-4,
            "{} vs {want}",
            ps.h0[i]
        );
    }
    // The maximum is not always a group's first class (the test bites).
    let first: Vec<Vec<f32>> = Model::forward(&m0, &x, n)
        .unwrap()
        .chunks(c)
        .map(|row| groups.iter().map(|g| row[g[0]]).collect())
        .collect();
    assert_ne!(first, p0);
}

/// One head class per group is exactly the column copy z[:, subset], bit for bit.
#[test]
fn singleton_mappings_are_the_class_subset_bit_for_bit() {
    let z: Vec<f32> = (0..40)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.37)
        .collect();
    let subset = [7usize, 2, 9, 0];
    let m = dawin::vit::benchmarks::ClassMapping::from_subset(&subset).unwrap();
    let mapped = dawin::eval::map_logits(z.clone(), 10, Some(&m)).unwrap();
    let copy: Vec<f32> = z
        .chunks(10)
        .flat_map(|r| subset.iter().map(move |&k| r[k]))
        .collect();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&mapped), bits(&copy));
    assert_eq!(bits(&m.pool_rows(&z, 10).unwrap()), bits(&copy));
    assert_eq!(dawin::eval::map_logits(z.clone(), 10, None).unwrap(), z);
    let bad = dawin::vit::benchmarks::ClassMapping::from_subset(&[10]).unwrap();
    assert!(dawin::eval::map_logits(z, 10, Some(&bad)).is_err());
}
