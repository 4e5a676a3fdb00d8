//! The CPU forward and the CPU blended forward against PyTorch on open_clip towers of the
//! architectures issue #15 adds: exact GELU, LayerScale and a head width that is not 64.
//!
//! Fixtures (`scripts/make_torch_fixtures.py`, torch 2.15.0 / open_clip_torch 3.3.0, in
//! `crates/dawin-core/tests/fixtures/torch/`): `arch_<v>.pt` is `torch.save` of an open_clip
//! tower's `visual.*` state dict plus `classification_head.{weight,bias}`; `arch_<v>_io.safetensors`
//! holds 3 inputs, the L2-normalised features and the logits `W f/‖f‖ + b` computed by open_clip
//! in float64 (rounded to f32); `arch_<v>_open_clip_config.json` is open_clip's config. The
//! `.pt` files are read by `dawin_core::CheckpointFile` (the inert PyTorch reader). The config is
//! built here from the open_clip config by hand (`quick_gelu` absent means exact GELU,
//! `ls_init_value` present means LayerScale, heads = width / head_width): the automatic
//! resolution from config files is tested where it is implemented.

mod common;

use std::path::PathBuf;

use common::{merged, rel_err};
use dawin_core::TensorSource as _;
use dawin_vit::{
    cpu, Activation, BlendedWeights, CheckpointNaming, ClipClassifier, ClipWeights, TensorMap,
    VitConfig,
};
use rand::{RngExt, SeedableRng};

/// Logits and features within this of PyTorch's (max |Δ| / max |reference|).
const TOL: f64 = 1e-4;

fn torch_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../dawin-core/tests/fixtures/torch")
        .join(name)
}

/// Every tensor of a checkpoint read by `dawin_core::CheckpointFile`, as f32, in a [`TensorMap`].
fn read_checkpoint(path: &PathBuf) -> TensorMap {
    let ck = dawin_core::CheckpointFile::open(path).unwrap();
    let mut map = TensorMap::new();
    for name in ck.tensor_names() {
        let (_, shape) = ck.tensor_meta(name).unwrap();
        map.insert(name.to_string(), shape, ck.tensor_f32(name).unwrap())
            .unwrap();
    }
    map.set_source_name(path.display().to_string());
    map
}

/// The config open_clip builds from `arch_<v>_open_clip_config.json` (5 classes).
fn config_of(tag: &str) -> VitConfig {
    let path = torch_fixture(&format!("arch_{tag}_open_clip_config.json"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let m = &json["model_cfg"];
    let v = &m["vision_cfg"];
    let u = |x: &serde_json::Value| x.as_u64().unwrap() as usize;
    let width = u(&v["width"]);
    VitConfig {
        image_size: u(&v["image_size"]),
        patch_size: u(&v["patch_size"]),
        width,
        layers: u(&v["layers"]),
        heads: width / u(&v["head_width"]),
        mlp_dim: (width as f64 * v["mlp_ratio"].as_f64().unwrap()) as usize,
        embed_dim: u(&m["embed_dim"]),
        num_classes: 5,
        layer_norm_eps: 1e-5,
        activation: if m["quick_gelu"].as_bool().unwrap_or(false) {
            Activation::QuickGelu
        } else {
            Activation::Gelu
        },
        layer_scale: v.get("ls_init_value").is_some_and(|x| !x.is_null()),
    }
}

struct Arch {
    cfg: VitConfig,
    weights: ClipWeights,
    inputs: Vec<f32>,
    logits: Vec<f32>,
    features: Vec<f32>,
    batch: usize,
}

fn arch(tag: &str) -> Arch {
    let cfg = config_of(tag);
    let map = read_checkpoint(&torch_fixture(&format!("arch_{tag}.pt")));
    let naming = CheckpointNaming::detect(&map).unwrap();
    assert_eq!(
        naming,
        CheckpointNaming::OpenAi {
            prefix: "visual.".into()
        }
    );
    let weights = ClipWeights::load(&map, None, &cfg, &naming).unwrap();
    let io = common::tensor_map(&torch_fixture(&format!("arch_{tag}_io.safetensors")));
    let get = |n: &str| io.get(n).unwrap().data.clone();
    let inputs = get("inputs");
    Arch {
        batch: inputs.len() / cfg.image_numel(),
        cfg,
        weights,
        inputs,
        logits: get("logits"),
        features: get("features"),
    }
}

const TAGS: [&str; 4] = ["quickgelu", "gelu", "ls", "hw48"];

#[test]
fn the_configs_are_the_four_architectures() {
    let c: Vec<VitConfig> = TAGS.iter().map(|t| config_of(t)).collect();
    assert_eq!(c[0].activation, Activation::QuickGelu);
    assert_eq!(
        (c[1].activation, c[1].layer_scale),
        (Activation::Gelu, false)
    );
    assert_eq!(
        (c[2].activation, c[2].layer_scale),
        (Activation::Gelu, true)
    );
    assert_eq!((c[3].width, c[3].heads, c[3].head_dim()), (96, 2, 48));
    // The LayerScale tower's checkpoint holds its factors; the others have none.
    let ls = read_checkpoint(&torch_fixture("arch_ls.pt"));
    assert_eq!(
        ls.get("visual.transformer.resblocks.1.ls_2.gamma")
            .unwrap()
            .shape,
        vec![64]
    );
    let plain = read_checkpoint(&torch_fixture("arch_gelu.pt"));
    assert!(plain.tensor_names().iter().all(|n| !n.contains("gamma")));
}

#[test]
fn cpu_forward_matches_pytorch_on_every_architecture() {
    for tag in TAGS {
        let a = arch(tag);
        let model = ClipClassifier::new(a.cfg.clone(), a.weights.clone()).unwrap();
        let out = model.forward_with(&a.inputs, a.batch, true).unwrap();
        let (el, ef) = (
            rel_err(&out.logits, &a.logits),
            rel_err(out.features.as_ref().unwrap(), &a.features),
        );
        println!("arch_{tag}: CPU forward vs PyTorch: logits {el:.2e}, features {ef:.2e}");
        assert!(
            el < TOL && ef < TOL,
            "{tag}: logits {el:e}, features {ef:e}"
        );
    }
}

/// Each architectural feature matters at these sizes: the forward without it (QuickGELU for an
/// exact-GELU tower, LayerScale ignored, heads of 64) is far from PyTorch, so the parity above
/// is not vacuous.
#[test]
fn each_feature_changes_the_logits() {
    let wrong = |a: &Arch, cfg: VitConfig, w: ClipWeights| {
        let (l, _) = cpu::forward(&a.inputs, a.batch, &cfg, &w).unwrap();
        rel_err(&l, &a.logits)
    };
    let g = arch("gelu");
    let e = wrong(
        &g,
        VitConfig {
            activation: Activation::QuickGelu,
            ..g.cfg.clone()
        },
        g.weights.clone(),
    );
    println!("arch_gelu run with QuickGELU: {e:.2e}");
    assert!(e > 1e-3, "{e:e}");

    let ls = arch("ls");
    let mut w = ls.weights.clone();
    for b in &mut w.visual.resblocks {
        (b.ls_1, b.ls_2) = (None, None);
    }
    let cfg = VitConfig {
        layer_scale: false,
        ..ls.cfg.clone()
    };
    let e = wrong(&ls, cfg, w);
    println!("arch_ls run without LayerScale: {e:.2e}");
    assert!(e > 1e-2, "{e:e}");

    let hw = arch("hw48");
    let e = wrong(
        &hw,
        VitConfig {
            heads: 3,
            ..hw.cfg.clone()
        },
        hw.weights.clone(),
    );
    println!("arch_hw48 run with 3 heads of 32: {e:.2e}");
    assert!(e > 1e-3, "{e:e}");
}

/// A second model for the blended forward: every parameter (LayerScale factors included) moved
/// by `N(0, 0.05²)`.
fn perturbed(w: &ClipWeights, seed: u64) -> ClipWeights {
    let mut out = w.clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for p in out.params_mut() {
        for v in p.iter_mut() {
            let n: f32 = rng.sample(rand_distr::StandardNormal);
            *v += 0.05 * n;
        }
    }
    out
}

#[test]
fn blended_forward_matches_pytorch_and_the_explicit_merge() {
    for tag in TAGS {
        let a = arch(tag);
        let theta1 = perturbed(&a.weights, 7);
        let bw = BlendedWeights::new(&a.cfg, &a.weights, &[&theta1]).unwrap();
        let n = a.cfg.image_numel();
        let c = a.cfg.num_classes;
        // λ = 0 everywhere: PyTorch's model.
        let zeros = vec![0.0f32; a.batch];
        let (l0, f0) = cpu::blended::forward_lerp(&a.inputs, a.batch, &bw, &zeros).unwrap();
        let (e0, ef0) = (rel_err(&l0, &a.logits), rel_err(&f0, &a.features));
        // λ = 1 everywhere: θ1's forward.
        let ones = vec![1.0f32; a.batch];
        let (l1, _) = cpu::blended::forward_lerp(&a.inputs, a.batch, &bw, &ones).unwrap();
        let (want1, _) = cpu::forward(&a.inputs, a.batch, &a.cfg, &theta1).unwrap();
        let e1 = rel_err(&l1, &want1);
        // A random λ per sample: the f32 merge per sample, then the plain forward.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let lambdas: Vec<f32> = (0..a.batch).map(|_| rng.random_range(0.0..1.0)).collect();
        let (lr, _) = cpu::blended::forward_lerp(&a.inputs, a.batch, &bw, &lambdas).unwrap();
        let mut er = 0.0f64;
        for (i, &lam) in lambdas.iter().enumerate() {
            let w = merged(&a.weights, &[&theta1], &[lam]);
            let (want, _) = cpu::forward(&a.inputs[i * n..(i + 1) * n], 1, &a.cfg, &w).unwrap();
            er = er.max(rel_err(&lr[i * c..(i + 1) * c], &want));
        }
        println!(
            "arch_{tag}: blended λ=0 vs PyTorch: logits {e0:.2e}, features {ef0:.2e}; \
             λ=1 vs θ1 {e1:.2e}; random λ {lambdas:?} vs the f32 merge {er:.2e}"
        );
        assert!(e0 < TOL && ef0 < TOL, "{tag} λ=0: {e0:e} {ef0:e}");
        assert!(e1 < TOL, "{tag} λ=1: {e1:e}");
        assert!(er < TOL, "{tag} random λ: {er:e}");
    }
}

/// The merged model's LayerScale branch is `(Σ c_s γ_s) ⊙ (Σ c_s (W_s h + b_s))`; blending the
/// scaled branches `Σ c_s γ_s ⊙ (W_s h + b_s)` instead is another function. With θ1's factors
/// far from θ0's the two differ visibly at λ = 0.5, and the blended forward is the former.
#[test]
fn layer_scale_is_blended_as_the_merged_model_has_it() {
    let a = arch("ls");
    let mut theta1 = perturbed(&a.weights, 9);
    for b in &mut theta1.visual.resblocks {
        for g in [b.ls_1.as_mut().unwrap(), b.ls_2.as_mut().unwrap()] {
            g.iter_mut().for_each(|v| *v = -2.0 * *v + 0.3);
        }
    }
    let bw = BlendedWeights::new(&a.cfg, &a.weights, &[&theta1]).unwrap();
    let half = vec![0.5f32; a.batch];
    let (got, _) = cpu::blended::forward_lerp(&a.inputs, a.batch, &bw, &half).unwrap();
    let (want, _) = cpu::forward(
        &a.inputs,
        a.batch,
        &a.cfg,
        &merged(&a.weights, &[&theta1], &[0.5]),
    )
    .unwrap();
    let e = rel_err(&got, &want);
    println!("arch_ls λ = 0.5 with opposite LayerScales: blended vs merge {e:.2e}");
    assert!(e < TOL, "{e:e}");
    // The LayerScale factors are part of every merge (they are in the parameter list).
    let m = merged(&a.weights, &[&theta1], &[0.5]);
    let (g0, g1) = (
        a.weights.visual.resblocks[0].ls_1.as_ref().unwrap()[3],
        theta1.visual.resblocks[0].ls_1.as_ref().unwrap()[3],
    );
    assert_eq!(
        m.visual.resblocks[0].ls_1.as_ref().unwrap()[3],
        0.5 * g0 + 0.5 * g1
    );
}

/// Every merge reads the parameter list, so the LayerScale factors are merged like any other
/// tensor: task arithmetic and TIES over in-memory encoders ([`ClipClassifier`] as a
/// `ParamSource`) and over a memory-mapped checkpoint (`CheckpointEncoder`), whose parameter
/// names are the checkpoint's `…ls_1.gamma`.
#[test]
fn merges_include_the_layer_scale_factors() {
    use dawin_core::merge::{task_arithmetic_params, ties_merge_params, ParamSource};
    let a = arch("ls");
    let theta1 = perturbed(&a.weights, 11);
    let c1 = ClipClassifier::new(a.cfg.clone(), theta1.clone()).unwrap();
    let base = a.weights.encoder_params();
    let gamma_at = |names: &dyn Fn(usize) -> String| {
        (0..base.len())
            .find(|&i| names(i).ends_with("resblocks.1.ls_2.gamma"))
            .expect("an ls_2.gamma parameter")
    };
    let i = gamma_at(&|i| c1.param_name(i));
    assert_eq!(
        base[i],
        a.weights.visual.resblocks[1].ls_2.as_deref().unwrap()
    );
    let t1 = theta1.visual.resblocks[1].ls_2.as_deref().unwrap();

    // Task arithmetic θ0 + 0.3 (θ1 − θ0), in memory.
    let mut out = a.weights.clone();
    task_arithmetic_params(&base, &[&c1], &[0.3], &mut out.encoder_params_mut()).unwrap();
    let want: Vec<f32> = base[i]
        .iter()
        .zip(t1)
        .map(|(b, x)| b + 0.3 * (x - b))
        .collect();
    let got = out.visual.resblocks[1].ls_2.as_deref().unwrap();
    assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-6));

    // TIES (keep everything, one model): θ0 + τ, γ included.
    let mut out = a.weights.clone();
    ties_merge_params(&base, &[&c1], 1.0, 1.0, &mut out.encoder_params_mut()).unwrap();
    let got = out.visual.resblocks[1].ls_2.as_deref().unwrap();
    assert!(got.iter().zip(t1).all(|(g, w)| (g - w).abs() < 1e-6));

    // From a safetensors checkpoint of θ1, read parameter by parameter.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("theta1.safetensors");
    let naming = CheckpointNaming::OpenAi {
        prefix: "visual.".into(),
    };
    let map = theta1.to_tensor_map(&a.cfg, &naming).unwrap();
    let tensors: Vec<dawin_core::OwnedTensor> = map
        .tensor_names()
        .iter()
        .map(|n| {
            let t = map.get(n).unwrap();
            dawin_core::OwnedTensor::from_slice(*n, t.shape.clone(), &t.data)
        })
        .collect();
    dawin_core::write_safetensors(&path, &tensors, None).unwrap();
    let enc = dawin_vit::CheckpointEncoder::new(
        dawin_vit::open_checkpoint(&path).unwrap(),
        a.cfg.clone(),
        &a.weights.head,
    )
    .unwrap();
    assert_eq!(enc.param_count(), base.len());
    let j = gamma_at(&|i| enc.param_name(i));
    assert_eq!(j, i);
    assert_eq!(
        enc.param_name(j),
        "visual.transformer.resblocks.1.ls_2.gamma"
    );
    let mut out = a.weights.clone();
    task_arithmetic_params(&base, &[&enc], &[1.0], &mut out.encoder_params_mut()).unwrap();
    let got = out.visual.resblocks[1].ls_2.as_deref().unwrap();
    assert!(got.iter().zip(t1).all(|(g, w)| (g - w).abs() < 1e-6));
}
