//! CPU forward of CLIP ViT-B/32 (random weights) next to the GEMM it is built on.
//!
//! Criterion measures the forward (batch `VIT_BENCH_BATCH`, default 8) and the largest GEMM of
//! the forward (the MLP's first layer, `[B·50, 768] × [768, 3072]`, weight read transposed as
//! the forward reads it) through the same `gemm` crate wrapper. A table printed at the end gives,
//! from timings taken in the same run: images/s, the forward's achieved GFLOP/s (FLOPs from
//! `VitConfig::forward_flops`, a multiply-add counted as 2), the GEMM's GFLOP/s and their ratio
//! (target ≥ 0.5).
//!
//! Run: `cargo bench -p dawin-benches --bench vit_cpu`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use dawin_benches::median_secs;
use dawin_vit::cpu::{gemm, MatRef};
use dawin_vit::{ClipClassifier, ClipWeights, VitConfig};

fn batch() -> usize {
    std::env::var("VIT_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

struct Setup {
    model: ClipClassifier,
    images: Vec<f32>,
    a: Vec<f32>,
    w: Vec<f32>,
    c: Vec<f32>,
    m: usize,
}

fn setup() -> Setup {
    let cfg = VitConfig::vit_b32(1000);
    let b = batch();
    let model = ClipClassifier::new(cfg.clone(), ClipWeights::random(&cfg, 7).unwrap()).unwrap();
    let images: Vec<f32> = (0..b * cfg.image_numel())
        .map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0)
        .collect();
    let m = b * cfg.num_tokens();
    let a: Vec<f32> = (0..m * cfg.width)
        .map(|i| ((i * 31 % 97) as f32) / 97.0 - 0.5)
        .collect();
    let w: Vec<f32> = (0..cfg.mlp_dim * cfg.width)
        .map(|i| ((i * 17 % 89) as f32) / 89.0 - 0.5)
        .collect();
    let c = vec![0.0f32; m * cfg.mlp_dim];
    Setup {
        model,
        images,
        a,
        w,
        c,
        m,
    }
}

fn run_gemm(s: &mut Setup) {
    let cfg = s.model.config();
    gemm(
        MatRef::new(&s.a, s.m, cfg.width),
        MatRef::new(&s.w, cfg.mlp_dim, cfg.width).t(),
        &mut s.c,
        false,
        true,
    );
}

fn main() {
    let mut s = setup();
    let b = batch();
    let cfg = s.model.config().clone();
    let mut crit = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();

    let mut g = crit.benchmark_group("vit_b32_cpu");
    g.throughput(Throughput::Elements(b as u64));
    g.bench_function(format!("forward_batch{b}"), |bn| {
        bn.iter(|| black_box(s.model.forward(black_box(&s.images), b).unwrap()))
    });
    g.throughput(Throughput::Elements(
        (2 * s.m * cfg.width * cfg.mlp_dim) as u64,
    ));
    g.bench_function(
        format!("gemm_{}x{}x{}", s.m, cfg.width, cfg.mlp_dim),
        |bn| bn.iter(|| run_gemm(black_box(&mut s))),
    );
    g.finish();

    // The table: both timed here, one after the other, in the same process.
    let gemm_flops = 2.0 * (s.m * cfg.width * cfg.mlp_dim) as f64;
    let t_gemm = median_secs(20, || run_gemm(&mut s));
    let t_fwd = median_secs(5, || {
        black_box(s.model.forward(&s.images, b).unwrap());
    });
    let fwd_gflops = b as f64 * cfg.forward_flops() / t_fwd / 1e9;
    let gemm_gflops = gemm_flops / t_gemm / 1e9;
    println!();
    println!(
        "CLIP ViT-B/32 CPU forward, batch {b}, {} threads",
        threads()
    );
    println!("| what | time | rate |");
    println!("|---|---|---|");
    println!(
        "| forward ({:.2} GFLOP/image) | {:.1} ms/batch | {:.1} images/s, {:.1} GFLOP/s |",
        cfg.forward_flops() / 1e9,
        t_fwd * 1e3,
        b as f64 / t_fwd,
        fwd_gflops
    );
    println!(
        "| gemm {}x{}x{} (fc1 shape) | {:.2} ms | {:.1} GFLOP/s |",
        s.m,
        cfg.width,
        cfg.mlp_dim,
        t_gemm * 1e3,
        gemm_gflops
    );
    println!(
        "forward / gemm rate: {:.2} (target >= 0.50)",
        fwd_gflops / gemm_gflops
    );
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
