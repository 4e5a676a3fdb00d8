//! Mixture models for DaWin interpolation coefficients.
//!
//! DaWin gives every test sample its own interpolation coefficient λ(x), which would mean one
//! weight merge per sample. Fitting a K-component mixture to the coefficients of a domain and
//! giving each sample the mean of its most probable component needs only K merges
//! (paper, Sec. 3.3 and App. A.1). This crate fits those mixtures, exactly as the reference
//! procedure does and fast (pure Rust, deterministic; the EM runs of distinct initialisations share
//! the machine's cores):
//!
//! * [`BetaMixture`] — K Beta components for scalar coefficients λ ∈ [0, 1] (two models);
//!   [`fit_batchwise`] fits one mixture per chunk of S samples (the paper's streaming mode,
//!   Table B).
//! * [`DirichletMixture`] — K Dirichlet components for coefficient vectors on the simplex
//!   (M models, multi-task merging).
//! * [`KMeans`] — seeded k-means++ / Lloyd in any dimension (with an `O(K log N)`-per-iteration
//!   path for 1-D data); it initialises both mixtures.
//! * [`special`] — `ln Γ`, `ln B(a, b)`, the multivariate `ln B(α)`, and the Beta
//!   log-density `ln f(λ; a, b)` evaluated without cancellation for concentrated components.
//!
//! Every fit is reproducible: the same input, configuration and seed give bit-identical results
//! on every run. Bad input (empty, NaN, out of `[0, 1]`, rows not summing to 1, `k = 0`, fewer
//! samples than components) is an error naming the argument; the fitted parameters are never
//! NaN.
//!
//! # Example
//!
//! ```
//! use dawin_mixture::{BetaMixture, BetaMixtureConfig};
//!
//! // Coefficients of one domain (f32 or f64), e.g. λ(x) = e₁ / (e₀ + e₁).
//! let lambdas: Vec<f32> = (0..3000)
//!     .map(|i| [0.15f32, 0.5, 0.85][i % 3] + 0.05 * ((i * 7919 % 1000) as f32 / 1000.0 - 0.5))
//!     .collect();
//! let config = BetaMixtureConfig { k: 3, seed: 7, ..BetaMixtureConfig::default() };
//! let fit = BetaMixture::fit(&lambdas, &config)?;
//! assert_eq!(fit.k(), 3);
//! assert!((fit.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
//! // Components are sorted by mean; each sample gets the mean of its component.
//! let merged_lambdas = fit.lambdas(&lambdas)?;
//! assert!((merged_lambdas[0] - 0.15).abs() < 0.01);
//! assert!((merged_lambdas[1] - 0.5).abs() < 0.01);
//! # Ok::<(), dawin_mixture::MixtureError>(())
//! ```
#![warn(missing_docs)]
// The numeric kernels index several parallel arrays with one loop variable; iterator chains
// would obscure the formulas they implement.
#![allow(clippy::needless_range_loop)]

mod beta;
mod dirichlet;
mod em;
mod error;
mod fastmath;
mod input;
mod kmeans;
mod logpdf;
pub mod special;

pub use beta::{fit_batchwise, BetaMixture, BetaMixtureConfig, BetaMixtureFit, DEFAULT_CLAMP_EPS};
pub use dirichlet::{DirichletMixture, DirichletMixtureConfig, DirichletMixtureFit, MStep};
pub use error::{MixtureError, Result};
pub use kmeans::{KMeans, KMeansConfig, KMeansFit};
