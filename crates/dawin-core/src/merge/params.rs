//! Merges of whole models read parameter by parameter: the [`ParamSource`] abstraction (a
//! model's parameters as named f32 slices, in memory or in a memory-mapped checkpoint), task
//! arithmetic `θ0 + Σ_j w_j τ_j` over such sources, and the task-vector distance
//! `‖θ − θ0‖₂ / ‖θ0‖₂`.
//!
//! Every function here makes one pass over the sources, parameter by parameter: memory holds the
//! base, the output and one parameter per source, whatever the number of models.

use std::borrow::Cow;

use super::task_arithmetic;
use crate::error::{Error, Result};

/// A model's parameters as an ordered list of named f32 slices, each read on its own: the one
/// abstraction the streaming merges ([`task_arithmetic_params`], [`super::ties_merge_params`],
/// [`relative_distance`]) read. Two sources line up when they have the same number of
/// parameters with the same lengths (parameter `i` of one merges with parameter `i` of the
/// other).
///
/// In-memory weights borrow their slices ([`Cow::Borrowed`]); a memory-mapped checkpoint reads
/// and converts one tensor when asked ([`Cow::Owned`]), so a merge of M checkpoints never holds
/// M models. Slices `[&[f32]]` are a source (parameter names `#0`, `#1`, …).
pub trait ParamSource {
    /// The error of reading a parameter (a checkpoint's I/O or format error); merges also
    /// report argument errors ([`crate::Error`]) through it.
    type Error: From<Error>;
    /// Number of parameters.
    fn param_count(&self) -> usize;
    /// The name of parameter `i` as error messages show it (e.g. the checkpoint tensors it is
    /// read from).
    fn param_name(&self, i: usize) -> String;
    /// Number of values of parameter `i`, known without reading it.
    fn param_len(&self, i: usize) -> usize;
    /// Parameter `i` as f32, read alone.
    fn param(&self, i: usize) -> std::result::Result<Cow<'_, [f32]>, Self::Error>;
}

impl ParamSource for [&[f32]] {
    type Error = Error;
    fn param_count(&self) -> usize {
        self.len()
    }
    fn param_name(&self, i: usize) -> String {
        format!("#{i}")
    }
    fn param_len(&self, i: usize) -> usize {
        self[i].len()
    }
    fn param(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        self.get(i)
            .map(|s| Cow::Borrowed(*s))
            .ok_or_else(|| Error::arg("param", format!("#{i} is out of range")))
    }
}

/// Checks that `model` lines up with `base`: the same number of parameters, each of the same
/// length. Errors name the parameter (by `model`'s names).
pub fn check_aligned<S: ParamSource + ?Sized>(base: &[&[f32]], model: &S) -> Result<()> {
    if model.param_count() != base.len() {
        return Err(Error::Mismatch(format!(
            "{} parameters, the base has {}",
            model.param_count(),
            base.len()
        )));
    }
    for (i, b) in base.iter().enumerate() {
        if model.param_len(i) != b.len() {
            return Err(Error::Mismatch(format!(
                "parameter {} has {} values, the base {}",
                model.param_name(i),
                model.param_len(i),
                b.len()
            )));
        }
    }
    Ok(())
}

/// Task arithmetic over whole models: `out_i = θ0_i + Σ_j w_j (θ_j,i − θ0_i)` for every
/// parameter `i`, each computed by [`task_arithmetic`] (as `(1 − Σ_j w_j) θ0 + Σ_j w_j θ_j` in
/// f32) from the models' parameter `i` read alone: one pass over the M models.
///
/// `out` has `base`'s layout. Errors: no model, a weight count or a layout that differs from
/// `base`'s (named), a read error of a model.
pub fn task_arithmetic_params<S: ParamSource + ?Sized>(
    base: &[&[f32]],
    models: &[&S],
    weights: &[f32],
    out: &mut [&mut [f32]],
) -> std::result::Result<(), S::Error> {
    check_out(base, out)?;
    for m in models {
        check_aligned(base, *m)?;
    }
    for (i, (b, dst)) in base.iter().zip(out.iter_mut()).enumerate() {
        let read: Vec<Cow<'_, [f32]>> = models
            .iter()
            .map(|m| m.param(i))
            .collect::<std::result::Result<_, _>>()?;
        let slices: Vec<&[f32]> = read.iter().map(|c| &c[..]).collect();
        task_arithmetic(b, &slices, weights, dst)?;
    }
    Ok(())
}

/// `‖θ − θ0‖₂ / ‖θ0‖₂` over every parameter (`‖θ − θ0‖₂` itself when `θ0` is all zeros), read
/// parameter by parameter, sums in f64. A fine-tune stays close to its base (the demo's
/// fine-tunes: 0.10–0.16); two unrelated weight sets of similar norm lie about √2 apart.
/// Errors: a layout that differs from `base`'s, a read error.
pub fn relative_distance<S: ParamSource + ?Sized>(
    base: &[&[f32]],
    model: &S,
) -> std::result::Result<f64, S::Error> {
    check_aligned(base, model)?;
    let (mut num, mut den) = (0f64, 0f64);
    for (i, b) in base.iter().enumerate() {
        let p = model.param(i)?;
        for (x, y) in p.iter().zip(b.iter()) {
            let d = *x as f64 - *y as f64;
            num += d * d;
            den += *y as f64 * *y as f64;
        }
    }
    Ok(if den > 0.0 {
        (num / den).sqrt()
    } else {
        num.sqrt()
    })
}

/// `out` must have `base`'s layout.
pub(super) fn check_out(base: &[&[f32]], out: &[&mut [f32]]) -> Result<()> {
    if out.len() != base.len() {
        return Err(Error::arg(
            "out",
            format!("{} parameters, the base has {}", out.len(), base.len()),
        ));
    }
    if let Some(i) = (0..base.len()).find(|&i| out[i].len() != base[i].len()) {
        return Err(Error::arg(
            "out",
            format!(
                "parameter #{i} has {} values, the base {}",
                out[i].len(),
                base[i].len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_distance_matches_a_hand_computed_value() {
        // θ0 = ([3, 4], [0]) has norm 5; θ − θ0 = ([0, 0], [1.2]) plus ([1.6], …) below:
        // θ = ([3, 5.6], [1.2]) → θ − θ0 = ([0, 1.6], [1.2]), norm √(2.56 + 1.44) = 2,
        // so the distance is 2 / 5 = 0.4.
        let (b0, b1) = ([3.0f32, 4.0], [0.0f32]);
        let (m0, m1) = ([3.0f32, 5.6], [1.2f32]);
        let base: [&[f32]; 2] = [&b0, &b1];
        let model: [&[f32]; 2] = [&m0, &m1];
        let d = relative_distance(&base, &model[..]).unwrap();
        assert!((d - 0.4).abs() < 1e-6, "{d}");
        // A zero base: the absolute distance.
        let (z0, z1) = ([0.0f32, 0.0], [0.0f32]);
        let zero: [&[f32]; 2] = [&z0, &z1];
        let d = relative_distance(&zero, &model[..]).unwrap();
        let want = (9.0f64 + 5.6f32 as f64 * 5.6f32 as f64 + 1.2f32 as f64 * 1.2f32 as f64).sqrt();
        assert!((d - want).abs() < 1e-9, "{d} vs {want}");
        // Misaligned models are refused, naming the parameter.
        let short: [&[f32]; 2] = [&m0[..1], &m1];
        let e = relative_distance(&base, &short[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("#0") && e.contains("1 values"), "{e}");
        assert!(relative_distance(&base, &model[..1]).is_err());
    }

    #[test]
    fn task_arithmetic_params_merges_every_parameter() {
        // θ0 = ([1, 2], [4]), θ1 = ([3, 2], [0]), θ2 = ([1, 6], [4]); w = (0.5, 0.25):
        // θ0 + 0.5 (θ1 − θ0) + 0.25 (θ2 − θ0) = ([2, 3], [2]).
        let (b0, b1, p0, p1, q0, q1) = (
            [1.0f32, 2.0],
            [4.0f32],
            [3.0f32, 2.0],
            [0.0f32],
            [1.0f32, 6.0],
            [4.0f32],
        );
        let base: [&[f32]; 2] = [&b0, &b1];
        let m1: [&[f32]; 2] = [&p0, &p1];
        let m2: [&[f32]; 2] = [&q0, &q1];
        let (mut o0, mut o1) = ([0f32; 2], [0f32; 1]);
        let mut out: [&mut [f32]; 2] = [&mut o0, &mut o1];
        task_arithmetic_params(&base, &[&m1[..], &m2[..]], &[0.5, 0.25], &mut out).unwrap();
        assert_eq!((o0, o1), ([2.0, 3.0], [2.0]));
        let mut bad: [&mut [f32]; 1] = [&mut o0];
        assert!(task_arithmetic_params(&base, &[&m1[..]], &[1.0], &mut bad).is_err());
        let mut out: [&mut [f32]; 2] = [&mut o0, &mut o1];
        assert!(task_arithmetic_params::<[&[f32]]>(&base, &[], &[], &mut out).is_err());
    }
}
