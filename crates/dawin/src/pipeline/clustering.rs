//! Stage 3, clustering: the mixture over one dataset's coefficients, each sample's component,
//! and the one conversion of a fitted mixture into report data.
//!
//! * Two models: a K-component Beta mixture over λ(x) ∈ (0, 1) (EM, see [`dawin_mixture`]);
//!   sample i takes the component of highest posterior, `k_i`, and that component's mean
//!   `λ_k = a_k / (a_k + b_k)` as its coefficient: K merges instead of N.
//! * M models: a K-component Dirichlet mixture over the λ vectors; sample i takes its
//!   component's mean vector `α_k / Σ_j α_kj` (K = 1: the dataset's mean λ vector).
//!
//! [`MixtureReport`] (Beta) and [`DirichletFitReport`] are what a fit says, built once here for
//! every consumer: the evaluation report, the multi-task report ([`DirichletReport`], its
//! components with their sample counts) and `dawin mixture` ([`fit_mixture`]).
use crate::error::{Error, Result};
use dawin_mixture::{
    BetaMixture, BetaMixtureConfig, BetaMixtureFit, DirichletMixture, DirichletMixtureConfig,
    DirichletMixtureFit,
};
use serde::{Deserialize, Serialize};

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

impl From<&BetaMixtureFit> for MixtureReport {
    fn from(fit: &BetaMixtureFit) -> Self {
        MixtureReport {
            k: fit.k(),
            weights: fit.weights().to_vec(),
            a: fit.a().to_vec(),
            b: fit.b().to_vec(),
            means: fit.means().to_vec(),
            mean_log_likelihood: fit.mean_log_likelihood(),
            n_iter: fit.n_iter(),
            converged: fit.converged(),
        }
    }
}

/// A fitted Dirichlet mixture of rows on the simplex `[N, M]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DirichletFitReport {
    /// Components K.
    pub k: usize,
    /// Dimension M of the rows.
    pub dim: usize,
    /// π_k.
    pub weights: Vec<f64>,
    /// α_k, `[K][M]`.
    pub alphas: Vec<Vec<f64>>,
    /// Mean of each component `α_k / Σ_j α_kj`, `[K][M]`.
    pub means: Vec<Vec<f64>>,
    /// Mean log-likelihood of the fit.
    pub mean_log_likelihood: f64,
    /// EM iterations.
    pub n_iter: usize,
    /// Whether EM converged.
    pub converged: bool,
}

impl From<&DirichletMixtureFit> for DirichletFitReport {
    fn from(fit: &DirichletMixtureFit) -> Self {
        DirichletFitReport {
            k: fit.k(),
            dim: fit.dim(),
            weights: fit.weights().to_vec(),
            alphas: (0..fit.k()).map(|k| fit.alpha(k).to_vec()).collect(),
            means: (0..fit.k()).map(|k| fit.mean(k).to_vec()).collect(),
            mean_log_likelihood: fit.mean_log_likelihood(),
            n_iter: fit.n_iter(),
            converged: fit.converged(),
        }
    }
}

/// The multi-task report's Dirichlet mixture of one dataset's λ vectors: the fit's weights and
/// component means ([`DirichletFitReport`]) and how many samples each component took.
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

impl DirichletReport {
    /// The fit's weights and means with the component of each sample, `assign`.
    pub fn new(fit: DirichletFitReport, assign: &[usize]) -> Self {
        let mut counts = vec![0usize; fit.k];
        for &k in assign {
            counts[k] += 1;
        }
        DirichletReport {
            k: fit.k,
            weights: fit.weights,
            means: fit.means,
            counts,
        }
    }
}

/// A mixture fitted on one dataset: each sample's component and what the fit says.
pub(crate) struct Clusters<R> {
    /// Component of each sample (highest posterior).
    pub assign: Vec<usize>,
    /// The fit as report data.
    pub report: R,
}

/// The Beta mixture stage on λ(x): `k` components, EM seeded by `seed`. Errors (a fit that
/// fails) are named by `what()`, e.g. ``mixture on `rotate` ``.
pub(crate) fn beta_clusters<T: Copy + Into<f64>>(
    x: &[T],
    k: usize,
    seed: u64,
    what: impl FnOnce() -> String,
) -> Result<Clusters<MixtureReport>> {
    let cfg = BetaMixtureConfig {
        k,
        seed,
        ..Default::default()
    };
    let fit = BetaMixture::fit(x, &cfg).map_err(|e| Error::invalid(what(), e.to_string()))?;
    Ok(Clusters {
        assign: fit.predict(x)?,
        report: MixtureReport::from(&fit),
    })
}

/// The Dirichlet mixture stage on λ vectors `[N, m]`: `k` components, EM seeded by `seed`.
/// Errors are named by `what()`.
pub(crate) fn dirichlet_clusters<T: Copy + Into<f64>>(
    rows: &[T],
    m: usize,
    k: usize,
    seed: u64,
    what: impl FnOnce() -> String,
) -> Result<Clusters<DirichletFitReport>> {
    let cfg = DirichletMixtureConfig {
        k,
        seed,
        ..Default::default()
    };
    let fit =
        DirichletMixture::fit(rows, m, &cfg).map_err(|e| Error::invalid(what(), e.to_string()))?;
    Ok(Clusters {
        assign: fit.predict(rows)?,
        report: DirichletFitReport::from(&fit),
    })
}

impl Clusters<MixtureReport> {
    /// Each sample's coefficient: its component's mean `a_k / (a_k + b_k)`.
    pub fn lambdas(&self) -> Vec<f32> {
        self.assign
            .iter()
            .map(|&k| self.report.means[k] as f32)
            .collect()
    }
}

/// Which mixture [`fit_mixture`] fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixtureKind {
    /// Beta mixture over λ ∈ [0, 1], input `[N]`.
    Beta,
    /// Dirichlet mixture over rows on the simplex, input `[N, M]`.
    Dirichlet,
}

/// A fitted mixture of either kind; serialises with its `kind` (`beta` or `dirichlet`).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum MixtureSummary {
    /// A Beta mixture.
    Beta(MixtureReport),
    /// A Dirichlet mixture.
    Dirichlet(DirichletFitReport),
}

/// `dawin mixture`: fits a `k`-component mixture of `kind` (seed `seed`) to an array `x` of
/// `shape` (`[N]` for Beta, `[N, M]` for Dirichlet) read from the file `name`, and returns the
/// fit and each sample's component. Errors name the file: a shape the kind does not take, a fit
/// that fails.
pub fn fit_mixture(
    x: &[f64],
    shape: &[usize],
    kind: MixtureKind,
    k: usize,
    seed: u64,
    name: &str,
) -> Result<(MixtureSummary, Vec<usize>)> {
    match kind {
        MixtureKind::Beta => {
            if shape.len() != 1 {
                return Err(Error::invalid(
                    name,
                    format!("a Beta mixture takes λ of shape [N], got {shape:?}"),
                ));
            }
            let c = beta_clusters(x, k, seed, || name.to_string())?;
            Ok((MixtureSummary::Beta(c.report), c.assign))
        }
        MixtureKind::Dirichlet => {
            if shape.len() != 2 {
                return Err(Error::invalid(
                    name,
                    format!("a Dirichlet mixture takes rows of shape [N, M], got {shape:?}"),
                ));
            }
            let c = dirichlet_clusters(x, shape[1], k, seed, || name.to_string())?;
            Ok((MixtureSummary::Dirichlet(c.report), c.assign))
        }
    }
}
