//! The two-model evaluation, [`evaluate`]: the stages in the paper's order on an ID validation
//! set, an ID test set and any number of shifted test sets.
//!
//! ```text
//! 0 inputs        checks::check_eval
//! 1 logits        logits::BaseLogits                  z_0, z_1 per dataset (cached)
//! 2 temperatures  coefficients::temperatures          T_j on ID validation
//!   baselines     baselines::{WiseGrid, pick_ensemble} WiSE-FT's λ, the ensemble's weight
//!   per dataset:
//! 2 coefficients  coefficients::LambdaRule            H_j, λ(x) (Eq. 1 / Eq. 2, α)
//! 3 clustering    clustering::beta_clusters           k_i, λ_k = a_k/(a_k+b_k)
//! 4 merged        merged::{forward_by_lambda, per_sample_logits}   θ(λ) forwards
//! 5 report        report::{Row, PerSample, Report}
//! ```
use super::baselines::{self, mix_probs, pick_ensemble, GridResults, WiseGrid};
use super::checks::check_eval;
use super::clustering::{beta_clusters, MixtureReport};
use super::coefficients::{oracle_lambda, temperatures, Coefficients, LambdaRule};
use super::config::{EvalConfig, Method, Named};
use super::logits::{classes_of, map_logits, BaseLogits};
use super::merged::{forward_by_lambda, per_sample_logits};
use super::report::{
    method_rows, DataInfo, EvalOutput, PairArrays, PerSample, Report, Timer, WisePoint,
};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{Interpolate, PerSampleForward};
use crate::progress;
use dawin_core::stats;
use std::collections::BTreeMap;
use std::time::Instant;

/// Runs the whole comparison. `val` is the labelled ID validation set (temperatures, WiSE-FT's λ,
/// the ensemble's weight), `id` the ID test set (first column), `tests` the shifted sets.
///
/// Per dataset: logits of θ0 and θ1 computed once (and cached on disk); temperatures `T_j`
/// fitted on the validation set (`p_j = softmax(z_j / T_j)`); entropies `H_j`; `λ(x)` by Eq. 2
/// `(e_1 + O/T) / (e_0 + e_1 + O)` (Eq. 1 `e_1/(e_0+e_1)` on request) with `e_j = exp(score_j)`
/// of any [`dawin_core::expertise::Expertise`]; the K-component Beta mixture; one merge
/// `θ(λ) = (1 − λ)θ0 + λθ1` per distinct λ (per cluster for `dawin`), each group's samples run
/// through its merged model.
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
    let (evals, metric) = check_eval(m0, m1, val, id, tests, config)?;
    let mut timer = Timer::default();
    // 1. θ0 / θ1 logits, cached.
    let t = Instant::now();
    let mut base = BaseLogits::new(
        config.cache_dir.as_deref(),
        config.batch_size,
        config.progress,
    );
    base.compute_missing_shards = config.compute_missing_shards;
    let val_z = base.pair(theta0, theta1, val)?;
    let zs = (evals.iter().map(|d| base.pair(theta0, theta1, *d))).collect::<Result<Vec<_>>>()?;
    timer.add("logits", t);
    // 2. Temperatures on ID validation.
    let cv = classes_of(val, m0.num_classes());
    let t = Instant::now();
    let val_z = (&val_z.0[..], &val_z.1[..]);
    let (t0, t1, fitted) = temperatures(config.temperatures, val_z, cv, val.labels())?;
    timer.add("temperature", t);
    // The static baselines' choices on ID validation: WiSE-FT's λ and the ensemble's weight.
    let (batch, progress) = (config.batch_size, config.progress);
    let wise = WiseGrid {
        m0,
        m1,
        batch,
        progress,
    };
    let t = Instant::now();
    let wise_needed = config.has(Method::Wise) || config.has(Method::OracleDomain);
    let wise_lambda = (wise_needed || config.wise_curve)
        .then(|| wise.pick(val, val_z, cv))
        .transpose()?;
    timer.add("wise", t);
    let t = Instant::now();
    let ensemble_weight = (config.has(Method::Ensemble))
        .then(|| pick_ensemble(val_z, cv, (t0, t1), val.labels()))
        .transpose()?;
    timer.add("ensemble", t);
    // The blended per-sample forward, built once for every dataset (θ0 and Δθ stacked).
    let per_sample_methods = config.has(Method::DawinSample) || config.has(Method::OracleSample);
    let blend = match per_sample_methods && !config.exact_loop {
        true => m0.per_sample_forward(m1).transpose()?,
        false => None,
    };
    // 2–4 per dataset: coefficients, clustering, merged forwards, every method's predictions.
    let rule = LambdaRule {
        metric: metric.as_ref(),
        coefficient: config.coefficient,
        wise_alpha: config.wise_alpha,
    };
    let mut run = Run {
        config,
        wise,
        rule,
        temps: (t0, t1),
        fitted,
        wise_lambda,
        ensemble_weight,
        blend: blend.as_deref(),
        timer,
        mixtures: BTreeMap::new(),
        merges: BTreeMap::new(),
        grid_acc: Vec::new(),
    };
    let per_sample = (evals.iter().zip(&zs))
        .map(|(d, z)| run.dataset(*d, (&z.0, &z.1)))
        .collect::<Result<Vec<_>>>()?;
    // 5. The report.
    let report = run.report((theta0, theta1), (val, &evals), &per_sample, &base, t_all);
    Ok(EvalOutput { report, per_sample })
}

/// `Σ λ / N` in f64.
fn mean(lambda: &[f32]) -> f64 {
    lambda.iter().map(|&l| l as f64).sum::<f64>() / lambda.len() as f64
}

/// What the per-dataset stages share, and what they add up.
struct Run<'a, M> {
    config: &'a EvalConfig,
    wise: WiseGrid<'a, M>,
    rule: LambdaRule<'a>,
    temps: (f32, f32),
    /// Whether the temperatures were fitted (else given).
    fitted: bool,
    wise_lambda: Option<f32>,
    ensemble_weight: Option<f32>,
    blend: Option<&'a (dyn PerSampleForward + 'a)>,
    timer: Timer,
    mixtures: BTreeMap<String, MixtureReport>,
    merges: BTreeMap<Method, usize>,
    /// WiSE-FT grid accuracy `[dataset][grid point]`.
    grid_acc: Vec<Vec<f64>>,
}

/// One dataset's inputs to the methods: θ0's and θ1's logits and probabilities, the
/// coefficients, the WiSE-FT grid.
struct Data<'d> {
    d: &'d dyn Dataset,
    /// Classes of its logits.
    cd: usize,
    z: (&'d [f32], &'d [f32]),
    /// `p_j = softmax(z_j / T_j)`.
    p: (Vec<f32>, Vec<f32>),
    co: Coefficients,
    grid: GridResults,
}

impl<M: Interpolate> Run<'_, M> {
    /// Stage 5: the report of the evaluation of `theta` on `val` and `evals` (ID first).
    fn report(
        self,
        (theta0, theta1): (&Named<'_, M>, &Named<'_, M>),
        (val, evals): (&dyn Dataset, &[&dyn Dataset]),
        per_sample: &[PerSample],
        base: &BaseLogits<'_>,
        t_all: Instant,
    ) -> Report {
        let config = self.config;
        let datasets: Vec<String> = evals.iter().map(|d| d.name().to_string()).collect();
        let per_sample_methods =
            config.has(Method::DawinSample) || config.has(Method::OracleSample);
        Report {
            theta0: theta0.name.clone(),
            theta1: theta1.name.clone(),
            val: val.name().to_string(),
            id: datasets[0].clone(),
            n_samples: (evals.iter().map(|d| (d.name().to_string(), d.len()))).collect(),
            methods: method_rows(&config.methods, &datasets, per_sample, &self.merges),
            datasets,
            temperatures: [self.temps.0, self.temps.1],
            temperatures_fitted: self.fitted,
            wise_lambda: self.wise_lambda,
            ensemble_weight: self.ensemble_weight,
            wise_curve: WisePoint::curve(&baselines::grid(), &self.grid_acc),
            mixtures: self.mixtures,
            mean_lambda: (per_sample.iter())
                .map(|p| (p.dataset.clone(), mean(&p.lambda)))
                .collect(),
            expertise: config.expertise.clone(),
            coefficient: config.coefficient.name().into(),
            k: config.k,
            wise_alpha: config.wise_alpha,
            seed: config.seed,
            device: config.device.clone(),
            cache_dir: config.cache_dir.as_ref().map(|p| p.display().to_string()),
            per_sample_forward: per_sample_methods.then(|| {
                let how = match self.blend {
                    Some(_) => "blended",
                    None => "merge-per-lambda",
                };
                how.to_string()
            }),
            cache_hits: base.hits,
            cache_misses: base.misses,
            timings: self.timer.finish(t_all),
            data: std::iter::once(val)
                .chain(evals.iter().copied())
                .map(|d| {
                    let mut info = DataInfo::of(d);
                    info.logits_from_shards = (base.assembled.iter())
                        .filter(|(_, name, _)| name == d.name())
                        .map(|&(_, _, k)| k)
                        .collect();
                    (d.name().to_string(), info)
                })
                .collect(),
        }
    }

    /// Stages 2–4 on one dataset with θ0's and θ1's logits `z`: λ(x), then every method.
    fn dataset(&mut self, d: &dyn Dataset, z: (&[f32], &[f32])) -> Result<PerSample> {
        let (cd, labels) = (classes_of(d, self.wise.m0.num_classes()), d.labels());
        let t = Instant::now();
        let half = || self.wise.logits(d, z, 0.5);
        let co = self.rule.apply(z, cd, self.temps, Some(labels), &half)?;
        self.timer.add("coefficients", t);
        let (t0, t1) = self.temps;
        let p = (stats::softmax(z.0, cd, t0)?, stats::softmax(z.1, cd, t1)?);
        let mut grid = GridResults::default();
        if self.config.has(Method::OracleDomain) || self.config.wise_curve {
            let t = Instant::now();
            grid = self.wise.on(d, z, cd)?;
            self.timer.add("wise-grid", t);
        }
        let data = Data {
            d,
            cd,
            z,
            p,
            co,
            grid,
        };
        let mut cluster = vec![-1i64; d.len()];
        let mut predictions = BTreeMap::new();
        for &m in &self.config.methods {
            let t = Instant::now();
            let pred = self.predict(m, &data, &mut cluster)?;
            self.timer.add(m.name(), t);
            predictions.insert(m, pred);
        }
        self.grid_acc.push(data.grid.acc);
        Ok(PerSample {
            dataset: d.name().to_string(),
            labels: labels.to_vec(),
            cluster,
            predictions,
            arrays: PairArrays {
                h0: data.co.h0,
                h1: data.co.h1,
                lambda: data.co.lambda,
            },
        })
    }

    /// Method `m`'s predictions on one dataset; `dawin` fills each sample's mixture component.
    fn predict(&mut self, m: Method, x: &Data<'_>, cluster: &mut [i64]) -> Result<Vec<u32>> {
        let (d, z, cd, lambda) = (x.d, x.z, x.cd, &x.co.lambda[..]);
        let c = self.wise.m0.num_classes();
        let pair = (self.wise.m0, self.wise.m1);
        let batch = self.config.batch_size;
        let bar = |label: String| progress::bar(d.len(), label, self.config.progress);
        Ok(match m {
            Method::Zs => stats::argmax(z.0, cd)?,
            Method::Ft => stats::argmax(z.1, cd)?,
            Method::Wise => {
                let g = self.wise_lambda.expect("wise λ picked");
                x.grid.predictions(&self.wise, d, z, cd, g)?
            }
            Method::Ensemble => {
                let a = self.ensemble_weight.expect("ensemble weight picked");
                stats::argmax(&mix_probs(&x.p.0, &x.p.1, cd, |_| a), cd)?
            }
            Method::Dcs => baselines::dcs(z, &x.co.h0, &x.co.h1, cd)?,
            Method::Doe => stats::argmax(&mix_probs(&x.p.0, &x.p.1, cd, |i| lambda[i]), cd)?,
            Method::Dawin => {
                let tm = Instant::now();
                let (k, seed) = (self.config.k, self.config.seed);
                let cl = beta_clusters(lambda, k, seed, || format!("mixture on `{}`", d.name()))?;
                for (c, &k) in cluster.iter_mut().zip(&cl.assign) {
                    *c = k as i64;
                }
                let lk = cl.lambdas();
                self.mixtures.insert(d.name().to_string(), cl.report);
                self.timer.add("mixture", tm);
                let bar = bar(format!("dawin K={k} on {}", d.name()));
                let (zl, nm) = forward_by_lambda(pair.0, pair.1, d, &lk, batch, &bar)?;
                bar.finish_and_clear();
                *self.merges.entry(m).or_default() += nm;
                stats::argmax(&map_logits(zl, c, d.class_mapping())?, cd)?
            }
            Method::DawinSample | Method::OracleSample => {
                let l = match m {
                    Method::DawinSample => lambda.to_vec(),
                    _ => oracle_lambda(z, cd, self.temps, d.labels())?,
                };
                let bar = bar(format!("{} on {}", m.name(), d.name()));
                let (zl, nm) = per_sample_logits(pair, self.blend, d, &l, batch, &bar)?;
                bar.finish_and_clear();
                *self.merges.entry(m).or_default() += nm;
                stats::argmax(&map_logits(zl, c, d.class_mapping())?, cd)?
            }
            Method::OracleDomain => x.grid.predictions(&self.wise, d, z, cd, x.grid.best())?,
        })
    }
}
