//! Argument checks of the GPU paths. They return the errors of the CPU references in
//! `dawin-core` (same variant, same text, same order of checks), so a caller sees the same error
//! whichever backend runs; a test compares them with the references on the same bad inputs.

use crate::error::{Error, Result};

pub(crate) fn core_arg(name: &'static str, reason: impl Into<String>) -> Error {
    Error::Core(dawin_core::Error::InvalidArgument {
        name,
        reason: reason.into(),
    })
}

/// As `dawin_core::merge`'s length check.
pub(crate) fn check_len(name: &'static str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(core_arg(
            name,
            format!("has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}

/// As `dawin_core::merge`'s coefficient check.
pub(crate) fn check_finite(name: &'static str, x: f32) -> Result<()> {
    if !x.is_finite() {
        return Err(core_arg(name, format!("must be finite, got {x}")));
    }
    Ok(())
}

/// The checks of `dawin_core::merge::lerp`.
pub(crate) fn check_lerp(a: usize, b: usize, out: usize, lambda: f32) -> Result<()> {
    check_len("b", b, a)?;
    check_len("out", out, a)?;
    check_finite("lambda", lambda)
}

/// The checks of `dawin_core::merge::multi_lerp`.
pub(crate) fn check_multi_lerp(
    a: usize,
    b: usize,
    lambdas: &[f32],
    outs: impl ExactSizeIterator<Item = usize>,
) -> Result<()> {
    check_len("b", b, a)?;
    if outs.len() != lambdas.len() {
        return Err(core_arg(
            "outs",
            format!("{} outputs for {} coefficients", outs.len(), lambdas.len()),
        ));
    }
    for (o, &l) in outs.zip(lambdas) {
        check_len("outs[k]", o, a)?;
        check_finite("lambdas", l)?;
    }
    Ok(())
}

/// The checks of `dawin_core::merge::task_arithmetic`.
pub(crate) fn check_task_arithmetic(
    base: usize,
    models: impl ExactSizeIterator<Item = usize>,
    weights: &[f32],
    out: usize,
) -> Result<()> {
    if models.len() == 0 {
        return Err(core_arg(
            "models",
            "at least one fine-tuned model is required",
        ));
    }
    if weights.len() != models.len() {
        return Err(core_arg(
            "weights",
            format!("{} weights for {} models", weights.len(), models.len()),
        ));
    }
    for m in models {
        check_len("models[j]", m, base)?;
    }
    for &w in weights {
        check_finite("weights", w)?;
    }
    check_len("out", out, base)
}

/// The shape and temperature checks of `dawin_core::stats` (all but finiteness, which the GPU
/// kernel reports); returns the number of rows.
pub(crate) fn check_logits(len: usize, n_classes: usize, temperature: f32) -> Result<usize> {
    if n_classes == 0 {
        return Err(core_arg("n_classes", "must be at least 1"));
    }
    if len == 0 {
        return Err(core_arg("logits", "is empty (no samples)"));
    }
    if !len.is_multiple_of(n_classes) {
        return Err(core_arg(
            "logits",
            format!("has {len} values, not a multiple of n_classes = {n_classes}"),
        ));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(core_arg(
            "temperature",
            format!("must be finite and > 0, got {temperature}"),
        ));
    }
    Ok(len / n_classes)
}

/// The label checks of `dawin_core::stats::cross_entropy_hard`.
pub(crate) fn check_labels(labels: &[i64], n: usize, n_classes: usize) -> Result<()> {
    if labels.len() != n {
        return Err(core_arg(
            "labels",
            format!("has {} entries for {n} samples", labels.len()),
        ));
    }
    if let Some(i) = labels
        .iter()
        .position(|&y| y < 0 || y as u64 >= n_classes as u64)
    {
        return Err(Error::Core(dawin_core::Error::LabelOutOfRange {
            index: i,
            label: labels[i],
            n_classes,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Each check against the CPU reference on the same (finite, zero) data.
    use super::*;
    use dawin_core::{merge, stats};
    use half::f16;

    fn same(ours: Result<impl std::fmt::Debug>, core: dawin_core::Result<impl std::fmt::Debug>) {
        match (ours, core) {
            (Ok(_), Ok(_)) => {}
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("ours {a:?} vs dawin-core {b:?}"),
        }
    }

    #[test]
    fn lerp_checks_match_the_reference() {
        for (na, nb, no, l) in [
            (4, 4, 4, 0.5),
            (4, 5, 4, 0.5),
            (4, 4, 3, 0.5),
            (4, 4, 4, f32::NAN),
            (4, 4, 4, f32::INFINITY),
            (0, 0, 0, 1.0),
        ] {
            let (a, b, mut o) = (
                vec![f16::ZERO; na],
                vec![f16::ZERO; nb],
                vec![f16::ZERO; no],
            );
            same(check_lerp(na, nb, no, l), merge::lerp(&a, &b, l, &mut o));
        }
    }

    #[test]
    fn multi_lerp_checks_match_the_reference() {
        let cases: [(usize, usize, Vec<f32>, Vec<usize>); 6] = [
            (5, 5, vec![0.1, 0.9], vec![5, 5]),
            (5, 4, vec![0.1], vec![5]),
            (5, 5, vec![0.1, 0.9], vec![5]),
            (5, 5, vec![0.1, 0.9], vec![5, 6]),
            (5, 5, vec![0.1, f32::NAN], vec![5, 5]),
            (5, 5, vec![], vec![]),
        ];
        for (na, nb, lambdas, outs) in cases {
            let (a, b) = (vec![0.0f32; na], vec![0.0f32; nb]);
            let mut bufs: Vec<Vec<f32>> = outs.iter().map(|&n| vec![0.0; n]).collect();
            let mut refs: Vec<&mut [f32]> = bufs.iter_mut().map(|v| v.as_mut_slice()).collect();
            same(
                check_multi_lerp(na, nb, &lambdas, outs.iter().copied()),
                merge::multi_lerp(&a, &b, &lambdas, &mut refs),
            );
        }
    }

    #[test]
    fn task_arithmetic_checks_match_the_reference() {
        let cases: [(usize, Vec<usize>, Vec<f32>, usize); 6] = [
            (3, vec![3, 3], vec![0.3, 0.3], 3),
            (3, vec![], vec![], 3),
            (3, vec![3, 3], vec![0.3], 3),
            (3, vec![3, 2], vec![0.3, 0.3], 3),
            (3, vec![3], vec![f32::NAN], 3),
            (3, vec![3], vec![0.3], 4),
        ];
        for (nbase, models, weights, nout) in cases {
            let base = vec![0.0f32; nbase];
            let bufs: Vec<Vec<f32>> = models.iter().map(|&n| vec![0.0; n]).collect();
            let refs: Vec<&[f32]> = bufs.iter().map(|v| v.as_slice()).collect();
            let mut out = vec![0.0f32; nout];
            same(
                check_task_arithmetic(nbase, models.iter().copied(), &weights, nout),
                merge::task_arithmetic(&base, &refs, &weights, &mut out),
            );
        }
    }

    #[test]
    fn cast_check_matches_the_reference() {
        let src = vec![0.0f32; 3];
        let mut dst = vec![f16::ZERO; 4];
        same(check_len("dst", 4, 3), merge::cast(&src, &mut dst));
    }

    #[test]
    fn logits_and_label_checks_match_the_reference() {
        for (len, c, t) in [
            (12, 4, 1.0f32),
            (12, 0, 1.0),
            (0, 4, 1.0),
            (13, 4, 1.0),
            (12, 4, 0.0),
            (12, 4, -1.0),
            (12, 4, f32::NAN),
            (12, 4, f32::INFINITY),
        ] {
            let z = vec![0.0f32; len];
            same(check_logits(len, c, t), stats::row_stats(&z, c, t));
        }
        for labels in [
            vec![0i64, 3, 1],
            vec![0, 4, 1],
            vec![0, -1, 1],
            vec![0, 1],
            vec![],
        ] {
            let z = vec![0.0f32; 12];
            let ours = check_logits(12, 4, 1.0).and_then(|n| check_labels(&labels, n, 4));
            same(ours, stats::cross_entropy_hard(&z, 4, 1.0, &labels));
        }
    }
}
