//! Evaluation metrics: accuracy (optionally over a class subset), Pearson correlation, and the
//! TT/TF/FT/FF split of two models' correctness.

use crate::error::{Error, Result};
use crate::stats::{check_labels, check_logits};

/// Per-row predictions: the argmax over all classes, or over `class_subset` only (as for
/// ImageNet-R and -A, which use 200 of the 1000 ImageNet classes). Predictions are class indices of
/// the full `[0, C)` range either way.
pub fn predictions(
    logits: &[f32],
    n_classes: usize,
    class_subset: Option<&[usize]>,
) -> Result<Vec<u32>> {
    check_logits(logits, n_classes, 1.0)?;
    let all: Vec<usize>;
    let subset = match class_subset {
        Some(s) => {
            if s.is_empty() {
                return Err(Error::arg("class_subset", "is empty"));
            }
            if let Some(&c) = s.iter().find(|&&c| c >= n_classes) {
                return Err(Error::arg(
                    "class_subset",
                    format!("class {c} is outside [0, {n_classes})"),
                ));
            }
            s
        }
        None => {
            all = (0..n_classes).collect();
            &all
        }
    };
    Ok(logits
        .chunks_exact(n_classes)
        .map(|z| {
            let mut best = subset[0];
            for &c in subset {
                if z[c] > z[best] {
                    best = c;
                }
            }
            best as u32
        })
        .collect())
}

/// Whether each prediction equals its label.
pub fn correct(predictions: &[u32], labels: &[i64]) -> Result<Vec<bool>> {
    if predictions.len() != labels.len() {
        return Err(Error::arg(
            "labels",
            format!(
                "has {} entries for {} predictions",
                labels.len(),
                predictions.len()
            ),
        ));
    }
    Ok(predictions
        .iter()
        .zip(labels)
        .map(|(&p, &y)| p as i64 == y)
        .collect())
}

/// Top-1 accuracy in [0, 1] of logits `[N, C]` against labels, optionally restricted to a class
/// subset (see [`predictions`]). Errors: empty input, labels out of range or of the wrong count.
pub fn accuracy(
    logits: &[f32],
    n_classes: usize,
    labels: &[i64],
    class_subset: Option<&[usize]>,
) -> Result<f64> {
    let n = check_logits(logits, n_classes, 1.0)?;
    check_labels(labels, n, n_classes)?;
    let pred = predictions(logits, n_classes, class_subset)?;
    let c = correct(&pred, labels)?;
    Ok(c.iter().filter(|&&x| x).count() as f64 / n as f64)
}

/// Pearson correlation `cov(x, y) / (σ_x σ_y)`. Errors: fewer than 2 samples, length mismatch,
/// non-finite values, or a constant input (correlation undefined).
pub fn pearson(x: &[f64], y: &[f64]) -> Result<f64> {
    if x.len() != y.len() {
        return Err(Error::arg(
            "y",
            format!("has {} values, x has {}", y.len(), x.len()),
        ));
    }
    if x.len() < 2 {
        return Err(Error::arg("x", "needs at least 2 samples"));
    }
    if let Some(i) = x.iter().chain(y).position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "pearson input",
            location: format!("index {}", i % x.len()),
            value: f64::NAN,
        });
    }
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    if sxx == 0.0 || syy == 0.0 {
        return Err(Error::arg("x", "is constant: the correlation is undefined"));
    }
    Ok(sxy / (sxx.sqrt() * syy.sqrt()))
}

/// Which of two models is right on a sample: the first letter is θ0, the second θ1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Both correct.
    TT,
    /// θ0 correct, θ1 wrong.
    TF,
    /// θ0 wrong, θ1 correct.
    FT,
    /// Both wrong.
    FF,
}

impl Split {
    /// All four, in the order TT, TF, FT, FF.
    pub const ALL: [Split; 4] = [Split::TT, Split::TF, Split::FT, Split::FF];

    /// The split of one sample.
    pub fn of(correct0: bool, correct1: bool) -> Split {
        match (correct0, correct1) {
            (true, true) => Split::TT,
            (true, false) => Split::TF,
            (false, true) => Split::FT,
            (false, false) => Split::FF,
        }
    }

    /// `"TT"`, `"TF"`, `"FT"` or `"FF"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::TT => "TT",
            Split::TF => "TF",
            Split::FT => "FT",
            Split::FF => "FF",
        }
    }
}

/// Summary of a per-sample quantity on one split.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitSummary {
    /// The split.
    pub split: Split,
    /// Samples in it.
    pub count: usize,
    /// Mean of the quantity over them (NaN-free: `None` when the split is empty).
    pub mean: Option<f64>,
}

/// Per-sample split of two models' correctness.
pub fn correctness_split(correct0: &[bool], correct1: &[bool]) -> Result<Vec<Split>> {
    if correct0.len() != correct1.len() {
        return Err(Error::arg(
            "correct1",
            format!(
                "has {} entries, correct0 has {}",
                correct1.len(),
                correct0.len()
            ),
        ));
    }
    Ok(correct0
        .iter()
        .zip(correct1)
        .map(|(&a, &b)| Split::of(a, b))
        .collect())
}

/// Count and mean of `values` on each split, in the order TT, TF, FT, FF.
pub fn split_summary(splits: &[Split], values: &[f64]) -> Result<[SplitSummary; 4]> {
    if splits.len() != values.len() {
        return Err(Error::arg(
            "values",
            format!("has {} entries for {} samples", values.len(), splits.len()),
        ));
    }
    Ok(Split::ALL.map(|s| {
        let v: Vec<f64> = splits
            .iter()
            .zip(values)
            .filter(|(x, _)| **x == s)
            .map(|(_, v)| *v)
            .collect();
        SplitSummary {
            split: s,
            count: v.len(),
            mean: (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
        }
    }))
}
