//! The Beta log-density and log-likelihoods where the textbook formula
//! `(a−1) ln λ + (b−1) ln(1−λ) − ln B(a, b)` cancels catastrophically: concentrated components
//! (`a, b` up to 10¹²), which the method of moments produces for equal or nearly equal
//! coefficients (`a, b ~ 10⁹`, terms of ~10¹⁰ for a result of ~10). Reference values from
//! mpmath at 50 digits (`scripts/mixture_reference.py stability`, in
//! `tests/data/stability_values.rs`).

#[path = "data/stability_values.rs"]
mod stability_values;

use dawin_mixture::special::ln_beta_pdf;
use dawin_mixture::{BetaMixture, BetaMixtureConfig, BetaMixtureFit};
use stability_values::*;

/// Relative error, absolute where the value is below 1 in magnitude.
fn err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1.0)
}

#[test]
fn ln_beta_pdf_matches_mpmath() {
    let mut worst = [0.0f64; 2];
    for &(x, a, b, want) in LN_BETA_PDF.iter() {
        let got = ln_beta_pdf(x, a, b);
        let e = err(got, want);
        // Shapes summing to 1024 or more are the concentrated ones (a few ulp whatever the
        // shapes); below, the error grows like (a + b) ulp.
        let (slot, tol) = if a + b >= 1024.0 {
            (0, 1e-14)
        } else {
            (1, 5e-14)
        };
        assert!(
            e <= tol,
            "ln_beta_pdf({x}, {a}, {b}) = {got:e}, mpmath {want:e} (error {e:e})"
        );
        worst[slot] = worst[slot].max(e);
    }
    eprintln!(
        "worst error: concentrated {:e}, others {:e}",
        worst[0], worst[1]
    );
    assert!(ln_beta_pdf(0.0, 2.0, 3.0).is_nan());
    assert!(ln_beta_pdf(1.0, 2.0, 3.0).is_nan());
    assert!(ln_beta_pdf(0.5, -1.0, 3.0).is_nan());
    assert!(ln_beta_pdf(0.5, 2.0, f64::INFINITY).is_nan());
}

#[test]
fn mixture_with_a_concentrated_component_matches_mpmath() {
    let got =
        BetaMixture::mean_log_likelihood(&MIX_LAMBDAS, &MIX_WEIGHTS, &MIX_A, &MIX_B, 1e-6).unwrap();
    assert!(err(got, MIX_MEAN) <= 1e-14, "{got:e} vs {MIX_MEAN:e}");
}

fn config(k: usize, clamp_eps: f64) -> BetaMixtureConfig {
    BetaMixtureConfig {
        clamp_eps,
        ..BetaMixtureConfig::new(k)
    }
}

/// The fit's own mean log-likelihood and the one recomputed by `mean_log_likelihood_of`
/// (per-sample E-step) agree to 1e-12 relative, the property test's check with a thousand times
/// less slack.
fn assert_consistent(what: &str, fit: &BetaMixtureFit, data: &[f64]) -> f64 {
    let ll = fit.mean_log_likelihood();
    let of = fit.mean_log_likelihood_of(data).unwrap();
    assert!(ll.is_finite(), "{what}: {fit:?}");
    assert!(
        (ll - of).abs() <= 1e-12 * of.abs().max(1.0),
        "{what}: fit {ll:e}, recomputed {of:e}"
    );
    ll
}

/// K = 1 on degenerate data: the parameters are those of the reference M-step (computed in
/// double arithmetic by the script), and the mean log-likelihood is that of mpmath.
#[test]
fn k1_degenerate_fits_match_mpmath() {
    for case in K1_CASES.iter() {
        let fit = BetaMixture::fit(case.data, &config(1, case.clamp_eps)).unwrap();
        let (a, b) = (fit.a()[0], fit.b()[0]);
        assert!(
            (a - case.a).abs() <= 1e-15 * case.a && (b - case.b).abs() <= 1e-15 * case.b,
            "{}: (a, b) = ({a:e}, {b:e}), reference ({:e}, {:e})",
            case.name,
            case.a,
            case.b
        );
        let ll = assert_consistent(case.name, &fit, case.data);
        assert!(
            err(ll, case.mean_ll) <= 1e-14,
            "{}: mean ll {ll:e}, mpmath {:e}",
            case.name,
            case.mean_ll
        );
        let direct = BetaMixture::mean_log_likelihood(
            case.data,
            &[1.0],
            &[case.a],
            &[case.b],
            case.clamp_eps,
        )
        .unwrap();
        assert!(
            err(direct, case.mean_ll) <= 1e-14,
            "{}: mean_log_likelihood {direct:e}, mpmath {:e}",
            case.name,
            case.mean_ll
        );
    }
}

/// All-equal coefficients with K = 1, 2, 3 (and N = 1), in the middle and next to the clamps:
/// no NaN, the components that carry weight and every sample's λ at the data's value, the fit's
/// log-likelihood consistent with its recomputation, and close to the single concentrated
/// component's (mpmath): the surplus components carry weights of about 1e-15, and the shapes
/// depend on the rounding of the variance (`v ≈ 1e-16` against the `1e-10` floor, a relative
/// change of up to 1e-6), hence the looser 1e-5 for K > 1.
#[test]
fn all_equal_coefficients_for_k_up_to_3() {
    for case in K1_CASES.iter() {
        let value = case.data[0];
        if case.data.iter().any(|&v| v != value) {
            continue;
        }
        let clamped = value.clamp(case.clamp_eps, 1.0 - case.clamp_eps);
        for k in 1..=3.min(case.data.len()) {
            let what = format!("{} with K = {k}", case.name);
            let fit = BetaMixture::fit(case.data, &config(k, case.clamp_eps)).unwrap();
            assert_eq!(fit.k(), k);
            assert!(
                (fit.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12,
                "{what}"
            );
            for c in 0..k {
                assert!(
                    fit.a()[c] > 0.0 && fit.a()[c].is_finite(),
                    "{what}: {fit:?}"
                );
                assert!(
                    fit.b()[c] > 0.0 && fit.b()[c].is_finite(),
                    "{what}: {fit:?}"
                );
                if fit.weights()[c] > 1e-9 {
                    assert!((fit.means()[c] - clamped).abs() <= 1e-12, "{what}: {fit:?}");
                }
            }
            let ll = assert_consistent(&what, &fit, case.data);
            let tol = if k == 1 { 1e-14 } else { 1e-5 };
            assert!(
                err(ll, case.mean_ll) <= tol,
                "{what}: mean ll {ll:e}, mpmath (K = 1) {:e}",
                case.mean_ll
            );
            for lambda in fit.lambdas(case.data).unwrap() {
                assert!((lambda - clamped).abs() <= 1e-12, "{what}: λ = {lambda}");
            }
            let proba = fit.predict_proba(case.data).unwrap();
            assert!(proba.iter().all(|p| p.is_finite()), "{what}: {proba:?}");
        }
    }
}
