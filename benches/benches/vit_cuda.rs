//! CUDA forward of CLIP ViT-B/32 and B/16 (and, on request, L/14 and open_clip's ViT-H/14: exact
//! GELU, 16 heads of 80; random weights) on the hand-written kernels of
//! `dawin-kernels` (gemm.cu, attention.cu, norm.cu, embed.cu), in fp16 and bf16, and the exact
//! per-sample blended forward of issue #8.
//!
//! A bench binary printing a table (no criterion: each configuration is one long GPU run, timed
//! with a device synchronisation around `VIT_CUDA_ITERS` forwards after 2 warm-up forwards).
//! Images are uploaded once and stay on the device (`forward_model_device`), as in the PyTorch
//! peer `benches/peer/clip_forward.py`, which prints the same rows; the time includes the
//! per-forward workspace allocation and the download of the logits. Rows:
//!
//! * `forward`: one model, images/s and achieved TFLOP/s (`VitConfig::forward_flops`);
//! * `blended M=1` / `blended M=3`: one λ (vector) per sample over 2 / 4 models, and its cost
//!   relative to one forward (issue #8 target: ≤ 2.3× for M = 1);
//! * `dawin K=3`: three merges on the device (`CudaVit::merge_into`), each followed by the
//!   forward of a third of the batch;
//! * `explicit loop`: per sample, a merge on the device and a batch-1 forward
//!   (`VIT_CUDA_LOOP` samples timed, default 32, scaled to the batch), and after the table
//!   the loop's cost over the blended forward's (issue #8 target: ≥ 20×);
//! * `GEMM c_fc`: the forward's largest GEMM alone (bias + the model's activation: QuickGELU, or
//!   exact GELU for H/14), TFLOP/s to set against the device's tensor-core peak, with ldmatrix
//!   and with 32-bit fragment loads (the forward rows use ldmatrix unless `DAWIN_VIT_GEMM=lds`);
//! * `attention`: one attention launch alone at the model's shape (`attention_*` for head dims
//!   ≤ 64, `attention_wide_*` for H/14's 80), TFLOP/s of its `4·B·T²·W` FLOPs;
//!
//! then the time per kind of kernel (GEMM, attention, layer norm, other) of one forward and of
//! one blended forward, every launch synchronised (`CudaVit::profile_device`).
//!
//! Run: `cargo bench -p dawin-benches --bench vit_cuda` (env: `VIT_CUDA_BATCH`, default 256;
//! `VIT_CUDA_ITERS`, default 10; `VIT_CUDA_MODELS`, default `b32,b16`, also `l14`, `h14`: the
//! ViT-H/14 rows hold four 632 M-parameter models, about 10 GB of host memory and a minute or two
//! of GPU time, hence not by default). Without a GPU it prints
//! a SKIPPED line naming the cause (`DAWIN_REQUIRE_GPU=1`: it fails instead).

use std::sync::Arc;
use std::time::Instant;

use dawin_kernels::{
    AttentionShape, FragmentLoad, GemmActivation, GemmShape, GemmWeights, Gpu, Half, Output,
};
use dawin_vit::cuda::{CudaVit, Precision};
use dawin_vit::{Activation, ClipWeights, VitConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median seconds per call of `f` over `iters` calls (each call ends with a download, which
/// synchronises the stream).
fn time(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Median seconds of one GEMM launch of `[m, k] × [n, k]ᵀ` with bias and the activation `act`
/// (T output), over `iters` launches after a warm-up.
fn gemm_alone(
    gpu: &Gpu,
    p: Precision,
    (m, n, k): (usize, usize, usize),
    act: GemmActivation,
    iters: usize,
    load: FragmentLoad,
) -> f64 {
    match p {
        Precision::F16 => gemm_alone_t::<half::f16>(gpu, (m, n, k), act, iters, load),
        Precision::Bf16 => gemm_alone_t::<half::bf16>(gpu, (m, n, k), act, iters, load),
    }
}

fn gemm_alone_t<T: Half>(
    gpu: &Gpu,
    (m, n, k): (usize, usize, usize),
    act: GemmActivation,
    iters: usize,
    load: FragmentLoad,
) -> f64 {
    let vals = |len: usize| -> Vec<T> {
        (0..len)
            .map(|i| T::from_f32(0.05 + (i % 97) as f32 * 1e-3))
            .collect()
    };
    let a = gpu.upload(&vals(m * k)).expect("upload");
    let w = gpu.upload(&vals(n * k)).expect("upload");
    let b = gpu.upload(&vals(n)).expect("upload");
    let mut out = gpu.zeros::<T>(m * n).expect("alloc");
    let shape = GemmShape {
        act,
        ..GemmShape::new(m, n, k)
    };
    time(iters, || {
        let sets = [GemmWeights {
            weight: w.view(),
            bias: Some(b.view()),
            scale: None,
        }];
        gpu.gemm_with(
            &shape,
            &a.view(),
            &sets,
            None,
            Output::Half(out.view_mut()),
            load,
        )
        .expect("gemm");
        gpu.synchronize().expect("sync");
    })
}

/// Median seconds of one attention launch of `shape` (T in and out), over `iters` launches.
fn attention_alone(gpu: &Gpu, p: Precision, shape: &AttentionShape, iters: usize) -> f64 {
    fn run<T: Half>(gpu: &Gpu, shape: &AttentionShape, iters: usize) -> f64 {
        let qkv: Vec<T> = (0..shape.qkv_len())
            .map(|i| T::from_f32(((i % 89) as f32 / 89.0 - 0.5) * 2.0))
            .collect();
        let qkv = gpu.upload(&qkv).expect("upload");
        let mut out = gpu.zeros::<T>(shape.out_len()).expect("alloc");
        time(iters, || {
            gpu.attention(shape, &qkv.view(), &mut out.view_mut())
                .expect("attention");
            gpu.synchronize().expect("sync");
        })
    }
    match p {
        Precision::F16 => run::<half::f16>(gpu, shape, iters),
        Precision::Bf16 => run::<half::bf16>(gpu, shape, iters),
    }
}

fn main() {
    let Some(gpu) = dawin_kernels::harness::gpu_or_skip("vit_cuda bench not run") else {
        return;
    };
    let gpu = Arc::new(gpu);
    let batch = env_usize("VIT_CUDA_BATCH", 256);
    let iters = env_usize("VIT_CUDA_ITERS", 10).max(1);
    let models = std::env::var("VIT_CUDA_MODELS").unwrap_or_else(|_| "b32,b16".into());
    println!(
        "vit_cuda on {} (compute {}.{}, {} SMs, driver CUDA {}), batch {batch}, median of {iters}",
        gpu.name(),
        gpu.compute_capability().0,
        gpu.compute_capability().1,
        gpu.sm_count(),
        gpu.driver_version()
    );
    println!("| model | dtype | path | ms / batch | images/s | TFLOP/s | × one forward |");
    println!("|---|---|---|---:|---:|---:|---:|");
    let mut breakdown = Vec::new();
    let mut loop_vs_blended = Vec::new();
    for name in models.split(',') {
        let cfg = match name.trim() {
            "b32" => VitConfig::vit_b32(1000),
            "b16" => VitConfig::vit_b16(1000),
            "l14" => VitConfig::vit_l14(1000),
            "h14" => VitConfig::vit_h14(1000),
            other => {
                println!("unknown model {other} (b32, b16, l14, h14)");
                continue;
            }
        };
        let weights: Vec<ClipWeights> = (0..4)
            .map(|s| ClipWeights::random(&cfg, 100 + s).expect("random weights"))
            .collect();
        let images: Vec<f32> = (0..batch * cfg.image_numel())
            .map(|i| ((i % 1013) as f32 / 1013.0 - 0.5) * 3.0)
            .collect();
        let img = gpu.upload(&images).expect("upload");
        let flops = cfg.forward_flops() * batch as f64;
        for p in [Precision::F16, Precision::Bf16] {
            let refs: Vec<&ClipWeights> = weights.iter().collect();
            let vit4 = CudaVit::new(gpu.clone(), &cfg, &refs, p).expect("upload models");
            let vit2 = CudaVit::new(gpu.clone(), &cfg, &refs[..2], p).expect("upload models");
            let one = time(iters, || {
                vit2.forward_model_device(0, &img, batch, false)
                    .expect("forward");
            });
            let row = |path: &str, secs: f64, work: f64| {
                println!(
                    "| {name} | {p:?} | {path} | {:.2} | {:.0} | {:.1} | {:.2} |",
                    secs * 1e3,
                    batch as f64 / secs,
                    work / secs / 1e12,
                    secs / one
                );
            };
            row("forward", one, flops);
            let lambdas: Vec<f32> = (0..batch).map(|i| i as f32 / batch as f32).collect();
            let b1 = time(iters, || {
                vit2.forward_blended_device(&img, batch, &lambdas, false)
                    .expect("blended");
            });
            row("blended M=1", b1, flops);
            let coeffs: Vec<f32> = (0..batch * 3).map(|i| (i % 7) as f32 / 14.0).collect();
            let b3 = time(iters, || {
                vit4.forward_blended_device(&img, batch, &coeffs, false)
                    .expect("blended");
            });
            row("blended M=3", b3, flops);
            // `dawin` with K = 3 (issue #8's row): three merges on the device, each feeding the
            // forward of its third of the batch (CudaVit::merge_into, no host copy).
            let mut vit3 =
                CudaVit::new(gpu.clone(), &cfg, &[refs[0], refs[1], refs[0]], p).expect("upload");
            let n = cfg.image_numel();
            let thirds: Vec<(usize, usize)> = (0..3)
                .map(|k| (k * batch / 3, (k + 1) * batch / 3))
                .filter(|(lo, hi)| hi > lo)
                .collect();
            let groups: Vec<_> = thirds
                .iter()
                .map(|&(lo, hi)| gpu.upload(&images[lo * n..hi * n]).expect("upload"))
                .collect();
            let k3 = time(iters, || {
                for (k, (g, &(lo, hi))) in groups.iter().zip(&thirds).enumerate() {
                    vit3.merge_into(0, &[1], &[0.25 + 0.25 * k as f32], 2)
                        .expect("merge");
                    vit3.forward_model_device(2, g, hi - lo, false)
                        .expect("forward");
                }
            });
            row("dawin K=3 (3 merges + forward)", k3, flops);
            // The explicit per-sample loop the authors run: merge θ(λ_i) on the device, then a
            // batch-1 forward, for `loop_n` samples; scaled to the batch.
            let loop_n = env_usize("VIT_CUDA_LOOP", 32).clamp(1, batch);
            let singles: Vec<_> = (0..loop_n)
                .map(|i| gpu.upload(&images[i * n..(i + 1) * n]).expect("upload"))
                .collect();
            let per_loop = time(iters.min(3), || {
                for (i, x) in singles.iter().enumerate() {
                    vit3.merge_into(0, &[1], &[lambdas[i]], 2).expect("merge");
                    vit3.forward_model_device(2, x, 1, false).expect("forward");
                }
            });
            let looped = per_loop * batch as f64 / loop_n as f64;
            row(
                &format!("explicit loop (merge + batch-1 forward, {loop_n} samples timed)"),
                looped,
                flops,
            );
            loop_vs_blended.push(format!(
                "{name} {p:?}: explicit loop / blended M=1 = {:.1}× (issue #8 target ≥ 20×); \
                 blended M=1 / forward = {:.2}× (target ≤ 2.3×)",
                looped / b1,
                b1 / one
            ));
            // The forward's largest GEMM alone (MLP c_fc: [B·T, W] × [W, M]ᵀ, bias + the
            // model's activation): the kernel's rate, to compare with the tensor-core peak.
            let (gm, gn, gk) = (batch * cfg.num_tokens(), cfg.mlp_dim, cfg.width);
            let act = match cfg.activation {
                Activation::QuickGelu => GemmActivation::QuickGelu,
                Activation::Gelu => GemmActivation::Gelu,
            };
            for load in [FragmentLoad::Ldmatrix, FragmentLoad::Lds] {
                let gsecs = gemm_alone(&gpu, p, (gm, gn, gk), act, iters, load);
                println!(
                    "| {name} | {p:?} | GEMM c_fc {gm}×{gn}×{gk} {act:?} ({load:?}) | {:.3} | | {:.1} | |",
                    gsecs * 1e3,
                    2.0 * (gm * gn * gk) as f64 / gsecs / 1e12
                );
            }
            // One block's attention alone: QKᵀ and PV, 4·B·T²·W FLOPs.
            let att = AttentionShape {
                batch,
                seq: cfg.num_tokens(),
                heads: cfg.heads,
                head_dim: cfg.head_dim(),
                scale: 1.0 / (cfg.head_dim() as f32).sqrt(),
            };
            let asecs = attention_alone(&gpu, p, &att, iters);
            let t = cfg.num_tokens() as f64;
            println!(
                "| {name} | {p:?} | attention {} heads × {} ({}) | {:.3} | | {:.1} | |",
                att.heads,
                att.head_dim,
                att.kernel().0.trim_end_matches('_'),
                asecs * 1e3,
                4.0 * batch as f64 * t * t * cfg.width as f64 / asecs / 1e12
            );
            // Where the time goes (each launch timed alone, so the sum is a little larger).
            for (what, c) in [("forward", None), ("blended M=1", Some(&lambdas[..]))] {
                let prof = vit2.profile_device(&img, batch, c).expect("profile");
                let total: f64 = prof.iter().map(|p| p.1).sum();
                let parts: Vec<String> = prof
                    .iter()
                    .map(|(k, t)| format!("{k} {:.2} ms ({:.0} %)", t * 1e3, 100.0 * t / total))
                    .collect();
                breakdown.push(format!("{name} {p:?} {what}: {}", parts.join(", ")));
            }
        }
    }
    println!();
    for l in &loop_vs_blended {
        println!("{l}");
    }
    println!();
    println!("Time per kind of kernel (one forward, every launch synchronised):");
    for b in &breakdown {
        println!("  {b}");
    }
    println!(
        "TFLOP/s counts one model's forward FLOPs (multiply-add = 2) for every row; the \
         blended rows do (M + 1)× the GEMM work."
    );
}
