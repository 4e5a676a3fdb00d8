//! Interpolation coefficients from expertise.
//!
//! Two models (θ0 pre-trained, θ1 fine-tuned), with expertise `e_j = exp(ln e_j)`:
//! * Eq. 1: `λ(x) = e_1 / (e_0 + e_1)`, computed as `σ(ln e_1 − ln e_0)`.
//! * Eq. 2 (the paper's default): with the entropies `H_0, H_1` of one domain X,
//!   `O(X) = ½ (std(H_0)/mean(H_0) + std(H_1)/mean(H_1))` (unbiased std, N − 1),
//!   `T(X) = (mean H_0 + mean H_1) / mean H_0`, and
//!   `λ(x) = (e_1 + O/T) / (e_0 + e_1 + O)`.
//! * The WiSE-FT plug-in: `λ_wise(x) = α·λ(x)`.
//!
//! M models: `λ_j(x) = softmax_j(ln e_j(x))` (with entropy, `softmax_j(−H_j)`), and the
//! task-arithmetic weights `w_j(x) = s·λ_j(x)` with `s` defaulting to `0.3·M` ([`default_scale`]),
//! the value behind the paper's Table 6.
//!
//! Every λ returned is finite and inside [0, 1]; NaN inputs are errors, never NaN outputs.

use crate::error::{Error, Result};

fn check_pair(a: &[f64], b: &[f64]) -> Result<()> {
    if a.is_empty() {
        return Err(Error::arg("expertise", "is empty (no samples)"));
    }
    if a.len() != b.len() {
        return Err(Error::arg(
            "expertise",
            format!("θ0 has {} samples but θ1 has {}", a.len(), b.len()),
        ));
    }
    for (what, v) in [("θ0", a), ("θ1", b)] {
        if let Some(i) = v.iter().position(|x| x.is_nan() || *x == f64::INFINITY) {
            return Err(Error::NonFinite {
                what: "log expertise",
                location: format!("sample {i} of {what}"),
                value: v[i],
            });
        }
    }
    Ok(())
}

/// σ(d) = 1 / (1 + exp(−d)), stable for any d (including ±∞).
fn sigmoid(d: f64) -> f64 {
    if d >= 0.0 {
        1.0 / (1.0 + (-d).exp())
    } else {
        let e = d.exp();
        e / (1.0 + e)
    }
}

/// Eq. 1: `λ_i = e_1 / (e_0 + e_1) = σ(ln e_1 − ln e_0)` from log expertise. Both −∞ gives ½.
pub fn lambda_eq1(log_e0: &[f64], log_e1: &[f64]) -> Result<Vec<f32>> {
    check_pair(log_e0, log_e1)?;
    Ok(log_e0
        .iter()
        .zip(log_e1)
        .map(|(&a, &b)| {
            if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
                0.5
            } else {
                sigmoid(b - a) as f32
            }
        })
        .collect())
}

/// The domain offset of Eq. 2, computed from the entropies of one domain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DomainOffset {
    /// `O(X) = ½ (std(H_0)/mean(H_0) + std(H_1)/mean(H_1))`.
    pub offset: f64,
    /// `T(X) = (mean H_0 + mean H_1) / mean H_0`.
    pub ratio: f64,
}

fn mean_std(h: &[f32]) -> (f64, f64) {
    let n = h.len() as f64;
    let mean = h.iter().map(|&x| x as f64).sum::<f64>() / n;
    if h.len() < 2 {
        return (mean, 0.0);
    }
    let var = h.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Computes [`DomainOffset`] from per-sample entropies `H_0`, `H_1` of one domain.
///
/// Conventions where the formula is undefined: with one sample the std is 0 (so `O = 0`); a mean
/// entropy of 0 contributes 0 to `O`; `mean H_0 = 0` gives `T = ∞` (so `O/T = 0`).
/// Errors: empty, mismatched lengths, negative or non-finite entropies.
pub fn domain_offset(h0: &[f32], h1: &[f32]) -> Result<DomainOffset> {
    if h0.is_empty() {
        return Err(Error::arg("entropies", "is empty (no samples)"));
    }
    if h0.len() != h1.len() {
        return Err(Error::arg(
            "entropies",
            format!("θ0 has {} samples but θ1 has {}", h0.len(), h1.len()),
        ));
    }
    for (what, v) in [("θ0", h0), ("θ1", h1)] {
        if let Some(i) = v.iter().position(|x| !x.is_finite() || *x < 0.0) {
            return Err(Error::NonFinite {
                what: "entropy",
                location: format!("sample {i} of {what}"),
                value: v[i] as f64,
            });
        }
    }
    let (m0, s0) = mean_std(h0);
    let (m1, s1) = mean_std(h1);
    let cv = |m: f64, s: f64| if m > 0.0 { s / m } else { 0.0 };
    let offset = 0.5 * (cv(m0, s0) + cv(m1, s1));
    let ratio = if m0 > 0.0 {
        (m0 + m1) / m0
    } else {
        f64::INFINITY
    };
    Ok(DomainOffset { offset, ratio })
}

/// Eq. 2: `λ_i = (e_1 + O/T) / (e_0 + e_1 + O)` with `e_j = exp(ln e_j)`.
///
/// When the denominator underflows to 0 (both expertise 0 and `O = 0`) this returns Eq. 1, the
/// limit as `O → 0`. Errors as [`lambda_eq1`], plus a non-finite or negative offset.
pub fn lambda_eq2(log_e0: &[f64], log_e1: &[f64], offset: DomainOffset) -> Result<Vec<f32>> {
    check_pair(log_e0, log_e1)?;
    let DomainOffset {
        offset: o,
        ratio: t,
    } = offset;
    if !(o.is_finite() && o >= 0.0) || t.is_nan() || t <= 0.0 {
        return Err(Error::arg(
            "offset",
            format!("O = {o}, T = {t}: O must be finite and ≥ 0, T > 0"),
        ));
    }
    let o_t = if t.is_infinite() { 0.0 } else { o / t };
    Ok(log_e0
        .iter()
        .zip(log_e1)
        .map(|(&a, &b)| {
            let (e0, e1) = (a.exp(), b.exp());
            let den = e0 + e1 + o;
            let l = if den > 0.0 && den.is_finite() {
                (e1 + o_t) / den
            } else if a == f64::NEG_INFINITY && b == f64::NEG_INFINITY {
                0.5
            } else {
                sigmoid(b - a)
            };
            l.clamp(0.0, 1.0) as f32
        })
        .collect())
}

/// The WiSE-FT plug-in: `λ_wise = α·λ`, with α ∈ [0, 1].
pub fn wise_plugin(lambdas: &[f32], alpha: f32) -> Result<Vec<f32>> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::arg(
            "alpha",
            format!("must lie in [0, 1], got {alpha}"),
        ));
    }
    Ok(lambdas
        .iter()
        .map(|&l| (alpha * l).clamp(0.0, 1.0))
        .collect())
}

/// M models: `λ_ij = softmax_j(ln e_ij)` for row-major log expertise `[N, M]`; each row of the
/// result sums to 1. Errors: `M = 0`, empty or ragged input, NaN or +∞ entries.
pub fn lambda_multi(log_e: &[f64], n_models: usize) -> Result<Vec<f32>> {
    if n_models == 0 {
        return Err(Error::arg("n_models", "must be at least 1"));
    }
    if log_e.is_empty() || !log_e.len().is_multiple_of(n_models) {
        return Err(Error::arg(
            "expertise",
            format!(
                "has {} values, not a non-empty multiple of {n_models} models",
                log_e.len()
            ),
        ));
    }
    if let Some(i) = log_e.iter().position(|x| x.is_nan() || *x == f64::INFINITY) {
        return Err(Error::NonFinite {
            what: "log expertise",
            location: format!("sample {}, model {}", i / n_models, i % n_models),
            value: log_e[i],
        });
    }
    let mut out = Vec::with_capacity(log_e.len());
    for row in log_e.chunks_exact(n_models) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if m == f64::NEG_INFINITY {
            out.extend(std::iter::repeat_n(1.0 / n_models as f32, n_models));
            continue;
        }
        let s: f64 = row.iter().map(|&x| (x - m).exp()).sum();
        out.extend(row.iter().map(|&x| ((x - m).exp() / s) as f32));
    }
    Ok(out)
}

/// Interleaves M per-model columns `[M][N]` into row-major `[N, M]`.
pub fn stack_columns(columns: &[Vec<f64>]) -> Result<Vec<f64>> {
    let n = columns.first().map(Vec::len).unwrap_or(0);
    if let Some((j, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != n) {
        return Err(Error::arg(
            "columns",
            format!("model {j} has {} samples, model 0 has {n}", c.len()),
        ));
    }
    let mut out = Vec::with_capacity(n * columns.len());
    for i in 0..n {
        out.extend(columns.iter().map(|c| c[i]));
    }
    Ok(out)
}

/// The task-arithmetic scale that reproduces the paper's Table 6: `s = 0.3·M`.
pub fn default_scale(n_models: usize) -> f32 {
    0.3 * n_models as f32
}

/// Task-arithmetic weights `w_j = s·λ_j` for one sample's λ vector.
pub fn task_weights(lambdas: &[f32], scale: f32) -> Vec<f32> {
    lambdas.iter().map(|&l| scale * l).collect()
}
