//! The device path on [`HostVit`] (the CUDA launch plans run by the host interpreter, merges and
//! row statistics by the kernels' CPU references), with no GPU: the classifier's operations
//! against the uploaded models, and the whole pipeline against the CPU pipeline.
use super::*;
use crate::eval::{evaluate, EvalConfig, Method, Named};
use crate::{Dataset, InMemoryDataset};
use dawin_vit::cuda::HostVit;
use dawin_vit::LoadOptions;
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

fn on_host(m0: &ClipClassifier, m1: &ClipClassifier, p: Precision) -> Vec<CudaClassifier<HostVit>> {
    let dev = HostVit::new(m0.config(), &[m0.weights(), m1.weights()], p).unwrap();
    CudaClassifier::on_device(dev, vec![Some(m0.clone()), Some(m1.clone())]).unwrap()
}

/// θ(0) and θ(1) merged on the device are θ0 and θ1 (same logits bit for bit); K merges in
/// groups of [`MERGE_GROUP`] equal one `interpolate` each; the pair's blended forward at λ = 0
/// and 1 rows and the device's entropies agree with the CPU's.
#[test]
fn device_merges_are_exact_at_the_ends_and_grouped_merges_equal_single_ones() {
    let (m0, m1) = models();
    let g = on_host(&m0, &m1, Precision::F16);
    let (g0, g1) = (&g[0], &g[1]);
    let d = data("id", 6);
    let x = d.load(&[0, 1, 2, 3, 4, 5]).unwrap();
    let (z0, z1) = (g0.forward(&x, 6).unwrap(), g1.forward(&x, 6).unwrap());
    assert_eq!(g0.interpolate(g1, 0.0).unwrap().forward(&x, 6).unwrap(), z0);
    assert_eq!(g0.interpolate(g1, 1.0).unwrap().forward(&x, 6).unwrap(), z1);
    let lambdas: Vec<f32> = (0..11).map(|i| i as f32 / 10.0).collect();
    let mut seen = Vec::new();
    g0.for_each_merged(g1, &lambdas, &mut |k, m| {
        let want = g0.interpolate(g1, lambdas[k])?.forward(&x, 6)?;
        assert_eq!(m.forward(&x, 6)?, want, "λ = {}", lambdas[k]);
        seen.push(k);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, (0..11).collect::<Vec<_>>());
    assert!(g0.interpolate(g1, 1.5).is_err());
    // The blended forward: rows at λ = 0 and 1 are θ0's and θ1's forwards (to f16 rounding).
    let blend = g0.per_sample_forward(g1).unwrap().unwrap();
    let zb = blend
        .forward(&x, 6, &[0.0, 1.0, 0.0, 1.0, 0.5, 0.5])
        .unwrap();
    let c = g0.num_classes();
    for (i, want) in [(0, &z0), (1, &z1)] {
        for k in 0..c {
            let (a, b) = (zb[i * c + k], want[i * c + k]);
            assert!(
                (a - b).abs() <= 1e-2 * b.abs().max(1.0),
                "row {i}: {a} vs {b}"
            );
        }
    }
    // Entropies from the device's row statistics equal the CPU reference's.
    let h = g0.row_stats(&z0, c, 0.9).unwrap().unwrap();
    let want = dawin_core::stats::entropy(&z0, c, 0.9).unwrap();
    for (a, b) in h.iter().zip(&want) {
        assert_eq!(a.entropy, *b);
    }
    // Models uploaded separately cannot be merged on the device, and say how to fix it.
    let other = on_host(&m0, &m1, Precision::F16);
    let e = g0.interpolate(&other[1], 0.5).err().unwrap().to_string();
    assert!(e.contains("pair"), "{e}");
}

/// `evaluate` with every method on the device path (f16 and bf16, through the host
/// interpreter) against the CPU pipeline on 48 samples of three demo sets: every method's
/// accuracy within 100·3/48 = 6.25 points (f16/bf16 rounding flips a few near-tied
/// predictions), λ(x) within 0.02 (f16) / 0.05 (bf16) and the temperatures within 2 %.
#[test]
fn pipeline_on_the_device_path_matches_the_cpu_for_every_method() {
    let (m0, m1) = models();
    let (val, id, rot) = (data("val", 48), data("id", 48), data("rotate", 48));
    let cfg = EvalConfig {
        methods: Method::ALL.to_vec(),
        progress: false,
        batch_size: 20,
        ..EvalConfig::default()
    };
    let tests = [&rot as &dyn Dataset];
    let cpu = evaluate(
        &Named::new("t0", &m0, "a"),
        &Named::new("t1", &m1, "b"),
        &val,
        &id,
        &tests,
        &cfg,
    )
    .unwrap();
    for (p, lambda_tol) in [(Precision::F16, 0.02), (Precision::Bf16, 0.05)] {
        let g = on_host(&m0, &m1, p);
        let dev = evaluate(
            &Named::new("t0", &g[0], "a"),
            &Named::new("t1", &g[1], "b"),
            &val,
            &id,
            &tests,
            &cfg,
        )
        .unwrap();
        let (r, c) = (&dev.report, &cpu.report);
        for j in 0..2 {
            let rel = (r.temperatures[j] / c.temperatures[j] - 1.0).abs();
            assert!(
                rel < 0.02,
                "{p:?} T{j}: {} vs {}",
                r.temperatures[j],
                c.temperatures[j]
            );
        }
        assert_eq!(r.methods.len(), Method::ALL.len());
        for (a, b) in r.methods.iter().zip(&c.methods) {
            assert_eq!(a.method, b.method);
            for d in ["id", "rotate"] {
                let (x, y) = (a.accuracy[d], b.accuracy[d]);
                assert!(
                    (x - y).abs() <= 6.25 + 1e-9,
                    "{p:?} {} on {d}: device {x} cpu {y}",
                    a.method
                );
            }
            assert_eq!(a.merges.is_some(), b.merges.is_some(), "{}", a.method);
        }
        for (a, b) in dev.per_sample.iter().zip(&cpu.per_sample) {
            // Prediction by prediction: at most 3 of 48 flipped per method.
            for (m, pa) in &a.predictions {
                let pb = &b.predictions[m];
                let flips = pa.iter().zip(pb).filter(|(x, y)| x != y).count();
                assert!(
                    flips <= 3,
                    "{p:?} {} on {}: {flips} predictions differ",
                    m.name(),
                    a.dataset
                );
            }
            let worst = (a.lambda.iter().zip(&b.lambda))
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < lambda_tol,
                "{p:?} {}: λ differs by {worst}",
                a.dataset
            );
        }
        assert_eq!(r.per_sample_forward.as_deref(), Some("blended"));
        for stage in [
            "logits-theta0",
            "logits-theta1",
            "baselines",
            "coefficients",
            "mixture",
            "merges",
            "merged-forwards",
        ] {
            assert!(
                r.timings.iter().any(|(s, _)| s == stage),
                "{stage} missing from {:?}",
                r.timings
            );
        }
        println!(
            "{p:?}: {}",
            (r.methods.iter().zip(&c.methods))
                .map(|(a, b)| format!("{} {:.1}/{:.1}", a.method, a.id, b.id))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// Streaming DaWin (per batch: λ, the mixture, merges on the device for each batch's K
/// components) on the device path against the CPU: accuracy within 100·3/48 points, mean λ
/// within 0.02.
#[test]
fn streaming_on_the_device_path_matches_the_cpu() {
    let (m0, m1) = models();
    let id = data("id", 48);
    let cfg = EvalConfig {
        progress: false,
        batch_size: 16,
        ..EvalConfig::default()
    };
    let t = (0.9, 1.1);
    let g = on_host(&m0, &m1, Precision::F16);
    for k in [None, Some(2)] {
        let cpu = crate::eval::evaluate_streaming(&m0, &m1, &id, t, &cfg, k).unwrap();
        let dev = crate::eval::evaluate_streaming(&g[0], &g[1], &id, t, &cfg, k).unwrap();
        assert_eq!((dev.n, dev.batches), (cpu.n, cpu.batches));
        let (a, b) = (dev.accuracy(), cpu.accuracy());
        assert!((a - b).abs() <= 6.25 + 1e-9, "K {k:?}: device {a} cpu {b}");
        assert!((dev.mean_lambda - cpu.mean_lambda).abs() < 0.02, "K {k:?}");
    }
}

mod mtl_device {
    use super::super::mtl::CudaEncoders;
    use super::*;
    use crate::mtl::{
        evaluate_mtl_device, evaluate_mtl_full, load_mtl, MtlConfig, MtlMethod, MtlTask,
    };
    use crate::mtl::{Encoder, MtlDevice};
    use dawin_vit::CheckpointEncoder;

    const TASKS: [&str; 3] = ["digits", "rotation", "parity"];

    fn demo(p: &str) -> PathBuf {
        super::demo("mtl").join(p)
    }

    /// Every multi-task method on the device path (θ0 and the 3 demo encoders uploaded once to
    /// [`HostVit`]) against the CPU on 40 samples per task: accuracy within 100·3/40 = 7.5
    /// points (f16 rounding), λ vectors within 0.03, the merges counted the same.
    #[test]
    fn mtl_on_the_device_path_matches_the_cpu_for_every_method() {
        let list = |sub: &str| -> Vec<(String, PathBuf)> {
            (TASKS.iter())
                .map(|n| (n.to_string(), demo(&format!("{sub}{n}.safetensors"))))
                .collect()
        };
        let o = LoadOptions::default();
        let m = load_mtl(&demo("base.safetensors"), &list(""), &list("heads/"), &o).unwrap();
        let sets: Vec<InMemoryDataset> = (TASKS.iter())
            .map(|n| {
                InMemoryDataset::open(*n, demo(&format!("data/{n}.safetensors")), 16)
                    .unwrap()
                    .head(40)
            })
            .collect();
        let tasks: Vec<MtlTask<'_>> = (sets.iter().zip(&m.heads))
            .map(|(d, (n, h))| MtlTask {
                name: n.clone(),
                head: h.clone(),
                data: d as &dyn Dataset,
            })
            .collect();
        let named: Vec<(String, &CheckpointEncoder)> =
            m.models.iter().map(|(n, c)| (n.clone(), c)).collect();
        let cfg = MtlConfig {
            methods: MtlMethod::ALL.to_vec(),
            progress: false,
            batch_size: 16,
            ..MtlConfig::default()
        };
        let cpu = evaluate_mtl_full(&m.base, &named, &tasks, &cfg).unwrap();
        let refs: Vec<&CheckpointEncoder> = named.iter().map(|(_, c)| *c).collect();
        let dev0 = HostVit::new(m.base.config(), &[m.base.weights()], Precision::F16).unwrap();
        let enc = CudaEncoders::with_models(dev0, &m.base, &refs).unwrap();
        assert_eq!(enc.device().models(), 4);
        // M + 1 = 4 sets: the blended forward runs on the device.
        assert!(enc.encoder(Encoder::Blended).unwrap().is_some());
        // A device holding other models, or the same in another order, is refused.
        let mut swapped = named.clone();
        swapped.swap(0, 1);
        let e = evaluate_mtl_device(&enc, &m.base, &swapped, &tasks, &cfg).err();
        let e = e.expect("swapped models refused").to_string();
        assert!(e.contains("position 1") && e.contains("rotation"), "{e}");
        let e = evaluate_mtl_device(&enc, &m.base, &named[..2], &tasks, &cfg).err();
        let e = e.expect("fewer models refused").to_string();
        assert!(e.contains("holds 3"), "{e}");
        let dev = evaluate_mtl_device(&enc, &m.base, &named, &tasks, &cfg).unwrap();
        let (r, c) = (&dev.report, &cpu.report);
        assert_eq!(c.device, "cpu");
        assert!(r.device.contains("host interpreter"), "{}", r.device);
        assert_eq!(r.methods.len(), c.methods.len());
        for (a, b) in r.methods.iter().zip(&c.methods) {
            assert_eq!(a.method, b.method);
            assert_eq!(a.merges, b.merges, "{}", a.method);
            for (d, x) in &a.accuracy {
                let y = b.accuracy[d];
                assert!(
                    (x - y).abs() <= 7.5 + 1e-9,
                    "{} on {d}: device {x} cpu {y}",
                    a.method
                );
            }
        }
        for (a, b) in dev.per_sample.iter().zip(&cpu.per_sample) {
            let worst = (a.arrays.lambda.iter().zip(&b.arrays.lambda))
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 0.03, "{}: λ differs by {worst}", a.dataset);
        }
        println!(
            "mtl f16: {}",
            (r.methods.iter().zip(&c.methods))
                .map(|(a, b)| format!(
                    "{} {:.1}/{:.1}",
                    a.method,
                    a.mean.unwrap_or(f64::NAN),
                    b.mean.unwrap_or(f64::NAN)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
