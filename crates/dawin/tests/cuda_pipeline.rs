//! The pipeline on a GPU (`dawin::cuda`) against the same pipeline on the CPU, on the embedded
//! demo:
//!
//! * `cuda_pipeline_matches_cpu`: θ0 and θ1 uploaded once ([`CudaClassifier::pair`]), every
//!   two-model method (merges by the merge kernels into device arenas, entropies by the
//!   row-statistics kernel, the blended per-sample forward): each method's accuracy within 3
//!   points of the CPU's, at most 6 of 200 predictions per dataset flipped (f16/bf16 rounding of
//!   near ties), λ(x) within 0.02 (f16) / 0.05 (bf16), and the stage timings in the report;
//! * `cuda_mtl_matches_cpu`: the multi-task evaluation with θ0 and the three demo encoders
//!   uploaded once ([`CudaEncoders`], task arithmetic by its kernel, the blended forward over
//!   four arenas): every row within 3 points of the CPU's.
//!
//! Own `main`: without a CUDA device it prints a visible SKIPPED line with the cause
//! (`DAWIN_REQUIRE_GPU=1`: a failure instead). Prebuilt binaries on another machine find the
//! demo through `DAWIN_DEMO_DIR`. The same code paths run without a GPU on the host interpreter
//! (`dawin::cuda`'s unit tests).
use dawin::cuda::mtl::CudaEncoders;
use dawin::cuda::CudaClassifier;
use dawin::eval::{evaluate, EvalConfig, Method, Named};
use dawin::kernels::Gpu;
use dawin::mtl::{evaluate_mtl_device, evaluate_mtl_full, load_mtl, MtlConfig, MtlMethod, MtlTask};
use dawin::vit::cuda::Precision;
use dawin::vit::{CheckpointEncoder, ClipClassifier, LoadOptions};
use dawin::{Dataset, InMemoryDataset};
use std::path::PathBuf;
use std::sync::Arc;

fn demo(p: &str) -> PathBuf {
    std::env::var_os("DAWIN_DEMO_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dawin-cli/demo"))
        .join(p)
}

fn main() {
    let Some(gpu) = dawin::kernels::harness::gpu_or_skip(
        "2 GPU tests not run: cuda_pipeline_matches_cpu, cuda_mtl_matches_cpu",
    ) else {
        return;
    };
    let gpu = Arc::new(gpu);
    let mut failed = 0;
    for (name, test) in [
        (
            "cuda_pipeline_matches_cpu",
            cuda_pipeline_matches_cpu as fn(&Arc<Gpu>) -> bool,
        ),
        ("cuda_mtl_matches_cpu", cuda_mtl_matches_cpu),
    ] {
        let ok = test(&gpu);
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    println!("{} passed, {failed} failed", 2 - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

fn cuda_pipeline_matches_cpu(gpu: &Arc<Gpu>) -> bool {
    let o = LoadOptions::default();
    let m0 = ClipClassifier::from_files(demo("theta0.safetensors"), None, &o).unwrap();
    let m1 = ClipClassifier::from_files(demo("theta1.safetensors"), None, &o).unwrap();
    let data =
        |n: &str| InMemoryDataset::open(n, demo(&format!("data/{n}.safetensors")), 16).unwrap();
    let (val, id, rot) = (data("val"), data("id"), data("rotate"));
    let cfg = EvalConfig {
        methods: Method::ALL.to_vec(),
        progress: false,
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
    let mut ok = true;
    for (precision, lambda_tol) in [(Precision::F16, 0.02f32), (Precision::Bf16, 0.05)] {
        let (g0, g1) = CudaClassifier::pair(gpu.clone(), &m0, &m1, precision).unwrap();
        let t = std::time::Instant::now();
        let out = evaluate(
            &Named::new("t0", &g0, "a"),
            &Named::new("t1", &g1, "b"),
            &val,
            &id,
            &tests,
            &cfg,
        )
        .unwrap();
        let (r, c) = (&out.report, &cpu.report);
        println!(
            "{precision:?} on {} ({:.2} s): T0 {:.4} vs {:.4}, T1 {:.4} vs {:.4} (cpu); workspace {} bytes",
            gpu.name(),
            t.elapsed().as_secs_f64(),
            r.temperatures[0],
            c.temperatures[0],
            r.temperatures[1],
            c.temperatures[1],
            g0.device().workspace_bytes()
        );
        println!("  timings: {:?}", r.timings);
        for stage in [
            "logits-theta0",
            "logits-theta1",
            "coefficients",
            "merges",
            "merged-forwards",
        ] {
            if !r.timings.iter().any(|(s, _)| s == stage) {
                println!("  stage {stage} missing from the timings: FAILED");
                ok = false;
            }
        }
        for (g, c) in r.methods.iter().zip(&c.methods) {
            for d in ["id", "rotate"] {
                let (a, b) = (g.accuracy[d], c.accuracy[d]);
                let good = (a - b).abs() <= 3.0;
                ok &= good;
                println!(
                    "  {} on {d}: cuda {a:.2} cpu {b:.2} {}",
                    g.method,
                    if good { "ok" } else { "FAILED" }
                );
            }
        }
        for (a, b) in out.per_sample.iter().zip(&cpu.per_sample) {
            for (m, pa) in &a.predictions {
                let flips = pa
                    .iter()
                    .zip(&b.predictions[m])
                    .filter(|(x, y)| x != y)
                    .count();
                if flips > 6 {
                    println!(
                        "  {} on {}: {flips} predictions differ: FAILED",
                        m.name(),
                        a.dataset
                    );
                    ok = false;
                }
            }
            let worst = (a.lambda.iter().zip(&b.lambda))
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            println!("  λ on {}: max |Δ| {worst:.2e}", a.dataset);
            if worst >= lambda_tol {
                println!("  λ differs by {worst} ≥ {lambda_tol}: FAILED");
                ok = false;
            }
        }
    }
    ok
}

fn cuda_mtl_matches_cpu(gpu: &Arc<Gpu>) -> bool {
    const TASKS: [&str; 3] = ["digits", "rotation", "parity"];
    let p = |s: &str| demo("mtl").join(s);
    let list = |sub: &str| -> Vec<(String, PathBuf)> {
        (TASKS.iter())
            .map(|n| (n.to_string(), p(&format!("{sub}{n}.safetensors"))))
            .collect()
    };
    let o = LoadOptions::default();
    let m = load_mtl(&p("base.safetensors"), &list(""), &list("heads/"), &o).unwrap();
    let sets: Vec<InMemoryDataset> = (TASKS.iter())
        .map(|n| InMemoryDataset::open(*n, p(&format!("data/{n}.safetensors")), 16).unwrap())
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
    let refs: Vec<&CheckpointEncoder> = named.iter().map(|(_, c)| *c).collect();
    let cfg = MtlConfig {
        methods: MtlMethod::ALL.to_vec(),
        progress: false,
        ..MtlConfig::default()
    };
    let cpu = evaluate_mtl_full(&m.base, &named, &tasks, &cfg).unwrap();
    let mut ok = true;
    for precision in [Precision::F16, Precision::Bf16] {
        let enc = CudaEncoders::upload(gpu.clone(), &m.base, &refs, precision).unwrap();
        let dev = evaluate_mtl_device(&enc, &m.base, &named, &tasks, &cfg).unwrap();
        for (a, b) in dev.report.methods.iter().zip(&cpu.report.methods) {
            for (d, x) in &a.accuracy {
                let y = b.accuracy[d];
                let good = (x - y).abs() <= 3.0 && a.merges == b.merges;
                ok &= good;
                println!(
                    "  {precision:?} {} on {d}: cuda {x:.2} cpu {y:.2} {}",
                    a.method,
                    if good { "ok" } else { "FAILED" }
                );
            }
        }
    }
    ok
}
