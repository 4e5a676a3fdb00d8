//! Stage 0, the inputs: every check that runs before any forward, so that a bad argument, a
//! dataset that does not fit the model or a θ1 fine-tuned from another base
//! (`‖θ1 − θ0‖/‖θ0‖ > max_distance`) is an error naming it, never a quiet wrong number (the
//! multi-task checks: `mtl/checks.rs`).
use super::config::EvalConfig;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Interpolate;
use dawin_core::expertise::expertise_by_name;
use dawin_core::expertise::Expertise;
use std::collections::HashSet;

/// The datasets a two-model evaluation scores (ID first) and its expertise metric.
pub(crate) type Checked<'d> = (Vec<&'d dyn Dataset>, Box<dyn Expertise>);

/// Checks a two-model evaluation's inputs ([`super::eval::evaluate`]): θ0 and θ1 mergeable and
/// close ([`check_distance`]), the settings, the expertise metric, and every dataset against the
/// model ([`check_dataset`]), the evaluated ones (`id` first, then `tests`) named once each.
/// Returns the evaluated datasets and the metric.
pub(crate) fn check_eval<'d, M: Interpolate>(
    m0: &M,
    m1: &M,
    val: &dyn Dataset,
    id: &'d dyn Dataset,
    tests: &[&'d dyn Dataset],
    config: &EvalConfig,
) -> Result<Checked<'d>> {
    m0.check_compatible(m1)?;
    check_distance(m0, m1, config.max_distance)?;
    if config.methods.is_empty() {
        return Err(Error::invalid("--methods", "no method selected"));
    }
    if config.k == 0 {
        return Err(Error::invalid("--k", "must be ≥ 1"));
    }
    if let Some(a) = config.wise_alpha {
        if !(0.0..=1.0).contains(&a) {
            return Err(Error::invalid(
                "--wise-alpha",
                format!("must lie in [0, 1], got {a}"),
            ));
        }
    }
    let metric = expertise_by_name(&config.expertise)?;
    let mut evals: Vec<&dyn Dataset> = vec![id];
    evals.extend_from_slice(tests);
    for d in std::iter::once(val).chain(evals.iter().copied()) {
        check_dataset(m0, d)?;
    }
    unique(evals.iter().map(|d| d.name()))?;
    Ok((evals, metric))
}

/// Errors on the first name that appears twice (`dataset `x`: appears twice`).
pub(crate) fn unique<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(Error::invalid(format!("dataset `{n}`"), "appears twice"));
        }
    }
    Ok(())
}

/// A dataset fits a model: samples of the model's input size, one label per sample, every
/// label a class of the head (of its class mapping, when it has one), every mapped head class a
/// class of the head.
pub(crate) fn check_dataset<M: Interpolate>(model: &M, d: &dyn Dataset) -> Result<()> {
    let what = || format!("dataset `{}`", d.name());
    if d.is_empty() {
        return Err(Error::invalid(what(), "is empty (no samples)"));
    }
    if d.sample_numel() != model.input_numel() {
        return Err(Error::invalid(
            what(),
            format!(
                "samples have {} values, the model takes {}",
                d.sample_numel(),
                model.input_numel()
            ),
        ));
    }
    if d.labels().len() != d.len() {
        return Err(Error::invalid(
            what(),
            format!("{} labels for {} samples", d.labels().len(), d.len()),
        ));
    }
    // The head the convention needs, the mapping's head classes, every label a class.
    crate::data::check_head(d, model.num_classes())
}

/// Refuses θ1 when it lies farther than `max` from θ0 ([`Interpolate::relative_distance`]).
pub(crate) fn check_distance<M: Interpolate>(m0: &M, m1: &M, max: f64) -> Result<()> {
    check_max_distance(max)?;
    match m0.relative_distance(m1) {
        Some(d) if d.is_nan() || d > max => Err(Error::invalid(
            "θ1",
            format!(
                "lies at ‖θ1 − θ0‖/‖θ0‖ = {d:.3} from θ0 (more than --max-distance {max}): was it \
                 fine-tuned from another pre-trained model?"
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn check_max_distance(max: f64) -> Result<()> {
    if max.is_nan() || max <= 0.0 {
        return Err(Error::invalid(
            "--max-distance",
            format!("must be positive, got {max}"),
        ));
    }
    Ok(())
}
