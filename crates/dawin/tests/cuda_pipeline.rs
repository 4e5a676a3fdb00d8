//! The pipeline on a GPU (`dawin::cuda::CudaClassifier`) against the same pipeline on the CPU, on
//! the embedded demo: every method's accuracy within 3 points (f16 rounding may flip a few of the
//! 200 predictions per dataset). Own `main`: without a CUDA device it prints a visible SKIPPED
//! line with the cause (`DAWIN_REQUIRE_GPU=1`: a failure instead). Prebuilt binaries on another
//! machine find the demo through `DAWIN_DEMO_DIR`.
use dawin::cuda::CudaClassifier;
use dawin::eval::{evaluate, EvalConfig, Method, Named};
use dawin::vit::cuda::Precision;
use dawin::vit::{ClipClassifier, LoadOptions};
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
    let Some(gpu) =
        dawin::kernels::harness::gpu_or_skip("1 GPU test not run: cuda_pipeline_matches_cpu")
    else {
        return;
    };
    let gpu = Arc::new(gpu);
    let o = LoadOptions::default();
    let m0 = ClipClassifier::from_files(demo("theta0.safetensors"), None, &o).unwrap();
    let m1 = ClipClassifier::from_files(demo("theta1.safetensors"), None, &o).unwrap();
    let data =
        |n: &str| InMemoryDataset::open(n, demo(&format!("data/{n}.safetensors")), 16).unwrap();
    let (val, id, rot) = (data("val"), data("id"), data("rotate"));
    let cfg = EvalConfig {
        methods: vec![
            Method::Zs,
            Method::Ft,
            Method::Wise,
            Method::Dawin,
            Method::DawinSample,
        ],
        progress: false,
        ..EvalConfig::default()
    };
    let cpu = evaluate(
        &Named::new("t0", &m0, "a"),
        &Named::new("t1", &m1, "b"),
        &val,
        &id,
        &[&rot as &dyn Dataset],
        &cfg,
    )
    .unwrap()
    .report;
    let mut failed = false;
    for precision in [Precision::F16, Precision::Bf16] {
        let g0 = CudaClassifier::new(gpu.clone(), m0.clone(), precision).unwrap();
        let g1 = CudaClassifier::new(gpu.clone(), m1.clone(), precision).unwrap();
        let t = std::time::Instant::now();
        let out = evaluate(
            &Named::new("t0", &g0, "a"),
            &Named::new("t1", &g1, "b"),
            &val,
            &id,
            &[&rot as &dyn Dataset],
            &cfg,
        )
        .unwrap()
        .report;
        println!(
            "{precision:?} on {} ({:.2} s): T0 {:.4} vs {:.4}, T1 {:.4} vs {:.4} (cpu)",
            gpu.name(),
            t.elapsed().as_secs_f64(),
            out.temperatures[0],
            cpu.temperatures[0],
            out.temperatures[1],
            cpu.temperatures[1]
        );
        for (g, c) in out.methods.iter().zip(&cpu.methods) {
            for d in ["id", "rotate"] {
                let (a, b) = (g.accuracy[d], c.accuracy[d]);
                let ok = (a - b).abs() <= 3.0;
                failed |= !ok;
                println!(
                    "  {} on {d}: cuda {a:.2} cpu {b:.2} {}",
                    g.method,
                    if ok { "ok" } else { "FAILED" }
                );
            }
        }
    }
    if failed {
        println!("test cuda_pipeline_matches_cpu ... FAILED");
        std::process::exit(1);
    }
    println!("test cuda_pipeline_matches_cpu ... ok\n1 passed, 0 failed");
}
