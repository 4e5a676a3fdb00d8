//! Input validation and clamping shared by the mixtures.

use crate::error::{invalid, MixtureError, Result};

/// Smallest allowed clamp: below about 1.3·10⁻¹⁰ the reference's moment formula
/// `c = m(1−m)/(v + 10⁻¹⁰) − 1` can turn negative for a component sitting on the clamp.
pub(crate) const MIN_CLAMP_EPS: f64 = 1e-9;
/// Largest allowed clamp.
pub(crate) const MAX_CLAMP_EPS: f64 = 1e-2;

pub(crate) fn check_common(
    k: usize,
    max_iter: usize,
    tol: f64,
    n_init: usize,
    clamp_eps: f64,
) -> Result<()> {
    if k == 0 {
        return Err(MixtureError::ZeroComponents);
    }
    if max_iter == 0 {
        return Err(invalid(
            "max_iter",
            0,
            "at least one EM iteration is required",
        ));
    }
    if !(tol.is_finite() && tol >= 0.0) {
        return Err(invalid("tol", tol, "must be finite and non-negative"));
    }
    if n_init == 0 {
        return Err(invalid(
            "n_init",
            0,
            "at least one initialisation is required",
        ));
    }
    check_clamp(clamp_eps)
}

pub(crate) fn check_clamp(clamp_eps: f64) -> Result<()> {
    if !(MIN_CLAMP_EPS..=MAX_CLAMP_EPS).contains(&clamp_eps) {
        return Err(invalid("clamp_eps", clamp_eps, "must lie in [1e-9, 1e-2]"));
    }
    Ok(())
}

/// Checks one coefficient (finite, in [0, 1]).
#[inline]
fn check_unit(index: usize, value: f64) -> Result<()> {
    if !value.is_finite() {
        return Err(MixtureError::NonFinite { index, value });
    }
    if !(0.0..=1.0).contains(&value) {
        return Err(MixtureError::OutOfRange { index, value });
    }
    Ok(())
}

/// Coefficients in `[0, 1]` converted to f64 and clamped to `[eps, 1 − eps]`.
pub(crate) fn clamp_unit<T: Copy + Into<f64>>(values: &[T], eps: f64) -> Result<Vec<f64>> {
    if values.is_empty() {
        return Err(MixtureError::Empty { what: "values" });
    }
    let hi = 1.0 - eps;
    let mut out = Vec::with_capacity(values.len());
    let mut bad = false;
    for &v in values {
        let v: f64 = v.into();
        // false for NaN too
        bad |= !(0.0..=1.0).contains(&v);
        out.push(v.clamp(eps, hi));
    }
    if bad {
        for (i, &v) in values.iter().enumerate() {
            check_unit(i, v.into())?;
        }
    }
    Ok(out)
}

/// Sorts positive finite doubles ascending (their bit patterns sort like the values) with an
/// LSD radix sort on 11-bit digits; passes whose digit is the same for every value are skipped.
pub(crate) fn sort_positive(x: &[f64]) -> Vec<f64> {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    const PASSES: usize = 64usize.div_ceil(BITS as usize);
    let n = x.len();
    let mut a: Vec<u64> = x.iter().map(|v| v.to_bits()).collect();
    debug_assert!(x.iter().all(|v| *v > 0.0 && v.is_finite()));
    if n < 256 {
        a.sort_unstable();
        return a.into_iter().map(f64::from_bits).collect();
    }
    let mut hist = vec![[0u32; BUCKETS]; PASSES];
    for &k in &a {
        for (p, h) in hist.iter_mut().enumerate() {
            h[((k >> (p as u32 * BITS)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    let mut b = vec![0u64; n];
    for (p, h) in hist.iter_mut().enumerate() {
        if h.iter().any(|&c| c as usize == n) {
            continue; // every key has the same digit here
        }
        let mut sum = 0u32;
        for c in h.iter_mut() {
            let t = *c;
            *c = sum;
            sum += t;
        }
        let shift = p as u32 * BITS;
        for &k in &a {
            let d = ((k >> shift) as usize) & (BUCKETS - 1);
            b[h[d] as usize] = k;
            h[d] += 1;
        }
        std::mem::swap(&mut a, &mut b);
    }
    a.into_iter().map(f64::from_bits).collect()
}

/// Rows on the simplex (row-major, `m` per row) converted to f64, each entry clamped to at
/// least `eps`. Every raw row must sum to 1 within `sum_tol`.
pub(crate) fn clamp_rows<T: Copy + Into<f64>>(
    rows: &[T],
    m: usize,
    eps: f64,
    sum_tol: f64,
) -> Result<Vec<f64>> {
    if m < 2 {
        return Err(invalid(
            "m",
            m,
            "a Dirichlet mixture needs at least 2 columns",
        ));
    }
    if rows.is_empty() {
        return Err(MixtureError::Empty { what: "rows" });
    }
    if !rows.len().is_multiple_of(m) {
        return Err(MixtureError::Shape {
            what: "rows",
            len: rows.len(),
            dim: m,
        });
    }
    let mut out = Vec::with_capacity(rows.len());
    for (r, row) in rows.chunks_exact(m).enumerate() {
        let mut sum = 0.0;
        for (j, &v) in row.iter().enumerate() {
            let v: f64 = v.into();
            check_unit(r * m + j, v)?;
            sum += v;
            out.push(v.max(eps));
        }
        if (sum - 1.0).abs() > sum_tol {
            return Err(MixtureError::RowSum {
                row: r,
                sum,
                tol: sum_tol,
            });
        }
    }
    Ok(out)
}

/// Index of the largest value, the first one on ties.
#[inline]
pub(crate) fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate().skip(1) {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Normalised posteriors `exp(lₖ − max) / Σ exp(lⱼ − max)` in place.
pub(crate) fn softmax_in_place(l: &mut [f64]) {
    let m = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for v in l.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in l.iter_mut() {
        *v /= s;
    }
}

/// Validates mixture weights: finite, non-negative, summing to 1 within 1e-6.
pub(crate) fn check_weights(weights: &[f64]) -> Result<()> {
    if weights.is_empty() {
        return Err(MixtureError::ZeroComponents);
    }
    for (k, &w) in weights.iter().enumerate() {
        if !(w.is_finite() && w >= 0.0) {
            return Err(invalid(
                format!("weights[{k}]"),
                w,
                "must be finite and non-negative",
            ));
        }
    }
    let s: f64 = weights.iter().sum();
    if (s - 1.0).abs() > 1e-6 {
        return Err(invalid("sum of weights", s, "must be 1 (within 1e-6)"));
    }
    Ok(())
}

/// Validates a shape parameter: finite and positive.
pub(crate) fn check_shape(name: &str, k: usize, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(
            format!("{name}[{k}]"),
            v,
            "must be finite and positive",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_matches_the_standard_sort() {
        let mut st = 7u64;
        for n in [1usize, 5, 255, 256, 1000, 4099] {
            let x: Vec<f64> = (0..n)
                .map(|i| {
                    st = st
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    match i % 5 {
                        0 => 0.5,
                        1 => 1e-300,
                        _ => {
                            ((st >> 11) as f64 + 1.0) / (1u64 << 53) as f64
                                * [1.0, 1e-6, 1e6][i % 3]
                        }
                    }
                })
                .collect();
            let mut want = x.clone();
            want.sort_by(f64::total_cmp);
            assert_eq!(sort_positive(&x), want, "n = {n}");
        }
        assert_eq!(sort_positive(&[0.3; 300]), vec![0.3; 300]);
    }
}
