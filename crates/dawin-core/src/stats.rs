//! Row statistics of a logits matrix `[N, C]` (row-major `f32`) at a temperature `T`.
//!
//! With `s = z / T`, `m = max_c s_c` and `S = Σ_c exp(s_c − m)`:
//! * log-sum-exp `lse = m + ln S`; log-softmax `log p_c = s_c − lse`; softmax `p_c = exp(s_c − m) / S`;
//! * entropy `H(p) = −Σ p_c log p_c = ln S − Σ_c p_c (s_c − m)` (the shifted form keeps ±1e4 logits finite);
//! * cross-entropy with a hard label `y`: `lse − s_y`; with soft targets `q`: `−Σ_c q_c log p_c`.
//!
//! Every function rejects non-finite logits with an error naming the row and column, so a NaN never
//! reaches a coefficient silently. Internals accumulate in `f64`.

use crate::error::{Error, Result};

/// Statistics of one row of logits at temperature `T` (see the module docs for the formulas).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowStats {
    /// `H(p)`, `p = softmax(z / T)`, in nats.
    pub entropy: f32,
    /// `ln Σ_c exp(z_c / T)`.
    pub logsumexp: f32,
    /// `max_c z_c`: the raw logit, not divided by `T`.
    pub max_logit: f32,
    /// The first index of the maximum logit.
    pub argmax: u32,
    /// `max_c p_c`.
    pub max_prob: f32,
    /// `p_(1) − p_(2)`, largest minus second-largest probability (1 when `C = 1`).
    pub top1_minus_top2: f32,
}

/// Validates shape, temperature and finiteness; returns the number of rows.
pub(crate) fn check_logits(logits: &[f32], n_classes: usize, temperature: f32) -> Result<usize> {
    if n_classes == 0 {
        return Err(Error::arg("n_classes", "must be at least 1"));
    }
    if logits.is_empty() {
        return Err(Error::arg("logits", "is empty (no samples)"));
    }
    if !logits.len().is_multiple_of(n_classes) {
        return Err(Error::arg(
            "logits",
            format!(
                "has {} values, not a multiple of n_classes = {n_classes}",
                logits.len()
            ),
        ));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::arg(
            "temperature",
            format!("must be finite and > 0, got {temperature}"),
        ));
    }
    if let Some(i) = logits.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            what: "logits",
            location: format!("row {}, column {}", i / n_classes, i % n_classes),
            value: logits[i] as f64,
        });
    }
    Ok(logits.len() / n_classes)
}

pub(crate) fn check_labels(labels: &[i64], n: usize, n_classes: usize) -> Result<()> {
    if labels.len() != n {
        return Err(Error::arg(
            "labels",
            format!("has {} entries for {n} samples", labels.len()),
        ));
    }
    if let Some(i) = labels
        .iter()
        .position(|&y| y < 0 || y as u64 >= n_classes as u64)
    {
        return Err(Error::LabelOutOfRange {
            index: i,
            label: labels[i],
            n_classes,
        });
    }
    Ok(())
}

/// One row: (max of s, argmax, ln S) with s = z / T, in f64.
#[inline]
fn row_lse(z: &[f32], inv_t: f64) -> (f64, usize, f64) {
    let mut arg = 0;
    let mut zmax = z[0];
    for (c, &v) in z.iter().enumerate() {
        if v > zmax {
            zmax = v;
            arg = c;
        }
    }
    let m = zmax as f64 * inv_t;
    let s: f64 = z.iter().map(|&v| (v as f64 * inv_t - m).exp()).sum();
    (m, arg, s.ln())
}

/// Per-row [`RowStats`]. Errors: `C = 0`, empty or ragged input, `T` not finite and positive,
/// a non-finite logit.
pub fn row_stats(logits: &[f32], n_classes: usize, temperature: f32) -> Result<Vec<RowStats>> {
    check_logits(logits, n_classes, temperature)?;
    let inv_t = 1.0 / temperature as f64;
    Ok(logits
        .chunks_exact(n_classes)
        .map(|z| {
            let (m, arg, ln_s) = row_lse(z, inv_t);
            let mut weighted = 0.0f64; // Σ exp(s_c - m) (s_c - m)
            let mut second = f64::NEG_INFINITY; // second-largest shifted value
            for (c, &v) in z.iter().enumerate() {
                let d = v as f64 * inv_t - m;
                weighted += d.exp() * d;
                if c != arg && d > second {
                    second = d;
                }
            }
            let sum = ln_s.exp();
            let p1 = 1.0 / sum;
            let p2 = second.exp() / sum;
            RowStats {
                entropy: (ln_s - weighted / sum).max(0.0) as f32,
                logsumexp: (m + ln_s) as f32,
                max_logit: z[arg],
                argmax: arg as u32,
                max_prob: p1 as f32,
                top1_minus_top2: (p1 - p2) as f32,
            }
        })
        .collect())
}

/// Row-wise log-softmax of `z / T`, same shape as `logits`.
pub fn log_softmax(logits: &[f32], n_classes: usize, temperature: f32) -> Result<Vec<f32>> {
    check_logits(logits, n_classes, temperature)?;
    let inv_t = 1.0 / temperature as f64;
    let mut out = Vec::with_capacity(logits.len());
    for z in logits.chunks_exact(n_classes) {
        let (m, _, ln_s) = row_lse(z, inv_t);
        out.extend(z.iter().map(|&v| (v as f64 * inv_t - m - ln_s) as f32));
    }
    Ok(out)
}

/// Row-wise softmax of `z / T`, same shape as `logits`; every row sums to 1 within f32 rounding.
pub fn softmax(logits: &[f32], n_classes: usize, temperature: f32) -> Result<Vec<f32>> {
    check_logits(logits, n_classes, temperature)?;
    let inv_t = 1.0 / temperature as f64;
    let mut out = Vec::with_capacity(logits.len());
    for z in logits.chunks_exact(n_classes) {
        let (m, _, ln_s) = row_lse(z, inv_t);
        out.extend(
            z.iter()
                .map(|&v| (v as f64 * inv_t - m - ln_s).exp() as f32),
        );
    }
    Ok(out)
}

/// Per-row entropy `H(softmax(z / T))` in nats.
pub fn entropy(logits: &[f32], n_classes: usize, temperature: f32) -> Result<Vec<f32>> {
    Ok(row_stats(logits, n_classes, temperature)?
        .into_iter()
        .map(|r| r.entropy)
        .collect())
}

/// Per-row argmax (first index of the maximum).
pub fn argmax(logits: &[f32], n_classes: usize) -> Result<Vec<u32>> {
    Ok(row_stats(logits, n_classes, 1.0)?
        .into_iter()
        .map(|r| r.argmax)
        .collect())
}

/// Cross-entropy against hard labels: `ce_i = lse_i − z_{i, y_i} / T`. Errors as [`row_stats`],
/// plus a label count mismatch or a label outside `[0, C)` (naming the sample).
pub fn cross_entropy_hard(
    logits: &[f32],
    n_classes: usize,
    temperature: f32,
    labels: &[i64],
) -> Result<Vec<f32>> {
    let n = check_logits(logits, n_classes, temperature)?;
    check_labels(labels, n, n_classes)?;
    let inv_t = 1.0 / temperature as f64;
    Ok(logits
        .chunks_exact(n_classes)
        .zip(labels)
        .map(|(z, &y)| {
            let (m, _, ln_s) = row_lse(z, inv_t);
            (m + ln_s - z[y as usize] as f64 * inv_t).max(0.0) as f32
        })
        .collect())
}

/// Cross-entropy against soft targets `q` (`[N, C]`, each row a probability vector):
/// `ce_i = −Σ_c q_ic log p_ic`. Errors as [`row_stats`], plus a shape mismatch or targets that
/// are negative, non-finite or do not sum to 1 within 1e-3.
pub fn cross_entropy_soft(
    logits: &[f32],
    n_classes: usize,
    temperature: f32,
    targets: &[f32],
) -> Result<Vec<f32>> {
    let n = check_logits(logits, n_classes, temperature)?;
    if targets.len() != logits.len() {
        return Err(Error::arg(
            "targets",
            format!(
                "has {} values, expected {} ({n} × {n_classes})",
                targets.len(),
                logits.len()
            ),
        ));
    }
    for (i, q) in targets.chunks_exact(n_classes).enumerate() {
        let s: f64 = q.iter().map(|&v| v as f64).sum();
        if q.iter().any(|&v| !v.is_finite() || v < 0.0) || (s - 1.0).abs() > 1e-3 {
            return Err(Error::arg(
                "targets",
                format!("row {i} is not a probability vector (sum {s})"),
            ));
        }
    }
    let inv_t = 1.0 / temperature as f64;
    Ok(logits
        .chunks_exact(n_classes)
        .zip(targets.chunks_exact(n_classes))
        .map(|(z, q)| {
            let (m, _, ln_s) = row_lse(z, inv_t);
            let ce: f64 = z
                .iter()
                .zip(q)
                .map(|(&v, &qc)| -(qc as f64) * (v as f64 * inv_t - m - ln_s))
                .sum();
            ce.max(0.0) as f32
        })
        .collect())
}
