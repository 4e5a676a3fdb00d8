//! The evaluation pipeline: every method of the paper's comparison on one ID validation set,
//! one ID test set and any number of shifted test sets.
//!
//! Per dataset: logits of θ0 and θ1 computed once (and cached on disk, see [`crate::cache`]);
//! temperatures `T_j` fitted on the validation set (`p_j = softmax(z_j / T_j)`); entropies
//! `H_j`; `λ(x)` by Eq. 2 `(e_1 + O/T) / (e_0 + e_1 + O)` (Eq. 1 `e_1/(e_0+e_1)` on request) with
//! `e_j = exp(score_j)` of any [`dawin_core::Expertise`]; the K-component Beta mixture; one merge
//! `θ(λ) = (1 − λ)θ0 + λθ1` per distinct λ (per cluster for `dawin`), each group's samples run
//! through its merged model.
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Interpolate, PerSampleForward};
use crate::progress;
use crate::report::{MethodRow, MixtureReport, Report, WisePoint};
use dawin_core::expertise::{expertise_by_name, Needs, NegCrossEntropy, PseudoSource};
use dawin_core::{coef, stats, Context, Expertise, ModelOutputs};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// A method of the comparison table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// θ0 alone (zero-shot).
    Zs,
    /// θ1 alone (fine-tuned).
    Ft,
    /// WiSE-FT: one λ from the grid {0, 0.1, …, 1} picked on ID validation.
    Wise,
    /// Static output ensemble `(1 − a) p0 + a p1`, `a` on the grid picked on ID validation.
    Ensemble,
    /// Dynamic classifier selection: the lower-entropy model's prediction.
    Dcs,
    /// Dynamic output ensemble: `(1 − λ(x)) p0 + λ(x) p1`.
    Doe,
    /// DaWin with the K-component Beta mixture: one merge per cluster.
    Dawin,
    /// DaWin without the mixture: one λ per sample.
    DawinSample,
    /// Oracle: λ*(x) = p1(y)/(p0(y) + p1(y)) from the true labels.
    OracleSample,
    /// Oracle: the WiSE-FT grid evaluated on the test set itself, best per dataset.
    OracleDomain,
}

impl Method {
    /// Every method, in table order.
    pub const ALL: [Method; 10] = [
        Method::Zs,
        Method::Ft,
        Method::Wise,
        Method::Ensemble,
        Method::Dcs,
        Method::Doe,
        Method::Dawin,
        Method::DawinSample,
        Method::OracleSample,
        Method::OracleDomain,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Zs => "zs",
            Method::Ft => "ft",
            Method::Wise => "wise",
            Method::Ensemble => "ensemble",
            Method::Dcs => "dcs",
            Method::Doe => "doe",
            Method::Dawin => "dawin",
            Method::DawinSample => "dawin-sample",
            Method::OracleSample => "oracle-sample",
            Method::OracleDomain => "oracle-domain",
        }
    }

    /// Parses a command-line name; the error lists the valid names.
    pub fn parse(s: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                Error::invalid(
                    "--methods",
                    format!("unknown method `{s}`; expected one of {}", names.join(", ")),
                )
            })
    }
}

/// Which coefficient formula gives λ(x).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coefficient {
    /// Eq. 1: `e_1 / (e_0 + e_1)`.
    Eq1,
    /// Eq. 2: `(e_1 + O/T) / (e_0 + e_1 + O)` with the domain offset (the default).
    Eq2,
}

/// Pipeline settings.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// Methods to evaluate, in table order.
    pub methods: Vec<Method>,
    /// Components of the Beta mixture (`dawin`). Default 3.
    pub k: usize,
    /// Expertise metric by name ([`dawin_core::expertise::expertise_by_name`]). Default `entropy`.
    pub expertise: String,
    /// Eq. 1 or Eq. 2 (default).
    pub coefficient: Coefficient,
    /// WiSE-FT plug-in: λ_wise(x) = α·λ(x) for `dawin`, `dawin-sample` and `doe`.
    pub wise_alpha: Option<f32>,
    /// Samples per forward batch. Default 64.
    pub batch_size: usize,
    /// Seed of the mixture fit.
    pub seed: u64,
    /// Temperatures (T0, T1); fitted on the validation set when `None`.
    pub temperatures: Option<(f32, f32)>,
    /// Where θ0/θ1 logits are cached; no cache when `None`.
    pub cache_dir: Option<PathBuf>,
    /// Evaluate the WiSE-FT grid on every dataset (for the ID-vs-OOD plot's curve; implied by
    /// `oracle-domain`). Costs 9 extra forwards per dataset.
    pub wise_curve: bool,
    /// Draw progress bars (only when stdout is a terminal).
    pub progress: bool,
    /// The device, as reported.
    pub device: String,
    /// Per-sample methods (`dawin-sample`, `oracle-sample`) merge θ(λ) once per distinct λ even
    /// when the model has a blended per-sample forward ([`Interpolate::per_sample_forward`]);
    /// for checking the blended path.
    pub exact_loop: bool,
    /// Largest accepted `‖θ1 − θ0‖/‖θ0‖` ([`Interpolate::relative_distance`]): above it θ1 is
    /// refused as a fine-tune of another base. Default 1.0 (the demo's θ1 lies at 0.16, two
    /// unrelated weight sets of similar norm about √2 apart).
    pub max_distance: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            methods: Method::ALL.to_vec(),
            k: 3,
            expertise: "entropy".into(),
            coefficient: Coefficient::Eq2,
            wise_alpha: None,
            batch_size: 64,
            seed: 0,
            temperatures: None,
            cache_dir: None,
            wise_curve: false,
            progress: true,
            device: "cpu".into(),
            exact_loop: false,
            max_distance: 1.0,
        }
    }
}

/// A model with a display name and a content fingerprint (the cache key; e.g.
/// [`crate::data::file_fingerprint`] of its checkpoint).
pub struct Named<'a, M> {
    /// Display name.
    pub name: String,
    /// The model.
    pub model: &'a M,
    /// Content fingerprint.
    pub fingerprint: String,
}

impl<'a, M> Named<'a, M> {
    /// Bundles a model with its name and fingerprint.
    pub fn new(name: impl Into<String>, model: &'a M, fingerprint: impl Into<String>) -> Self {
        Named {
            name: name.into(),
            model,
            fingerprint: fingerprint.into(),
        }
    }
}

/// Per-sample outputs of one dataset.
#[derive(Clone, Debug)]
pub struct PerSample {
    /// Dataset name.
    pub dataset: String,
    /// True labels.
    pub labels: Vec<i64>,
    /// Entropy of θ0 at T0.
    pub h0: Vec<f32>,
    /// Entropy of θ1 at T1.
    pub h1: Vec<f32>,
    /// λ(x) (after the WiSE-FT plug-in, if any).
    pub lambda: Vec<f32>,
    /// Mixture component of each sample (−1 when `dawin` was not run).
    pub cluster: Vec<i64>,
    /// Predicted class per method.
    pub predictions: BTreeMap<Method, Vec<u32>>,
}

impl PerSample {
    /// Whether `method` was right on each sample.
    pub fn correct(&self, method: Method) -> Option<Vec<bool>> {
        let p = self.predictions.get(&method)?;
        Some(
            p.iter()
                .zip(&self.labels)
                .map(|(&p, &y)| p as i64 == y)
                .collect(),
        )
    }
}

/// What [`evaluate`] returns: the report and the per-sample arrays.
#[derive(Clone, Debug)]
pub struct EvalOutput {
    /// Every number of the table and more.
    pub report: Report,
    /// One entry per evaluated dataset (ID first).
    pub per_sample: Vec<PerSample>,
}

struct Timer(BTreeMap<&'static str, f64>, Vec<&'static str>);

impl Timer {
    fn add(&mut self, stage: &'static str, t: Instant) {
        if !self.0.contains_key(stage) {
            self.1.push(stage);
        }
        *self.0.entry(stage).or_default() += t.elapsed().as_secs_f64();
    }
}

fn check_dataset<M: Interpolate>(model: &M, d: &dyn Dataset) -> Result<()> {
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
    let heads = model.num_classes();
    if let Some(sub) = d.class_subset() {
        if let Some(&k) = sub.iter().find(|&&k| k >= heads) {
            return Err(Error::invalid(
                format!("class subset of dataset `{}`", d.name()),
                format!("lists class {k}, the head has {heads} classes"),
            ));
        }
    }
    let c = classes_of(d, heads) as i64;
    if let Some(i) = d.labels().iter().position(|&y| y < 0 || y >= c) {
        return Err(Error::invalid(
            what(),
            format!(
                "label {} of sample {i} is not a class of the head ({c} classes)",
                d.labels()[i]
            ),
        ));
    }
    Ok(())
}

/// Refuses θ1 when it lies farther than `max` from θ0 ([`Interpolate::relative_distance`]).
fn check_distance<M: Interpolate>(m0: &M, m1: &M, max: f64) -> Result<()> {
    if max.is_nan() || max <= 0.0 {
        return Err(Error::invalid(
            "--max-distance",
            format!("must be positive, got {max}"),
        ));
    }
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

/// Number of classes of `d`'s logits: its class subset's size, else the head's `c`.
fn classes_of(d: &dyn Dataset, c: usize) -> usize {
    d.class_subset().map_or(c, |s| s.len())
}

/// `z' = z[:, subset]`: logits `[N, c]` restricted to the columns of a class subset
/// ([`Dataset::class_subset`]), so that column `y` of `z'` is head class `subset[y]`; `z`
/// itself when `subset` is `None`.
pub fn restrict_logits(z: Vec<f32>, c: usize, subset: Option<&[usize]>) -> Vec<f32> {
    match subset {
        None => z,
        Some(sub) => z
            .chunks_exact(c)
            .flat_map(|row| sub.iter().map(move |&k| row[k]))
            .collect(),
    }
}

/// Logits `[N, C]` of `model` over `data` in batches (with a progress bar).
pub fn forward_dataset<M: Interpolate>(
    model: &M,
    data: &dyn Dataset,
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let idx: Vec<usize> = (0..data.len()).collect();
    forward_indices(model, data, &idx, batch, bar)
}

fn forward_indices<M: Interpolate>(
    model: &M,
    data: &dyn Dataset,
    idx: &[usize],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(idx.len() * model.num_classes());
    for chunk in idx.chunks(batch.max(1)) {
        let x = data.load(chunk)?;
        out.extend(model.forward(&x, chunk.len())?);
        bar.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// Logits `[N, C]` where sample i runs through θ(λ_i): one merge per distinct λ (compared by
/// f32 bits), each group's samples forwarded in batches. Exact: equals merging and forwarding
/// one sample at a time ([`forward_per_sample_loop`]). Returns the logits and the merge count.
pub fn forward_by_lambda<M: Interpolate>(
    theta0: &M,
    theta1: &M,
    data: &dyn Dataset,
    lambdas: &[f32],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<(Vec<f32>, usize)> {
    if lambdas.len() != data.len() {
        return Err(Error::invalid(
            "lambdas",
            format!("{} values for {} samples", lambdas.len(), data.len()),
        ));
    }
    let c = theta0.num_classes();
    let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, l) in lambdas.iter().enumerate() {
        groups.entry(l.to_bits()).or_default().push(i);
    }
    let mut out = vec![0f32; data.len() * c];
    for (bits, idx) in &groups {
        let merged = theta0.interpolate(theta1, f32::from_bits(*bits))?;
        let z = forward_indices(&merged, data, idx, batch, bar)?;
        for (k, &i) in idx.iter().enumerate() {
            out[i * c..(i + 1) * c].copy_from_slice(&z[k * c..(k + 1) * c]);
        }
    }
    Ok((out, groups.len()))
}

/// Logits `[N, C]` where sample i runs through θ(λ_i) with a prepared blended forward
/// ([`Interpolate::per_sample_forward`]), in batches of `batch` samples; no merged model is built.
pub fn forward_blended(
    blend: &dyn PerSampleForward,
    data: &dyn Dataset,
    lambdas: &[f32],
    batch: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    if lambdas.len() != data.len() {
        return Err(Error::invalid(
            "lambdas",
            format!("{} values for {} samples", lambdas.len(), data.len()),
        ));
    }
    let idx: Vec<usize> = (0..data.len()).collect();
    let mut out = Vec::new();
    for chunk in idx.chunks(batch.max(1)) {
        let x = data.load(chunk)?;
        let l = &lambdas[chunk[0]..chunk[0] + chunk.len()];
        out.extend(blend.forward(&x, chunk.len(), l)?);
        bar.inc(chunk.len() as u64);
    }
    Ok(out)
}

/// The reference per-sample loop: for each sample, merge θ(λ_i) and forward that one sample
/// (batch 1), as the authors' per-sample mode does. Slow; for tests.
pub fn forward_per_sample_loop<M: Interpolate>(
    theta0: &M,
    theta1: &M,
    data: &dyn Dataset,
    lambdas: &[f32],
) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for (i, &l) in lambdas.iter().enumerate() {
        let merged = theta0.interpolate(theta1, l)?;
        out.extend(merged.forward(&data.load(&[i])?, 1)?);
    }
    Ok(out)
}

/// Per-sample log-expertise of both models with the metric `metric`, filling its context:
/// labels for oracle metrics, `½(p0 + p1)` for ensemble pseudo-labels, and
/// `softmax(z_{θ(½)} / t_half)` (`half()` computes the ½/½ merged model's logits) for merged
/// pseudo-labels, with `t_half = (T0 + T1)/2`.
fn log_expertise(
    metric: &dyn Expertise,
    m0: &ModelOutputs<'_>,
    m1: &ModelOutputs<'_>,
    labels: &[i64],
    half: &dyn Fn() -> Result<Vec<f32>>,
    t_half: f32,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let targets;
    let ctx = match metric.needs() {
        Needs::Nothing => Context::default(),
        Needs::Labels => Context {
            labels: Some(labels),
            pseudo_targets: None,
        },
        Needs::PseudoTargets(PseudoSource::Ensemble) => {
            targets = dawin_core::expertise::ensemble_targets(m0, m1)?;
            Context {
                labels: None,
                pseudo_targets: Some(&targets),
            }
        }
        Needs::PseudoTargets(PseudoSource::Merged) => {
            let z = half()?;
            targets = dawin_core::expertise::merged_targets(&ModelOutputs::new(
                &z,
                m0.n_classes,
                t_half,
            ))?;
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

fn accuracy(pred: &[u32], labels: &[i64]) -> f64 {
    let ok = pred
        .iter()
        .zip(labels)
        .filter(|(&p, &y)| p as i64 == y)
        .count();
    100.0 * ok as f64 / labels.len().max(1) as f64
}

fn mix_probs(p0: &[f32], p1: &[f32], c: usize, w: impl Fn(usize) -> f32) -> Vec<f32> {
    p0.iter()
        .zip(p1)
        .enumerate()
        .map(|(j, (a, b))| {
            let l = w(j / c);
            (1.0 - l) * a + l * b
        })
        .collect()
}

/// The grid {0, 0.1, …, 1}.
pub fn grid() -> Vec<f32> {
    (0..=10).map(|g| g as f32 / 10.0).collect()
}

/// First index of the maximum (ties go to the earlier grid point).
fn argmax_first(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Runs the whole comparison. `val` is the labelled ID validation set (temperatures, WiSE-FT's λ,
/// the ensemble's weight), `id` the ID test set (first column), `tests` the shifted sets.
pub fn evaluate<M: Interpolate>(
    theta0: &Named<'_, M>,
    theta1: &Named<'_, M>,
    val: &dyn Dataset,
    id: &dyn Dataset,
    tests: &[&dyn Dataset],
    config: &EvalConfig,
) -> Result<EvalOutput> {
    let t_all = Instant::now();
    let (m0, m1) = (theta0.model, theta1.model);
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
    let c = m0.num_classes();
    let mut evals: Vec<&dyn Dataset> = vec![id];
    evals.extend_from_slice(tests);
    let mut names = std::collections::HashSet::new();
    for d in std::iter::once(val).chain(evals.iter().copied()) {
        check_dataset(m0, d)?;
    }
    for d in &evals {
        if !names.insert(d.name().to_string()) {
            return Err(Error::invalid(
                format!("dataset `{}`", d.name()),
                "appears twice",
            ));
        }
    }
    let has = |m: Method| config.methods.contains(&m);
    let mut timer = Timer(BTreeMap::new(), Vec::new());
    let (mut hits, mut misses) = (0usize, 0usize);

    // 1. θ0 / θ1 logits, cached.
    let t = Instant::now();
    let mut base_logits = |model: &Named<'_, M>, d: &dyn Dataset| -> Result<Vec<f32>> {
        let file = match &config.cache_dir {
            Some(dir) => Some(crate::cache::path(
                dir,
                &model.fingerprint,
                &d.fingerprint()?,
            )),
            None => None,
        };
        if let Some(z) = file
            .as_deref()
            .and_then(|f| crate::cache::load(f, d.len(), c))
        {
            hits += 1;
            return Ok(restrict_logits(z, c, d.class_subset()));
        }
        misses += 1;
        let bar = progress::bar(
            d.len(),
            format!("{} on {}", model.name, d.name()),
            config.progress,
        );
        let z = forward_dataset(model.model, d, config.batch_size, &bar)?;
        bar.finish_and_clear();
        if let Some(f) = file {
            crate::cache::store(&f, &z, d.len(), c)?;
        }
        Ok(restrict_logits(z, c, d.class_subset()))
    };
    let val_z = (base_logits(theta0, val)?, base_logits(theta1, val)?);
    let mut zs = Vec::new();
    for d in &evals {
        zs.push((base_logits(theta0, *d)?, base_logits(theta1, *d)?));
    }
    timer.add("logits", t);

    // 2. Temperatures on ID validation.
    let cv = classes_of(val, c);
    let t = Instant::now();
    let (t0, t1, fitted) = match config.temperatures {
        Some((a, b)) => (a, b, false),
        None => (
            dawin_core::temperature::fit_temperature(&val_z.0, cv, val.labels())?.temperature,
            dawin_core::temperature::fit_temperature(&val_z.1, cv, val.labels())?.temperature,
            true,
        ),
    };
    timer.add("temperature", t);

    // 3. Static choices on ID validation: WiSE-FT λ and the ensemble weight.
    let grid = grid();
    let wise_needed = has(Method::Wise) || has(Method::OracleDomain) || config.wise_curve;
    let grid_logits = |d: &dyn Dataset, z: &(Vec<f32>, Vec<f32>), g: f32| -> Result<Vec<f32>> {
        if g == 0.0 {
            return Ok(z.0.clone());
        }
        if g == 1.0 {
            return Ok(z.1.clone());
        }
        let merged = m0.interpolate(m1, g)?;
        let bar = progress::bar(
            d.len(),
            format!("θ({g:.1}) on {}", d.name()),
            config.progress,
        );
        let out = forward_dataset(&merged, d, config.batch_size, &bar)?;
        bar.finish_and_clear();
        Ok(restrict_logits(out, c, d.class_subset()))
    };
    let t = Instant::now();
    let mut wise_lambda = None;
    if wise_needed {
        let accs: Vec<f64> = grid
            .iter()
            .map(|&g| {
                Ok(accuracy(
                    &stats::argmax(&grid_logits(val, &val_z, g)?, cv)?,
                    val.labels(),
                ))
            })
            .collect::<Result<_>>()?;
        wise_lambda = Some(grid[argmax_first(&accs)]);
    }
    timer.add("wise", t);
    let t = Instant::now();
    let mut ensemble_weight = None;
    if has(Method::Ensemble) {
        let p0 = stats::softmax(&val_z.0, cv, t0)?;
        let p1 = stats::softmax(&val_z.1, cv, t1)?;
        let accs: Vec<f64> = grid
            .iter()
            .map(|&a| {
                Ok(accuracy(
                    &stats::argmax(&mix_probs(&p0, &p1, cv, |_| a), cv)?,
                    val.labels(),
                ))
            })
            .collect::<Result<_>>()?;
        ensemble_weight = Some(grid[argmax_first(&accs)]);
    }
    timer.add("ensemble", t);

    // The blended per-sample forward, built once for every dataset (θ0 and Δθ stacked).
    let per_sample_methods = has(Method::DawinSample) || has(Method::OracleSample);
    let blend = if per_sample_methods && !config.exact_loop {
        m0.per_sample_forward(m1).transpose()?
    } else {
        None
    };

    // 4. Per dataset.
    let mut per_sample = Vec::new();
    let mut mixtures = BTreeMap::new();
    let mut mean_lambda = BTreeMap::new();
    let mut merges: BTreeMap<Method, usize> = BTreeMap::new();
    let mut wise_grid_acc: Vec<Vec<f64>> = Vec::new(); // [dataset][grid]
    for (d, z) in evals.iter().zip(&zs) {
        let labels = d.labels();
        let n = d.len();
        let cd = classes_of(*d, c);
        let sub = d.class_subset();
        let t = Instant::now();
        let o0 = ModelOutputs::new(&z.0, cd, t0);
        let o1 = ModelOutputs::new(&z.1, cd, t1);
        let h0 = stats::entropy(&z.0, cd, t0)?;
        let h1 = stats::entropy(&z.1, cd, t1)?;
        let half = || -> Result<Vec<f32>> { grid_logits(*d, z, 0.5) };
        let (le0, le1) = log_expertise(metric.as_ref(), &o0, &o1, labels, &half, 0.5 * (t0 + t1))?;
        let mut lambda = match config.coefficient {
            Coefficient::Eq1 => coef::lambda_eq1(&le0, &le1)?,
            Coefficient::Eq2 => coef::lambda_eq2(&le0, &le1, coef::domain_offset(&h0, &h1)?)?,
        };
        if let Some(a) = config.wise_alpha {
            lambda = coef::wise_plugin(&lambda, a)?;
        }
        mean_lambda.insert(
            d.name().to_string(),
            lambda.iter().map(|&l| l as f64).sum::<f64>() / n as f64,
        );
        timer.add("coefficients", t);

        let mut preds: BTreeMap<Method, Vec<u32>> = BTreeMap::new();
        let mut cluster = vec![-1i64; n];
        let p0 = stats::softmax(&z.0, cd, t0)?;
        let p1 = stats::softmax(&z.1, cd, t1)?;
        let mut grid_acc = Vec::new();
        // Predictions of θ(g) on this dataset for each grid point, kept for wise/oracle-domain.
        let mut grid_pred: Vec<Vec<u32>> = Vec::new();
        if has(Method::OracleDomain) || config.wise_curve {
            let t = Instant::now();
            for &g in &grid {
                let pred = stats::argmax(&grid_logits(*d, z, g)?, cd)?;
                grid_acc.push(accuracy(&pred, labels));
                grid_pred.push(pred);
            }
            timer.add("wise-grid", t);
        }
        let grid_or_forward = |g: f32| -> Result<Vec<u32>> {
            match grid
                .iter()
                .position(|&x| x == g)
                .and_then(|i| grid_pred.get(i))
            {
                Some(p) => Ok(p.clone()),
                None => Ok(stats::argmax(&grid_logits(*d, z, g)?, cd)?),
            }
        };
        for &m in &config.methods {
            let t = Instant::now();
            let pred = match m {
                Method::Zs => stats::argmax(&z.0, cd)?,
                Method::Ft => stats::argmax(&z.1, cd)?,
                Method::Wise => grid_or_forward(wise_lambda.expect("wise λ picked"))?,
                Method::Ensemble => {
                    let a = ensemble_weight.expect("ensemble weight picked");
                    stats::argmax(&mix_probs(&p0, &p1, cd, |_| a), cd)?
                }
                Method::Dcs => {
                    let a0 = stats::argmax(&z.0, cd)?;
                    let a1 = stats::argmax(&z.1, cd)?;
                    (0..n)
                        .map(|i| if h1[i] < h0[i] { a1[i] } else { a0[i] })
                        .collect()
                }
                Method::Doe => stats::argmax(&mix_probs(&p0, &p1, cd, |i| lambda[i]), cd)?,
                Method::Dawin => {
                    let tm = Instant::now();
                    let cfg = dawin_mixture::BetaMixtureConfig {
                        k: config.k,
                        seed: config.seed,
                        ..Default::default()
                    };
                    let fit = dawin_mixture::BetaMixture::fit(&lambda, &cfg).map_err(|e| {
                        Error::invalid(format!("mixture on `{}`", d.name()), e.to_string())
                    })?;
                    let comp = fit.predict(&lambda)?;
                    let lk: Vec<f32> = comp.iter().map(|&k| fit.means()[k] as f32).collect();
                    for (cl, &k) in cluster.iter_mut().zip(&comp) {
                        *cl = k as i64;
                    }
                    mixtures.insert(
                        d.name().to_string(),
                        MixtureReport {
                            k: fit.k(),
                            weights: fit.weights().to_vec(),
                            a: fit.a().to_vec(),
                            b: fit.b().to_vec(),
                            means: fit.means().to_vec(),
                            mean_log_likelihood: fit.mean_log_likelihood(),
                            n_iter: fit.n_iter(),
                            converged: fit.converged(),
                        },
                    );
                    timer.add("mixture", tm);
                    let bar = progress::bar(
                        n,
                        format!("dawin K={} on {}", config.k, d.name()),
                        config.progress,
                    );
                    let (zl, nm) = forward_by_lambda(m0, m1, *d, &lk, config.batch_size, &bar)?;
                    let zl = restrict_logits(zl, c, sub);
                    bar.finish_and_clear();
                    *merges.entry(m).or_default() += nm;
                    stats::argmax(&zl, cd)?
                }
                Method::DawinSample | Method::OracleSample => {
                    let l = if m == Method::DawinSample {
                        lambda.clone()
                    } else {
                        let ctx = Context {
                            labels: Some(labels),
                            pseudo_targets: None,
                        };
                        coef::lambda_eq1(
                            &NegCrossEntropy.log_expertise(&o0, &ctx)?,
                            &NegCrossEntropy.log_expertise(&o1, &ctx)?,
                        )?
                    };
                    let bar =
                        progress::bar(n, format!("{} on {}", m.name(), d.name()), config.progress);
                    let zl = match &blend {
                        Some(b) => {
                            merges.entry(m).or_default(); // no merge: 0
                            forward_blended(b.as_ref(), *d, &l, config.batch_size, &bar)?
                        }
                        None => {
                            let (zl, nm) =
                                forward_by_lambda(m0, m1, *d, &l, config.batch_size, &bar)?;
                            *merges.entry(m).or_default() += nm;
                            zl
                        }
                    };
                    bar.finish_and_clear();
                    stats::argmax(&restrict_logits(zl, c, sub), cd)?
                }
                Method::OracleDomain => grid_or_forward(grid[argmax_first(&grid_acc)])?,
            };
            timer.add(m.name(), t);
            preds.insert(m, pred);
        }
        wise_grid_acc.push(grid_acc);
        per_sample.push(PerSample {
            dataset: d.name().to_string(),
            labels: labels.to_vec(),
            h0,
            h1,
            lambda,
            cluster,
            predictions: preds,
        });
    }

    // 5. The report.
    let datasets: Vec<String> = evals.iter().map(|d| d.name().to_string()).collect();
    let ood_mean =
        |v: &[f64]| (v.len() > 1).then(|| v[1..].iter().sum::<f64>() / (v.len() - 1) as f64);
    let methods = config
        .methods
        .iter()
        .map(|&m| {
            let acc: Vec<f64> = per_sample
                .iter()
                .map(|p| accuracy(&p.predictions[&m], &p.labels))
                .collect();
            MethodRow {
                method: m.name().to_string(),
                accuracy: datasets.iter().cloned().zip(acc.iter().copied()).collect(),
                id: acc[0],
                ood_mean: ood_mean(&acc),
                merges: merges.get(&m).copied(),
            }
        })
        .collect();
    let wise_curve = if wise_grid_acc.iter().all(|g| g.len() == grid.len()) {
        grid.iter()
            .enumerate()
            .map(|(gi, &g)| {
                let acc: Vec<f64> = wise_grid_acc.iter().map(|v| v[gi]).collect();
                WisePoint {
                    lambda: g,
                    id: acc[0],
                    ood_mean: ood_mean(&acc),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut timings: Vec<(String, f64)> = timer
        .1
        .iter()
        .map(|s| (s.to_string(), timer.0[s]))
        .collect();
    timings.push(("total".into(), t_all.elapsed().as_secs_f64()));
    let report = Report {
        theta0: theta0.name.clone(),
        theta1: theta1.name.clone(),
        val: val.name().to_string(),
        id: id.name().to_string(),
        datasets: datasets.clone(),
        n_samples: evals
            .iter()
            .map(|d| (d.name().to_string(), d.len()))
            .collect(),
        methods,
        temperatures: [t0, t1],
        temperatures_fitted: fitted,
        wise_lambda,
        ensemble_weight,
        wise_curve,
        mixtures,
        mean_lambda,
        expertise: config.expertise.clone(),
        coefficient: match config.coefficient {
            Coefficient::Eq1 => "eq1".into(),
            Coefficient::Eq2 => "eq2".into(),
        },
        k: config.k,
        wise_alpha: config.wise_alpha,
        seed: config.seed,
        device: config.device.clone(),
        cache_dir: config.cache_dir.as_ref().map(|p| p.display().to_string()),
        per_sample_forward: per_sample_methods.then(|| {
            if blend.is_some() {
                "blended"
            } else {
                "merge-per-lambda"
            }
            .to_string()
        }),
        cache_hits: hits,
        cache_misses: misses,
        timings,
    };
    Ok(EvalOutput { report, per_sample })
}

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
    let (t0, t1) = temperatures;
    let c = m0.num_classes();
    let sub = data.class_subset();
    let cd = classes_of(data, c);
    let blend = if config.exact_loop {
        None
    } else {
        m0.per_sample_forward(m1).transpose()?
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
    for chunk in all.chunks(config.batch_size.max(1)) {
        let b = chunk.len();
        let x = data.load(chunk)?;
        let labels = &data.labels()[chunk[0]..chunk[0] + b];
        let (z0, z1) = (
            restrict_logits(m0.forward(&x, b)?, c, sub),
            restrict_logits(m1.forward(&x, b)?, c, sub),
        );
        let (o0, o1) = (
            ModelOutputs::new(&z0, cd, t0),
            ModelOutputs::new(&z1, cd, t1),
        );
        if metric.needs() == Needs::PseudoTargets(PseudoSource::Merged) && half_model.is_none() {
            half_model = Some(m0.interpolate(m1, 0.5)?);
        }
        let half = || -> Result<Vec<f32>> {
            half_model
                .as_ref()
                .expect("θ(½) built when needed")
                .forward(&x, b)
                .map(|z| restrict_logits(z, c, sub))
        };
        let (le0, le1) = log_expertise(metric.as_ref(), &o0, &o1, labels, &half, 0.5 * (t0 + t1))?;
        let mut lambda = match config.coefficient {
            Coefficient::Eq1 => coef::lambda_eq1(&le0, &le1)?,
            Coefficient::Eq2 => {
                let (h0, h1) = (stats::entropy(&z0, cd, t0)?, stats::entropy(&z1, cd, t1)?);
                coef::lambda_eq2(&le0, &le1, coef::domain_offset(&h0, &h1)?)?
            }
        };
        if let Some(a) = config.wise_alpha {
            lambda = coef::wise_plugin(&lambda, a)?;
        }
        if let Some(k) = mixture_k {
            let cfg = dawin_mixture::BetaMixtureConfig {
                k,
                seed: config.seed,
                ..Default::default()
            };
            let fit = dawin_mixture::BetaMixture::fit(&lambda, &cfg).map_err(|e| {
                Error::invalid(
                    format!("mixture on batch {} of `{}`", res.batches, data.name()),
                    e.to_string(),
                )
            })?;
            lambda = fit
                .predict(&lambda)?
                .iter()
                .map(|&k| fit.means()[k] as f32)
                .collect();
        }
        let z = match &blend {
            Some(bl) => bl.forward(&x, b, &lambda)?,
            None => {
                let n = m0.input_numel();
                let mut z = vec![0f32; b * c];
                let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
                for (i, l) in lambda.iter().enumerate() {
                    groups.entry(l.to_bits()).or_default().push(i);
                }
                for (bits, idx) in &groups {
                    let merged = m0.interpolate(m1, f32::from_bits(*bits))?;
                    let xs: Vec<f32> = idx
                        .iter()
                        .flat_map(|&i| x[i * n..(i + 1) * n].iter().copied())
                        .collect();
                    let zg = merged.forward(&xs, idx.len())?;
                    for (k, &i) in idx.iter().enumerate() {
                        z[i * c..(i + 1) * c].copy_from_slice(&zg[k * c..(k + 1) * c]);
                    }
                }
                z
            }
        };
        let pred = stats::argmax(&restrict_logits(z, c, sub), cd)?;
        res.correct += pred
            .iter()
            .zip(labels)
            .filter(|(&p, &y)| p as i64 == y)
            .count();
        lambda_sum += lambda.iter().map(|&l| l as f64).sum::<f64>();
        res.n += b;
        res.batches += 1;
        bar.inc(b as u64);
    }
    bar.finish_and_clear();
    res.mean_lambda = lambda_sum / res.n.max(1) as f64;
    Ok(res)
}
