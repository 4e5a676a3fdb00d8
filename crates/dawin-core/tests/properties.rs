//! Property tests of the invariants DaWin relies on.

use dawin_core::expertise::{Context, Expertise, ModelOutputs, NegEntropy};
use dawin_core::{coef, merge, stats};
use half::{bf16, f16};
use proptest::prelude::*;

fn logits(n: usize, c: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![-1e4f32..1e4f32, -30f32..30f32, Just(0.0f32)],
        n * c,
    )
}

fn pair() -> impl Strategy<Value = (usize, Vec<f32>, Vec<f32>, f32, f32)> {
    (1usize..12, 1usize..9).prop_flat_map(|(n, c)| {
        (
            Just(c),
            logits(n, c),
            logits(n, c),
            0.05f32..20.0,
            0.05f32..20.0,
        )
    })
}

fn log_e(z: &[f32], c: usize, t: f32) -> Vec<f64> {
    NegEntropy
        .log_expertise(&ModelOutputs::new(z, c, t), &Context::default())
        .unwrap()
}

proptest! {
    #[test]
    fn lambda_is_finite_and_in_unit_interval((c, z0, z1, t0, t1) in pair()) {
        let (e0, e1) = (log_e(&z0, c, t0), log_e(&z1, c, t1));
        let h0 = stats::entropy(&z0, c, t0).unwrap();
        let h1 = stats::entropy(&z1, c, t1).unwrap();
        let off = coef::domain_offset(&h0, &h1).unwrap();
        for l in coef::lambda_eq1(&e0, &e1).unwrap().into_iter()
            .chain(coef::lambda_eq2(&e0, &e1, off).unwrap())
            .chain(coef::wise_plugin(&coef::lambda_eq1(&e0, &e1).unwrap(), 0.7).unwrap())
        {
            prop_assert!(l.is_finite() && (0.0..=1.0).contains(&l), "λ = {l}");
        }
    }

    #[test]
    fn swapping_models_gives_one_minus_lambda((c, z0, z1, t0, t1) in pair()) {
        let (e0, e1) = (log_e(&z0, c, t0), log_e(&z1, c, t1));
        let a = coef::lambda_eq1(&e0, &e1).unwrap();
        let b = coef::lambda_eq1(&e1, &e0).unwrap();
        for (x, y) in a.iter().zip(&b) {
            prop_assert!((x + y - 1.0).abs() < 1e-6, "{x} + {y}");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one((c, z, _, t, _) in pair()) {
        let p = stats::softmax(&z, c, t).unwrap();
        for row in p.chunks(c) {
            let s: f64 = row.iter().map(|&x| x as f64).sum();
            prop_assert!((s - 1.0).abs() < 1e-6, "sum {s}");
            prop_assert!(row.iter().all(|x| x.is_finite() && *x >= 0.0));
        }
        for r in stats::row_stats(&z, c, t).unwrap() {
            prop_assert!(r.entropy.is_finite() && r.entropy >= 0.0);
            prop_assert!(r.entropy <= (c as f32).ln() + 1e-5);
            prop_assert!(r.logsumexp.is_finite());
            prop_assert!((0.0..=1.0).contains(&r.top1_minus_top2));
        }
    }

    #[test]
    fn multi_model_lambdas_sum_to_one(n in 1usize..10, m in 1usize..6, seed in any::<u64>()) {
        let mut x = seed | 1;
        let v: Vec<f64> = (0..n * m).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x % 20000) as f64 / 100.0 - 100.0 }).collect();
        let l = coef::lambda_multi(&v, m).unwrap();
        for row in l.chunks(m) {
            let s: f32 = row.iter().sum();
            prop_assert!((s - 1.0).abs() < 1e-5);
            prop_assert!(row.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }

    #[test]
    fn lerp_endpoints_are_exact(a in prop::collection::vec(any::<f32>(), 0..3000), seed in any::<u32>()) {
        let b: Vec<f32> = a.iter().enumerate().map(|(i, x)| x * 0.5 + (i as f32) + seed as f32).collect();
        let mut out = vec![0.0f32; a.len()];
        merge::lerp(&a, &b, 0.0, &mut out).unwrap();
        prop_assert!(out.iter().zip(&a).all(|(o, x)| o.to_bits() == x.to_bits()));
        merge::lerp(&a, &b, 1.0, &mut out).unwrap();
        prop_assert!(out.iter().zip(&b).all(|(o, x)| o.to_bits() == x.to_bits()));
        let ah: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
        let bh: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
        let mut oh = vec![bf16::ZERO; a.len()];
        merge::lerp(&ah, &bh, 0.0, &mut oh).unwrap();
        prop_assert!(oh.iter().zip(&ah).all(|(o, x)| o.to_bits() == x.to_bits()));
        merge::lerp(&ah, &bh, 1.0, &mut oh).unwrap();
        prop_assert!(oh.iter().zip(&bh).all(|(o, x)| o.to_bits() == x.to_bits()));
    }

    #[test]
    fn multi_lerp_equals_separate_lerps(
        a in prop::collection::vec(-100f32..100.0, 0..70_000),
        lambdas in prop::collection::vec(prop_oneof![0.0f32..1.0, Just(0.0), Just(1.0)], 1..5),
    ) {
        let b: Vec<f32> = a.iter().map(|x| x.sin() * 3.0).collect();
        let ah: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
        let bh: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
        let mut outs: Vec<Vec<f16>> = vec![vec![f16::ZERO; a.len()]; lambdas.len()];
        {
            let mut refs: Vec<&mut [f16]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            merge::multi_lerp(&ah, &bh, &lambdas, &mut refs).unwrap();
        }
        for (o, &l) in outs.iter().zip(&lambdas) {
            let mut single = vec![f16::ZERO; a.len()];
            merge::lerp(&ah, &bh, l, &mut single).unwrap();
            prop_assert!(o.iter().zip(&single).all(|(x, y)| x.to_bits() == y.to_bits()), "λ = {l}");
        }
    }

    #[test]
    fn task_arithmetic_with_one_model_and_weight_one_is_that_model(
        base in prop::collection::vec(-10f32..10.0, 1..5000),
        shift in -5f32..5.0,
    ) {
        let model: Vec<f32> = base.iter().map(|x| x * 0.75 + shift).collect();
        let mut out = vec![0.0; base.len()];
        merge::task_arithmetic(&base, &[&model], &[1.0], &mut out).unwrap();
        prop_assert!(out.iter().zip(&model).all(|(o, m)| o == m), "f32 must return θ1 exactly");
        let bb: Vec<bf16> = base.iter().map(|&x| bf16::from_f32(x)).collect();
        let mb: Vec<bf16> = model.iter().map(|&x| bf16::from_f32(x)).collect();
        let mut ob = vec![bf16::ZERO; base.len()];
        merge::task_arithmetic(&bb, &[&mb], &[1.0], &mut ob).unwrap();
        prop_assert!(ob.iter().zip(&mb).all(|(o, m)| o == m), "bf16 must round back to θ1");
    }
}
