//! TIES-merging (Yadav et al., 2023), a baseline of the multi-task table: the M task vectors
//! `τ_j = θ_j − θ0` are trimmed, a sign is elected per parameter, and the values of that sign are
//! averaged:
//!
//! 1. trim: in each τ_j keep the `ceil(top · n)` entries of largest |τ_j| (entries tied with the
//!    smallest kept magnitude are kept too), zero the rest → τ̂_j;
//! 2. elect: `γ = sign(Σ_j τ̂_j)` per parameter (where the sum is exactly 0, the sign of the sum
//!    of all γ, as the reference code's "majority" rule);
//! 3. disjoint mean: `τ_m = Σ_{j: τ̂_j ≠ 0, sign τ̂_j = γ} τ̂_j / #{those j}` (0 when none).
//!
//! The merged model is `θ0 + s·τ_m`. [`ties_task_vector`] works on flat task vectors in memory;
//! [`ties_merge_params`] streams over [`ParamSource`]s (all parameters of a model form one
//! vector) and equals it value for value.

use super::params::{check_aligned, check_out, ParamSource};
use crate::error::{Error, Result};

/// TIES-merging's merged task vector `τ_m` (Yadav et al., 2023) of flat task vectors `taus`
/// (M of one length):
///
/// 1. trim: in each τ_j keep the `ceil(top · n)` entries of largest |τ_j| (entries tied with the
///    smallest kept magnitude are kept too), zero the rest → τ̂_j;
/// 2. elect: `γ = sign(Σ_j τ̂_j)` per parameter (where the sum is exactly 0, the sign of the sum
///    of all γ, as the reference code's "majority" rule);
/// 3. disjoint mean: `τ_m = Σ_{j: τ̂_j ≠ 0, sign τ̂_j = γ} τ̂_j / #{those j}` (0 when none).
///
/// The merged model is `θ0 + s·τ_m`. Errors: no task vector, ragged lengths, `top ∉ (0, 1]`.
pub fn ties_task_vector(taus: &[&[f32]], top: f32) -> Result<Vec<f32>> {
    let n = taus
        .first()
        .ok_or_else(|| Error::arg("taus", "no task vector"))?
        .len();
    if let Some(j) = taus.iter().position(|t| t.len() != n) {
        return Err(Error::arg(
            "taus",
            format!(
                "task vector {j} has {} values, task vector 0 has {n}",
                taus[j].len()
            ),
        ));
    }
    let keep = ties_keep(top, n)?;
    if n == 0 {
        return Ok(Vec::new());
    }
    // Per-model trim thresholds (one magnitude buffer, no trimmed copies: memory stays M·n + n).
    let mut mags = vec![0f32; n];
    let thr: Vec<f32> = taus
        .iter()
        .map(|t| {
            for (m, v) in mags.iter_mut().zip(t.iter()) {
                *m = v.abs();
            }
            kth_largest(&mut mags, keep)
        })
        .collect();
    drop(mags);
    let trimmed = |i: usize| {
        taus.iter()
            .zip(&thr)
            .map(move |(t, &th)| if t[i].abs() >= th { t[i] } else { 0.0 })
    };
    let mut sign: Vec<i8> = (0..n).map(|i| ties_sign(trimmed(i))).collect();
    fill_majority(&mut sign);
    Ok((0..n).map(|i| ties_mean(trimmed(i), sign[i])).collect())
}

/// TIES-merging of whole models: `out = θ0 + scale · τ_m` with `τ_m` = [`ties_task_vector`] of
/// the task vectors `θ_j − θ0`, all parameters of a model flattened into one vector. Runs as
/// passes over the models, parameter by parameter: each model's trim threshold (one model's
/// magnitudes in memory at a time), the elected signs (one byte per value), then the disjoint
/// mean — equal, value for value, to [`ties_task_vector`] over the flattened vectors.
///
/// `out` has `base`'s layout. Errors: no model, `top ∉ (0, 1]`, a layout that differs from
/// `base`'s (named), a read error of a model.
pub fn ties_merge_params<S: ParamSource + ?Sized>(
    base: &[&[f32]],
    models: &[&S],
    top: f32,
    scale: f32,
    out: &mut [&mut [f32]],
) -> std::result::Result<(), S::Error> {
    if models.is_empty() {
        return Err(Error::arg("models", "no task vector").into());
    }
    check_out(base, out)?;
    for m in models {
        check_aligned(base, *m)?;
    }
    let n: usize = base.iter().map(|s| s.len()).sum();
    let keep = ties_keep(top, n)?;
    if n == 0 {
        return Ok(());
    }
    // τ_j of parameter i: θ_j − θ0.
    let tau = |m: &S, i: usize| -> std::result::Result<Vec<f32>, S::Error> {
        let p = m.param(i)?;
        Ok(p.iter().zip(base[i]).map(|(x, y)| x - y).collect())
    };
    // 1. Trim thresholds: the `keep`-th largest |τ_j| of each model.
    let mut thr = Vec::with_capacity(models.len());
    {
        let mut mags = Vec::with_capacity(n);
        for m in models {
            mags.clear();
            for i in 0..base.len() {
                mags.extend(tau(m, i)?.iter().map(|v| v.abs()));
            }
            thr.push(kth_largest(&mut mags, keep));
        }
    }
    let trim = |v: f32, t: f32| if v.abs() >= t { v } else { 0.0 };
    let taus_of = |i: usize| -> std::result::Result<Vec<Vec<f32>>, S::Error> {
        models
            .iter()
            .zip(&thr)
            .map(|(m, &t)| Ok(tau(m, i)?.into_iter().map(|v| trim(v, t)).collect()))
            .collect()
    };
    // 2. Elected signs; an exact tie takes the sign of the sum of all signs.
    let mut sign: Vec<i8> = Vec::with_capacity(n);
    for (i, bi) in base.iter().enumerate() {
        let t = taus_of(i)?;
        sign.extend((0..bi.len()).map(|k| ties_sign(t.iter().map(|tj| tj[k]))));
    }
    fill_majority(&mut sign);
    // 3. Disjoint mean, merged into θ0.
    let mut off = 0;
    for (i, dst) in out.iter_mut().enumerate() {
        let t = taus_of(i)?;
        for (k, d) in dst.iter_mut().enumerate() {
            let tm = ties_mean(t.iter().map(|tj| tj[k]), sign[off + k]);
            *d = base[i][k] + scale * tm;
        }
        off += dst.len();
    }
    Ok(())
}

/// Number of values kept by the trim step: `top · n` rounded up (`top` taken as the decimal
/// it was written as, so that 20 % of 5 is 1), at least 1.
fn ties_keep(top: f32, n: usize) -> Result<usize> {
    if !(top > 0.0 && top <= 1.0) {
        return Err(Error::arg("top", format!("must lie in (0, 1], got {top}")));
    }
    // `top` as the decimal it was written as (0.2f32 is 0.200000003 as f64).
    let top_dec: f64 = format!("{top}").parse().unwrap_or(top as f64);
    let x = top_dec * n as f64;
    let keep = if (x - x.round()).abs() <= 1e-9 * x.max(1.0) {
        x.round()
    } else {
        x.ceil()
    } as usize;
    Ok(keep.clamp(1, n.max(1)))
}

/// The `keep`-th largest of `mags` (reordered in place).
fn kth_largest(mags: &mut [f32], keep: usize) -> f32 {
    let n = mags.len();
    *mags
        .select_nth_unstable_by(n - keep, |a, b| a.total_cmp(b))
        .1
}

/// The elected sign of one parameter from its trimmed values (0 where they sum to 0 exactly).
fn ties_sign(trimmed: impl Iterator<Item = f32>) -> i8 {
    let s: f32 = trimmed.sum();
    if s > 0.0 {
        1
    } else if s < 0.0 {
        -1
    } else {
        0
    }
}

/// Exact ties (sign 0) take the sign of the sum of all signs (+ when that is 0).
fn fill_majority(sign: &mut [i8]) {
    let total: i64 = sign.iter().map(|&s| s as i64).sum();
    let majority = if total >= 0 { 1 } else { -1 };
    for s in sign.iter_mut().filter(|s| **s == 0) {
        *s = majority;
    }
}

/// The disjoint mean of one parameter: the mean of the trimmed values of sign `sign`.
fn ties_mean(trimmed: impl Iterator<Item = f32>, sign: i8) -> f32 {
    let (mut sum, mut cnt) = (0.0f32, 0usize);
    for v in trimmed {
        if v != 0.0 && (v > 0.0) == (sign > 0) {
            sum += v;
            cnt += 1;
        }
    }
    if cnt == 0 {
        0.0
    } else {
        sum / cnt as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small example worked by hand: three task vectors of four values over two parameters.
    #[test]
    fn ties_merge_params_matches_a_hand_worked_example() {
        // θ0 = ([1, 1], [0, 0]); τ1 = [0.4, -0.2, 0.1, 0.0], τ2 = [-0.1, -0.3, 0.2, 0.05],
        // τ3 = [0.2, 0.1, -0.6, 0.0]; top 0.5 of 4 → 2 kept per model:
        //   τ̂1 = [0.4, -0.2, 0, 0], τ̂2 = [0, -0.3, 0.2, 0], τ̂3 = [0.2, 0, -0.6, 0]
        //   Σ = [0.6, -0.5, -0.4, 0] → γ = [+, −, −, tie]; Σγ = −1 → the tie takes −
        //   disjoint mean: [(0.4+0.2)/2, (-0.2-0.3)/2, -0.6, none] = [0.3, -0.25, -0.6, 0]
        //   θ0 + 2·τ_m = ([1.6, 0.5], [-1.2, 0]).
        let b = ([1.0f32, 1.0], [0.0f32, 0.0]);
        let base: [&[f32]; 2] = [&b.0, &b.1];
        let m = |t: [f32; 4]| -> (Vec<f32>, Vec<f32>) {
            (vec![1.0 + t[0], 1.0 + t[1]], vec![t[2], t[3]])
        };
        let ms = [
            m([0.4, -0.2, 0.1, 0.0]),
            m([-0.1, -0.3, 0.2, 0.05]),
            m([0.2, 0.1, -0.6, 0.0]),
        ];
        let srcs: Vec<[&[f32]; 2]> = ms.iter().map(|(a, b)| [&a[..], &b[..]]).collect();
        let refs: Vec<&[&[f32]]> = srcs.iter().map(|s| &s[..]).collect();
        let (mut o0, mut o1) = ([0f32; 2], [0f32; 2]);
        let mut out: [&mut [f32]; 2] = [&mut o0, &mut o1];
        ties_merge_params(&base, &refs, 0.5, 2.0, &mut out).unwrap();
        let want = [1.6f32, 0.5, -1.2, 0.0];
        for (g, w) in o0.iter().chain(&o1).zip(want) {
            assert!((g - w).abs() < 1e-6, "{o0:?} {o1:?} vs {want:?}");
        }
        // Errors: no model, top outside (0, 1], a model of another layout.
        let mut out: [&mut [f32]; 2] = [&mut o0, &mut o1];
        assert!(ties_merge_params::<[&[f32]]>(&base, &[], 0.5, 1.0, &mut out).is_err());
        assert!(ties_merge_params(&base, &refs, 0.0, 1.0, &mut out).is_err());
        let short: [&[f32]; 1] = [&b.0];
        assert!(ties_merge_params(&base, &[&short[..]], 0.5, 1.0, &mut out).is_err());
    }

    #[test]
    fn keep_counts_the_decimal_fraction() {
        assert_eq!(ties_keep(0.2, 5).unwrap(), 1);
        assert_eq!(ties_keep(0.2, 6).unwrap(), 2);
        assert_eq!(ties_keep(1.0, 6).unwrap(), 6);
        assert_eq!(ties_keep(1e-6, 6).unwrap(), 1);
        assert!(ties_keep(1.5, 6).is_err() && ties_keep(f32::NAN, 6).is_err());
    }
}
