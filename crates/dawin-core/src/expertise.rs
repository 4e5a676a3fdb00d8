//! Expertise metrics: how much model j is trusted on sample x, scored from that model's own
//! logits. DaWin's coefficient is the ratio of the two models' expertise, `λ = e_1 / (e_0 + e_1)`.
//!
//! Metrics return the *log* expertise `ln e_j(x)` so that ratios are computed as
//! `σ(ln e_1 − ln e_0)` without overflow. Built-ins (with `p = softmax(z / T)`):
//!
//! | metric | `e(x)` | `ln e(x)` | needs |
//! |---|---|---|---|
//! | [`NegEntropy`] (the paper's default) | `exp(−H(p))` | `−H(p)` | — |
//! | [`NegCrossEntropy`] (the oracle) | `exp(−CE(y, p))` = `p_y` | `−CE(y, p)` | labels |
//! | [`PseudoLabelCrossEntropy`] | `exp(−CE(q, p))` | `−CE(q, p)` | pseudo-label probabilities `q` |
//! | [`MaxLogit`] | `max_c z_c` | `ln max(max_c z_c, f32::MIN_POSITIVE)` | — |
//! | [`ExpMaxProb`] | `exp(max_c p_c)` | `max_c p_c` | — |
//! | [`ExpTopGap`] | `exp(p_(1) − p_(2))` | `p_(1) − p_(2)` | — |
//!
//! Pseudo-labels `q` are ŷ = ½(p_0 + p_1) (the output ensemble, [`ensemble_targets`]) or
//! ỹ = softmax of the ½/½ merged model's logits ([`merged_targets`]); "hard" uses `argmax q` as a
//! label. Max-logit assumes positive logits, as CLIP's scaled cosine similarities are; a
//! non-positive maximum counts as no expertise.
//!
//! # Your own metric
//!
//! ```
//! use dawin_core::expertise::{Context, Expertise, ModelOutputs};
//! use dawin_core::{coef, Result};
//!
//! /// Expertise = exp(−(H / ln C)): entropy normalised by its maximum.
//! struct NormalisedEntropy;
//!
//! impl Expertise for NormalisedEntropy {
//!     fn name(&self) -> &str { "normalised-entropy" }
//!     fn log_expertise(&self, m: &ModelOutputs, _ctx: &Context) -> Result<Vec<f64>> {
//!         let h = dawin_core::stats::entropy(m.logits, m.n_classes, m.temperature)?;
//!         let max = (m.n_classes as f64).ln().max(f64::MIN_POSITIVE);
//!         Ok(h.into_iter().map(|h| -(h as f64) / max).collect())
//!     }
//! }
//!
//! let z0 = [2.0, 0.0, 0.0,   0.1, 0.0, 0.0]; // zero-shot: confident on sample 0
//! let z1 = [0.1, 0.0, 0.0,   5.0, 0.0, 0.0]; // fine-tuned: confident on sample 1
//! let m0 = ModelOutputs::new(&z0, 3, 1.0);
//! let m1 = ModelOutputs::new(&z1, 3, 1.0);
//! let ctx = Context::default();
//! let e0 = NormalisedEntropy.log_expertise(&m0, &ctx)?;
//! let e1 = NormalisedEntropy.log_expertise(&m1, &ctx)?;
//! let lambda = coef::lambda_eq1(&e0, &e1)?;
//! assert!(lambda[0] < 0.5 && lambda[1] > 0.5);
//! # Ok::<(), dawin_core::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::stats;

/// One model's outputs on a dataset: logits `[N, C]` (row-major) and its temperature.
#[derive(Clone, Copy, Debug)]
pub struct ModelOutputs<'a> {
    /// Logits, row-major `[N, C]`.
    pub logits: &'a [f32],
    /// `C`.
    pub n_classes: usize,
    /// Temperature `T > 0` applied as `softmax(z / T)`.
    pub temperature: f32,
}

impl<'a> ModelOutputs<'a> {
    /// Bundles logits, class count and temperature.
    pub fn new(logits: &'a [f32], n_classes: usize, temperature: f32) -> Self {
        ModelOutputs {
            logits,
            n_classes,
            temperature,
        }
    }

    /// Number of samples (`len / C`; 0 if `C = 0`).
    pub fn n_samples(&self) -> usize {
        self.logits.len().checked_div(self.n_classes).unwrap_or(0)
    }
}

/// Side information some metrics need. Empty by default.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// True labels `[N]` (oracle metrics).
    pub labels: Option<&'a [i64]>,
    /// Pseudo-label probabilities `q` `[N, C]` (pseudo-label metrics).
    pub pseudo_targets: Option<&'a [f32]>,
}

/// What a metric needs besides the model's logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Nothing else.
    Nothing,
    /// True labels in [`Context::labels`].
    Labels,
    /// Pseudo-label probabilities in [`Context::pseudo_targets`], built as [`PseudoSource`] says.
    PseudoTargets(PseudoSource),
}

/// An expertise metric: scores each sample for one model from that model's own logits (plus
/// optional labels or pseudo-labels). Implement it to plug in your own metric.
pub trait Expertise: Send + Sync {
    /// A short, unique, kebab-case name (used on the command line and in reports).
    fn name(&self) -> &str;
    /// `ln e(x_i)` for every sample i. Must be finite (or −∞ for "no expertise").
    fn log_expertise(&self, model: &ModelOutputs<'_>, ctx: &Context<'_>) -> Result<Vec<f64>>;
    /// What the metric needs in the [`Context`]; the pipeline fills it accordingly.
    fn needs(&self) -> Needs {
        Needs::Nothing
    }
}

/// `e = exp(−H(p))`: the paper's default (lower entropy, more expertise).
#[derive(Clone, Copy, Debug, Default)]
pub struct NegEntropy;

impl Expertise for NegEntropy {
    fn name(&self) -> &str {
        "entropy"
    }
    fn log_expertise(&self, m: &ModelOutputs<'_>, _ctx: &Context<'_>) -> Result<Vec<f64>> {
        Ok(stats::entropy(m.logits, m.n_classes, m.temperature)?
            .into_iter()
            .map(|h| -(h as f64))
            .collect())
    }
}

/// `e = exp(−CE(y, p)) = p_y`: the oracle from true labels. With Eq. 1 it gives the paper's
/// sample-wise oracle λ*(x) = p_1(y|x) / (p_0(y|x) + p_1(y|x)).
#[derive(Clone, Copy, Debug, Default)]
pub struct NegCrossEntropy;

impl Expertise for NegCrossEntropy {
    fn name(&self) -> &str {
        "ce-oracle"
    }
    fn needs(&self) -> Needs {
        Needs::Labels
    }
    fn log_expertise(&self, m: &ModelOutputs<'_>, ctx: &Context<'_>) -> Result<Vec<f64>> {
        let labels = ctx
            .labels
            .ok_or_else(|| Error::arg("labels", "the ce-oracle metric needs true labels"))?;
        Ok(
            stats::cross_entropy_hard(m.logits, m.n_classes, m.temperature, labels)?
                .into_iter()
                .map(|c| -(c as f64))
                .collect(),
        )
    }
}

/// Where pseudo-labels come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PseudoSource {
    /// ŷ = ½(p_0 + p_1), the output ensemble ([`ensemble_targets`]).
    Ensemble,
    /// ỹ = softmax(f(x; ½θ0 + ½θ1)), the ½/½ merged model ([`merged_targets`]).
    Merged,
}

/// `e = exp(−CE(q, p))` against pseudo-labels `q`, soft (`q` itself) or hard (`argmax q`).
#[derive(Clone, Copy, Debug)]
pub struct PseudoLabelCrossEntropy {
    /// Where `q` comes from (tells the pipeline what to put in the context).
    pub source: PseudoSource,
    /// Use `argmax q` as a hard label instead of `q`.
    pub hard: bool,
}

impl Expertise for PseudoLabelCrossEntropy {
    fn name(&self) -> &str {
        match (self.source, self.hard) {
            (PseudoSource::Ensemble, false) => "pl-ensemble-soft",
            (PseudoSource::Ensemble, true) => "pl-ensemble-hard",
            (PseudoSource::Merged, false) => "pl-merged-soft",
            (PseudoSource::Merged, true) => "pl-merged-hard",
        }
    }
    fn needs(&self) -> Needs {
        Needs::PseudoTargets(self.source)
    }
    fn log_expertise(&self, m: &ModelOutputs<'_>, ctx: &Context<'_>) -> Result<Vec<f64>> {
        let q = ctx.pseudo_targets.ok_or_else(|| {
            Error::arg(
                "pseudo_targets",
                format!(
                    "the {} metric needs pseudo-label probabilities",
                    self.name()
                ),
            )
        })?;
        let ce = if self.hard {
            let y: Vec<i64> = q
                .chunks(m.n_classes.max(1))
                .map(|row| first_argmax(row) as i64)
                .collect();
            stats::cross_entropy_hard(m.logits, m.n_classes, m.temperature, &y)?
        } else {
            stats::cross_entropy_soft(m.logits, m.n_classes, m.temperature, q)?
        };
        Ok(ce.into_iter().map(|c| -(c as f64)).collect())
    }
}

fn first_argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// `e = max_c z_c` (raw logits; a non-positive maximum counts as `f32::MIN_POSITIVE`).
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxLogit;

impl Expertise for MaxLogit {
    fn name(&self) -> &str {
        "max-logit"
    }
    fn log_expertise(&self, m: &ModelOutputs<'_>, _ctx: &Context<'_>) -> Result<Vec<f64>> {
        Ok(stats::row_stats(m.logits, m.n_classes, m.temperature)?
            .into_iter()
            .map(|r| (r.max_logit.max(f32::MIN_POSITIVE) as f64).ln())
            .collect())
    }
}

/// `e = exp(max_c p_c)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExpMaxProb;

impl Expertise for ExpMaxProb {
    fn name(&self) -> &str {
        "max-prob"
    }
    fn log_expertise(&self, m: &ModelOutputs<'_>, _ctx: &Context<'_>) -> Result<Vec<f64>> {
        Ok(stats::row_stats(m.logits, m.n_classes, m.temperature)?
            .into_iter()
            .map(|r| r.max_prob as f64)
            .collect())
    }
}

/// `e = exp(p_(1) − p_(2))`, the margin between the two most probable classes.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExpTopGap;

impl Expertise for ExpTopGap {
    fn name(&self) -> &str {
        "top-gap"
    }
    fn log_expertise(&self, m: &ModelOutputs<'_>, _ctx: &Context<'_>) -> Result<Vec<f64>> {
        Ok(stats::row_stats(m.logits, m.n_classes, m.temperature)?
            .into_iter()
            .map(|r| r.top1_minus_top2 as f64)
            .collect())
    }
}

/// The names [`expertise_by_name`] accepts.
pub const BUILTIN_NAMES: [&str; 9] = [
    "entropy",
    "ce-oracle",
    "pl-ensemble-soft",
    "pl-ensemble-hard",
    "pl-merged-soft",
    "pl-merged-hard",
    "max-logit",
    "max-prob",
    "top-gap",
];

/// A built-in metric by its [`Expertise::name`]; the error lists the valid names.
pub fn expertise_by_name(name: &str) -> Result<Box<dyn Expertise>> {
    let pl =
        |source, hard| Box::new(PseudoLabelCrossEntropy { source, hard }) as Box<dyn Expertise>;
    Ok(match name {
        "entropy" => Box::new(NegEntropy),
        "ce-oracle" => Box::new(NegCrossEntropy),
        "pl-ensemble-soft" => pl(PseudoSource::Ensemble, false),
        "pl-ensemble-hard" => pl(PseudoSource::Ensemble, true),
        "pl-merged-soft" => pl(PseudoSource::Merged, false),
        "pl-merged-hard" => pl(PseudoSource::Merged, true),
        "max-logit" => Box::new(MaxLogit),
        "max-prob" => Box::new(ExpMaxProb),
        "top-gap" => Box::new(ExpTopGap),
        other => {
            return Err(Error::arg(
                "expertise",
                format!(
                    "unknown metric `{other}`; expected one of {}",
                    BUILTIN_NAMES.join(", ")
                ),
            ))
        }
    })
}

/// ŷ = ½(p_0 + p_1): the output ensemble's probabilities, pseudo-labels for
/// [`PseudoSource::Ensemble`].
pub fn ensemble_targets(m0: &ModelOutputs<'_>, m1: &ModelOutputs<'_>) -> Result<Vec<f32>> {
    if m0.logits.len() != m1.logits.len() || m0.n_classes != m1.n_classes {
        return Err(Error::arg(
            "logits",
            "the two models' logits have different shapes",
        ));
    }
    let p0 = stats::softmax(m0.logits, m0.n_classes, m0.temperature)?;
    let p1 = stats::softmax(m1.logits, m1.n_classes, m1.temperature)?;
    Ok(p0.iter().zip(&p1).map(|(a, b)| 0.5 * (a + b)).collect())
}

/// ỹ = softmax(z_merged / T): the ½/½ merged model's probabilities, pseudo-labels for
/// [`PseudoSource::Merged`].
pub fn merged_targets(merged: &ModelOutputs<'_>) -> Result<Vec<f32>> {
    stats::softmax(merged.logits, merged.n_classes, merged.temperature)
}
