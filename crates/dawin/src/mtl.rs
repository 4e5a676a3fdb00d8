//! Multi-task evaluation with M fine-tuned models (the paper's §4.3 / Table 6 setting).
//!
//! A base CLIP image encoder θ0 and M fine-tuned encoders θ_j (task vectors τ_j = θ_j − θ0);
//! every evaluation dataset `D` has its own classification head, which is never merged: only the
//! image encoder is. On `D` each fine-tuned model's entropy `H_j(x)` (temperature 1) is computed
//! with `D`'s head and
//!
//! ```text
//! λ_j(x) = softmax_j(−H_j(x)),     θ(x) = θ0 + s Σ_j λ_j(x) τ_j,     s = 0.3·M by default.
//! ```
//!
//! Methods ([`MtlMethod`]): each fine-tuned model alone, `individual†` (model j on dataset j, by
//! name), the base (zero-shot with each head), weight averaging (`θ0 + (1/M) Σ τ_j`), task
//! arithmetic (`θ0 + 0.3 Σ τ_j`), TIES-merging ([`ties_task_vector`]), `dawin` (a K-component
//! Dirichlet mixture over each dataset's λ vectors, one merge per component with its mean λ; K = 1
//! gives one merge per dataset with the mean λ vector) and `dawin-sample` (one λ vector per
//! sample, run exactly with [`dawin_vit::cpu::blended::forward`], coefficients `s·λ_ij`).
//!
//! Every fine-tuned model is an [`Encoder`] whose encoder is used; its head is ignored (the
//! logits on `D` are `W_D f/‖f‖ + b_D` from the normalised features `f`). [`load_mtl`] opens the
//! checkpoints memory-mapped ([`CheckpointEncoder`]): each model is read whole only to be
//! evaluated (one at a time), and every merge is one pass over the M + 1 checkpoints, parameter
//! by parameter, so memory holds θ0, the merged encoder and one parameter per model, whatever M
//! (`examples/mtl_memory.rs` measures it). Only `dawin-sample` holds all M + 1 encoders, as its
//! blended forward must.
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::progress;
use dawin_core::{coef, stats, StateDict};
use dawin_vit::{
    cpu, BlendedWeights, CheckpointNaming, ClipClassifier, ClipWeights, Linear, LoadOptions,
    TensorMap, TensorSource, VitConfig,
};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// A method (row group) of the multi-task table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MtlMethod {
    /// One row per fine-tuned model `θ_j`, named `ft:<name>`.
    Individual,
    /// `individual†`: on dataset `D` the fine-tuned model named `D` (the true expert).
    IndividualOracle,
    /// The base encoder θ0 with each dataset's head (zero-shot).
    Base,
    /// Weight averaging: `θ0 + (1/M) Σ_j τ_j`.
    WeightAvg,
    /// Task arithmetic: `θ0 + s_TA Σ_j τ_j` (`s_TA` = 0.3 by default).
    TaskArithmetic,
    /// TIES-merging: trim, elect sign, disjoint mean ([`ties_task_vector`]), then `θ0 + s τ_m`.
    Ties,
    /// DaWin with the Dirichlet mixture: one merge per mixture component and dataset.
    Dawin,
    /// DaWin per sample (no mixture): exact blended forward with coefficients `s·λ_ij`.
    DawinSample,
}

impl MtlMethod {
    /// Every method, in table order.
    pub const ALL: [MtlMethod; 8] = [
        MtlMethod::Individual,
        MtlMethod::IndividualOracle,
        MtlMethod::Base,
        MtlMethod::WeightAvg,
        MtlMethod::TaskArithmetic,
        MtlMethod::Ties,
        MtlMethod::Dawin,
        MtlMethod::DawinSample,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            MtlMethod::Individual => "individual",
            MtlMethod::IndividualOracle => "individual-oracle",
            MtlMethod::Base => "base",
            MtlMethod::WeightAvg => "weight-avg",
            MtlMethod::TaskArithmetic => "task-arithmetic",
            MtlMethod::Ties => "ties",
            MtlMethod::Dawin => "dawin",
            MtlMethod::DawinSample => "dawin-sample",
        }
    }

    /// Parses a command-line name; the error lists the valid names.
    pub fn parse(s: &str) -> Result<MtlMethod> {
        MtlMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = MtlMethod::ALL.iter().map(|m| m.name()).collect();
                Error::invalid(
                    "--methods",
                    format!("unknown method `{s}`; expected one of {}", names.join(", ")),
                )
            })
    }
}

/// Settings of [`evaluate_mtl`].
#[derive(Clone, Debug)]
pub struct MtlConfig {
    /// Methods, in table order. Default: all.
    pub methods: Vec<MtlMethod>,
    /// DaWin's scale `s`; `None` = `0.3·M` ([`coef::default_scale`], the reference code's Table 6).
    pub scale: Option<f32>,
    /// Task arithmetic's scale. Default 0.3.
    pub ta_scale: f32,
    /// Components of the Dirichlet mixture (`dawin`). Default 1 (the paper).
    pub k: usize,
    /// TIES: fraction of each task vector's largest magnitudes kept. Default 0.2.
    pub ties_top: f32,
    /// TIES: scale of the merged task vector. Default 0.3.
    pub ties_scale: f32,
    /// Samples per forward batch. Default 64.
    pub batch_size: usize,
    /// Seed of the mixture fit.
    pub seed: u64,
    /// Draw progress bars (only when stdout is a terminal).
    pub progress: bool,
    /// Largest accepted relative distance `‖θ_j − θ0‖ / ‖θ0‖` of a fine-tuned encoder from the
    /// base ([`relative_distance`]). Default 1.0: the demo's fine-tunes lie at 0.10–0.16, two
    /// unrelated weight sets of similar norm about √2 apart.
    pub max_distance: f64,
}

impl Default for MtlConfig {
    fn default() -> Self {
        MtlConfig {
            methods: MtlMethod::ALL.to_vec(),
            scale: None,
            ta_scale: 0.3,
            k: 1,
            ties_top: 0.2,
            ties_scale: 0.3,
            batch_size: 64,
            seed: 0,
            progress: true,
            max_distance: 1.0,
        }
    }
}

/// One evaluation dataset with its own classification head.
pub struct MtlTask<'a> {
    /// The dataset's name (`individual†` uses the fine-tuned model of this name).
    pub name: String,
    /// Its head: `logits = W f/‖f‖ + b`, `W` `[C, E]`.
    pub head: Linear,
    /// Its labelled samples.
    pub data: &'a dyn Dataset,
}

/// One row of the table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MtlRow {
    /// Row name (`ft:<model>`, `individual†`, `base`, `weight-avg`, …).
    pub method: String,
    /// Accuracy (%) per dataset (absent where undefined: `individual†` without a model of that
    /// dataset's name).
    pub accuracy: BTreeMap<String, f64>,
    /// Mean accuracy (%) over the datasets (`None` when a dataset is missing).
    pub mean: Option<f64>,
    /// Weight merges the method built (merging methods).
    pub merges: Option<usize>,
}

/// The fitted Dirichlet mixture of one dataset's λ vectors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DirichletReport {
    /// Components K.
    pub k: usize,
    /// π_k.
    pub weights: Vec<f64>,
    /// Mean λ vector of each component, `[K][M]` (model order).
    pub means: Vec<Vec<f64>>,
    /// Samples assigned to each component.
    pub counts: Vec<usize>,
}

/// Every number of the multi-task table, plus what produced it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MtlReport {
    /// Fine-tuned model names, in order.
    pub models: Vec<String>,
    /// Datasets, in column order.
    pub datasets: Vec<String>,
    /// Samples per dataset.
    pub n_samples: BTreeMap<String, usize>,
    /// Rows.
    pub methods: Vec<MtlRow>,
    /// DaWin's scale `s`.
    pub scale: f32,
    /// Task arithmetic's scale.
    pub ta_scale: f32,
    /// Mixture components.
    pub k: usize,
    /// TIES: kept fraction.
    pub ties_top: f32,
    /// TIES: scale.
    pub ties_scale: f32,
    /// Mean λ_j per dataset: dataset → model → mean over the samples of `λ_j(x)`.
    pub mean_lambda: BTreeMap<String, BTreeMap<String, f64>>,
    /// Dirichlet mixture per dataset (`dawin`).
    pub mixtures: BTreeMap<String, DirichletReport>,
    /// `‖τ_j‖ / ‖θ0‖` of each fine-tuned encoder ([`relative_distance`]).
    #[serde(default)]
    pub relative_distance: BTreeMap<String, f64>,
    /// Seconds per stage, `total` last.
    pub timings: Vec<(String, f64)>,
}

impl MtlReport {
    /// The Markdown table: rows = methods, columns = datasets and the mean, accuracy in % with
    /// two decimals (`—` where undefined).
    pub fn markdown(&self) -> String {
        crate::report::markdown_table(
            &self.datasets,
            "mean",
            self.methods.iter().map(|r| {
                let cells = self.datasets.iter().map(|d| r.accuracy.get(d).copied());
                (r.method.as_str(), cells.collect(), r.mean)
            }),
        )
    }

    /// The mean-λ table: rows = datasets, columns = models.
    pub fn lambda_markdown(&self) -> String {
        let mut s = String::from("| mean λ_j |");
        for m in &self.models {
            s += &format!(" {m} |");
        }
        s += "\n|---|";
        for _ in &self.models {
            s += "---:|";
        }
        s.push('\n');
        for d in &self.datasets {
            s += &format!("| {d} |");
            for m in &self.models {
                s += &format!(" {:.3} |", self.mean_lambda[d][m]);
            }
            s.push('\n');
        }
        s
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// Writes `report.json` under `dir` (created), through a temporary file renamed into place.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let text = self.to_json();
        dawin_core::atomic_write(dir.join("report.json"), |tmp| std::fs::write(tmp, text))?;
        Ok(())
    }
}

/// TIES-merging's merged task vector (Yadav et al., 2023) of flat task vectors `taus` (M of one
/// length):
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
        .ok_or_else(|| Error::invalid("ties", "no task vector"))?
        .len();
    if let Some(j) = taus.iter().position(|t| t.len() != n) {
        return Err(Error::invalid(
            "ties",
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
    let total: i64 = sign.iter().map(|&s| s as i64).sum();
    let majority = if total >= 0 { 1 } else { -1 };
    for s in sign.iter_mut().filter(|s| **s == 0) {
        *s = majority;
    }
    Ok((0..n).map(|i| ties_mean(trimmed(i), sign[i])).collect())
}

/// Number of parameter slices of [`ClipWeights::params`] that belong to the encoder (the head's
/// weight and bias come last).
fn encoder_slices(w: &ClipWeights) -> usize {
    w.params().len() - 1 - usize::from(w.head.bias.is_some())
}

/// Task arithmetic on the encoder: `θ0 + Σ_j w_j τ_j`, computed as `(1 − Σ_j w_j) θ0 + Σ_j w_j θ_j`
/// ([`dawin_core::merge::task_arithmetic`]) parameter by parameter: one pass over the M models,
/// each parameter of each model read alone ([`Encoder::encoder_param`]), so memory holds θ0, the
/// result and one parameter per model. The head is θ0's (unused).
pub fn merge_encoders<E: Encoder>(
    base: &ClipClassifier,
    models: &[&E],
    weights: &[f32],
) -> Result<ClipClassifier> {
    let mut w = base.weights().clone();
    let ne = encoder_slices(&w);
    {
        let b = base.weights().params();
        for (i, dst) in w.params_mut().into_iter().enumerate().take(ne) {
            let mi: Vec<Cow<'_, [f32]>> = models
                .iter()
                .map(|m| m.encoder_param(i))
                .collect::<Result<_>>()?;
            let mr: Vec<&[f32]> = mi.iter().map(|c| &c[..]).collect();
            dawin_core::merge::task_arithmetic(b[i], &mr, weights, dst)?;
        }
    }
    Ok(ClipClassifier::new(base.config().clone(), w)?)
}

/// Number of values kept by TIES' trim step: `top · n` rounded up (`top` taken as the decimal
/// it was written as, so that 20 % of 5 is 1), at least 1.
fn ties_keep(top: f32, n: usize) -> Result<usize> {
    if !(top > 0.0 && top <= 1.0) {
        return Err(Error::invalid(
            "--ties-top",
            format!("must lie in (0, 1], got {top}"),
        ));
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

/// TIES' elected sign of one parameter from its trimmed values (0 where they sum to 0 exactly).
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

/// TIES' disjoint mean of one parameter: the mean of the trimmed values of sign `sign`.
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

/// TIES-merging of the encoders: `θ0 + scale · τ_m` with τ_m = [`ties_task_vector`] of the
/// encoders' task vectors, all encoder parameters flattened into one vector per model. Runs as
/// passes over the checkpoints, parameter by parameter ([`Encoder::encoder_param`]): each
/// model's trim threshold (one model's magnitudes in memory at a time), the elected signs (one
/// byte per parameter), then the disjoint mean — equal, value for value, to [`ties_task_vector`]
/// over the flattened vectors.
pub fn ties_merge<E: Encoder>(
    base: &ClipClassifier,
    models: &[&E],
    top: f32,
    scale: f32,
) -> Result<ClipClassifier> {
    if models.is_empty() {
        return Err(Error::invalid("ties", "no task vector"));
    }
    let b = base.weights().params();
    let ne = encoder_slices(base.weights());
    let n: usize = b[..ne].iter().map(|s| s.len()).sum();
    let keep = ties_keep(top, n)?;
    // τ_j of parameter i, computed as `ties_task_vector`'s callers do: θ_j − θ0.
    let tau = |m: &E, i: usize| -> Result<Vec<f32>> {
        let p = m.encoder_param(i)?;
        Ok(p.iter().zip(b[i]).map(|(x, y)| x - y).collect())
    };
    // 1. Trim thresholds: the `keep`-th largest |τ_j| of each model.
    let mut thr = Vec::with_capacity(models.len());
    {
        let mut mags = Vec::with_capacity(n);
        for m in models {
            mags.clear();
            for i in 0..ne {
                mags.extend(tau(m, i)?.iter().map(|v| v.abs()));
            }
            thr.push(kth_largest(&mut mags, keep));
        }
    }
    let trim = |v: f32, t: f32| if v.abs() >= t { v } else { 0.0 };
    let taus_of = |i: usize| -> Result<Vec<Vec<f32>>> {
        models
            .iter()
            .zip(&thr)
            .map(|(m, &t)| Ok(tau(m, i)?.into_iter().map(|v| trim(v, t)).collect()))
            .collect()
    };
    // 2. Elected signs; an exact tie takes the sign of the sum of all signs.
    let mut sign: Vec<i8> = Vec::with_capacity(n);
    for (i, bi) in b[..ne].iter().enumerate() {
        let t = taus_of(i)?;
        sign.extend((0..bi.len()).map(|k| ties_sign(t.iter().map(|tj| tj[k]))));
    }
    let total: i64 = sign.iter().map(|&s| s as i64).sum();
    let majority = if total >= 0 { 1 } else { -1 };
    for s in sign.iter_mut().filter(|s| **s == 0) {
        *s = majority;
    }
    // 3. Disjoint mean, merged into θ0.
    let mut w = base.weights().clone();
    let mut off = 0;
    for (i, dst) in w.params_mut().into_iter().enumerate().take(ne) {
        let t = taus_of(i)?;
        for (k, d) in dst.iter_mut().enumerate() {
            let tm = ties_mean(t.iter().map(|tj| tj[k]), sign[off + k]);
            *d = b[i][k] + scale * tm;
        }
        off += dst.len();
    }
    Ok(ClipClassifier::new(base.config().clone(), w)?)
}

/// `‖θ − θ0‖₂ / ‖θ0‖₂` over the encoder's parameters (the head excluded), read parameter by
/// parameter, sums in f64. A fine-tune stays close to its base (the demo's: 0.10–0.16); two
/// unrelated weight sets of similar norm, such as encoders pre-trained separately, lie about √2
/// apart, which [`evaluate_mtl`] refuses above [`MtlConfig::max_distance`].
pub fn relative_distance<E: Encoder>(base: &ClipClassifier, model: &E) -> Result<f64> {
    let b = base.weights().params();
    let (mut num, mut den) = (0f64, 0f64);
    for (i, bi) in b[..encoder_slices(base.weights())].iter().enumerate() {
        let p = model.encoder_param(i)?;
        for (x, y) in p.iter().zip(bi.iter()) {
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

/// Checks that every model is an encoder of θ0's architecture, tensor by tensor.
fn check_models<E: Encoder>(base: &ClipClassifier, models: &[(String, &E)]) -> Result<()> {
    if models.is_empty() {
        return Err(Error::invalid(
            "--model",
            "at least one fine-tuned model is required",
        ));
    }
    let bp = base.weights().params();
    let mut seen = std::collections::HashSet::new();
    for (name, m) in models {
        if !seen.insert(name.as_str()) {
            return Err(Error::invalid(format!("model `{name}`"), "appears twice"));
        }
        if m.config() != base.config() {
            return Err(Error::invalid(
                format!("model `{name}`"),
                format!(
                    "has a different architecture than the base: {:?} vs {:?}",
                    m.config(),
                    base.config()
                ),
            ));
        }
        for (i, (x, y)) in bp.iter().zip(m.encoder_lens()).enumerate() {
            if x.len() != y {
                return Err(Error::invalid(
                    format!("model `{name}`"),
                    format!("parameter tensor #{i} has {y} values, the base {}", x.len()),
                ));
            }
        }
    }
    Ok(())
}

fn check_task(base: &ClipClassifier, t: &MtlTask<'_>) -> Result<()> {
    let what = || format!("dataset `{}`", t.name);
    let e = base.config().embed_dim;
    if t.head.in_dim != e || t.head.weight.len() != t.head.out_dim * e {
        return Err(Error::invalid(
            format!("head of `{}`", t.name),
            format!(
                "has input width {}, the encoder's embedding width is {e}",
                t.head.in_dim
            ),
        ));
    }
    if t.head.out_dim == 0 {
        return Err(Error::invalid(
            format!("head of `{}`", t.name),
            "has no class",
        ));
    }
    let d = t.data;
    if d.is_empty() {
        return Err(Error::invalid(what(), "is empty (no samples)"));
    }
    if d.sample_numel() != base.config().image_numel() {
        return Err(Error::invalid(
            what(),
            format!(
                "samples have {} values, the encoder takes {}",
                d.sample_numel(),
                base.config().image_numel()
            ),
        ));
    }
    let c = t.head.out_dim as i64;
    if let Some(i) = d.labels().iter().position(|&y| y < 0 || y >= c) {
        return Err(Error::invalid(
            what(),
            format!(
                "label {} of sample {i} is not a class of its head ({c} classes)",
                d.labels()[i]
            ),
        ));
    }
    Ok(())
}

/// Normalised features `[N, E]` of `model`'s encoder over `data`.
fn features(
    model: &ClipClassifier,
    data: &dyn Dataset,
    idx: &[usize],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(idx.len() * model.config().embed_dim);
    for chunk in idx.chunks(batch.max(1)) {
        let x = data.load(chunk)?;
        let (_, f) = cpu::forward(&x, chunk.len(), model.config(), model.weights())?;
        out.extend(f);
        bar.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// `logits = W f + b` for features `[N, E]`; errors on a non-finite logit.
pub fn apply_head(head: &Linear, feats: &[f32]) -> Result<Vec<f32>> {
    let (c, e) = (head.out_dim, head.in_dim);
    let mut out = Vec::with_capacity(feats.len() / e * c);
    for (i, f) in feats.chunks_exact(e).enumerate() {
        for k in 0..c {
            let w = &head.weight[k * e..(k + 1) * e];
            let mut s: f32 = w.iter().zip(f).map(|(a, b)| a * b).sum();
            if let Some(b) = &head.bias {
                s += b[k];
            }
            if !s.is_finite() {
                return Err(Error::invalid(
                    "logits",
                    format!("non-finite logit for sample {i} (class {k})"),
                ));
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// Accuracy (%) and the predicted classes (argmax of each logit row `[N, C]`).
fn score(logits: &[f32], c: usize, labels: &[i64]) -> Result<(f64, Vec<u32>)> {
    let pred = stats::argmax(logits, c)?;
    let ok = pred
        .iter()
        .zip(labels)
        .filter(|(&p, &y)| p as i64 == y)
        .count();
    Ok((100.0 * ok as f64 / labels.len().max(1) as f64, pred))
}

/// Entropies `[N, M]` (row-major, model j in column j) of the fine-tuned models' logits on one
/// dataset: `H_j(x_i) = −Σ_c p_c log p_c`, `p = softmax(z_j(x_i))` (temperature 1).
fn entropy_matrix(logits: &[&[f32]], n_classes: usize) -> Result<Vec<f32>> {
    let cols = logits
        .iter()
        .map(|z| {
            Ok(stats::entropy(z, n_classes, 1.0)?
                .into_iter()
                .map(f64::from)
                .collect())
        })
        .collect::<Result<Vec<Vec<f64>>>>()?;
    Ok(coef::stack_columns(&cols)?
        .into_iter()
        .map(|v| v as f32)
        .collect())
}

/// λ vectors `[N, M]` of one dataset from the fine-tuned models' logits on it (with its head):
/// `λ_ij = softmax_j(−H_j(x_i))`, `H_j` the entropy at temperature 1.
pub fn lambda_vectors(logits: &[&[f32]], n_classes: usize) -> Result<Vec<f32>> {
    lambda_from_entropy(&entropy_matrix(logits, n_classes)?, logits.len())
}

/// λ vectors `[N, M]` from entropies `[N, M]`: `λ_ij = softmax_j(−H_ij)`.
fn lambda_from_entropy(h: &[f32], m: usize) -> Result<Vec<f32>> {
    let neg: Vec<f64> = h.iter().map(|&v| -(v as f64)).collect();
    Ok(coef::lambda_multi(&neg, m)?)
}

struct Timer(Vec<(String, f64)>);

impl Timer {
    fn add(&mut self, stage: &str, t: Instant) {
        let s = t.elapsed().as_secs_f64();
        match self.0.iter_mut().find(|(n, _)| n == stage) {
            Some((_, v)) => *v += s,
            None => self.0.push((stage.to_string(), s)),
        }
    }
}

/// Per-sample arrays of one dataset of a multi-task evaluation (written by
/// [`write_mtl_outputs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct MtlPerSample {
    /// The dataset.
    pub dataset: String,
    /// Fine-tuned models M.
    pub n_models: usize,
    /// `H_j(x_i)` `[N, M]` row-major: entropy of fine-tuned model j with this dataset's head.
    pub entropy: Vec<f32>,
    /// `λ_ij = softmax_j(−H_ij)` `[N, M]`; every row sums to 1.
    pub lambda: Vec<f32>,
    /// Dirichlet component of each sample `[N]` (present when `dawin` ran).
    pub cluster: Option<Vec<i64>>,
    /// Labels `[N]`.
    pub labels: Vec<i64>,
    /// (table row name, predicted class `[N]`) per row that is defined on this dataset, in
    /// table order.
    pub predictions: Vec<(String, Vec<u32>)>,
}

impl MtlPerSample {
    /// `correct_i = (pred_i == label_i)` of a table row, `None` when the row has no
    /// predictions here.
    pub fn correct(&self, row: &str) -> Option<Vec<bool>> {
        let (_, p) = self.predictions.iter().find(|(r, _)| r == row)?;
        Some(
            p.iter()
                .zip(&self.labels)
                .map(|(&p, &y)| p as i64 == y)
                .collect(),
        )
    }
}

/// A multi-task evaluation's report and per-sample arrays.
#[derive(Clone, Debug)]
pub struct MtlOutput {
    /// The table and what produced it.
    pub report: MtlReport,
    /// Per dataset, in column order.
    pub per_sample: Vec<MtlPerSample>,
}

/// A table row's name as a file-name part: `individual†` → `individual-oracle`, every character
/// other than ASCII letters, digits, `-`, `_` and `.` → `_` (`ft:digits` → `ft_digits`).
pub fn file_safe(row: &str) -> String {
    if row == "individual†" {
        return MtlMethod::IndividualOracle.name().to_string();
    }
    row.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes `report.json` and, per dataset, `<dataset>/entropy.npy` `[N, M]` (f32),
/// `lambda.npy` `[N, M]` (f32), `cluster.npy` `[N]` (i64, when `dawin` ran), `labels.npy` `[N]`
/// and `pred_<row>.npy` / `correct_<row>.npy` `[N]` (i64) for every table row defined on the
/// dataset, `<row>` = [`file_safe`] of the row name. Each file is written to a temporary file and
/// renamed into place.
pub fn write_mtl_outputs(out: &MtlOutput, dir: &Path) -> Result<()> {
    out.report.write(dir)?;
    for p in &out.per_sample {
        let d = dir.join(&p.dataset);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        let (n, m) = (p.labels.len(), p.n_models);
        dawin_core::npy::write_f32(d.join("entropy.npy"), &p.entropy, &[n, m])?;
        dawin_core::npy::write_f32(d.join("lambda.npy"), &p.lambda, &[n, m])?;
        if let Some(c) = &p.cluster {
            dawin_core::npy::write_i64(d.join("cluster.npy"), c, &[n])?;
        }
        dawin_core::npy::write_i64(d.join("labels.npy"), &p.labels, &[n])?;
        for (row, pred) in &p.predictions {
            let f = file_safe(row);
            let pi: Vec<i64> = pred.iter().map(|&v| v as i64).collect();
            dawin_core::npy::write_i64(d.join(format!("pred_{f}.npy")), &pi, &[n])?;
            let ci: Vec<i64> = p
                .correct(row)
                .unwrap_or_default()
                .into_iter()
                .map(i64::from)
                .collect();
            dawin_core::npy::write_i64(d.join(format!("correct_{f}.npy")), &ci, &[n])?;
        }
    }
    Ok(())
}

/// Runs the multi-task comparison: `base` θ0, the named fine-tuned `models` (every one of θ0's
/// architecture, with any head), and the evaluation `tasks`, each with its own head: the report
/// of [`evaluate_mtl_full`].
pub fn evaluate_mtl<E: Encoder>(
    base: &ClipClassifier,
    models: &[(String, &E)],
    tasks: &[MtlTask<'_>],
    config: &MtlConfig,
) -> Result<MtlReport> {
    Ok(evaluate_mtl_full(base, models, tasks, config)?.report)
}

/// [`evaluate_mtl`] with the per-sample arrays (entropies, λ vectors, mixture components,
/// predictions of every row).
pub fn evaluate_mtl_full<E: Encoder>(
    base: &ClipClassifier,
    models: &[(String, &E)],
    tasks: &[MtlTask<'_>],
    config: &MtlConfig,
) -> Result<MtlOutput> {
    let t_all = Instant::now();
    check_models(base, models)?;
    if tasks.is_empty() {
        return Err(Error::invalid("--test", "no evaluation dataset"));
    }
    let mut names = std::collections::HashSet::new();
    for t in tasks {
        if !names.insert(t.name.as_str()) {
            return Err(Error::invalid(
                format!("dataset `{}`", t.name),
                "appears twice",
            ));
        }
        check_task(base, t)?;
    }
    if config.methods.is_empty() {
        return Err(Error::invalid("--methods", "no method selected"));
    }
    if config.k == 0 {
        return Err(Error::invalid("--k", "must be ≥ 1"));
    }
    let m = models.len();
    let s = config.scale.unwrap_or_else(|| coef::default_scale(m));
    for (what, v) in [
        ("--scale", s),
        ("--ties-scale", config.ties_scale),
        ("task-arithmetic scale", config.ta_scale),
    ] {
        if !v.is_finite() {
            return Err(Error::invalid(what, format!("must be finite, got {v}")));
        }
    }
    if config.max_distance.is_nan() || config.max_distance <= 0.0 {
        return Err(Error::invalid(
            "--max-distance",
            format!("must be positive, got {}", config.max_distance),
        ));
    }
    let mut timer = Timer(Vec::new());
    // 0. Every model must be a fine-tune of this base.
    let t = Instant::now();
    let mut distances = BTreeMap::new();
    for (name, mdl) in models {
        let d = relative_distance(base, *mdl)?;
        if d.is_nan() || d > config.max_distance {
            return Err(Error::invalid(
                format!("model `{name}`"),
                format!(
                    "lies at ‖θ − θ0‖/‖θ0‖ = {d:.3} from the base (more than --max-distance \
                     {}): was it fine-tuned from another pre-trained model?",
                    config.max_distance
                ),
            ));
        }
        distances.insert(name.clone(), d);
    }
    timer.add("distances", t);
    let refs: Vec<&E> = models.iter().map(|(_, c)| *c).collect();
    let bar = |n: usize, msg: String| progress::bar(n, msg, config.progress);
    let all_idx = |d: &dyn Dataset| (0..d.len()).collect::<Vec<usize>>();

    // Accuracy and predictions of an encoder on every dataset.
    let eval_encoder = |enc: &ClipClassifier, label: &str| -> Result<Vec<(f64, Vec<u32>)>> {
        tasks
            .iter()
            .map(|t| {
                let b = bar(t.data.len(), format!("{label} on {}", t.name));
                let f = features(enc, t.data, &all_idx(t.data), config.batch_size, &b)?;
                b.finish_and_clear();
                score(&apply_head(&t.head, &f)?, t.head.out_dim, t.data.labels())
            })
            .collect()
    };

    // 1. Every fine-tuned model on every dataset (the individual rows and the λ vectors); one
    //    model in memory at a time.
    let t = Instant::now();
    let mut ft_logits: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(m); tasks.len()]; // [task][model] → [N, C]
    for (name, mdl) in models {
        let mdl = mdl.classifier()?;
        for (task, per) in tasks.iter().zip(ft_logits.iter_mut()) {
            let b = bar(task.data.len(), format!("{name} on {}", task.name));
            let f = features(&mdl, task.data, &all_idx(task.data), config.batch_size, &b)?;
            b.finish_and_clear();
            per.push(apply_head(&task.head, &f)?);
        }
    }
    timer.add("fine-tuned", t);
    let t = Instant::now();
    let entropies: Vec<Vec<f32>> = tasks
        .iter()
        .zip(&ft_logits)
        .map(|(task, z)| {
            let zr: Vec<&[f32]> = z.iter().map(|v| &v[..]).collect();
            entropy_matrix(&zr, task.head.out_dim)
        })
        .collect::<Result<_>>()?;
    let lambdas: Vec<Vec<f32>> = entropies
        .iter()
        .map(|h| lambda_from_entropy(h, m))
        .collect::<Result<_>>()?;
    let mut mean_lambda = BTreeMap::new();
    for (task, l) in tasks.iter().zip(&lambdas) {
        let n = task.data.len() as f64;
        let row: BTreeMap<String, f64> = models
            .iter()
            .enumerate()
            .map(|(j, (name, _))| {
                let sum: f64 = l.iter().skip(j).step_by(m).map(|&v| v as f64).sum();
                (name.clone(), sum / n)
            })
            .collect();
        mean_lambda.insert(task.name.clone(), row);
    }
    timer.add("coefficients", t);

    let mut rows: Vec<MtlRow> = Vec::new();
    let datasets: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    // Per dataset: (row, predictions) and the Dirichlet components.
    let mut preds: Vec<Vec<(String, Vec<u32>)>> = vec![Vec::new(); tasks.len()];
    let mut clusters: Vec<Option<Vec<i64>>> = vec![None; tasks.len()];
    // A row from (accuracy, predictions) per dataset (`None` where undefined).
    let mut add_row = |method: String, res: Vec<Option<(f64, Vec<u32>)>>, merges: Option<usize>| {
        let acc: Vec<Option<f64>> = res.iter().map(|r| r.as_ref().map(|r| r.0)).collect();
        let mean = acc
            .iter()
            .copied()
            .collect::<Option<Vec<f64>>>()
            .map(|v| v.iter().sum::<f64>() / v.len() as f64);
        for (p, r) in preds.iter_mut().zip(res) {
            if let Some((_, pr)) = r {
                p.push((method.clone(), pr));
            }
        }
        rows.push(MtlRow {
            method,
            accuracy: datasets
                .iter()
                .zip(&acc)
                .filter_map(|(d, a)| a.map(|a| (d.clone(), a)))
                .collect(),
            mean,
            merges,
        });
    };
    let mut mixtures = BTreeMap::new();
    for &method in &config.methods {
        let t = Instant::now();
        match method {
            MtlMethod::Individual => {
                for (j, (name, _)) in models.iter().enumerate() {
                    let acc = tasks
                        .iter()
                        .zip(&ft_logits)
                        .map(|(task, z)| {
                            score(&z[j], task.head.out_dim, task.data.labels()).map(Some)
                        })
                        .collect::<Result<_>>()?;
                    add_row(format!("ft:{name}"), acc, None);
                }
            }
            MtlMethod::IndividualOracle => {
                let acc = tasks
                    .iter()
                    .zip(&ft_logits)
                    .map(
                        |(task, z)| match models.iter().position(|(n, _)| *n == task.name) {
                            Some(j) => {
                                score(&z[j], task.head.out_dim, task.data.labels()).map(Some)
                            }
                            None => Ok(None),
                        },
                    )
                    .collect::<Result<_>>()?;
                add_row("individual†".into(), acc, None);
            }
            MtlMethod::Base => {
                let acc = eval_encoder(base, "base")?;
                add_row("base".into(), acc.into_iter().map(Some).collect(), None);
            }
            MtlMethod::WeightAvg | MtlMethod::TaskArithmetic => {
                let w = if method == MtlMethod::WeightAvg {
                    1.0 / m as f32
                } else {
                    config.ta_scale
                };
                let merged = merge_encoders(base, &refs, &vec![w; m])?;
                let acc = eval_encoder(&merged, method.name())?;
                add_row(
                    method.name().into(),
                    acc.into_iter().map(Some).collect(),
                    Some(1),
                );
            }
            MtlMethod::Ties => {
                let merged = ties_merge(base, &refs, config.ties_top, config.ties_scale)?;
                let acc = eval_encoder(&merged, "ties")?;
                add_row("ties".into(), acc.into_iter().map(Some).collect(), Some(1));
            }
            MtlMethod::Dawin => {
                let mut acc = Vec::new();
                let mut merges = 0;
                for ((task, l), cl) in tasks.iter().zip(&lambdas).zip(clusters.iter_mut()) {
                    let cfg = dawin_mixture::DirichletMixtureConfig {
                        k: config.k,
                        seed: config.seed,
                        ..Default::default()
                    };
                    let fit = dawin_mixture::DirichletMixture::fit(l, m, &cfg).map_err(|e| {
                        Error::invalid(format!("mixture on `{}`", task.name), e.to_string())
                    })?;
                    let comp = fit.predict(l)?;
                    *cl = Some(comp.iter().map(|&k| k as i64).collect());
                    let n = task.data.len();
                    let c = task.head.out_dim;
                    let mut logits = vec![0f32; n * c];
                    let mut counts = vec![0usize; fit.k()];
                    for (k, count) in counts.iter_mut().enumerate() {
                        let idx: Vec<usize> = (0..n).filter(|&i| comp[i] == k).collect();
                        *count = idx.len();
                        if idx.is_empty() {
                            continue;
                        }
                        let w: Vec<f32> = fit.mean(k).iter().map(|&v| s * v as f32).collect();
                        let merged = merge_encoders(base, &refs, &w)?;
                        merges += 1;
                        let b = bar(idx.len(), format!("dawin K={} on {}", fit.k(), task.name));
                        let f = features(&merged, task.data, &idx, config.batch_size, &b)?;
                        b.finish_and_clear();
                        let z = apply_head(&task.head, &f)?;
                        for (r, &i) in idx.iter().enumerate() {
                            logits[i * c..(i + 1) * c].copy_from_slice(&z[r * c..(r + 1) * c]);
                        }
                    }
                    mixtures.insert(
                        task.name.clone(),
                        DirichletReport {
                            k: fit.k(),
                            weights: fit.weights().to_vec(),
                            means: (0..fit.k()).map(|k| fit.mean(k).to_vec()).collect(),
                            counts,
                        },
                    );
                    acc.push(Some(score(&logits, c, task.data.labels())?));
                }
                add_row("dawin".into(), acc, Some(merges));
            }
            MtlMethod::DawinSample => {
                // The blended forward holds all M + 1 encoders (stacked), read one at a time.
                let bw = BlendedWeights::from_loader(base.config(), base.weights(), m, |j| {
                    Ok::<_, Error>(refs[j].classifier()?.into_owned().into_weights())
                })?;
                let mut acc = Vec::new();
                for (task, l) in tasks.iter().zip(&lambdas) {
                    let n = task.data.len();
                    let b = bar(n, format!("dawin-sample on {}", task.name));
                    let mut feats = Vec::with_capacity(n * base.config().embed_dim);
                    let idx = all_idx(task.data);
                    for chunk in idx.chunks(config.batch_size.max(1)) {
                        let x = task.data.load(chunk)?;
                        let co: Vec<f32> = chunk
                            .iter()
                            .flat_map(|&i| coef::task_weights(&l[i * m..(i + 1) * m], s))
                            .collect();
                        let (_, f) = cpu::blended::forward(&x, chunk.len(), &bw, &co)?;
                        feats.extend(f);
                        b.inc(chunk.len() as u64);
                    }
                    b.finish_and_clear();
                    let z = apply_head(&task.head, &feats)?;
                    acc.push(Some(score(&z, task.head.out_dim, task.data.labels())?));
                }
                add_row("dawin-sample".into(), acc, None);
            }
        }
        timer.add(method.name(), t);
    }
    let mut timings = timer.0;
    timings.push(("total".into(), t_all.elapsed().as_secs_f64()));
    let per_sample = tasks
        .iter()
        .zip(entropies)
        .zip(lambdas)
        .zip(preds.into_iter().zip(clusters))
        .map(
            |(((task, entropy), lambda), (predictions, cluster))| MtlPerSample {
                dataset: task.name.clone(),
                n_models: m,
                entropy,
                lambda,
                cluster,
                labels: task.data.labels().to_vec(),
                predictions,
            },
        )
        .collect();
    let report = MtlReport {
        models: models.iter().map(|(n, _)| n.clone()).collect(),
        datasets: datasets.clone(),
        n_samples: tasks
            .iter()
            .map(|t| (t.name.clone(), t.data.len()))
            .collect(),
        methods: rows,
        scale: s,
        ta_scale: config.ta_scale,
        k: config.k,
        ties_top: config.ties_top,
        ties_scale: config.ties_scale,
        mean_lambda,
        mixtures,
        relative_distance: distances,
        timings,
    };
    Ok(MtlOutput { report, per_sample })
}

/// Finds the head tensors of a head file: `classification_head.weight` / `.bias` (at the top
/// level or under a prefix), else `weight` / `bias`.
fn head_tensor_names(sd: &StateDict) -> Option<(String, String)> {
    const W: &str = "classification_head.weight";
    let names = sd.names();
    if let Some(found) = names
        .iter()
        .filter(|n| **n == W || n.ends_with(&format!(".{W}")))
        .min_by_key(|n| n.len())
    {
        let root = &found[..found.len() - W.len()];
        return Some((found.to_string(), format!("{root}classification_head.bias")));
    }
    names
        .contains(&"weight")
        .then(|| ("weight".to_string(), "bias".to_string()))
}

/// Loads a classification head `[C, E]` (+ optional bias `[C]`) from a safetensors file; errors
/// name the file and the tensor.
pub fn load_head(path: &Path) -> Result<Linear> {
    if !path.exists() {
        return Err(Error::invalid(path.display().to_string(), "no such file"));
    }
    let sd = StateDict::open(path)?;
    let (wn, bn) = head_tensor_names(&sd).ok_or_else(|| {
        Error::invalid(
            path.display().to_string(),
            "has no classification_head.weight (nor weight) tensor",
        )
    })?;
    let w = sd.tensor(&wn)?;
    if w.shape.len() != 2 || w.shape.contains(&0) {
        return Err(Error::invalid(
            format!("{}: `{wn}`", path.display()),
            format!(
                "has shape {:?}, expected [classes, embedding width]",
                w.shape
            ),
        ));
    }
    let (c, e) = (w.shape[0], w.shape[1]);
    let bias = match sd.get(&bn) {
        Some(b) if b.shape != [c] => {
            return Err(Error::invalid(
                format!("{}: `{bn}`", path.display()),
                format!("has shape {:?}, expected [{c}]", b.shape),
            ))
        }
        Some(b) => Some(b.to_f32_vec()),
        None => None,
    };
    Ok(Linear {
        weight: w.to_f32_vec(),
        bias,
        out_dim: c,
        in_dim: e,
    })
}

/// The encoder's embedding width E of a checkpoint: `visual.proj` `[W, E]` (OpenAI naming) or
/// `visual_projection.weight` `[E, W]` (Hugging Face).
fn embed_width(src: &dyn TensorSource) -> Option<usize> {
    let names = src.tensor_names();
    if let Some(n) = names
        .iter()
        .find(|n| *n == "visual.proj" || n.ends_with(".visual.proj"))
    {
        return src.tensor_shape(n).and_then(|s| s.get(1).copied());
    }
    let n = names
        .iter()
        .find(|n| n.ends_with("visual_projection.weight"))?;
    src.tensor_shape(n).and_then(|s| s.first().copied())
}

/// A checkpoint, memory-mapped: one safetensors file, or the shards of a Hugging Face shard
/// index; plus tensors added in memory (the base's projection completing a vision tower).
/// Tensors are read (and converted to f32) one at a time, when asked for.
pub struct Checkpoint {
    shards: Vec<StateDict>,
    /// Tensor name → index in `shards` (sharded checkpoints only).
    index: Option<BTreeMap<String, usize>>,
    extra: TensorMap,
    name: String,
}

impl Checkpoint {
    fn single(path: &Path) -> Result<Checkpoint> {
        Ok(Checkpoint {
            shards: vec![StateDict::open(path)?],
            index: None,
            extra: TensorMap::new(),
            name: path.display().to_string(),
        })
    }

    /// The tensors.
    pub fn source(&self) -> &dyn TensorSource {
        self
    }

    fn shard_of(&self, name: &str) -> Option<&StateDict> {
        match &self.index {
            None => self.shards.first(),
            Some(ix) => ix.get(name).map(|&i| &self.shards[i]),
        }
    }
}

impl TensorSource for Checkpoint {
    fn tensor_names(&self) -> Vec<String> {
        let mut names = self.extra.tensor_names();
        match &self.index {
            None => names.extend(self.shards.iter().flat_map(|s| s.tensor_names())),
            Some(ix) => names.extend(ix.keys().cloned()),
        }
        names
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        if let Some(s) = self.extra.tensor_shape(name) {
            return Some(s);
        }
        self.shard_of(name)?.tensor_shape(name)
    }
    fn tensor_f32(&self, name: &str) -> dawin_vit::Result<Vec<f32>> {
        if self.extra.get(name).is_some() {
            return self.extra.tensor_f32(name);
        }
        match self.shard_of(name) {
            Some(sd) => sd.tensor_f32(name),
            None => Err(dawin_vit::Error::MissingTensor {
                name: name.to_string(),
                source_name: self.name.clone(),
            }),
        }
    }
    fn metadata_value(&self, key: &str) -> Option<String> {
        self.extra
            .metadata_value(key)
            .or_else(|| self.shards.iter().find_map(|s| s.metadata_value(key)))
    }
    fn source_name(&self) -> String {
        self.name.clone()
    }
}

/// Opens a checkpoint (memory-mapped, nothing read yet): a `.safetensors` file; a Hugging Face
/// shard index (`model.safetensors.index.json`: `{"weight_map": {tensor: shard file}}`, shards
/// next to it); or a directory holding either `model.safetensors.index.json` or
/// `model.safetensors`. Errors name the file: missing, unreadable index, a shard lacking a tensor
/// the index lists.
pub fn open_checkpoint(path: &Path) -> Result<Checkpoint> {
    let missing = |p: &Path| Error::invalid(p.display().to_string(), "no such file");
    if path.is_dir() {
        let index = path.join("model.safetensors.index.json");
        if index.exists() {
            return open_sharded(&index);
        }
        let single = path.join("model.safetensors");
        if single.exists() {
            return Checkpoint::single(&single);
        }
        return Err(Error::invalid(
            path.display().to_string(),
            "is a directory without model.safetensors.index.json or model.safetensors",
        ));
    }
    if !path.exists() {
        return Err(missing(path));
    }
    if path.extension().is_some_and(|e| e == "json") {
        return open_sharded(path);
    }
    Checkpoint::single(path)
}

fn open_sharded(index: &Path) -> Result<Checkpoint> {
    let what = || index.display().to_string();
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(what(), format!("is not JSON: {e}")))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::invalid(what(), "has no `weight_map` object"))?;
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            Error::invalid(what(), format!("`weight_map.{tensor}` is not a file name"))
        })?;
        by_shard
            .entry(file.to_string())
            .or_default()
            .push(tensor.clone());
    }
    if by_shard.is_empty() {
        return Err(Error::invalid(what(), "lists no tensor"));
    }
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards = Vec::new();
    let mut ix = BTreeMap::new();
    for (file, tensors) in &by_shard {
        let p = dir.join(file);
        if !p.exists() {
            return Err(Error::invalid(
                p.display().to_string(),
                format!("no such file (a shard listed by {})", what()),
            ));
        }
        let sd = StateDict::open(&p)?;
        for t in tensors {
            if sd.get(t).is_none() {
                return Err(Error::invalid(
                    p.display().to_string(),
                    format!("lacks tensor `{t}`, which {} places in it", what()),
                ));
            }
            ix.insert(t.clone(), shards.len());
        }
        shards.push(sd);
    }
    Ok(Checkpoint {
        shards,
        index: Some(ix),
        extra: TensorMap::new(),
        name: what(),
    })
}

/// A Hugging Face `CLIPVisionModel` checkpoint has the vision tower but no
/// `visual_projection.weight`: it is taken from the base (in the fine-tuned checkpoint's naming)
/// and added in memory; the rest stays memory-mapped.
fn complete_vision_tower(mut ck: Checkpoint, base: &ClipClassifier) -> Result<(Checkpoint, bool)> {
    let naming = CheckpointNaming::detect(&ck)?;
    let CheckpointNaming::HuggingFace { root } = &naming else {
        return Ok((ck, false));
    };
    let proj = format!("{root}visual_projection.weight");
    if ck.tensor_shape(&proj).is_some() {
        return Ok((ck, false));
    }
    let w = &base.weights().visual.proj;
    ck.extra
        .insert(proj, vec![w.out_dim, w.in_dim], w.weight.clone())?;
    Ok((ck, true))
}

/// A fine-tuned encoder of a multi-task evaluation, read only when needed: a
/// [`ClipClassifier`] already in memory, or a [`CheckpointEncoder`] (a memory-mapped checkpoint).
/// [`evaluate_mtl`] reads whole models one at a time (to evaluate each) and merges parameter by
/// parameter ([`merge_encoders`], [`ties_merge`]), so that M checkpoints never need M copies in
/// memory — except for `dawin-sample`, whose blended forward holds all M + 1 encoders.
pub trait Encoder {
    /// The architecture.
    fn config(&self) -> &VitConfig;
    /// Number of values of each encoder parameter (the slices of [`ClipWeights::params`]
    /// without the head), for checks.
    fn encoder_lens(&self) -> Vec<usize>;
    /// Encoder parameter `i` (order of [`ClipWeights::params`]) as f32, read alone.
    fn encoder_param(&self, i: usize) -> Result<Cow<'_, [f32]>>;
    /// The whole model as a classifier (its head is not used).
    fn classifier(&self) -> Result<Cow<'_, ClipClassifier>>;
}

impl Encoder for ClipClassifier {
    fn config(&self) -> &VitConfig {
        ClipClassifier::config(self)
    }
    fn encoder_lens(&self) -> Vec<usize> {
        let p = self.weights().params();
        p[..encoder_slices(self.weights())]
            .iter()
            .map(|s| s.len())
            .collect()
    }
    fn encoder_param(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Borrowed(self.weights().params()[i]))
    }
    fn classifier(&self) -> Result<Cow<'_, ClipClassifier>> {
        Ok(Cow::Borrowed(self))
    }
}

/// A fine-tuned encoder in a memory-mapped [`Checkpoint`], checked against the base's
/// architecture when opened (shapes only, no value read) and read parameter by parameter.
pub struct CheckpointEncoder {
    checkpoint: Checkpoint,
    specs: Vec<dawin_vit::ParamSpec>,
    config: VitConfig,
    /// The base's head, so that a whole model loads as a classifier.
    head: TensorMap,
}

impl CheckpointEncoder {
    /// Opens `checkpoint` as an encoder of architecture `config` (the base's); `head` is any
    /// head of width `config.embed_dim` (unused by the multi-task evaluation). Errors name the
    /// tensor that is missing or misshapen.
    pub fn new(checkpoint: Checkpoint, config: VitConfig, head: &Linear) -> Result<Self> {
        let naming = CheckpointNaming::detect(&checkpoint)?;
        let specs = ClipWeights::encoder_specs(&config, &naming);
        for s in &specs {
            s.check(&checkpoint)?;
        }
        let mut h = TensorMap::new();
        h.insert(
            "classification_head.weight",
            vec![head.out_dim, head.in_dim],
            head.weight.clone(),
        )?;
        let bias = head.bias.clone().unwrap_or_else(|| vec![0.0; head.out_dim]);
        h.insert("classification_head.bias", vec![head.out_dim], bias)?;
        Ok(CheckpointEncoder {
            checkpoint,
            specs,
            config,
            head: h,
        })
    }

    /// The checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

impl Encoder for CheckpointEncoder {
    fn config(&self) -> &VitConfig {
        &self.config
    }
    fn encoder_lens(&self) -> Vec<usize> {
        self.specs.iter().map(|s| s.len()).collect()
    }
    fn encoder_param(&self, i: usize) -> Result<Cow<'_, [f32]>> {
        let spec = self
            .specs
            .get(i)
            .ok_or_else(|| Error::invalid("parameter", format!("#{i} is not an encoder one")))?;
        Ok(Cow::Owned(spec.load(&self.checkpoint)?))
    }
    fn classifier(&self) -> Result<Cow<'_, ClipClassifier>> {
        Ok(Cow::Owned(ClipClassifier::from_source_with_config(
            &self.checkpoint,
            Some(&self.head),
            self.config.clone(),
        )?))
    }
}

/// Loaded inputs of a multi-task evaluation (see [`load_mtl`]).
pub struct MtlModels {
    /// θ0's encoder (with the first head, unused).
    pub base: ClipClassifier,
    /// The named fine-tuned encoders, memory-mapped and checked against θ0's config.
    pub models: Vec<(String, CheckpointEncoder)>,
    /// The named heads.
    pub heads: Vec<(String, Linear)>,
    /// Fine-tuned models that were vision towers only (Hugging Face `CLIPVisionModel`), their
    /// projection taken from the base.
    pub vision_only: Vec<String>,
}

/// Loads the base checkpoint and the named head files, and opens the named fine-tuned
/// checkpoints (memory-mapped, their shapes checked, their own heads ignored; values are read
/// when the evaluation needs them). Checkpoints are opened with [`open_checkpoint`] (single
/// files, shard indexes or directories); a Hugging Face vision tower without
/// `visual_projection.weight` (`CLIPVisionModel`) gets the base's projection. Errors name the
/// file: a head whose width differs from the encoder's embedding, a fine-tuned checkpoint whose
/// tensors differ in shape from the base's (another base or architecture), a missing file.
pub fn load_mtl(
    base: &Path,
    models: &[(String, std::path::PathBuf)],
    heads: &[(String, std::path::PathBuf)],
    opts: &LoadOptions,
) -> Result<MtlModels> {
    let (_, first_head) = heads
        .first()
        .ok_or_else(|| Error::invalid("--head", "at least one head is required"))?;
    let mut loaded_heads = Vec::new();
    for (name, p) in heads {
        loaded_heads.push((name.clone(), load_head(p)?));
    }
    let bck = open_checkpoint(base)?;
    if let Some(e) = embed_width(&bck) {
        for ((name, h), (_, p)) in loaded_heads.iter().zip(heads) {
            if h.in_dim != e {
                return Err(Error::invalid(
                    format!("head `{name}` ({})", p.display()),
                    format!(
                        "has input width {} ([{}, {}]), the encoder {} embeds to {e}",
                        h.in_dim,
                        h.out_dim,
                        h.in_dim,
                        base.display()
                    ),
                ));
            }
        }
    }
    let hsd = StateDict::open(first_head)?;
    let b = ClipClassifier::from_source(&bck, Some(&hsd), opts)
        .map_err(|e| Error::invalid(format!("base {}", base.display()), e.to_string()))?;
    drop(bck);
    let mut ms = Vec::new();
    let mut vision_only = Vec::new();
    for (name, p) in models {
        let (ck, completed) = complete_vision_tower(open_checkpoint(p)?, &b)?;
        if completed {
            vision_only.push(name.clone());
        }
        let c = CheckpointEncoder::new(ck, b.config().clone(), &b.weights().head).map_err(|e| {
            Error::invalid(
                format!("model `{name}` ({})", p.display()),
                format!("does not match the base {}: {e}", base.display()),
            )
        })?;
        ms.push((name.clone(), c));
    }
    Ok(MtlModels {
        base: b,
        models: ms,
        heads: loaded_heads,
        vision_only,
    })
}
