//! The multi-task merges of image encoders, with task vectors `τ_j = θ_j − θ0`:
//!
//! * task arithmetic `θ0 + Σ_j w_j τ_j` ([`merge_encoders`]): weight averaging (`w_j = 1/M`),
//!   task arithmetic (`w_j = 0.3`), and DaWin's merges (`w_j = s·λ_j`);
//! * TIES-merging `θ0 + s·τ_m` ([`ties_merge`]);
//! * the distance `‖θ_j − θ0‖ / ‖θ0‖` that tells a fine-tune of θ0 from an unrelated encoder
//!   ([`relative_distance`]).
//!
//! The fine-tuned encoders are [`ParamSource`]s (in memory, or memory-mapped checkpoints read
//! parameter by parameter by [`dawin_core::merge`]): every merge is one pass over the M + 1
//! encoders, so memory holds θ0, the result and one parameter per model. The head is θ0's
//! (unused: each dataset has its own).
use crate::error::{Error, Result};
use dawin_core::merge::{
    relative_distance as param_distance, task_arithmetic_params, ties_merge_params, ParamSource,
};
use dawin_vit::ClipClassifier;

/// Task arithmetic on the encoder: `θ0 + Σ_j w_j τ_j`, computed as `(1 − Σ_j w_j) θ0 + Σ_j w_j
/// θ_j` ([`dawin_core::merge::task_arithmetic`]) parameter by parameter
/// ([`task_arithmetic_params`]). The head is θ0's.
pub fn merge_encoders<E: ParamSource + ?Sized>(
    base: &ClipClassifier,
    models: &[&E],
    weights: &[f32],
) -> Result<ClipClassifier>
where
    Error: From<E::Error>,
{
    let mut w = base.weights().clone();
    let b = base.weights().encoder_params();
    task_arithmetic_params(&b, models, weights, &mut w.encoder_params_mut())?;
    Ok(ClipClassifier::new(base.config().clone(), w)?)
}

/// TIES-merging of the encoders: `θ0 + scale · τ_m` with τ_m the TIES task vector of the
/// encoders' task vectors, all encoder parameters flattened into one vector per model
/// ([`ties_merge_params`]: equal, value for value, to
/// [`dawin_core::merge::ties_task_vector`] over the flattened vectors, streamed). Errors name
/// `--ties-top` when `top ∉ (0, 1]`.
pub fn ties_merge<E: ParamSource + ?Sized>(
    base: &ClipClassifier,
    models: &[&E],
    top: f32,
    scale: f32,
) -> Result<ClipClassifier>
where
    Error: From<E::Error>,
{
    if models.is_empty() {
        return Err(Error::invalid("ties", "no task vector"));
    }
    if !(top > 0.0 && top <= 1.0) {
        return Err(Error::invalid(
            "--ties-top",
            format!("must lie in (0, 1], got {top}"),
        ));
    }
    let mut w = base.weights().clone();
    let b = base.weights().encoder_params();
    let mut out = w.encoder_params_mut();
    ties_merge_params(&b, models, top, scale, &mut out)?;
    Ok(ClipClassifier::new(base.config().clone(), w)?)
}

/// `‖θ − θ0‖₂ / ‖θ0‖₂` over the encoder's parameters (the head excluded), read parameter by
/// parameter, sums in f64. A fine-tune stays close to its base (the demo's: 0.10–0.16); two
/// unrelated weight sets of similar norm, such as encoders pre-trained separately, lie about √2
/// apart, which [`crate::mtl::evaluate_mtl`] refuses above
/// [`crate::mtl::MtlConfig::max_distance`].
pub fn relative_distance<E: ParamSource + ?Sized>(base: &ClipClassifier, model: &E) -> Result<f64>
where
    Error: From<E::Error>,
{
    Ok(param_distance(&base.weights().encoder_params(), model)?)
}

/// The encoder `model` as a classifier with θ0's config and head: its parameters read one by
/// one into a copy of θ0 (the head is unused: each dataset has its own).
pub(crate) fn encoder_of<E: ParamSource + ?Sized>(
    base: &ClipClassifier,
    model: &E,
) -> Result<ClipClassifier>
where
    Error: From<E::Error>,
{
    let mut w = base.weights().clone();
    let b = base.weights().encoder_params();
    dawin_core::merge::check_aligned(&b, model)?;
    for (i, dst) in w.encoder_params_mut().into_iter().enumerate() {
        dst.copy_from_slice(&model.param(i)?);
    }
    Ok(ClipClassifier::new(base.config().clone(), w)?)
}
