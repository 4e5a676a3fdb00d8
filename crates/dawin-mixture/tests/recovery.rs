//! Parameter recovery: draw from known mixtures with rand_distr and fit them back.

use dawin_mixture::{
    fit_batchwise, BetaMixture, BetaMixtureConfig, DirichletMixture, DirichletMixtureConfig, MStep,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::multi::Dirichlet;
use rand_distr::{Beta, Distribution};

/// 20 000 draws from Σₖ wₖ Beta(aₖ, bₖ).
fn beta_mixture_sample(n: usize, weights: &[f64], shapes: &[(f64, f64)], seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let dists: Vec<Beta<f64>> = shapes
        .iter()
        .map(|&(a, b)| Beta::new(a, b).unwrap())
        .collect();
    (0..n)
        .map(|_| {
            let u: f64 = rng.random();
            let mut acc = 0.0;
            let mut k = weights.len() - 1;
            for (j, &w) in weights.iter().enumerate() {
                acc += w;
                if u < acc {
                    k = j;
                    break;
                }
            }
            dists[k].sample(&mut rng)
        })
        .collect()
}

#[test]
fn beta_mixture_recovers_means_and_weights() {
    let weights = [0.3, 0.45, 0.25];
    let shapes = [(3.0, 15.0), (20.0, 20.0), (15.0, 3.0)];
    let x = beta_mixture_sample(20_000, &weights, &shapes, 11);
    for seed in [0, 1] {
        let config = BetaMixtureConfig {
            seed,
            ..BetaMixtureConfig::new(3)
        };
        let fit = BetaMixture::fit(&x, &config).unwrap();
        assert!(fit.converged());
        for k in 0..3 {
            let true_mean = shapes[k].0 / (shapes[k].0 + shapes[k].1);
            assert!(
                (fit.means()[k] - true_mean).abs() < 0.02,
                "mean {k}: {} vs {true_mean}",
                fit.means()[k]
            );
            assert!(
                (fit.weights()[k] - weights[k]).abs() < 0.03,
                "weight {k}: {} vs {}",
                fit.weights()[k],
                weights[k]
            );
            // a/(a+b) is the reported mean.
            let ab = fit.a()[k] / (fit.a()[k] + fit.b()[k]);
            assert!((ab - fit.means()[k]).abs() < 1e-12);
        }
        // Per-sample λ: the mean of the assigned component, so only K distinct values.
        let lambdas = fit.lambdas(&x).unwrap();
        assert_eq!(lambdas.len(), x.len());
        assert!(lambdas.iter().all(|l| fit.means().contains(l)));
        // Most draws of the middle component are assigned to the middle mean.
        let mid = lambdas.iter().filter(|&&l| l == fit.means()[1]).count() as f64 / x.len() as f64;
        assert!((mid - 0.45).abs() < 0.05, "middle share {mid}");
    }
}

#[test]
fn f32_coefficients_fit_like_their_f64_values() {
    let x = beta_mixture_sample(3000, &[0.5, 0.5], &[(4.0, 12.0), (12.0, 4.0)], 5);
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let x64: Vec<f64> = x32.iter().map(|&v| f64::from(v)).collect();
    let config = BetaMixtureConfig::new(2);
    let a = BetaMixture::fit(&x32, &config).unwrap();
    let b = BetaMixture::fit(&x64, &config).unwrap();
    assert_eq!(a, b);
}

#[test]
fn batchwise_fits_each_chunk_on_its_own() {
    let x = beta_mixture_sample(
        5000,
        &[0.3, 0.45, 0.25],
        &[(3.0, 15.0), (20.0, 20.0), (15.0, 3.0)],
        3,
    );
    let config = BetaMixtureConfig::new(3);
    let s = 512;
    let lambdas = fit_batchwise(&x, s, &config).unwrap();
    assert_eq!(lambdas.len(), x.len());
    for (chunk, lam) in x.chunks(s).zip(lambdas.chunks(s)) {
        let fit = BetaMixture::fit(chunk, &config).unwrap();
        assert_eq!(lam, &fit.lambdas(chunk).unwrap()[..]);
        let mut distinct: Vec<f64> = lam.to_vec();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert!(distinct.len() <= 3);
    }
    // Table B: batch-wise λ stay close to the whole-domain λ.
    let whole = BetaMixture::fit(&x, &config).unwrap().lambdas(&x).unwrap();
    let mean_abs: f64 = whole
        .iter()
        .zip(&lambdas)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / x.len() as f64;
    assert!(mean_abs < 0.03, "mean |λ_batch − λ_whole| = {mean_abs}");
}

/// 20 000 rows from Σₖ wₖ Dir(αₖ), M = 4.
fn dirichlet_mixture_sample(n: usize, weights: &[f64], alphas: &[[f64; 4]], seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let dists: Vec<Dirichlet<f64>> = alphas.iter().map(|a| Dirichlet::new(a).unwrap()).collect();
    let mut out = Vec::with_capacity(n * 4);
    for _ in 0..n {
        let u: f64 = rng.random();
        let k = if u < weights[0] {
            0
        } else if u < weights[0] + weights[1] {
            1
        } else {
            2
        };
        let row: Vec<f64> = dists[k].sample(&mut rng);
        out.extend(row);
    }
    out
}

#[test]
fn dirichlet_mixture_recovers_means_and_weights() {
    let weights = [0.35, 0.4, 0.25];
    let alphas = [
        [24.0, 4.0, 4.0, 8.0],
        [5.0, 25.0, 5.0, 5.0],
        [4.0, 4.0, 20.0, 12.0],
    ];
    let rows = dirichlet_mixture_sample(20_000, &weights, &alphas, 21);
    let fit = DirichletMixture::fit(&rows, 4, &DirichletMixtureConfig::new(3)).unwrap();
    // Components are sorted lexicographically by mean vector: match each true component to the
    // fitted one with the nearest mean.
    for (k, al) in alphas.iter().enumerate() {
        let total: f64 = al.iter().sum();
        let true_mean: Vec<f64> = al.iter().map(|a| a / total).collect();
        let (j, dist) = (0..3)
            .map(|j| {
                let d = fit
                    .mean(j)
                    .iter()
                    .zip(&true_mean)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                (j, d)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(
            dist < 0.02,
            "component {k}: mean {:?} vs {true_mean:?}",
            fit.mean(j)
        );
        assert!(
            (fit.weights()[j] - weights[k]).abs() < 0.03,
            "component {k}: weight {} vs {}",
            fit.weights()[j],
            weights[k]
        );
        // The moment estimate of the concentration is in the right range.
        let a0: f64 = fit.alpha(j).iter().sum();
        assert!(
            (a0 / total - 1.0).abs() < 0.3,
            "component {k}: α₀ {a0} vs {total}"
        );
    }
    // The reference's simplified M-step finds the same clusters' means.
    let config = DirichletMixtureConfig {
        m_step: MStep::ReferenceMean,
        ..DirichletMixtureConfig::new(3)
    };
    let simple = DirichletMixture::fit(&rows, 4, &config).unwrap();
    assert!(
        (simple.alphas().iter().sum::<f64>() - 3.0).abs() < 1e-9,
        "ReferenceMean: α rows sum to 1"
    );
    let lambdas = fit.lambdas(&rows).unwrap();
    assert_eq!(lambdas.len(), rows.len());
}
