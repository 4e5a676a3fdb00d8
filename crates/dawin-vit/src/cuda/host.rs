//! Host check of the CUDA forward's orchestration, with no GPU: the arenas are built exactly as
//! [`super::CudaVit::new`] builds them (host side), every activation buffer of the forward is a
//! host buffer poisoned with NaN, and the launch [`plan`] of a forward is executed by a small
//! interpreter of the kernels' documented formulas (f32 arithmetic, f16/bf16 rounding on every T
//! store, as the kernels do) over that memory, each op first passing the same shape and length
//! checks as the launchers of `dawin-kernels` and every access bounds-checked. The result is
//! compared with the CPU f32 forward (`cpu::forward`, `cpu::blended::forward`). The interpreter itself is `interp.rs`;
//! `host/device_seq.rs` runs the device pipeline's sequences on it ([`HostVit`]).
//!
//! This checks what the GPU tests check on the host side (tensor names and layouts in the
//! arena, padding of the patch dimension, every launch's shapes, strides, buffers and epilogue
//! flags, the blend coefficients); the kernels themselves are checked by the host emulation of
//! `crates/dawin-kernels/emulation/emulate_forward.cpp`.

use dawin_kernels::HostArena;
use half::{bf16, f16};

use super::args::{arena_tensors, host_arena};
use super::interp::{run_plan, HostWorkspace};
use super::plan::patch_dim_padded;
use super::*;
use crate::cpu;
use crate::params::{Module, ParamKey, Part};
use crate::BlendedWeights;

/// The arena [`CudaVit::new`] uploads for `w`.
fn model_arena(cfg: &VitConfig, w: &ClipWeights, p: Precision) -> HostArena {
    args::model_arena(cfg, w, p).unwrap()
}

/// Runs the plan of a forward over `models` (several: blended with `coeffs` `[batch, M]`) on
/// the host; returns (logits, features).
fn host_forward(
    cfg: &VitConfig,
    models: &[&ClipWeights],
    p: Precision,
    images: &[f32],
    batch: usize,
    coeffs: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let arenas: Vec<HostArena> = models.iter().map(|m| model_arena(cfg, m, p)).collect();
    let refs: Vec<&HostArena> = arenas.iter().collect();
    host_forward_arenas(cfg, &refs, p, images, batch, coeffs)
}

/// The forward's launch plan interpreted over given parameter arenas, fresh buffers.
fn host_forward_arenas(
    cfg: &VitConfig,
    arenas: &[&HostArena],
    p: Precision,
    images: &[f32],
    batch: usize,
    coeffs: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let mut ws = HostWorkspace::default();
    run_plan(cfg, arenas, p, (images, batch, coeffs), &mut ws)
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().map(|v| f64::from(v.abs())).fold(1e-30, f64::max);
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max)
        / scale
}

/// Odd sizes: patch 6 (3·36 = 108, padded to 112), 17 tokens, 2 heads of 32, 5 classes.
fn cfg() -> VitConfig {
    VitConfig {
        image_size: 24,
        patch_size: 6,
        width: 64,
        layers: 2,
        heads: 2,
        mlp_dim: 96,
        embed_dim: 24,
        num_classes: 5,
        layer_norm_eps: 1e-5,
        activation: Default::default(),
        layer_scale: false,
    }
}

fn weights(seed: u64) -> ClipWeights {
    use rand::{RngExt, SeedableRng};
    let c = cfg();
    let mut w = ClipWeights::random(&c, seed).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 77);
    for p in w.params_mut() {
        for v in p.iter_mut() {
            *v += rng.random_range(-0.05f32..0.05);
        }
    }
    w
}

fn images(batch: usize) -> Vec<f32> {
    (0..batch * cfg().image_numel())
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

fn tol(p: Precision) -> f64 {
    match p {
        Precision::F16 => 1e-2,
        Precision::Bf16 => 2e-2,
    }
}

#[test]
fn plan_on_the_host_matches_the_cpu_forward() {
    let (c, w) = (cfg(), weights(3));
    let x = images(3);
    let (want_l, want_f) = cpu::forward(&x, 3, &c, &w).unwrap();
    for p in [Precision::F16, Precision::Bf16] {
        let (l, f) = host_forward(&c, &[&w], p, &x, 3, None);
        let (el, ef) = (rel_err(&l, &want_l), rel_err(&f, &want_f));
        assert!(
            el < tol(p) && ef < tol(p),
            "{p:?}: logits {el:.2e}, features {ef:.2e}"
        );
        // Sensitivity: half precision is visibly not exact, so the comparison is not vacuous.
        assert!(el > 1e-6, "{p:?}: {el:e}");
    }
}

#[test]
fn blended_plan_on_the_host_matches_the_cpu_blended_forward() {
    let c = cfg();
    let ws: Vec<ClipWeights> = (0..4).map(|s| weights(10 + s)).collect();
    let x = images(4);
    // Two models: λ = 0, 1, 0.3, 0.8.
    let bw = BlendedWeights::new(&c, &ws[0], &[&ws[1]]).unwrap();
    let lambdas = [0.0f32, 1.0, 0.3, 0.8];
    let (want, _) = cpu::blended::forward(&x, 4, &bw, &lambdas).unwrap();
    // M = 3: one row selects θ0, one θ2, two are random mixtures.
    let bw3 = BlendedWeights::new(&c, &ws[0], &[&ws[1], &ws[2], &ws[3]]).unwrap();
    let co3 = [
        0.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.2, 0.5, 0.1, 0.6, 0.1, 0.25,
    ];
    let (want3, _) = cpu::blended::forward(&x, 4, &bw3, &co3).unwrap();
    for p in [Precision::F16, Precision::Bf16] {
        let (l, _) = host_forward(&c, &[&ws[0], &ws[1]], p, &x, 4, Some(&lambdas));
        let e = rel_err(&l, &want);
        assert!(e < tol(p), "{p:?} M=1: {e:.2e}");
        let (l3, _) = host_forward(&c, &[&ws[0], &ws[1], &ws[2], &ws[3]], p, &x, 4, Some(&co3));
        let e3 = rel_err(&l3, &want3);
        assert!(e3 < tol(p), "{p:?} M=3: {e3:.2e}");
        // Per sample: the λ = 1 row is θ1's forward.
        let (one, _) =
            cpu::forward(&x[c.image_numel()..2 * c.image_numel()], 1, &c, &ws[1]).unwrap();
        let e1 = rel_err(&l[c.num_classes..2 * c.num_classes], &one);
        assert!(e1 < tol(p), "{p:?} λ=1 row: {e1:.2e}");
    }
}

#[test]
fn arena_holds_every_tensor_with_its_shape() {
    let (c, w) = (cfg(), weights(1));
    let tensors = arena_tensors(&c, &w);
    let host = host_arena(&tensors, f16::from_f32).unwrap();
    let l = host.layout();
    assert_eq!(l.entry("conv1.weight").unwrap().shape, vec![64, 112]);
    assert_eq!(l.entry("proj").unwrap().shape, vec![24, 64]);
    assert_eq!(l.entry("positional_embedding").unwrap().shape, vec![17, 64]);
    assert_eq!(
        l.entry("transformer.resblocks.1.attn.in_proj_weight")
            .unwrap()
            .shape,
        vec![192, 64]
    );
    // Padding columns of the patch weight are zero; the others are the weight's values.
    let conv = host.tensor::<f16>("conv1.weight").unwrap();
    assert!(conv
        .chunks(112)
        .all(|r| r[108..].iter().all(|v| v.to_f32() == 0.0)));
    assert_eq!(
        conv[1].to_f32(),
        f16::from_f32(w.visual.conv1.weight[1]).to_f32()
    );
    assert_eq!(
        conv[112].to_f32(),
        f16::from_f32(w.visual.conv1.weight[108]).to_f32()
    );
}

/// What [`CudaVit::merge_into`] launches (one merge kernel over whole arenas), done here by the
/// kernels' CPU reference over host arenas built as `CudaVit::new` builds them: the plan
/// interpreted over the merged arena matches the CPU forward of the f32 merge.
#[test]
fn plan_over_a_merged_arena_matches_the_cpu_merge() {
    fn merge<T: dawin_kernels::Param>(a: &[&HostArena], w: &[f32]) -> HostArena {
        let mut out = HostArena::zeros(a[0].layout().clone());
        let base = a[0].as_slice::<T>().unwrap();
        let dst = out.as_mut_slice::<T>().unwrap();
        if a.len() == 2 {
            dawin_core::merge::lerp(base, a[1].as_slice::<T>().unwrap(), w[0], dst).unwrap();
        } else {
            let ms: Vec<&[T]> = a[1..].iter().map(|m| m.as_slice::<T>().unwrap()).collect();
            dawin_core::merge::task_arithmetic(base, &ms, w, dst).unwrap();
        }
        out
    }
    let c = cfg();
    let ws: Vec<ClipWeights> = (0..4).map(|s| weights(30 + s)).collect();
    let x = images(2);
    for p in [Precision::F16, Precision::Bf16] {
        let arenas: Vec<HostArena> = ws.iter().map(|w| model_arena(&c, w, p)).collect();
        let refs: Vec<&HostArena> = arenas.iter().collect();
        for (inputs, w) in [
            (2usize, vec![0.35f32]),
            (2, vec![1.0]),
            (4, vec![0.3, 0.25, 0.2]),
        ] {
            let merged = match p {
                Precision::F16 => merge::<f16>(&refs[..inputs], &w),
                Precision::Bf16 => merge::<bf16>(&refs[..inputs], &w),
            };
            assert!(merged.padding_is_zero());
            let (l, _) = host_forward_arenas(&c, &[&merged], p, &x, 2, None);
            // Reference: f32 merge of the f32 weights, CPU forward.
            let mut mw = ws[0].clone();
            let others: Vec<Vec<&[f32]>> = ws[1..inputs].iter().map(|o| o.params()).collect();
            let base = ws[0].params();
            for (k, o) in mw.params_mut().into_iter().enumerate() {
                let ms: Vec<&[f32]> = others.iter().map(|p| p[k]).collect();
                dawin_core::merge::task_arithmetic(base[k], &ms, &w, o).unwrap();
            }
            let (want, _) = cpu::forward(&x, 2, &c, &mw).unwrap();
            let e = rel_err(&l, &want);
            assert!(e < tol(p), "{p:?} {} inputs, w = {w:?}: {e:.2e}", inputs);
        }
    }
}

/// The CUDA arena is the parameter list: the same tensors, names, order and shapes (the patch
/// embedding padded to `K'` columns), and every address the forward reads is a tensor of it.
#[test]
fn arena_layout_agrees_with_the_parameter_list() {
    let (c, w) = (cfg(), weights(2));
    let list = ParamList::new(&c);
    let host = model_arena(&c, &w, Precision::F16);
    let entries = host.layout().entries();
    assert_eq!(entries.len(), list.len());
    for (e, d) in entries.iter().zip(&list) {
        assert_eq!(e.name, d.name());
        let mut shape = d.shape.clone();
        if d.key == ParamKey::new(Module::PatchEmbedding, Part::Weight) {
            shape[1] = patch_dim_padded(&c);
        }
        assert_eq!(e.shape, shape, "{}", e.name);
    }
}

// Exact GELU, LayerScale, head widths other than 64, and the open_clip towers saved by PyTorch.
mod arch;

// The device pipeline's sequences (merge into arenas, then forward; workspace reuse) on
// `HostVit`.
mod device_seq;
