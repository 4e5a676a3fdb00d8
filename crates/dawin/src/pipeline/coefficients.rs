//! Stage 2, coefficients: temperatures, expertise and the interpolation coefficient λ(x).
//!
//! * Temperatures `T_j` fitted on the labelled ID validation set (minimum NLL), so that
//!   `p_j = softmax(z_j / T_j)`;
//! * the expertise of each model, `e_j(x) = exp(score_j(x))` for any
//!   [`dawin_core::expertise::Expertise`] (negative entropy `score = −H(p_j)` by default), with the context
//!   its metric needs: labels (oracles), the ensemble `½(p_0 + p_1)` or the merged model
//!   `θ(½)`'s probabilities at `T = (T0 + T1)/2` (pseudo-labels);
//! * Eq. 1 `λ(x) = e_1 / (e_0 + e_1)`, or Eq. 2 `λ(x) = (e_1 + O/T) / (e_0 + e_1 + O)` with the
//!   domain offset `O = ½(std H_0/mean H_0 + std H_1/mean H_1)`, `T = (mean H_0 + mean H_1) /
//!   mean H_0` of the dataset (or batch);
//! * the WiSE-FT plug-in `λ_wise(x) = α·λ(x)`.
//!
//! [`coefficients_from_logits`] is the same stage on logits read from files (`dawin coef`).
use super::config::Coefficient;
use super::logits::{classes_of, logits_of};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::Model;
use dawin_core::expertise::{
    ensemble_targets, expertise_by_name, merged_targets, Needs, NegCrossEntropy, PseudoSource,
};
use dawin_core::expertise::{Context, Expertise, ModelOutputs};
use dawin_core::{coef, stats, temperature};

/// `(T0, T1, fitted)`: the given temperatures, else each model's fitted on the validation
/// logits `val_z` (`c` classes) against `labels`.
pub(crate) fn temperatures(
    given: Option<(f32, f32)>,
    val_z: (&[f32], &[f32]),
    c: usize,
    labels: &[i64],
) -> Result<(f32, f32, bool)> {
    Ok(match given {
        Some((a, b)) => (a, b, false),
        None => (
            temperature::fit_temperature(val_z.0, c, labels)?.temperature,
            temperature::fit_temperature(val_z.1, c, labels)?.temperature,
            true,
        ),
    })
}

/// `(T0, T1)` fitted on the labelled validation set `val` (minimum NLL): θ0's and θ1's logits
/// computed in batches of `batch` (restricted to its class subset), each model's temperature
/// fitted on its own.
pub fn fit_temperatures<M: Model>(
    m0: &M,
    m1: &M,
    val: &dyn Dataset,
    batch: usize,
    progress: bool,
) -> Result<(f32, f32)> {
    let c = classes_of(val, m0.num_classes());
    let fit = |m: &M| -> Result<f32> {
        let z = logits_of(m, "T", val, batch, progress)?;
        Ok(temperature::fit_temperature(&z, c, val.labels())?.temperature)
    };
    Ok((fit(m0)?, fit(m1)?))
}

/// How λ(x) is computed: the expertise metric, Eq. 1 or 2, the WiSE-FT plug-in's α.
pub(crate) struct LambdaRule<'a> {
    /// The expertise metric.
    pub metric: &'a dyn Expertise,
    /// Eq. 1 or Eq. 2.
    pub coefficient: Coefficient,
    /// λ_wise(x) = α·λ(x) when set.
    pub wise_alpha: Option<f32>,
}

/// The coefficient stage's per-sample outputs on one dataset (or batch).
pub(crate) struct Coefficients {
    /// `H(p_0)` at T0.
    pub h0: Vec<f32>,
    /// `H(p_1)` at T1.
    pub h1: Vec<f32>,
    /// λ(x), after the WiSE-FT plug-in.
    pub lambda: Vec<f32>,
}

impl LambdaRule<'_> {
    /// Entropies and λ(x) of logits `z` (`c` classes) at temperatures `t`. `labels` serve the
    /// oracle metrics; `half()` gives the ½/½ merged model's logits for merged pseudo-labels.
    pub fn apply(
        &self,
        z: (&[f32], &[f32]),
        c: usize,
        (t0, t1): (f32, f32),
        labels: Option<&[i64]>,
        half: &dyn Fn() -> Result<Vec<f32>>,
    ) -> Result<Coefficients> {
        let (o0, o1) = (ModelOutputs::new(z.0, c, t0), ModelOutputs::new(z.1, c, t1));
        let h0 = stats::entropy(z.0, c, t0)?;
        let h1 = stats::entropy(z.1, c, t1)?;
        let (le0, le1) = log_expertise(self.metric, &o0, &o1, labels, half, 0.5 * (t0 + t1))?;
        let mut lambda = match self.coefficient {
            Coefficient::Eq1 => coef::lambda_eq1(&le0, &le1)?,
            Coefficient::Eq2 => coef::lambda_eq2(&le0, &le1, coef::domain_offset(&h0, &h1)?)?,
        };
        if let Some(a) = self.wise_alpha {
            lambda = coef::wise_plugin(&lambda, a)?;
        }
        Ok(Coefficients { h0, h1, lambda })
    }
}

/// Per-sample log-expertise `ln e_j(x)` of both models with the metric `metric`, filling its
/// context: labels for oracle metrics (an error naming `--labels` without them), `½(p0 + p1)`
/// for ensemble pseudo-labels, and `softmax(z_{θ(½)} / t_half)` (`half()` computes the ½/½
/// merged model's logits) for merged pseudo-labels.
fn log_expertise(
    metric: &dyn Expertise,
    m0: &ModelOutputs<'_>,
    m1: &ModelOutputs<'_>,
    labels: Option<&[i64]>,
    half: &dyn Fn() -> Result<Vec<f32>>,
    t_half: f32,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let targets;
    let ctx = match metric.needs() {
        Needs::Nothing => Context::default(),
        Needs::Labels => Context {
            labels: Some(labels.ok_or_else(|| {
                Error::invalid(
                    "--labels",
                    format!("metric `{}` needs labels", metric.name()),
                )
            })?),
            pseudo_targets: None,
        },
        Needs::PseudoTargets(PseudoSource::Ensemble) => {
            targets = ensemble_targets(m0, m1)?;
            Context {
                labels: None,
                pseudo_targets: Some(&targets),
            }
        }
        Needs::PseudoTargets(PseudoSource::Merged) => {
            let z = half()?;
            targets = merged_targets(&ModelOutputs::new(&z, m0.n_classes, t_half))?;
            Context {
                labels: None,
                pseudo_targets: Some(&targets),
            }
        }
    };
    Ok((
        metric.log_expertise(m0, &ctx)?,
        metric.log_expertise(m1, &ctx)?,
    ))
}

/// The sample-wise oracle's coefficients `λ*(x) = p_1(y|x) / (p_0(y|x) + p_1(y|x))`: Eq. 1 on
/// the expertise `e_j = p_j(y|x)` (negative cross-entropy with the true labels).
pub(crate) fn oracle_lambda(
    z: (&[f32], &[f32]),
    c: usize,
    (t0, t1): (f32, f32),
    labels: &[i64],
) -> Result<Vec<f32>> {
    let ctx = Context {
        labels: Some(labels),
        pseudo_targets: None,
    };
    let (o0, o1) = (ModelOutputs::new(z.0, c, t0), ModelOutputs::new(z.1, c, t1));
    Ok(coef::lambda_eq1(
        &NegCrossEntropy.log_expertise(&o0, &ctx)?,
        &NegCrossEntropy.log_expertise(&o1, &ctx)?,
    )?)
}

/// What [`coefficients_from_logits`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct CoefOutput {
    /// λ(x) per sample.
    pub lambda: Vec<f32>,
    /// (T0, T1): given, fitted on the labels, or (1, 1).
    pub temperatures: (f32, f32),
}

/// The coefficient stage on two models' logits `z0`, `z1` `[N, c]` (e.g. written by
/// `dawin logits`), as `dawin coef` runs it: temperatures given, else fitted on `labels` when
/// given, else 1; the expertise metric `expertise` by name; λ(x) by `coefficient` (no WiSE-FT
/// plug-in). Merged pseudo-labels need the merged model, which logits alone cannot give: an
/// error naming `--expertise`.
pub fn coefficients_from_logits(
    z0: &[f32],
    z1: &[f32],
    c: usize,
    labels: Option<&[i64]>,
    temperatures: Option<(f32, f32)>,
    expertise: &str,
    coefficient: Coefficient,
) -> Result<CoefOutput> {
    let t = match (temperatures, labels) {
        (Some(t), _) => t,
        (None, Some(l)) => (
            temperature::fit_temperature(z0, c, l)?.temperature,
            temperature::fit_temperature(z1, c, l)?.temperature,
        ),
        (None, None) => (1.0, 1.0),
    };
    let metric = expertise_by_name(expertise)?;
    let no_merged = || -> Result<Vec<f32>> {
        Err(Error::invalid(
            "--expertise",
            "pl-merged-* needs the merged model's logits; use `dawin eval`",
        ))
    };
    let rule = LambdaRule {
        metric: metric.as_ref(),
        coefficient,
        wise_alpha: None,
    };
    let lambda = rule.apply((z0, z1), c, t, labels, &no_merged)?.lambda;
    Ok(CoefOutput {
        lambda,
        temperatures: t,
    })
}
