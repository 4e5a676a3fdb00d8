//! The multi-task report: the table (rows [`MtlRow`] with the mean over datasets), the heat
//! map's data (mean λ_j per dataset), the Dirichlet mixtures, and their files.
use super::config::MtlMethod;
use crate::error::{Error, Result};
use crate::pipeline::clustering::DirichletReport;
use crate::pipeline::report::{
    markdown_table, write_predictions, write_report_json, PerSample, Row, TaskArrays,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The multi-task table's summary of a row.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MeanAccuracy {
    /// Mean accuracy (%) over the datasets (`None` when a dataset is missing).
    pub mean: Option<f64>,
}

impl MeanAccuracy {
    /// The mean of `acc` when every dataset has one.
    pub(crate) fn of(acc: &[Option<f64>]) -> Self {
        MeanAccuracy {
            mean: acc
                .iter()
                .copied()
                .collect::<Option<Vec<f64>>>()
                .map(|v| v.iter().sum::<f64>() / v.len() as f64),
        }
    }
}

/// One row of the multi-task table (`ft:<model>`, `individual†`, `base`, `weight-avg`, …).
pub type MtlRow = Row<MeanAccuracy>;

/// Per-sample arrays of one dataset of a multi-task evaluation (written by
/// [`write_mtl_outputs`]): predictions keyed by table row name.
pub type MtlPerSample = PerSample<String, TaskArrays>;

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
    /// Mean λ_j per dataset: dataset → model → mean over the samples of `λ_j(x)` (the heat
    /// map).
    pub mean_lambda: BTreeMap<String, BTreeMap<String, f64>>,
    /// Dirichlet mixture per dataset (`dawin`).
    pub mixtures: BTreeMap<String, DirichletReport>,
    /// `‖τ_j‖ / ‖θ0‖` of each fine-tuned encoder ([`crate::mtl::relative_distance`]).
    #[serde(default)]
    pub relative_distance: BTreeMap<String, f64>,
    /// Seconds per stage, `total` last.
    pub timings: Vec<(String, f64)>,
    /// How each dataset was read: conventions applied, notes.
    #[serde(default)]
    pub data: BTreeMap<String, crate::pipeline::report::DataInfo>,
}

impl MtlReport {
    /// The Markdown table: rows = methods, columns = datasets and the mean, accuracy in % with
    /// two decimals (`—` where undefined).
    pub fn markdown(&self) -> String {
        markdown_table(
            &self.datasets,
            "mean",
            self.methods.iter().map(|r| {
                let cells = self.datasets.iter().map(|d| r.accuracy.get(d).copied());
                (r.method.as_str(), cells.collect(), r.mean)
            }),
        )
    }

    /// The heat map as a table: rows = datasets, columns = models, the mean λ_j.
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
        write_report_json(dir, &self.to_json())
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
        if p.clustered() {
            dawin_core::npy::write_i64(d.join("cluster.npy"), &p.cluster, &[n])?;
        }
        dawin_core::npy::write_i64(d.join("labels.npy"), &p.labels, &[n])?;
        for row in p.predictions.keys() {
            write_predictions(p, &d, row, &file_safe(row))?;
        }
    }
    Ok(())
}
