//! The CUDA forward (`dawin_vit::cuda`) against the CPU f32 reference (`cpu::forward`,
//! `cpu::blended`), and its errors. Relative error as in the other dawin-vit tests:
//! max |Δ| over the outputs / max |reference|. Tolerances (issue #5): bf16 2e-2, fp16 1e-2.
//!
//! Own `main` (harness = false) so that the `SKIPPED` line (with its cause) is not captured: the
//! error tests run everywhere, the GPU tests when a device is found; `DAWIN_REQUIRE_GPU=1` makes
//! a GPU that does not start a failure (`dawin_kernels::harness`). Arguments filter tests by
//! name.

mod common;

use std::sync::Arc;

use common::{f32s, merged, read_raw, rel_err, tensor_map};
use dawin_kernels::Gpu;
use dawin_vit::cuda::{check_config, check_merge, CudaVit, Precision};
use dawin_vit::{cpu, Activation, ClipClassifier, ClipWeights, LoadOptions, VitConfig};
use rand::{RngExt, SeedableRng};

/// A fixture file: from `$DAWIN_VIT_FIXTURES` when set (a prebuilt test binary run on another
/// machine, see docs/gpu-runs.md), else from this crate's `tests/fixtures`.
fn fixture_path(name: &str) -> std::path::PathBuf {
    std::env::var_os("DAWIN_VIT_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
        })
        .join(name)
}

fn tolerance(p: Precision) -> f64 {
    match p {
        Precision::F16 => 1e-2,
        Precision::Bf16 => 2e-2,
    }
}

type GpuTest = (&'static str, fn(&Arc<Gpu>));

const GPU_TESTS: &[GpuTest] = &[
    (
        "cuda_forward_matches_cpu_on_the_fixture",
        cuda_forward_matches_cpu_on_the_fixture,
    ),
    (
        "cuda_forward_matches_cpu_at_b32_size",
        cuda_forward_matches_cpu_at_b32_size,
    ),
    (
        "cuda_blended_two_models_matches_merge_per_sample",
        cuda_blended_two_models_matches_merge_per_sample,
    ),
    (
        "cuda_blended_three_models_matches_task_arithmetic_per_sample",
        cuda_blended_three_models_matches_task_arithmetic_per_sample,
    ),
    (
        "cuda_argument_errors_name_the_argument",
        cuda_argument_errors_name_the_argument,
    ),
    (
        "cuda_forward_reads_a_merge_done_on_the_device",
        cuda_forward_reads_a_merge_done_on_the_device,
    ),
    (
        "cuda_exact_gelu_and_layer_scale_match_cpu",
        cuda_exact_gelu_and_layer_scale_match_cpu,
    ),
    (
        "cuda_head_widths_48_80_104_match_cpu",
        cuda_head_widths_48_80_104_match_cpu,
    ),
    (
        "cuda_vit_h14_block_matches_cpu",
        cuda_vit_h14_block_matches_cpu,
    ),
];

const CPU_TESTS: &[(&str, fn())] = &[
    ("missing_gpu_is_a_clear_error", missing_gpu_is_a_clear_error),
    (
        "configs_the_kernels_cannot_run_are_errors_naming_the_field",
        configs_the_kernels_cannot_run_are_errors_naming_the_field,
    ),
    (
        "merge_arguments_are_checked_before_the_gpu",
        merge_arguments_are_checked_before_the_gpu,
    ),
];

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let mut failed = Vec::new();
    let mut run = |name: &'static str, f: &dyn Fn()| {
        if !wanted(name) {
            return;
        }
        let t0 = std::time::Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(()) => println!(
                "test {name} ... ok ({:.0} ms)",
                t0.elapsed().as_secs_f64() * 1e3
            ),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    };
    for (name, t) in CPU_TESTS {
        run(name, &|| t());
    }
    let what = format!(
        "{} GPU tests not run: {}",
        GPU_TESTS.len(),
        GPU_TESTS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
    );
    if let Some(g) = dawin_kernels::harness::gpu_or_skip(&what) {
        let g = Arc::new(g);
        println!(
            "dawin-vit CUDA tests on {} (compute {}.{})",
            g.name(),
            g.compute_capability().0,
            g.compute_capability().1
        );
        for (name, t) in GPU_TESTS {
            run(name, &|| t(&g));
        }
    }
    if !failed.is_empty() {
        println!("{} tests FAILED: {}", failed.len(), failed.join(", "));
        std::process::exit(1);
    }
    println!("all tests run passed");
}

fn images(cfg: &VitConfig, batch: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..batch * cfg.image_numel())
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect()
}

/// Random weights with every parameter perturbed (layer norms included), so that models differ
/// everywhere.
fn perturbed(cfg: &VitConfig, seed: u64) -> ClipWeights {
    let mut w = ClipWeights::random(cfg, seed).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1000);
    for p in w.params_mut() {
        for v in p.iter_mut() {
            let n: f32 = rng.sample(rand_distr::StandardNormal);
            *v += 0.02 * n;
        }
    }
    w
}

fn check_against_cpu(
    gpu: &Arc<Gpu>,
    cfg: &VitConfig,
    w: &ClipWeights,
    x: &[f32],
    batch: usize,
    what: &str,
) {
    let (cpu_logits, cpu_feats) = cpu::forward(x, batch, cfg, w).unwrap();
    for p in [Precision::F16, Precision::Bf16] {
        let vit = CudaVit::new(gpu.clone(), cfg, &[w], p).unwrap();
        let out = vit.forward(x, batch, true).unwrap();
        let (el, ef) = (
            rel_err(&out.logits, &cpu_logits),
            rel_err(out.features.as_ref().unwrap(), &cpu_feats),
        );
        println!("{what} {p:?}: logits rel err {el:.2e}, features rel err {ef:.2e}");
        assert!(
            out.logits.iter().all(|v| v.is_finite()),
            "{what} {p:?}: non-finite logits"
        );
        assert!(el <= tolerance(p), "{what} {p:?}: logits rel err {el:.3e}");
        assert!(
            ef <= tolerance(p),
            "{what} {p:?}: features rel err {ef:.3e}"
        );
        // Without features: the same logits, no features.
        let again = vit.forward(x, batch, false).unwrap();
        assert_eq!(
            again.logits, out.logits,
            "{what} {p:?}: forward is deterministic"
        );
        assert!(again.features.is_none());
    }
}

fn cuda_forward_matches_cpu_on_the_fixture(gpu: &Arc<Gpu>) {
    let src = tensor_map(&fixture_path("tiny_hf.safetensors"));
    let model = ClipClassifier::from_source(&src, None, &LoadOptions::default()).unwrap();
    let (raw, _) = read_raw(&fixture_path("tiny_io.safetensors"));
    let inputs = f32s(&raw, "inputs").1;
    let batch = inputs.len() / model.config().image_numel();
    check_against_cpu(
        gpu,
        model.config(),
        model.weights(),
        &inputs,
        batch,
        "fixture",
    );
}

fn cuda_forward_matches_cpu_at_b32_size(gpu: &Arc<Gpu>) {
    let cfg = VitConfig::vit_b32(100);
    let w = ClipWeights::random(&cfg, 7).unwrap();
    // 5 images: 250 token rows, not a multiple of the 128-row GEMM tile.
    let x = images(&cfg, 5, 3);
    check_against_cpu(gpu, &cfg, &w, &x, 5, "B/32");
}

fn check_blended(
    gpu: &Arc<Gpu>,
    cfg: &VitConfig,
    models: &[ClipWeights],
    coeffs: &[f32],
    batch: usize,
) {
    let m = models.len() - 1;
    let x = images(cfg, batch, 11);
    let refs: Vec<&ClipWeights> = models.iter().collect();
    // Reference: merge per sample, CPU forward of that sample alone.
    let mut want = Vec::new();
    for i in 0..batch {
        let w = merged(refs[0], &refs[1..], &coeffs[i * m..(i + 1) * m]);
        let xi = &x[i * cfg.image_numel()..(i + 1) * cfg.image_numel()];
        want.extend(cpu::forward(xi, 1, cfg, &w).unwrap().0);
    }
    for p in [Precision::F16, Precision::Bf16] {
        let vit = CudaVit::new(gpu.clone(), cfg, &refs, p).unwrap();
        let got = vit.forward_blended(&x, batch, coeffs, false).unwrap();
        let e = rel_err(&got.logits, &want);
        println!("blended M={m} {p:?}: logits rel err {e:.2e}");
        assert!(e <= tolerance(p), "blended M={m} {p:?}: rel err {e:.3e}");
        // Per sample too, so that one bad row is not hidden by the scale of another.
        let c = cfg.num_classes;
        for i in 0..batch {
            let ei = rel_err(&got.logits[i * c..(i + 1) * c], &want[i * c..(i + 1) * c]);
            assert!(
                ei <= tolerance(p),
                "blended M={m} {p:?} sample {i}: rel err {ei:.3e}"
            );
        }
    }
}

fn blend_cfg() -> VitConfig {
    // The fixture's size (width 64, 2 heads of 32), 3 layers, 10 classes.
    VitConfig {
        image_size: 32,
        patch_size: 8,
        width: 64,
        layers: 3,
        heads: 2,
        mlp_dim: 128,
        embed_dim: 32,
        num_classes: 10,
        layer_norm_eps: 1e-5,
        activation: Default::default(),
        layer_scale: false,
    }
}

fn cuda_blended_two_models_matches_merge_per_sample(gpu: &Arc<Gpu>) {
    let cfg = blend_cfg();
    let models = vec![perturbed(&cfg, 1), perturbed(&cfg, 2)];
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut lambdas = vec![0.0f32, 1.0, 0.5];
    lambdas.extend((0..6).map(|_| rng.random_range(0.0f32..1.0)));
    check_blended(gpu, &cfg, &models, &lambdas, lambdas.len());
    // λ = 0 and 1 also equal the plain forward of θ0 and θ1 (same kernels, one set).
    let refs: Vec<&ClipWeights> = models.iter().collect();
    let vit = CudaVit::new(gpu.clone(), &cfg, &refs, Precision::F16).unwrap();
    let x = images(&cfg, 2, 11);
    let blended = vit.forward_blended(&x, 2, &[0.0, 1.0], false).unwrap();
    let c = cfg.num_classes;
    let zs = vit
        .forward_model(0, &x[..cfg.image_numel()], 1, false)
        .unwrap();
    let ft = vit
        .forward_model(1, &x[cfg.image_numel()..], 1, false)
        .unwrap();
    assert!(rel_err(&blended.logits[..c], &zs.logits) < 1e-3);
    assert!(rel_err(&blended.logits[c..], &ft.logits) < 1e-3);
}

fn cuda_blended_three_models_matches_task_arithmetic_per_sample(gpu: &Arc<Gpu>) {
    let cfg = blend_cfg();
    let models: Vec<ClipWeights> = (0..4).map(|s| perturbed(&cfg, 10 + s)).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut coeffs = vec![0.0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
    coeffs.extend((0..5 * 3).map(|_| rng.random_range(0.0f32..0.6)));
    check_blended(gpu, &cfg, &models, &coeffs, coeffs.len() / 3);
}

fn missing_gpu_is_a_clear_error() {
    let cfg = blend_cfg();
    let w = ClipWeights::random(&cfg, 0).unwrap();
    match CudaVit::on_default_device(&cfg, &[&w], Precision::Bf16) {
        Ok(vit) => {
            // A GPU is present: the constructor worked and the forward runs.
            let out = vit.forward(&images(&cfg, 2, 1), 2, false).unwrap();
            assert_eq!(out.logits.len(), 2 * cfg.num_classes);
        }
        Err(e) => {
            assert!(e.is_no_gpu(), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("CUDA"), "{msg}");
            println!("no GPU, as expected here: {msg}");
        }
    }
}

fn configs_the_kernels_cannot_run_are_errors_naming_the_field() {
    let mut cfg = blend_cfg();
    assert!(check_config(&cfg).is_ok());
    assert!(check_config(&VitConfig::vit_b32(10)).is_ok());
    assert!(check_config(&VitConfig::vit_l14(10)).is_ok());
    cfg.heads = 1; // head dim 64 → fine
    assert!(check_config(&cfg).is_ok());
    // Exact GELU, LayerScale and the wide heads of ViT-H/g/bigG-14 run.
    for c in [
        VitConfig::vit_h14(10),
        VitConfig::vit_g14(10),
        VitConfig::vit_bigg14(10),
        VitConfig {
            layer_scale: true,
            width: 128,
            heads: 1, // head dim 128, the largest
            ..blend_cfg()
        },
    ] {
        check_config(&c).unwrap();
    }
    let mut bad = blend_cfg();
    bad.width = 136;
    bad.heads = 1; // head dim 136
    let e = check_config(&bad).unwrap_err().to_string();
    assert!(e.contains("heads") && e.contains("136"), "{e}");
    let mut bad = blend_cfg();
    bad.embed_dim = 30;
    let e = check_config(&bad).unwrap_err().to_string();
    assert!(e.contains("embed_dim"), "{e}");
    let mut bad = blend_cfg();
    bad.mlp_dim = 100;
    let e = check_config(&bad).unwrap_err().to_string();
    assert!(e.contains("mlp_dim"), "{e}");
    // The config is checked before looking for a GPU.
    let w = ClipWeights::random(&blend_cfg(), 0).unwrap();
    let e = CudaVit::on_default_device(&bad, &[&w], Precision::F16).unwrap_err();
    assert!(!e.is_no_gpu() && e.to_string().contains("mlp_dim"), "{e}");
}

fn cuda_argument_errors_name_the_argument(gpu: &Arc<Gpu>) {
    let cfg = blend_cfg();
    let (a, b) = (perturbed(&cfg, 1), perturbed(&cfg, 2));
    let vit = CudaVit::new(gpu.clone(), &cfg, &[&a, &b], Precision::F16).unwrap();
    let x = images(&cfg, 2, 1);
    let e = vit.forward(&x[1..], 2, false).unwrap_err().to_string();
    assert!(e.contains("images"), "{e}");
    let e = vit
        .forward_blended(&x, 2, &[0.5], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("coeffs"), "{e}");
    let e = vit
        .forward_blended(&x, 2, &[0.5, f32::NAN], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("coeffs") && e.contains("finite"), "{e}");
    let e = vit.forward_model(2, &x, 2, false).unwrap_err().to_string();
    assert!(e.contains("model"), "{e}");
    let other = ClipWeights::random(
        &VitConfig {
            width: 32,
            ..cfg.clone()
        },
        0,
    )
    .unwrap();
    let e = CudaVit::new(gpu.clone(), &cfg, &[&a, &other], Precision::F16)
        .unwrap_err()
        .to_string();
    assert!(e.contains("models") && e.contains("model 1"), "{e}");
}

/// `merge_into`'s arguments, refused with the argument named (no GPU needed).
fn merge_arguments_are_checked_before_the_gpu() {
    check_merge(3, 0, &[1], &[0.3], 2).unwrap();
    check_merge(4, 0, &[1, 2], &[0.3, 0.3], 3).unwrap();
    check_merge(3, 2, &[0], &[1.0], 1).unwrap();
    for (n, base, models, weights, out, arg) in [
        (3, 3, &[1usize][..], &[0.5f32][..], 2, "base"),
        (3, 0, &[1], &[0.5], 3, "out"),
        (3, 0, &[5], &[0.5], 2, "models"),
        (3, 0, &[], &[], 2, "models"),
        (3, 0, &[1], &[0.5, 0.5], 2, "weights"),
        (3, 0, &[1], &[f32::NAN], 2, "weights"),
        (3, 0, &[1], &[0.5], 0, "out"),
        (3, 0, &[1, 2], &[0.5, 0.5], 2, "out"),
    ] {
        let e = check_merge(n, base, models, weights, out)
            .expect_err(&format!(
                "{base} {models:?} {weights:?} -> {out} must be refused"
            ))
            .to_string();
        assert!(e.contains(arg), "{arg} not named in: {e}");
    }
}

/// A merge on the device (`merge_into`, the arena kernels) feeds the forward with no host copy:
/// the forward of the merged arena matches the CPU forward of the CPU merge, for λ = 0, 1, 0.35
/// and for task arithmetic over three models.
fn cuda_forward_reads_a_merge_done_on_the_device(gpu: &Arc<Gpu>) {
    let cfg = blend_cfg();
    let ws: Vec<ClipWeights> = (0..4).map(|s| perturbed(&cfg, 20 + s)).collect();
    let x = images(&cfg, 4, 13);
    for p in [Precision::F16, Precision::Bf16] {
        // Models 0..=3 are the inputs; model 4 (a copy of θ0 at first) is overwritten.
        let refs = [&ws[0], &ws[1], &ws[2], &ws[3], &ws[0]];
        let mut vit = CudaVit::new(gpu.clone(), &cfg, &refs, p).unwrap();
        for lambda in [0.0f32, 1.0, 0.35] {
            vit.merge_into(0, &[1], &[lambda], 4).unwrap();
            let got = vit.forward_model(4, &x, 4, false).unwrap();
            let want = cpu::forward(&x, 4, &cfg, &merged(&ws[0], &[&ws[1]], &[lambda]))
                .unwrap()
                .0;
            let e = rel_err(&got.logits, &want);
            println!("device merge λ={lambda} {p:?}: logits rel err {e:.2e}");
            assert!(e <= tolerance(p), "λ = {lambda} {p:?}: rel err {e:.3e}");
        }
        // λ = 1 is an exact copy of θ1's arena: the same logits as model 1, bit for bit.
        vit.merge_into(0, &[1], &[1.0], 4).unwrap();
        let a = vit.forward_model(4, &x, 4, false).unwrap().logits;
        let b = vit.forward_model(1, &x, 4, false).unwrap().logits;
        assert_eq!(a, b, "{p:?}: λ = 1 is not θ1");
        let w = [0.3f32, 0.25, 0.2];
        vit.merge_into(0, &[1, 2, 3], &w, 4).unwrap();
        let got = vit.forward_model(4, &x, 4, false).unwrap();
        let want = cpu::forward(&x, 4, &cfg, &merged(&ws[0], &[&ws[1], &ws[2], &ws[3]], &w))
            .unwrap()
            .0;
        let e = rel_err(&got.logits, &want);
        println!("device task arithmetic {p:?}: logits rel err {e:.2e}");
        assert!(e <= tolerance(p), "task arithmetic {p:?}: rel err {e:.3e}");
        // Writing into an input is refused, and the inputs are untouched by all of the above.
        assert!(vit.merge_into(0, &[1], &[0.5], 1).is_err());
        let z = vit.forward_model(0, &x, 4, false).unwrap().logits;
        let want0 = cpu::forward(&x, 4, &cfg, &ws[0]).unwrap().0;
        assert!(rel_err(&z, &want0) <= tolerance(p));
    }
}

/// Exact GELU (the GEMM's erff epilogue) and LayerScale (γ in the epilogue of the out_proj and
/// c_proj GEMMs; blended as the merged model has it), plain and blended, against the CPU.
fn cuda_exact_gelu_and_layer_scale_match_cpu(gpu: &Arc<Gpu>) {
    let gelu = VitConfig {
        activation: Activation::Gelu,
        ..blend_cfg()
    };
    let ls = VitConfig {
        layer_scale: true,
        ..gelu.clone()
    };
    for (cfg, what) in [(&gelu, "exact GELU"), (&ls, "GELU + LayerScale")] {
        let w = perturbed(cfg, 3);
        check_against_cpu(gpu, cfg, &w, &images(cfg, 5, 2), 5, what);
        let models = vec![perturbed(cfg, 4), perturbed(cfg, 5)];
        check_blended(gpu, cfg, &models, &[0.0, 1.0, 0.5, 0.2, 0.9], 5);
        let models: Vec<ClipWeights> = (0..4).map(|s| perturbed(cfg, 6 + s)).collect();
        let coeffs = [0.0f32, 0.0, 0.0, 0.0, 1.0, 0.0, 0.2, 0.3, 0.1];
        check_blended(gpu, cfg, &models, &coeffs, 3);
    }
}

/// Head widths that are not 64: 48 (`attention_*`), 80 and 104 (ViT-H/14's and bigG/14's,
/// `attention_wide_*`), against the CPU.
fn cuda_head_widths_48_80_104_match_cpu(gpu: &Arc<Gpu>) {
    for (width, heads) in [(96, 2), (160, 2), (208, 2)] {
        let cfg = VitConfig {
            width,
            heads,
            mlp_dim: 2 * width,
            ..blend_cfg()
        };
        let w = perturbed(&cfg, 8);
        let what = format!("head width {}", width / heads);
        check_against_cpu(gpu, &cfg, &w, &images(&cfg, 3, 4), 3, &what);
        let models = vec![perturbed(&cfg, 9), perturbed(&cfg, 10)];
        check_blended(gpu, &cfg, &models, &[0.0, 1.0, 0.4], 3);
    }
}

/// One block of ViT-H/14 at its real size (224 px, 257 tokens, width 1280, 16 heads of 80,
/// MLP 5120, exact GELU) with LayerScale, against the CPU.
fn cuda_vit_h14_block_matches_cpu(gpu: &Arc<Gpu>) {
    let cfg = VitConfig {
        layers: 1,
        layer_scale: true,
        ..VitConfig::vit_h14(100)
    };
    let w = perturbed(&cfg, 12);
    check_against_cpu(gpu, &cfg, &w, &images(&cfg, 2, 5), 2, "ViT-H/14 block");
}
