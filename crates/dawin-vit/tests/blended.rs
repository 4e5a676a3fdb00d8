//! The blended per-sample forward against an explicit merge-and-forward per sample: merged weights
//! built with `dawin_core::merge::{lerp, task_arithmetic}` on every parameter tensor, then
//! `cpu::forward` of that sample alone. Tolerance: 1e-5 relative (max |Δ| over a sample's
//! logits / max |logit|).

mod common;

use common::merged;
use dawin_core::merge::task_arithmetic;
use dawin_vit::{cpu, BlendedWeights, ClipClassifier, ClipWeights, Error, VitConfig};
use rand::{RngExt, SeedableRng};

const TOL: f64 = 1e-5;

/// Odd sizes on purpose: 5 tokens, 3 heads of 8, MLP 40, 7 classes.
fn cfg() -> VitConfig {
    VitConfig {
        image_size: 16,
        patch_size: 8,
        width: 24,
        layers: 2,
        heads: 3,
        mlp_dim: 40,
        embed_dim: 12,
        num_classes: 7,
        layer_norm_eps: 1e-5,
        activation: Default::default(),
        layer_scale: false,
    }
}

/// Random weights with every parameter (layer norms included) perturbed, so that no parameter
/// is shared between models.
fn model(seed: u64) -> ClipWeights {
    let c = cfg();
    let mut w = ClipWeights::random(&c, seed).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed + 1000);
    for p in w.params_mut() {
        for v in p.iter_mut() {
            let n: f32 = rng.sample(rand_distr::StandardNormal);
            *v += 0.1 * n;
        }
    }
    w
}

fn images(batch: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..batch * cfg().image_numel())
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect()
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
    diff / scale.max(1e-30)
}

/// Checks `cpu::blended::forward` against the explicit reference sample by sample; returns the
/// largest relative error of logits and features.
fn check(base: &ClipWeights, others: &[&ClipWeights], coeffs: &[f32], batch: usize) -> f64 {
    let c = cfg();
    let m = others.len();
    let bw = BlendedWeights::new(&c, base, others).unwrap();
    let imgs = images(batch, 42 + batch as u64);
    let (logits, feats) = cpu::blended::forward(&imgs, batch, &bw, coeffs).unwrap();
    assert_eq!(logits.len(), batch * c.num_classes);
    assert_eq!(feats.len(), batch * c.embed_dim);
    let mut worst = 0.0f64;
    let n = c.image_numel();
    for i in 0..batch {
        let w = &coeffs[i * m..(i + 1) * m];
        let mw = merged(base, others, w);
        let (wl, wf) = cpu::forward(&imgs[i * n..(i + 1) * n], 1, &c, &mw).unwrap();
        let el = rel_err(&logits[i * c.num_classes..(i + 1) * c.num_classes], &wl);
        let ef = rel_err(&feats[i * c.embed_dim..(i + 1) * c.embed_dim], &wf);
        assert!(
            el <= TOL && ef <= TOL,
            "sample {i}, w = {w:?}: logits rel err {el:e}, features rel err {ef:e}"
        );
        worst = worst.max(el).max(ef);
    }
    eprintln!("M = {m}, batch {batch}: max relative error {worst:e}");
    worst
}

#[test]
fn two_models_random_lambdas_with_exact_zero_and_one() {
    let (t0, t1) = (model(1), model(2));
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for batch in [1usize, 3, 7] {
        let lambdas: Vec<f32> = (0..batch)
            .map(|i| match i % 3 {
                0 => 0.0,
                1 => 1.0,
                _ => rng.random_range(0.0f32..1.0),
            })
            .collect();
        check(&t0, &[&t1], &lambdas, batch);
    }
    // All random, plus extrapolation (WiSE-FT style α·λ may leave [0, 1]).
    let lambdas: Vec<f32> = (0..9)
        .map(|_| rng.random_range(0.0f32..1.0))
        .chain([-0.3, 1.4])
        .collect();
    check(&t0, &[&t1], &lambdas, 11);
}

#[test]
fn lambda_zero_and_one_give_the_end_models() {
    let c = cfg();
    let (t0, t1) = (model(3), model(4));
    let bw = BlendedWeights::new(&c, &t0, &[&t1]).unwrap();
    let imgs = images(4, 5);
    let (l, f) = cpu::blended::forward_lerp(&imgs, 4, &bw, &[0.0, 1.0, 1.0, 0.0]).unwrap();
    let (l0, f0) = cpu::forward(&imgs, 4, &c, &t0).unwrap();
    let (l1, f1) = cpu::forward(&imgs, 4, &c, &t1).unwrap();
    let k = c.num_classes;
    for (i, from1) in [false, true, true, false].into_iter().enumerate() {
        let (wl, wf) = if from1 { (&l1, &f1) } else { (&l0, &f0) };
        let r = i * k..(i + 1) * k;
        let e = rel_err(&l[r.clone()], &wl[r.clone()]);
        assert!(e <= TOL, "sample {i}: {e:e}");
        let r = i * c.embed_dim..(i + 1) * c.embed_dim;
        assert!(rel_err(&f[r.clone()], &wf[r]) <= TOL);
        if !from1 {
            // λ = 0 skips every delta term: θ0's forward up to the batching of the GEMMs.
            assert!(rel_err(&l[i * k..(i + 1) * k], &l0[i * k..(i + 1) * k]) <= 1e-6);
        }
    }
    // forward_lerp is forward with M = 1.
    let lam = [0.2f32, 0.9, 0.5, 0.0];
    let a = cpu::blended::forward_lerp(&imgs, 4, &bw, &lam).unwrap();
    let b = cpu::blended::forward(&imgs, 4, &bw, &lam).unwrap();
    assert_eq!(a, b);
}

#[test]
fn three_models_task_arithmetic() {
    let (t0, t1, t2, t3) = (model(10), model(11), model(12), model(13));
    let others = [&t1, &t2, &t3];
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let batch = 6;
    let mut coeffs = Vec::new();
    // θ0 exactly, θ1 exactly, θ3 exactly, then s·softmax-like random vectors (s = 0.3·M).
    coeffs.extend([0.0, 0.0, 0.0]);
    coeffs.extend([1.0, 0.0, 0.0]);
    coeffs.extend([0.0, 0.0, 1.0]);
    for _ in 3..batch {
        let r: Vec<f32> = (0..3).map(|_| rng.random_range(0.0f32..1.0)).collect();
        let s: f32 = r.iter().sum();
        coeffs.extend(r.iter().map(|v| 0.9 * v / s));
    }
    check(&t0, &others, &coeffs, batch);
    // Fully random weights, batch 5.
    let coeffs: Vec<f32> = (0..15).map(|_| rng.random_range(-0.5f32..1.5)).collect();
    check(&t0, &others, &coeffs, 5);
}

#[test]
fn m_one_in_task_arithmetic_form_equals_lerp_form() {
    // task_arithmetic with one model and weight λ is the lerp θ0 + λ(θ1 − θ0).
    let (t0, t1) = (model(20), model(21));
    let lam = [0.0f32, 0.25, 1.0];
    let c = cfg();
    let bw = BlendedWeights::new(&c, &t0, &[&t1]).unwrap();
    let imgs = images(3, 1);
    let (l, _) = cpu::blended::forward(&imgs, 3, &bw, &lam).unwrap();
    for (i, &w) in lam.iter().enumerate() {
        let mut mw = t0.clone();
        let (bp, op) = (t0.params(), t1.params());
        for (k, o) in mw.params_mut().into_iter().enumerate() {
            task_arithmetic(bp[k], &[op[k]], &[w], o).unwrap();
        }
        let n = c.image_numel();
        let (wl, _) = cpu::forward(&imgs[i * n..(i + 1) * n], 1, &c, &mw).unwrap();
        let k = c.num_classes;
        assert!(rel_err(&l[i * k..(i + 1) * k], &wl) <= TOL);
    }
}

#[test]
fn mismatched_models_and_bad_coefficients_are_errors() {
    let c = cfg();
    let t0 = model(30);
    // Another number of classes.
    let mut c2 = c.clone();
    c2.num_classes = 5;
    let other = ClipWeights::random(&c2, 1).unwrap();
    let e = BlendedWeights::new(&c, &t0, &[&other]).unwrap_err();
    assert!(
        matches!(e, Error::Argument { arg: "others", .. }) && e.to_string().contains("θ1"),
        "{e}"
    );
    let a = ClipClassifier::new(c.clone(), t0.clone()).unwrap();
    let b = ClipClassifier::new(c2.clone(), other).unwrap();
    let e = BlendedWeights::from_classifiers(&a, &[&b]).unwrap_err();
    assert!(e.to_string().contains("config"), "{e}");
    assert!(BlendedWeights::new(&c, &t0, &[]).is_err());

    let t1 = model(31);
    let bw = BlendedWeights::new(&c, &t0, &[&t1]).unwrap();
    assert_eq!(bw.models(), 1);
    assert_eq!(
        bw.memory_bytes(),
        2 * 4 * t0.params().iter().map(|p| p.len()).sum::<usize>()
    );
    let imgs = images(2, 3);
    let e = cpu::blended::forward(&imgs, 2, &bw, &[0.5]).unwrap_err();
    assert!(matches!(e, Error::Argument { arg: "coeffs", .. }), "{e}");
    let e = cpu::blended::forward(&imgs, 2, &bw, &[0.5, f32::NAN]).unwrap_err();
    assert!(e.to_string().contains("sample 1"), "{e}");
    assert!(cpu::blended::forward(&imgs[1..], 2, &bw, &[0.5, 0.5]).is_err());
    let t2 = model(32);
    let bw3 = BlendedWeights::new(&c, &t0, &[&t1, &t2]).unwrap();
    let e = cpu::blended::forward_lerp(&imgs, 2, &bw3, &[0.5, 0.5]).unwrap_err();
    assert!(matches!(e, Error::Argument { arg: "lambdas", .. }), "{e}");
}

#[test]
fn stacking_models_one_at_a_time_equals_stacking_them_together() {
    let cfg = cfg();
    let (base, a, b, c) = (model(0), model(1), model(2), model(3));
    let all = BlendedWeights::new(&cfg, &base, &[&a, &b, &c]).unwrap();
    let ms = [a.clone(), b.clone(), c.clone()];
    let mut loaded = Vec::new();
    let one = BlendedWeights::from_loader(&cfg, &base, 3, |j| {
        loaded.push(j);
        Ok::<_, dawin_vit::Error>(ms[j].clone())
    })
    .unwrap();
    assert_eq!(loaded, [0, 1, 2]);
    assert_eq!(one.memory_bytes(), all.memory_bytes());
    let batch = 5;
    let x = images(batch, 9);
    let w: Vec<f32> = (0..batch * 3).map(|i| (i as f32 * 0.37).sin()).collect();
    let (za, fa) = cpu::blended::forward(&x, batch, &all, &w).unwrap();
    let (zo, fo) = cpu::blended::forward(&x, batch, &one, &w).unwrap();
    assert_eq!(za, zo);
    assert_eq!(fa, fo);
    // The loader's error comes back; a model of another shape is named.
    let e = BlendedWeights::from_loader(&cfg, &base, 2, |j| {
        if j == 1 {
            Err(dawin_vit::Error::Config("disk on fire".into()))
        } else {
            Ok(a.clone())
        }
    })
    .unwrap_err();
    assert!(e.to_string().contains("disk on fire"), "{e}");
    let mut small = a.clone();
    small.visual.ln_post.bias.pop();
    let e =
        BlendedWeights::from_loader(&cfg, &base, 1, |_| Ok::<_, dawin_vit::Error>(small.clone()))
            .unwrap_err();
    assert!(e.to_string().contains("θ1"), "{e}");
}
