//! Exact per-sample interpolation on the CPU at ViT-B/32 size (random weights), in one run:
//!
//! * `single`: one model's forward of the batch (`cpu::forward`);
//! * `dawin K=3`: three full-model merges `θ(λ_k) = (1 − λ_k) θ0 + λ_k θ1` (dawin_core's `lerp`
//!   on every parameter tensor) and one forward of the batch split in three groups;
//! * `blended`: `cpu::blended::forward_lerp`, one λ per sample, no merge;
//! * `loop`: the explicit per-sample variant — merge the full model for a sample, forward it
//!   alone — timed on `BLENDED_BENCH_LOOP` samples (default 2) and given per image.
//!
//! Optionally (`BLENDED_BENCH_M3=1`) the M = 3 task-arithmetic blend (4 parameter sets).
//! Prints images/s and the ratios blended / single (target ≤ 2.3) and loop / blended (target
//! ≥ 20). Batch: `BLENDED_BENCH_BATCH` (default 8).
//!
//! Run: `cargo bench -p dawin-benches --bench blended`.

use std::hint::black_box;
use std::time::Instant;

use dawin_benches::median_secs;
use dawin_core::merge::lerp;
use dawin_vit::{cpu, BlendedWeights, ClipWeights, VitConfig};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn merge_into(t0: &ClipWeights, t1: &ClipWeights, lambda: f32, out: &mut ClipWeights) {
    let (a, b) = (t0.params(), t1.params());
    for (k, o) in out.params_mut().into_iter().enumerate() {
        lerp(a[k], b[k], lambda, o).unwrap();
    }
}

fn main() {
    let cfg = VitConfig::vit_b32(1000);
    let batch = env("BLENDED_BENCH_BATCH", 8);
    let loop_samples = env("BLENDED_BENCH_LOOP", 2).clamp(1, batch);
    let n = cfg.image_numel();
    let t0 = ClipWeights::random(&cfg, 1).unwrap();
    let t1 = ClipWeights::random(&cfg, 2).unwrap();
    let images: Vec<f32> = (0..batch * n)
        .map(|i| ((i * 7919 % 1000) as f32) / 500.0 - 1.0)
        .collect();
    let lambdas: Vec<f32> = (0..batch)
        .map(|i| ((i * 37 + 11) % 100) as f32 / 99.0)
        .collect();
    let params: usize = t0.params().iter().map(|p| p.len()).sum();
    println!(
        "ViT-B/32, 1000 classes, {:.1} M parameters, batch {batch}, {} rayon threads",
        params as f64 / 1e6,
        rayon::current_num_threads()
    );

    // One model.
    let single = median_secs(3, || {
        black_box(cpu::forward(&images, batch, &cfg, &t0).unwrap());
    });

    // DaWin with K = 3: three merges and one forward of the batch in three groups.
    let k_lambdas = [0.2f32, 0.5, 0.8];
    let mut merged: Vec<ClipWeights> = (0..3).map(|_| t0.clone()).collect();
    let groups: Vec<(usize, usize)> = (0..3)
        .map(|k| (k * batch / 3, (k + 1) * batch / 3))
        .collect();
    let dawin_k3 = median_secs(2, || {
        for (m, &l) in merged.iter_mut().zip(&k_lambdas) {
            merge_into(&t0, &t1, l, m);
        }
        for (m, &(s, e)) in merged.iter().zip(&groups) {
            if e > s {
                black_box(cpu::forward(&images[s * n..e * n], e - s, &cfg, m).unwrap());
            }
        }
    });

    // Blended: one λ per sample, no merge.
    let t_build = Instant::now();
    let bw = BlendedWeights::new(&cfg, &t0, &[&t1]).unwrap();
    let build = t_build.elapsed().as_secs_f64();
    let blended = median_secs(3, || {
        black_box(cpu::blended::forward_lerp(&images, batch, &bw, &lambdas).unwrap());
    });

    // Explicit per-sample loop: merge the whole model, forward batch 1 (a few samples only).
    let mut scratch = t0.clone();
    let loop_total = median_secs(1, || {
        for i in 0..loop_samples {
            merge_into(&t0, &t1, lambdas[i], &mut scratch);
            black_box(cpu::forward(&images[i * n..(i + 1) * n], 1, &cfg, &scratch).unwrap());
        }
    });
    let loop_per_image = loop_total / loop_samples as f64;

    let mut rows = vec![
        ("single model forward", single / batch as f64),
        ("dawin K=3 (3 merges + forward)", dawin_k3 / batch as f64),
        ("blended exact per-sample (M=1)", blended / batch as f64),
        ("explicit per-sample loop", loop_per_image),
    ];
    drop(bw);
    if std::env::var("BLENDED_BENCH_M3").is_ok_and(|v| v == "1") {
        let t2 = ClipWeights::random(&cfg, 3).unwrap();
        let t3 = ClipWeights::random(&cfg, 4).unwrap();
        let bw3 = BlendedWeights::new(&cfg, &t0, &[&t1, &t2, &t3]).unwrap();
        let coeffs: Vec<f32> = (0..3 * batch)
            .map(|i| ((i * 53 + 7) % 100) as f32 / 330.0)
            .collect();
        let b3 = median_secs(2, || {
            black_box(cpu::blended::forward(&images, batch, &bw3, &coeffs).unwrap());
        });
        rows.push(("blended exact per-sample (M=3)", b3 / batch as f64));
    }

    println!(
        "\n{:<34} {:>12} {:>10} {:>16}",
        "variant", "s / image", "images/s", "cost vs single"
    );
    let per_single = single / batch as f64;
    for (name, s) in &rows {
        println!(
            "{name:<34} {s:>12.4} {:>10.2} {:>15.2}x",
            1.0 / s,
            s / per_single
        );
    }
    let per_blended = blended / batch as f64;
    println!(
        "\nblended / single cost: {:.2} (target <= 2.3)",
        per_blended / per_single
    );
    println!(
        "loop / blended cost:   {:.2} (target >= 20; loop timed on {loop_samples} sample(s))",
        loop_per_image / per_blended
    );
    println!(
        "building BlendedWeights (θ0 + one delta, {:.0} MB): {build:.2} s, once per model pair",
        (2 * 4 * params) as f64 / 1e6
    );
}
