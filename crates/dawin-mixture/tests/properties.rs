//! Property tests: for arbitrary coefficients in [0, 1] (exact 0s and 1s, ties, a handful of
//! values or a few hundred, clusters of nearly equal values) and any K ≤ N, EM never returns
//! NaN, the weights sum to 1, every shape parameter is positive, and the predictions and
//! log-likelihoods are consistent.

use dawin_mixture::{
    fit_batchwise, BetaMixture, BetaMixtureConfig, DirichletMixture, DirichletMixtureConfig, MStep,
};
use proptest::prelude::*;

/// Coefficients with plenty of degenerate values: exact 0 and 1, repeated values, tiny
/// distances from the boundaries, and arbitrary values.
fn coefficient() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(0.0),
        1 => Just(1.0),
        1 => Just(0.5),
        1 => Just(1e-300),
        1 => Just(1.0 - 1e-16),
        1 => (0u32..8).prop_map(|i| f64::from(i) / 8.0),
        6 => 0.0f64..=1.0,
    ]
}

fn coefficients_and_k() -> impl Strategy<Value = (Vec<f64>, usize)> {
    (1usize..=5).prop_flat_map(|k| (prop::collection::vec(coefficient(), k..=300), Just(k)))
}

/// Nearly equal coefficients: one or two clusters, each of width 10⁻¹⁶ … 10⁻⁵ around any value
/// in [0, 1], with K up to 3. The method of moments gives concentrated components there
/// (a, b up to ~10⁹), whose log-density is evaluated in the centred form.
fn clustered_and_k() -> impl Strategy<Value = (Vec<f64>, usize)> {
    (
        1usize..=3,
        prop::collection::vec(0.0f64..=1.0, 1..=2),
        5.0f64..=16.0,
        1usize..=200,
    )
        .prop_flat_map(|(k, centres, digits, n)| {
            let width = 10f64.powf(-digits);
            prop::collection::vec((0.0f64..=1.0, any::<bool>()), n.max(k)).prop_map(move |u| {
                let x = u
                    .iter()
                    .map(|&(t, second)| {
                        let c = if second {
                            centres[centres.len() - 1]
                        } else {
                            centres[0]
                        };
                        (c + width * t).min(1.0)
                    })
                    .collect();
                (x, k)
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// On concentrated data the fit's mean log-likelihood and its per-sample recomputation
    /// agree to 1e-12 (the textbook formula lost ~7 digits here).
    #[test]
    fn beta_em_on_nearly_equal_values_is_consistent((x, k) in clustered_and_k(), seed in 0u64..4) {
        let config = BetaMixtureConfig { seed, max_iter: 300, ..BetaMixtureConfig::new(k) };
        let fit = BetaMixture::fit(&x, &config).unwrap();
        prop_assert!((fit.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
        for c in 0..k {
            prop_assert!(fit.a()[c].is_finite() && fit.a()[c] > 0.0, "a = {:?}", fit.a());
            prop_assert!(fit.b()[c].is_finite() && fit.b()[c] > 0.0, "b = {:?}", fit.b());
        }
        let ll = fit.mean_log_likelihood_of(&x).unwrap();
        prop_assert!(ll.is_finite());
        prop_assert!(
            (ll - fit.mean_log_likelihood()).abs() <= 1e-12 * ll.abs().max(1.0),
            "fit {:e}, recomputed {:e}: {:?}", fit.mean_log_likelihood(), ll, fit
        );
        let proba = fit.predict_proba(&x).unwrap();
        prop_assert!(proba.iter().all(|p| p.is_finite() && *p >= 0.0));
    }

    #[test]
    fn beta_em_never_returns_nan((x, k) in coefficients_and_k(), seed in 0u64..4) {
        let config = BetaMixtureConfig { seed, max_iter: 300, ..BetaMixtureConfig::new(k) };
        let fit = BetaMixture::fit(&x, &config).unwrap();
        prop_assert_eq!(fit.k(), k);
        let wsum: f64 = fit.weights().iter().sum();
        prop_assert!((wsum - 1.0).abs() < 1e-12, "weights sum to {}", wsum);
        for c in 0..k {
            prop_assert!(fit.weights()[c].is_finite() && fit.weights()[c] >= 0.0);
            prop_assert!(fit.a()[c].is_finite() && fit.a()[c] > 0.0, "a = {:?}", fit.a());
            prop_assert!(fit.b()[c].is_finite() && fit.b()[c] > 0.0, "b = {:?}", fit.b());
            prop_assert!(fit.means()[c] > 0.0 && fit.means()[c] < 1.0);
        }
        prop_assert!(fit.means().windows(2).all(|w| w[0] <= w[1]));
        prop_assert!(fit.mean_log_likelihood().is_finite());
        let ll = fit.mean_log_likelihood_of(&x).unwrap();
        prop_assert!((ll - fit.mean_log_likelihood()).abs() <= 1e-9 * ll.abs().max(1.0));
        let proba = fit.predict_proba(&x).unwrap();
        let labels = fit.predict(&x).unwrap();
        let lambdas = fit.lambdas(&x).unwrap();
        for ((row, &l), &lam) in proba.chunks_exact(k).zip(&labels).zip(&lambdas) {
            prop_assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0));
            prop_assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            prop_assert!(l < k);
            prop_assert_eq!(lam, fit.means()[l]);
        }
    }

    #[test]
    fn batchwise_never_returns_nan((x, k) in coefficients_and_k(), batch in 1usize..64) {
        let lambdas = fit_batchwise(&x, batch, &BetaMixtureConfig { max_iter: 200, ..BetaMixtureConfig::new(k) }).unwrap();
        prop_assert_eq!(lambdas.len(), x.len());
        prop_assert!(lambdas.iter().all(|l| l.is_finite() && *l > 0.0 && *l < 1.0));
    }

    #[test]
    fn dirichlet_em_never_returns_nan(
        m in 2usize..=5,
        raw in prop::collection::vec(prop_oneof![1 => Just(0.0), 4 => 0.0f64..1.0], 2..=600),
        k in 1usize..=3,
        reference_mean in any::<bool>(),
    ) {
        // Rows on the simplex from arbitrary non-negative weights (all-zero rows become one-hot).
        let mut rows = Vec::new();
        for chunk in raw.chunks_exact(m) {
            let s: f64 = chunk.iter().sum();
            if s > 0.0 {
                rows.extend(chunk.iter().map(|v| v / s));
            } else {
                rows.extend((0..m).map(|j| if j == 0 { 1.0 } else { 0.0 }));
            }
        }
        let n = rows.len() / m;
        prop_assume!(n >= k);
        let m_step = if reference_mean { MStep::ReferenceMean } else { MStep::MethodOfMoments };
        let config = DirichletMixtureConfig { m_step, max_iter: 200, ..DirichletMixtureConfig::new(k) };
        let fit = DirichletMixture::fit(&rows, m, &config).unwrap();
        prop_assert!((fit.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
        prop_assert!(fit.alphas().iter().all(|a| a.is_finite() && *a > 0.0), "{:?}", fit.alphas());
        prop_assert!(fit.means().iter().all(|v| v.is_finite()));
        prop_assert!(fit.mean_log_likelihood().is_finite());
        let lambdas = fit.lambdas(&rows).unwrap();
        prop_assert!(lambdas.iter().all(|v| v.is_finite()));
    }
}
