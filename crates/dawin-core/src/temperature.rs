//! Temperature scaling: the `T` that minimises the mean negative log-likelihood of labelled
//! validation logits, `NLL(T) = (1/N) Σ_i [lse(z_i / T) − z_{i,y_i} / T]`.
//!
//! With `β = 1/T`, `NLL` is convex in β and its derivative
//! `dNLL/dβ = (1/N) Σ_i (E_{p_i}[z_i] − z_{i,y_i})` is non-decreasing, so the minimiser is found by
//! bisection on the sign of the derivative over `ln T ∈ [ln T_min, ln T_max]` (a 1-D convex search
//! in log T). When the data make the NLL monotone (e.g. perfectly separated and all correct, where
//! T → 0 is optimal) the fit stops at the bound and says so.

use crate::error::Result;
use crate::stats::{check_labels, check_logits};

/// The result of [`fit_temperature`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TemperatureFit {
    /// The fitted temperature.
    pub temperature: f32,
    /// The mean NLL at that temperature.
    pub nll: f64,
    /// The mean NLL at T = 1, for comparison.
    pub nll_at_one: f64,
    /// Whether the optimum lies at (or beyond) a bound of the search interval.
    pub at_bound: bool,
}

/// Smallest temperature searched.
pub const T_MIN: f64 = 1e-2;
/// Largest temperature searched.
pub const T_MAX: f64 = 1e2;

/// Mean NLL at temperature `t` and its derivative with respect to β = 1/t.
fn nll_and_grad(logits: &[f32], n_classes: usize, labels: &[i64], t: f64) -> (f64, f64) {
    let beta = 1.0 / t;
    let mut nll = 0.0;
    let mut grad = 0.0;
    for (z, &y) in logits.chunks_exact(n_classes).zip(labels) {
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut s = 0.0;
        let mut ez = 0.0;
        for &v in z {
            let w = (beta * (v as f64 - m)).exp();
            s += w;
            ez += w * v as f64;
        }
        let zy = z[y as usize] as f64;
        nll += beta * m + s.ln() - beta * zy;
        grad += ez / s - zy;
    }
    let n = labels.len() as f64;
    (nll / n, grad / n)
}

/// Mean NLL of `softmax(z / T)` against `labels`.
pub fn nll(logits: &[f32], n_classes: usize, temperature: f32, labels: &[i64]) -> Result<f64> {
    let n = check_logits(logits, n_classes, temperature)?;
    check_labels(labels, n, n_classes)?;
    Ok(nll_and_grad(logits, n_classes, labels, temperature as f64).0)
}

/// Fits the temperature on labelled validation logits `[N, C]`. Errors: empty or ragged logits,
/// non-finite logits, labels of the wrong count or out of range.
pub fn fit_temperature(logits: &[f32], n_classes: usize, labels: &[i64]) -> Result<TemperatureFit> {
    let n = check_logits(logits, n_classes, 1.0)?;
    check_labels(labels, n, n_classes)?;
    let grad_at = |log_t: f64| nll_and_grad(logits, n_classes, labels, log_t.exp()).1;
    let (mut lo, mut hi) = (T_MIN.ln(), T_MAX.ln());
    // g(β) = dNLL/dβ is non-decreasing in β, so non-increasing in ln T = −ln β:
    // its largest value is at T_MIN and its smallest at T_MAX.
    let (g_lo, g_hi) = (grad_at(lo), grad_at(hi));
    let (log_t, at_bound) = if g_lo < 0.0 {
        // NLL decreases with β everywhere: the optimum is at T → 0.
        (lo, true)
    } else if g_hi > 0.0 {
        // NLL increases with β everywhere: the optimum is at T → ∞.
        (hi, true)
    } else {
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if grad_at(mid) > 0.0 {
                lo = mid; // β too large: the optimum has a larger T.
            } else {
                hi = mid;
            }
            if hi - lo < 1e-12 {
                break;
            }
        }
        (0.5 * (lo + hi), false)
    };
    let t = log_t.exp();
    Ok(TemperatureFit {
        temperature: t as f32,
        nll: nll_and_grad(logits, n_classes, labels, t).0,
        nll_at_one: nll_and_grad(logits, n_classes, labels, 1.0).0,
        at_bound,
    })
}
