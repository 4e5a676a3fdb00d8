//! The plan interpreter (`super`) on the architectures of issue #15: exact GELU, LayerScale,
//! head widths that are not 64, and open_clip towers saved by PyTorch.

use super::*;

/// Random weights of `c` with every parameter moved by `U(−0.05, 0.05)`.
fn weights_of(c: &VitConfig, seed: u64) -> ClipWeights {
    use rand::{RngExt, SeedableRng};
    let mut w = ClipWeights::random(c, seed).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 77);
    for p in w.params_mut() {
        for v in p.iter_mut() {
            *v += rng.random_range(-0.05f32..0.05);
        }
    }
    w
}

/// The plan over `c` against the CPU forward and the CPU blended forward (λ = 0, 1, 0.3, 0.8),
/// in f16 and bf16; returns the largest error of each.
fn plan_matches_cpu(c: &VitConfig, what: &str) -> (f64, f64) {
    let ws: Vec<ClipWeights> = (0..2).map(|s| weights_of(c, 40 + s)).collect();
    let x: Vec<f32> = (0..4 * c.image_numel())
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let (want, _) = cpu::forward(&x, 4, c, &ws[0]).unwrap();
    let bw = BlendedWeights::new(c, &ws[0], &[&ws[1]]).unwrap();
    let lambdas = [0.0f32, 1.0, 0.3, 0.8];
    let (want_b, _) = cpu::blended::forward(&x, 4, &bw, &lambdas).unwrap();
    let (mut worst, mut worst_b) = (0.0f64, 0.0f64);
    for p in [Precision::F16, Precision::Bf16] {
        let (l, _) = host_forward(c, &[&ws[0]], p, &x, 4, None);
        let e = rel_err(&l, &want);
        let (lb, _) = host_forward(c, &[&ws[0], &ws[1]], p, &x, 4, Some(&lambdas));
        let eb = rel_err(&lb, &want_b);
        println!("{what} {p:?}: plan vs CPU {e:.2e}, blended plan vs CPU blended {eb:.2e}");
        assert!(e < tol(p) && eb < tol(p), "{what} {p:?}: {e:.2e}, {eb:.2e}");
        assert!(
            e > 1e-6,
            "{what} {p:?}: half precision is not exact ({e:e})"
        );
        (worst, worst_b) = (worst.max(e), worst_b.max(eb));
    }
    (worst, worst_b)
}

/// Exact GELU, LayerScale (plain and blended: the merged model's γ times the merged branch) and
/// head widths 48, 80, 104 (ViT-H/14 and bigG/14's, through `attention_wide_*`) in the plan.
#[test]
fn plan_runs_gelu_layer_scale_and_any_head_width() {
    let gelu = VitConfig {
        activation: crate::Activation::Gelu,
        ..cfg()
    };
    plan_matches_cpu(&gelu, "exact GELU");
    let ls = VitConfig {
        layer_scale: true,
        ..gelu.clone()
    };
    plan_matches_cpu(&ls, "GELU + LayerScale");
    for (width, heads) in [(96, 2), (160, 2), (208, 2), (200, 5)] {
        let c = VitConfig {
            width,
            heads,
            mlp_dim: 2 * width,
            layers: 1,
            ..cfg()
        };
        plan_matches_cpu(&c, &format!("head width {}", width / heads));
    }
    // What the kernels cannot run is refused, naming the field.
    let e = check_config(&VitConfig {
        width: 264,
        heads: 2,
        mlp_dim: 256,
        ..cfg()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("heads") && e.contains("132"), "{e}");
}

/// The plan on open_clip towers saved by PyTorch (`arch_*.pt`, read by `dawin_core::CheckpointFile`;
/// see `tests/torch_arch.rs`), against PyTorch's float64 logits: QuickGELU, exact GELU,
/// LayerScale, head width 48. And the blended plan with a random λ per sample against the
/// CPU forward of the explicit f32 merge.
#[test]
fn plan_matches_pytorch_on_the_open_clip_towers() {
    use dawin_core::TensorSource as _;
    use rand::{RngExt, SeedableRng};
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dawin-core/tests/fixtures/torch");
    for (tag, activation, layer_scale, width, heads, layers) in [
        ("quickgelu", crate::Activation::QuickGelu, false, 64, 2, 2),
        ("gelu", crate::Activation::Gelu, false, 64, 2, 2),
        ("ls", crate::Activation::Gelu, true, 64, 2, 2),
        ("hw48", crate::Activation::QuickGelu, false, 96, 2, 1),
    ] {
        // As written in arch_<tag>_open_clip_config.json (checked in tests/torch_arch.rs).
        let c = VitConfig {
            image_size: 32,
            patch_size: 8,
            width,
            layers,
            heads,
            mlp_dim: 2 * width,
            embed_dim: 32,
            num_classes: 5,
            layer_norm_eps: 1e-5,
            activation,
            layer_scale,
        };
        let ck = dawin_core::CheckpointFile::open(dir.join(format!("arch_{tag}.pt"))).unwrap();
        let mut map = crate::TensorMap::new();
        for name in ck.tensor_names() {
            let (_, shape) = ck.tensor_meta(name).unwrap();
            map.insert(name, shape, ck.tensor_f32(name).unwrap())
                .unwrap();
        }
        let naming = crate::CheckpointNaming::detect(&map).unwrap();
        let w = ClipWeights::load(&map, None, &c, &naming).unwrap();
        let io =
            dawin_core::StateDict::open(dir.join(format!("arch_{tag}_io.safetensors"))).unwrap();
        let get = |n: &str| io.tensor(n).unwrap().to_f32_vec();
        let (x, want) = (get("inputs"), get("logits"));
        let batch = x.len() / c.image_numel();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut w1 = w.clone();
        for p in w1.params_mut() {
            p.iter_mut()
                .for_each(|v| *v += rng.random_range(-0.05f32..0.05));
        }
        let lambdas: Vec<f32> = (0..batch).map(|_| rng.random_range(0.0..1.0)).collect();
        let n = c.image_numel();
        let mut want_b = Vec::new();
        for (i, &lam) in lambdas.iter().enumerate() {
            let mut m = w.clone();
            for ((o, a), b) in m.params_mut().into_iter().zip(w.params()).zip(w1.params()) {
                dawin_core::merge::lerp(a, b, lam, o).unwrap();
            }
            want_b.extend(cpu::forward(&x[i * n..(i + 1) * n], 1, &c, &m).unwrap().0);
        }
        for p in [Precision::F16, Precision::Bf16] {
            let (l, _) = host_forward(&c, &[&w], p, &x, batch, None);
            let e = rel_err(&l, &want);
            let (lb, _) = host_forward(&c, &[&w, &w1], p, &x, batch, Some(&lambdas));
            let eb = rel_err(&lb, &want_b);
            println!(
                "arch_{tag} {p:?}: plan vs PyTorch {e:.2e}; blended plan (λ = {lambdas:?}) \
                 vs the f32 merge {eb:.2e}"
            );
            assert!(
                e < tol(p) && eb < tol(p),
                "arch_{tag} {p:?}: {e:.2e}, {eb:.2e}"
            );
        }
    }
}
