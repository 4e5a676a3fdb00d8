//! Stage 5, the report: the table rows scored from each method's predictions, the per-sample
//! arrays, the stage timings, and their files — the Markdown table, `report.json`, the JSONL
//! results file and the per-sample `.npy` arrays. Accuracies are in percent,
//! `100 · #{i: pred_i = y_i} / N`.
//!
//! Shared by both settings: a table row ([`Row`], with the setting's summary: ID and OOD mean
//! for two models, the mean over datasets for M models), the per-sample arrays of one dataset
//! ([`PerSample`], keyed by method or row name, with the setting's coefficient arrays), the
//! [`Timer`] and the Markdown table.
use super::clustering::MixtureReport;
use super::config::Method;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::time::Instant;

/// `100 · #{i: pred_i = y_i} / N`, the accuracy in percent.
pub(crate) fn accuracy(pred: &[u32], labels: &[i64]) -> f64 {
    let ok = pred
        .iter()
        .zip(labels)
        .filter(|(&p, &y)| p as i64 == y)
        .count();
    100.0 * ok as f64 / labels.len().max(1) as f64
}

/// One row of a table: a method's accuracy per dataset, its summary `S` (serialised inline) and
/// the merges it built. The summary's fields read as the row's own (`row.id`, `row.mean`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row<S> {
    /// Method (or row) name (`zs`, `dawin`, `ft:<model>`, …).
    pub method: String,
    /// Accuracy (%) per dataset (absent where undefined).
    pub accuracy: BTreeMap<String, f64>,
    /// The setting's summary columns.
    #[serde(flatten)]
    pub summary: S,
    /// Number of weight merges the method ran (merging methods).
    pub merges: Option<usize>,
}

impl<S> Deref for Row<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.summary
    }
}

impl<S> Row<S> {
    /// A row from the accuracy on each of `datasets` (`None` where undefined).
    pub(crate) fn new(
        method: String,
        datasets: &[String],
        acc: &[Option<f64>],
        summary: S,
        merges: Option<usize>,
    ) -> Self {
        Row {
            method,
            accuracy: datasets
                .iter()
                .zip(acc)
                .filter_map(|(d, a)| a.map(|a| (d.clone(), a)))
                .collect(),
            summary,
            merges,
        }
    }
}

/// The two-model table's summary of a row.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IdOod {
    /// Accuracy (%) on the ID test set.
    pub id: f64,
    /// Mean accuracy (%) over the shifted sets (`None` without any).
    pub ood_mean: Option<f64>,
}

impl IdOod {
    /// The ID accuracy `acc[0]` and the mean of the others.
    pub(crate) fn of(acc: &[f64]) -> Self {
        IdOod {
            id: acc[0],
            ood_mean: ood_mean(acc),
        }
    }
}

/// The two-model table's rows, one per method (in `methods`' order): accuracy on each dataset
/// from the per-sample predictions, the ID accuracy, the OOD mean, the merges.
pub(crate) fn method_rows(
    methods: &[Method],
    datasets: &[String],
    per_sample: &[PerSample],
    merges: &BTreeMap<Method, usize>,
) -> Vec<MethodRow> {
    methods
        .iter()
        .map(|&m| {
            let acc: Vec<f64> = (per_sample.iter())
                .map(|p| accuracy(&p.predictions[&m], &p.labels))
                .collect();
            let cells: Vec<Option<f64>> = acc.iter().copied().map(Some).collect();
            let merges = merges.get(&m).copied();
            Row::new(m.name().into(), datasets, &cells, IdOod::of(&acc), merges)
        })
        .collect()
}

/// Mean of `acc[1..]`, `None` when there is no shifted set.
fn ood_mean(acc: &[f64]) -> Option<f64> {
    (acc.len() > 1).then(|| acc[1..].iter().sum::<f64>() / (acc.len() - 1) as f64)
}

/// One row of the two-model table.
pub type MethodRow = Row<IdOod>;

/// Per-sample outputs of one dataset: the labels, each sample's mixture component, the
/// predicted class of every method (`K`: [`Method`], or a table row's name), and the setting's
/// coefficient arrays `A` ([`PairArrays`], or the multi-task [`TaskArrays`]), whose fields read
/// as this struct's own (`per_sample.lambda`).
#[derive(Clone, Debug, PartialEq)]
pub struct PerSample<K = Method, A = PairArrays> {
    /// Dataset name.
    pub dataset: String,
    /// True labels.
    pub labels: Vec<i64>,
    /// Mixture component of each sample (−1 when `dawin` was not run).
    pub cluster: Vec<i64>,
    /// Predicted class per method.
    pub predictions: BTreeMap<K, Vec<u32>>,
    /// The setting's per-sample coefficients.
    pub arrays: A,
}

impl<K, A> Deref for PerSample<K, A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.arrays
    }
}

impl<K: Ord, A> PerSample<K, A> {
    /// `correct_i = (pred_i == label_i)` of a method, `None` when it has no predictions here.
    pub fn correct(&self, method: impl Borrow<K>) -> Option<Vec<bool>> {
        let p = self.predictions.get(method.borrow())?;
        Some(
            p.iter()
                .zip(&self.labels)
                .map(|(&p, &y)| p as i64 == y)
                .collect(),
        )
    }

    /// Whether the mixture ran on this dataset (every sample has a component).
    pub fn clustered(&self) -> bool {
        self.cluster.iter().all(|&c| c >= 0)
    }
}

/// The two-model coefficients of one dataset's samples.
#[derive(Clone, Debug, PartialEq)]
pub struct PairArrays {
    /// Entropy of θ0 at T0.
    pub h0: Vec<f32>,
    /// Entropy of θ1 at T1.
    pub h1: Vec<f32>,
    /// λ(x) (after the WiSE-FT plug-in, if any).
    pub lambda: Vec<f32>,
}

/// The multi-task coefficients of one dataset's samples.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskArrays {
    /// Fine-tuned models M.
    pub n_models: usize,
    /// `H_j(x_i)` `[N, M]` row-major: entropy of fine-tuned model j with this dataset's head.
    pub entropy: Vec<f32>,
    /// `λ_ij = softmax_j(−H_ij)` `[N, M]`; every row sums to 1.
    pub lambda: Vec<f32>,
}

/// Seconds per stage, in the order the stages first ran.
#[derive(Clone, Debug, Default)]
pub(crate) struct Timer(Vec<(String, f64)>);

impl Timer {
    /// Adds the time since `t` to `stage`.
    pub fn add(&mut self, stage: &str, t: Instant) {
        let s = t.elapsed().as_secs_f64();
        match self.0.iter_mut().find(|(n, _)| n == stage) {
            Some((_, v)) => *v += s,
            None => self.0.push((stage.to_string(), s)),
        }
    }

    /// The stages and, last, `total` since `start`.
    pub fn finish(mut self, start: Instant) -> Vec<(String, f64)> {
        self.0.push(("total".into(), start.elapsed().as_secs_f64()));
        self.0
    }
}

/// One point of the WiSE-FT curve.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct WisePoint {
    /// λ.
    pub lambda: f32,
    /// ID accuracy (%).
    pub id: f64,
    /// Mean OOD accuracy (%).
    pub ood_mean: Option<f64>,
}

impl WisePoint {
    /// The curve over `grid` from the accuracies `[dataset][grid point]` (ID first); empty
    /// unless the grid was evaluated on every dataset.
    pub(crate) fn curve(grid: &[f32], acc: &[Vec<f64>]) -> Vec<WisePoint> {
        if !acc.iter().all(|g| g.len() == grid.len()) {
            return Vec::new();
        }
        grid.iter()
            .enumerate()
            .map(|(gi, &g)| {
                let a: Vec<f64> = acc.iter().map(|v| v[gi]).collect();
                WisePoint {
                    lambda: g,
                    id: a[0],
                    ood_mean: ood_mean(&a),
                }
            })
            .collect()
    }
}

/// How a dataset was read, for the report: the conventions applied and the warnings.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct DataInfo {
    /// What was applied ([`crate::Dataset::describe`]): convention, input, labelling, class
    /// mapping, crop.
    pub applied: Option<String>,
    /// Warnings ([`crate::Dataset::notes`]).
    #[serde(default)]
    pub notes: Vec<String>,
    /// When θ0's and θ1's logits were assembled from shards in the cache: the shard counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logits_from_shards: Vec<usize>,
}

impl DataInfo {
    /// The description and notes of `d`.
    pub fn of(d: &dyn crate::Dataset) -> Self {
        DataInfo {
            applied: d.describe(),
            notes: d.notes(),
            logits_from_shards: Vec::new(),
        }
    }
}

/// Every number of the table, plus what produced it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// θ0's name.
    pub theta0: String,
    /// θ1's name.
    pub theta1: String,
    /// The validation set's name.
    pub val: String,
    /// The ID test set's name.
    pub id: String,
    /// How `dawin-sample` / `oracle-sample` ran sample i through θ(λ_i): `blended` (one
    /// per-sample blended forward, no merge) or `merge-per-lambda` (one merge per distinct λ);
    /// `None` when neither method ran.
    #[serde(default)]
    pub per_sample_forward: Option<String>,
    /// Evaluated datasets, ID first.
    pub datasets: Vec<String>,
    /// Samples per dataset.
    pub n_samples: BTreeMap<String, usize>,
    /// One row per method.
    pub methods: Vec<MethodRow>,
    /// (T0, T1).
    pub temperatures: [f32; 2],
    /// Whether they were fitted on the validation set (else given).
    pub temperatures_fitted: bool,
    /// WiSE-FT's λ picked on validation.
    pub wise_lambda: Option<f32>,
    /// The output ensemble's weight picked on validation.
    pub ensemble_weight: Option<f32>,
    /// WiSE-FT over the grid (empty unless computed on every dataset).
    pub wise_curve: Vec<WisePoint>,
    /// Beta mixture per dataset.
    pub mixtures: BTreeMap<String, MixtureReport>,
    /// Mean λ(x) per dataset.
    pub mean_lambda: BTreeMap<String, f64>,
    /// Expertise metric.
    pub expertise: String,
    /// `eq1` or `eq2`.
    pub coefficient: String,
    /// Mixture components.
    pub k: usize,
    /// WiSE-FT plug-in α.
    pub wise_alpha: Option<f32>,
    /// Mixture seed.
    pub seed: u64,
    /// Device used.
    pub device: String,
    /// Logits cache directory.
    pub cache_dir: Option<String>,
    /// Logits served from the cache.
    pub cache_hits: usize,
    /// Logits computed.
    pub cache_misses: usize,
    /// Seconds per stage, in order, `total` last.
    pub timings: Vec<(String, f64)>,
    /// How each dataset (validation included) was read: conventions applied, notes.
    #[serde(default)]
    pub data: BTreeMap<String, DataInfo>,
}

impl Report {
    /// The Markdown table: rows = methods, columns = datasets (ID first) and the OOD mean,
    /// accuracies in % with two decimals.
    pub fn markdown(&self) -> String {
        markdown_table(
            &self.datasets,
            "OOD mean",
            self.methods.iter().map(|r| {
                let cells = self.datasets.iter().map(|d| r.accuracy.get(d).copied());
                (r.method.as_str(), cells.collect(), r.ood_mean)
            }),
        )
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }
}

/// What [`crate::eval::evaluate`] returns: the report and the per-sample arrays.
#[derive(Clone, Debug)]
pub struct EvalOutput {
    /// Every number of the table and more.
    pub report: Report,
    /// One entry per evaluated dataset (ID first).
    pub per_sample: Vec<PerSample>,
}

/// A Markdown table with a `method` column, one column per dataset and a last summary column;
/// numbers with two decimals, `—` where a cell is undefined.
pub(crate) fn markdown_table<'a>(
    datasets: &[String],
    last: &str,
    rows: impl IntoIterator<Item = (&'a str, Vec<Option<f64>>, Option<f64>)>,
) -> String {
    let cell = |v: Option<f64>| v.map_or_else(|| " — |".to_string(), |a| format!(" {a:.2} |"));
    let mut s = String::from("| method |");
    for d in datasets {
        s += &format!(" {d} |");
    }
    s += &format!(" {last} |\n|---|");
    for _ in 0..=datasets.len() {
        s += "---:|";
    }
    s.push('\n');
    for (method, cells, summary) in rows {
        s += &format!("| {method} |");
        for c in cells {
            s += &cell(c);
        }
        s += &cell(summary);
        s.push('\n');
    }
    s
}

/// Writes `report.json` (`text`) under `dir` (created), through a temporary file renamed into
/// place.
pub(crate) fn write_report_json(dir: &Path, text: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    dawin_core::atomic_write(dir.join("report.json"), |tmp| std::fs::write(tmp, text))?;
    Ok(())
}

/// Writes `<dir>/pred_<name>.npy` and `<dir>/correct_<name>.npy` `[N]` (i64) of `key`.
pub(crate) fn write_predictions<K: Ord, A>(
    p: &PerSample<K, A>,
    d: &Path,
    key: &K,
    name: &str,
) -> Result<()> {
    let n = p.labels.len();
    let pi: Vec<i64> = p.predictions[key].iter().map(|&v| v as i64).collect();
    dawin_core::npy::write_i64(d.join(format!("pred_{name}.npy")), &pi, &[n])?;
    let ci: Vec<i64> = p
        .correct(key)
        .unwrap_or_default()
        .into_iter()
        .map(i64::from)
        .collect();
    dawin_core::npy::write_i64(d.join(format!("correct_{name}.npy")), &ci, &[n])?;
    Ok(())
}

/// Writes `report.json` and, per dataset, `<dataset>/{h0,h1,lambda,cluster,labels}.npy` and
/// `<dataset>/{pred,correct}_<method>.npy` under `dir` (created). Every file is written to a
/// temporary file and renamed into place.
pub fn write_outputs(out: &EvalOutput, dir: &Path) -> Result<()> {
    write_report_json(dir, &out.report.to_json())?;
    for p in &out.per_sample {
        let d = dir.join(&p.dataset);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        let n = p.labels.len();
        dawin_core::npy::write_f32(d.join("h0.npy"), &p.h0, &[n])?;
        dawin_core::npy::write_f32(d.join("h1.npy"), &p.h1, &[n])?;
        dawin_core::npy::write_f32(d.join("lambda.npy"), &p.lambda, &[n])?;
        dawin_core::npy::write_i64(d.join("cluster.npy"), &p.cluster, &[n])?;
        dawin_core::npy::write_i64(d.join("labels.npy"), &p.labels, &[n])?;
        for m in p.predictions.keys() {
            write_predictions(p, &d, m, m.name())?;
        }
    }
    Ok(())
}

/// Appends the report as one JSON line to `path` (created when absent), without ever leaving a
/// partial file: under an exclusive lock on `<path>.lock` (so that concurrent `dawin` runs append
/// one after the other), the old lines and the new one are written to a temporary file that is
/// renamed over `path`. A last line without its newline gets one first.
pub fn append_results_db(report: &Report, path: &Path) -> Result<()> {
    let line = serde_json::to_string(report).expect("a report always serialises");
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_name);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    lock.lock().map_err(|e| Error::io(&lock_path, e))?;
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    dawin_core::atomic_write(path, |tmp| std::fs::write(tmp, &text))?;
    // The lock is released when `lock` is dropped (also on an error above).
    drop(lock);
    Ok(())
}

/// The methods of a report, parsed back.
pub fn methods_of(report: &Report) -> Vec<Method> {
    report
        .methods
        .iter()
        .filter_map(|r| Method::parse(&r.method).ok())
        .collect()
}
