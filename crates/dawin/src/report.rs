//! The report of an evaluation: the Markdown table, the JSON report, the JSONL results file and
//! the per-sample `.npy` arrays. Accuracies are in percent.
use crate::error::{Error, Result};
use crate::eval::{EvalOutput, Method};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One row of the table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MethodRow {
    /// Method name (`zs`, `dawin`, …).
    pub method: String,
    /// Accuracy (%) per dataset.
    pub accuracy: BTreeMap<String, f64>,
    /// Accuracy (%) on the ID test set.
    pub id: f64,
    /// Mean accuracy (%) over the shifted sets (`None` without any).
    pub ood_mean: Option<f64>,
    /// Number of weight merges the method ran (dynamic methods).
    pub merges: Option<usize>,
}

/// A fitted Beta mixture of one dataset's λ.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MixtureReport {
    /// Components.
    pub k: usize,
    /// π_k.
    pub weights: Vec<f64>,
    /// a_k.
    pub a: Vec<f64>,
    /// b_k.
    pub b: Vec<f64>,
    /// a_k / (a_k + b_k), the λ of each cluster.
    pub means: Vec<f64>,
    /// Mean log-likelihood of the fit.
    pub mean_log_likelihood: f64,
    /// EM iterations.
    pub n_iter: usize,
    /// Whether EM converged.
    pub converged: bool,
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

fn write_text(path: &Path, text: &str) -> Result<()> {
    dawin_core::atomic_write(path, |tmp| std::fs::write(tmp, text))?;
    Ok(())
}

/// Writes `report.json` and, per dataset, `<dataset>/{h0,h1,lambda,cluster,labels}.npy` and
/// `<dataset>/{pred,correct}_<method>.npy` under `dir` (created). Every file is written to a
/// temporary file and renamed into place.
pub fn write_outputs(out: &EvalOutput, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_text(&dir.join("report.json"), &out.report.to_json())?;
    for p in &out.per_sample {
        let d = dir.join(&p.dataset);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        let n = p.labels.len();
        dawin_core::npy::write_f32(d.join("h0.npy"), &p.h0, &[n])?;
        dawin_core::npy::write_f32(d.join("h1.npy"), &p.h1, &[n])?;
        dawin_core::npy::write_f32(d.join("lambda.npy"), &p.lambda, &[n])?;
        dawin_core::npy::write_i64(d.join("cluster.npy"), &p.cluster, &[n])?;
        dawin_core::npy::write_i64(d.join("labels.npy"), &p.labels, &[n])?;
        for (m, pred) in &p.predictions {
            let pi: Vec<i64> = pred.iter().map(|&v| v as i64).collect();
            dawin_core::npy::write_i64(d.join(format!("pred_{}.npy", m.name())), &pi, &[n])?;
            let ci: Vec<i64> = p
                .correct(*m)
                .unwrap_or_default()
                .iter()
                .map(|&b| b as i64)
                .collect();
            dawin_core::npy::write_i64(d.join(format!("correct_{}.npy", m.name())), &ci, &[n])?;
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
