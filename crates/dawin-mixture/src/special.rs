//! Log-gamma and log-beta functions for positive arguments, and the Beta log-density.
//!
//! All three functions use Stirling's series
//!
//! ```text
//! ln Γ(x) = (x − ½) ln x − x + ½ ln 2π + ω(x),
//! ω(x)    = 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷) + 1/(1188x⁹) − 691/(360360x¹¹) + 1/(156x¹³)
//! ```
//!
//! for `x ≥ 10` (truncation error below 3·10⁻¹⁷ there), and the recurrence
//! `ln Γ(x) = ln Γ(x + n) − ln(x (x+1) ⋯ (x+n−1))` to reach `x + n ≥ 10` from below.
//! The log-beta functions combine the series *before* subtracting, so that
//! `ln B(a, b)` keeps its absolute accuracy when `a` and `b` are large (the EM's method-of-moments
//! step can produce shapes up to about 2.5·10⁹), where `ln Γ(a) + ln Γ(b) − ln Γ(a + b)` would
//! cancel catastrophically.
//!
//! Accuracy (tested against mpmath at 50 digits, `scripts/mixture_reference.py`): absolute error
//! below 1·10⁻¹⁴ where `|ln Γ| < 1`, relative error below 1·10⁻¹⁴ elsewhere.

/// ½ ln(2π).
const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
/// Where the Stirling series takes over from the recurrence.
const STIRLING_MIN: f64 = 10.0;

/// Stirling remainder ω(x) = ln Γ(x) − [(x − ½) ln x − x + ½ ln 2π], for `x ≥ 10`.
#[inline]
fn stirling_remainder(x: f64) -> f64 {
    let z = 1.0 / x;
    let z2 = z * z;
    z * (1.0 / 12.0
        + z2 * (-1.0 / 360.0
            + z2 * (1.0 / 1260.0
                + z2 * (-1.0 / 1680.0
                    + z2 * (1.0 / 1188.0 + z2 * (-691.0 / 360_360.0 + z2 * (1.0 / 156.0)))))))
}

/// ln Γ(x) for `x ≥ 10` by Stirling's series.
#[inline]
fn ln_gamma_stirling(x: f64) -> f64 {
    (x - 0.5) * x.ln() - x + HALF_LN_2PI + stirling_remainder(x)
}

/// Natural logarithm of the gamma function, `ln Γ(x)`, for `x > 0`.
///
/// Returns NaN for `x ≤ 0` or NaN, and `+∞` for `x = +∞`.
///
/// ```
/// use dawin_mixture::special::ln_gamma;
/// assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-14);
/// ```
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    if x >= STIRLING_MIN {
        return ln_gamma_stirling(x);
    }
    // Shift up: Γ(x) = Γ(x + n) / (x (x+1) ... (x+n-1)). Each factor is formed as x + i
    // (one rounding) rather than by repeated increments.
    let n = (STIRLING_MIN - x).ceil() as u32;
    let mut prod = x;
    for i in 1..n {
        prod *= x + f64::from(i);
    }
    ln_gamma_stirling(x + f64::from(n)) - prod.ln()
}

/// `ln Γ(small) + ln Γ(large) − ln Γ(small + large)` with `large ≥ 10`, arranged to avoid the
/// cancellation between the two large terms.
#[inline]
fn ln_gamma_ratio_large(small: f64, large: f64) -> f64 {
    // ln Γ(l) − ln Γ(l + s) = −(l − ½) ln(1 + s/l) − s ln(l + s) + s + ω(l) − ω(l + s)
    let sum = large + small;
    ln_gamma(small) - (large - 0.5) * (small / large).ln_1p() - small * sum.ln()
        + small
        + (stirling_remainder(large) - stirling_remainder(sum))
}

/// Natural logarithm of the beta function,
/// `ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b)`, for `a, b > 0`.
///
/// When both arguments are at least 10 it is evaluated as
/// `½ ln 2π − ½ ln(a+b) − (a − ½) ln(1 + b/a) − (b − ½) ln(1 + a/b) + ω(a) + ω(b) − ω(a+b)`,
/// which keeps full absolute accuracy for shapes of order 10⁹ and beyond.
/// Returns NaN if either argument is not positive.
///
/// ```
/// use dawin_mixture::special::ln_beta;
/// // B(2, 3) = 1/12
/// assert!((ln_beta(2.0, 3.0) + 12f64.ln()).abs() < 1e-14);
/// ```
pub fn ln_beta(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() || a <= 0.0 || b <= 0.0 {
        return f64::NAN;
    }
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    if hi.is_infinite() {
        return f64::NEG_INFINITY;
    }
    if lo >= STIRLING_MIN {
        let sum = a + b;
        HALF_LN_2PI - 0.5 * sum.ln() - (a - 0.5) * (b / a).ln_1p() - (b - 0.5) * (a / b).ln_1p()
            + (stirling_remainder(a) + stirling_remainder(b) - stirling_remainder(sum))
    } else if hi >= STIRLING_MIN {
        ln_gamma_ratio_large(lo, hi)
    } else {
        ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
    }
}

/// Log-density of the Beta distribution at its own mean `m = a/(a+b)`,
/// `ln f(m; a, b) = (a−1) ln m + (b−1) ln(1−m) − ln B(a, b)`, for `a, b > 0`.
///
/// For large shapes the three terms are of order `a + b` while their sum is of order
/// `½ ln(a+b)`; combining them analytically first (with `ln m = −ln(1 + b/a)`,
/// `ln(1−m) = −ln(1 + a/b)` and Stirling's series for the three `ln Γ`) leaves
///
/// ```text
/// ln f(m; a, b) = ½ ln((a+b)/2π) + ½ ln(1 + b/a) + ½ ln(1 + a/b) − [ω(a) + ω(b) − ω(a+b)]
/// ```
///
/// (no cancellation; ω is the Stirling remainder of the module docs), used when both shapes
/// are at least 10. Otherwise it is `−(a−1) ln(1 + b/a) − (b−1) ln(1 + a/b) − ln B(a, b)`,
/// whose terms are then at most a few hundred. Accurate to a few ulp of the larger term
/// (tested against mpmath). Returns NaN if either argument is not positive and finite.
///
/// ```
/// use dawin_mixture::special::ln_beta_pdf_at_mean;
/// // Beta(2, 2) has density 6 m (1 − m) = 1.5 at m = ½.
/// assert!((ln_beta_pdf_at_mean(2.0, 2.0) - 1.5f64.ln()).abs() < 1e-14);
/// ```
pub fn ln_beta_pdf_at_mean(a: f64, b: f64) -> f64 {
    if !(a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()) {
        return f64::NAN;
    }
    let (lm, l1m) = ((b / a).ln_1p(), (a / b).ln_1p()); // −ln m, −ln(1 − m)
    if a.min(b) >= STIRLING_MIN {
        let s = a + b;
        0.5 * ((s / (2.0 * std::f64::consts::PI)).ln() + lm + l1m)
            - (stirling_remainder(a) + stirling_remainder(b) - stirling_remainder(s))
    } else {
        -(a - 1.0) * lm - (b - 1.0) * l1m - ln_beta(a, b)
    }
}

/// Log-density of the Beta distribution,
/// `ln f(x; a, b) = (a−1) ln x + (b−1) ln(1−x) − ln B(a, b)`, for `x ∈ (0, 1)` and `a, b > 0`,
/// evaluated exactly as the Beta mixture evaluates it (E-step, log-likelihoods, predictions).
///
/// When `a + b ≥ 1024` the terms above cancel catastrophically (for `a, b ~ 10⁹` terms of
/// order 10¹⁰ leave a result of order 10, so one ulp of a term is 10⁻⁶), and it is evaluated
/// about the mean `m = a/(a+b)` (rounded to `f64`) instead, with `d = x − m`, `u = d/m`,
/// `v = −d/(1−m)` and `h(y) = ln(1+y) − y`:
///
/// ```text
/// ln f(x; a, b) = ln f(m; a, b) + s·d + (a−1) h(u) + (b−1) h(v),   s = (a−1)/m − (b−1)/(1−m)
/// ```
///
/// `ln f(m; a, b)` is [`ln_beta_pdf_at_mean`] plus the exact change from the true mean to the
/// rounded `m`; the slope `s` is formed from the division residual of `m` and is of order
/// `1/(m(1−m))`, not `a + b`; `h` is evaluated with a small relative error for any argument
/// (`h(y) ≈ −y²/2` by the `atanh` series near 0). No term then exceeds the result by much
/// unless `x` is many standard deviations from `m`, where the result is large itself: the error
/// is a few ulp of `|ln f| + ((x − m)/σ)²` (tested against mpmath, `a, b` up to 10¹²).
/// Returns NaN if `x ∉ (0, 1)` or a shape is not positive and finite.
///
/// ```
/// use dawin_mixture::special::ln_beta_pdf;
/// // Beta(2, 3) density 12 x (1 − x)² at x = 0.25: 12 · 0.25 · 0.5625 = 1.6875.
/// assert!((ln_beta_pdf(0.25, 2.0, 3.0) - 1.6875f64.ln()).abs() < 1e-14);
/// ```
pub fn ln_beta_pdf(x: f64, a: f64, b: f64) -> f64 {
    if !(x > 0.0 && x < 1.0 && a > 0.0 && b > 0.0 && a.is_finite() && b.is_finite()) {
        return f64::NAN;
    }
    crate::logpdf::BetaLogPdf::new(a, b).eval(x)
}

/// Natural logarithm of the multivariate beta function (the Dirichlet normaliser),
/// `ln B(α) = Σⱼ ln Γ(αⱼ) − ln Γ(α₀)`, `α₀ = Σⱼ αⱼ`, for `αⱼ > 0`.
///
/// The components with `αⱼ ≥ 10` (set L, with small remainder `S = Σ_{j∉L} αⱼ`) are combined
/// with `ln Γ(α₀)` before subtracting:
///
/// ```text
/// Σ_{j∈L} ln Γ(αⱼ) − ln Γ(α₀) = Σ_{j∈L} (αⱼ − ½) ln(αⱼ/α₀) − (S + (|L|−1)/2) ln α₀ + S
///                              + (|L|−1) ½ ln 2π + Σ_{j∈L} ω(αⱼ) − ω(α₀),
/// ```
///
/// with `ln(αⱼ/α₀) = −ln(1 + (α₀ − αⱼ)/αⱼ)` and `α₀ − αⱼ` summed directly from the other
/// components. For two components it equals [`ln_beta`]. Returns NaN for an empty slice or a
/// non-positive component.
pub fn ln_multi_beta(alpha: &[f64]) -> f64 {
    if alpha.is_empty() || alpha.iter().any(|&a| a.is_nan() || a <= 0.0) {
        return f64::NAN;
    }
    if alpha.iter().any(|a| a.is_infinite()) {
        return f64::NEG_INFINITY;
    }
    if alpha.len() == 2 {
        return ln_beta(alpha[0], alpha[1]);
    }
    let total: f64 = alpha.iter().sum();
    let n_large = alpha.iter().filter(|&&a| a >= STIRLING_MIN).count();
    if n_large == 0 {
        return alpha.iter().map(|&a| ln_gamma(a)).sum::<f64>() - ln_gamma(total);
    }
    let small: f64 = alpha.iter().filter(|&&a| a < STIRLING_MIN).sum();
    let mut out = 0.0;
    for (j, &a) in alpha.iter().enumerate() {
        if a < STIRLING_MIN {
            out += ln_gamma(a);
        } else {
            let rest: f64 = alpha
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != j)
                .map(|(_, &v)| v)
                .sum();
            out += -(a - 0.5) * (rest / a).ln_1p() + stirling_remainder(a);
        }
    }
    let l1 = (n_large - 1) as f64;
    out - (small + 0.5 * l1) * total.ln() + small + l1 * HALF_LN_2PI - stirling_remainder(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_and_half_integer_values() {
        // Γ(n) = (n-1)!, Γ(1/2) = √π, computed by hand.
        let mut fact = 1.0f64;
        for n in 1..25u32 {
            if n > 1 {
                fact *= f64::from(n - 1);
            }
            let want = fact.ln();
            let got = ln_gamma(f64::from(n));
            assert!(
                (got - want).abs() <= 1e-14 * want.abs().max(1.0),
                "n = {n}: {got} vs {want}"
            );
        }
        let half = ln_gamma(0.5);
        assert!((half - 0.5 * std::f64::consts::PI.ln()).abs() < 4e-15);
    }

    #[test]
    fn non_positive_arguments_are_nan() {
        assert!(ln_gamma(0.0).is_nan());
        assert!(ln_gamma(-1.5).is_nan());
        assert!(ln_gamma(f64::NAN).is_nan());
        assert!(ln_beta(0.0, 1.0).is_nan());
        assert!(ln_multi_beta(&[]).is_nan());
        assert!(ln_multi_beta(&[1.0, -2.0, 3.0]).is_nan());
    }

    #[test]
    fn recurrence_is_continuous_at_the_switch() {
        // ln Γ(x + 1) − ln Γ(x) = ln x across the recurrence/series boundary.
        for &x in &[9.0, 9.5, 9.999_999, 10.0, 10.5] {
            let d = ln_gamma(x + 1.0) - ln_gamma(x);
            assert!((d - f64::ln(x)).abs() < 1e-13, "x = {x}");
        }
    }

    #[test]
    fn multi_beta_matches_beta_and_gamma_sums() {
        for &(a, b) in &[(0.3, 0.7), (2.0, 30.0), (1e6, 2.5), (40.0, 1e9)] {
            assert_eq!(ln_multi_beta(&[a, b]), ln_beta(a, b));
        }
        // Moderate arguments: the grouped form must agree with the plain sum.
        let al = [12.0, 0.5, 33.0, 4.0];
        let plain: f64 = al.iter().map(|&a| ln_gamma(a)).sum::<f64>() - ln_gamma(al.iter().sum());
        assert!((ln_multi_beta(&al) - plain).abs() < 1e-12 * plain.abs());
        // Scaling all-large arguments: ln B(cα) with the grouped form matches the Beta case.
        let al3 = [1e7, 2e7, 3e7];
        let via_beta = ln_beta(1e7, 2e7) + ln_beta(3e7, 3e7);
        // B(a,b,c) = B(a,b) B(a+b,c)
        assert!(
            (ln_multi_beta(&al3) - via_beta).abs() < 1e-6,
            "{} vs {via_beta}",
            ln_multi_beta(&al3)
        );
    }
}
