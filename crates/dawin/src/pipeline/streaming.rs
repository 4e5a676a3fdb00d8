//! Streaming DaWin for test-time use ([`evaluate_streaming`]): the same stages on one batch at a
//! time — logits of θ0 and θ1, λ(x) from the batch alone, the batch-wise Beta mixture (the
//! paper's Table B), sample i through θ(λ_i) — so that a dataset is never held whole (batches
//! come through the pipelined data path, [`crate::data::for_each_batch`]).
use super::checks::{check_dataset, check_distance};
use super::clustering::beta_clusters;
use super::coefficients::LambdaRule;
use super::config::EvalConfig;
use super::logits::{classes_of, map_logits};
use super::merged::batch_by_lambda;
use crate::data::{for_each_batch, Dataset};
use crate::error::{Error, Result};
use crate::model::Interpolate;
use crate::progress;
use dawin_core::expertise::{expertise_by_name, Needs, PseudoSource};
use dawin_core::stats;

/// What [`evaluate_streaming`] returns for one dataset: accuracy only (no per-sample arrays).
#[derive(Clone, Debug, PartialEq)]
pub struct StreamingResult {
    /// Dataset name.
    pub dataset: String,
    /// Samples seen.
    pub n: usize,
    /// Correct predictions.
    pub correct: usize,
    /// Batches processed.
    pub batches: usize,
    /// Mean λ over the samples (after the mixture, when one is used).
    pub mean_lambda: f64,
}

impl StreamingResult {
    /// Accuracy in percent.
    pub fn accuracy(&self) -> f64 {
        100.0 * self.correct as f64 / self.n.max(1) as f64
    }
}

/// Streaming DaWin for test-time use: `data` is read `config.batch_size` samples at a time and
/// never held whole. Per batch: logits of θ0 and θ1, `λ(x)` from the batch alone (Eq. 1
/// `e_1/(e_0+e_1)`, or Eq. 2 with the domain offset of the batch), the WiSE-FT plug-in if set,
/// optionally replaced by the mean of its component in a `mixture_k`-component Beta mixture
/// fitted on the batch's λ (Table B's batch-wise mixture), then sample i through θ(λ_i) (the
/// blended forward when the model has one, else one merge per distinct λ in the batch).
/// Temperatures `(T0, T1)` are given (e.g. fitted on a validation set beforehand).
pub fn evaluate_streaming<M: Interpolate>(
    m0: &M,
    m1: &M,
    data: &dyn Dataset,
    temperatures: (f32, f32),
    config: &EvalConfig,
    mixture_k: Option<usize>,
) -> Result<StreamingResult> {
    m0.check_compatible(m1)?;
    check_distance(m0, m1, config.max_distance)?;
    check_dataset(m0, data)?;
    if mixture_k == Some(0) {
        return Err(Error::invalid("--streaming-mixture", "must be ≥ 1"));
    }
    let metric = expertise_by_name(&config.expertise)?;
    let rule = LambdaRule {
        metric: metric.as_ref(),
        coefficient: config.coefficient,
        wise_alpha: config.wise_alpha,
    };
    let c = m0.num_classes();
    let sub = data.class_mapping();
    let cd = classes_of(data, c);
    let blend = match config.exact_loop {
        true => None,
        false => m0.per_sample_forward(m1).transpose()?,
    };
    let mut half_model: Option<M> = None;
    let mut res = StreamingResult {
        dataset: data.name().to_string(),
        n: 0,
        correct: 0,
        batches: 0,
        mean_lambda: 0.0,
    };
    let mut lambda_sum = 0f64;
    let bar = progress::bar(
        data.len(),
        format!("streaming on {}", data.name()),
        config.progress,
    );
    let all: Vec<usize> = (0..data.len()).collect();
    // Batch k + 1 is decoded while batch k runs (the pipelined data path).
    for_each_batch(data, &all, config.batch_size.max(1), |x, chunk| {
        let b = chunk.len();
        let labels = &data.labels()[chunk[0]..chunk[0] + b];
        // 1. Logits of the batch.
        let (z0, z1) = (
            map_logits(m0.forward(x, b)?, c, sub)?,
            map_logits(m1.forward(x, b)?, c, sub)?,
        );
        if metric.needs() == Needs::PseudoTargets(PseudoSource::Merged) && half_model.is_none() {
            half_model = Some(m0.interpolate(m1, 0.5)?);
        }
        let half = || -> Result<Vec<f32>> {
            half_model
                .as_ref()
                .expect("θ(½) built when needed")
                .forward(x, b)
                .and_then(|z| map_logits(z, c, sub))
        };
        // 2. λ(x) from the batch alone.
        let mut lambda = rule
            .apply((&z0, &z1), cd, temperatures, Some(labels), &half)?
            .lambda;
        // 3. The batch-wise mixture.
        if let Some(k) = mixture_k {
            let what = || format!("mixture on batch {} of `{}`", res.batches, data.name());
            lambda = beta_clusters(&lambda, k, config.seed, what)?.lambdas();
        }
        // 4. Sample i through θ(λ_i).
        let z = batch_by_lambda((m0, m1), blend.as_deref(), x, &lambda)?;
        let pred = stats::argmax(&map_logits(z, c, sub)?, cd)?;
        res.correct += pred
            .iter()
            .zip(labels)
            .filter(|(&p, &y)| p as i64 == y)
            .count();
        lambda_sum += lambda.iter().map(|&l| l as f64).sum::<f64>();
        res.n += b;
        res.batches += 1;
        bar.inc(b as u64);
        Ok(())
    })?;
    bar.finish_and_clear();
    res.mean_lambda = lambda_sum / res.n.max(1) as f64;
    Ok(res)
}
