//! # dawin
//!
//! The one crate to `cargo add` for [DaWin](https://openreview.net/forum?id=L8e7tBf4pP)
//! (ICLR 2025): training-free, per-sample dynamic weight interpolation between a pre-trained
//! model θ0 and a fine-tuned model θ1. It re-exports the building blocks as modules
//! ([`core`], [`mixture`], [`vit`]) and holds the evaluation pipeline ([`eval`]) that the
//! `dawin` command-line tool drives: logits of θ0 and θ1 cached on disk, temperatures fitted on
//! an ID validation set, λ(x) per dataset (Eq. 2 by default), the Beta mixture, one merge per
//! cluster, and the paper's baselines (ZS, FT, WiSE-FT, output ensemble, DCS, DOE, oracles).
//! [`mtl`] is the multi-task setting: M fine-tuned encoders, one head per dataset, DaWin's
//! `θ0 + s Σ_j λ_j(x) τ_j` against weight averaging, task arithmetic and TIES-merging.
//!
//! The pipeline is generic over [`Model`] + [`Interpolate`] (implemented for
//! [`vit::ClipClassifier`]) and over [`Dataset`] (implemented for [`InMemoryDataset`] and
//! [`vit::ImageDataset`]), so it runs DaWin on any model type that can merge its weights.
//!
//! ```
//! use dawin::{eval::{evaluate, EvalConfig, Method, Named}, InMemoryDataset};
//! use dawin::vit::{ClipClassifier, ClipWeights, VitConfig};
//!
//! let cfg = VitConfig { image_size: 8, patch_size: 4, width: 16, layers: 1, heads: 2,
//!                       mlp_dim: 32, embed_dim: 8, num_classes: 3, layer_norm_eps: 1e-5 };
//! let m0 = ClipClassifier::new(cfg.clone(), ClipWeights::random(&cfg, 0)?)?;
//! // θ1: θ0 moved by a small random step (a fine-tune stays close to its base).
//! let mut w1 = ClipWeights::random(&cfg, 0)?;
//! for (p, d) in w1.params_mut().into_iter().zip(ClipWeights::random(&cfg, 1)?.params()) {
//!     p.iter_mut().zip(d).for_each(|(x, dx)| *x += 0.1 * dx);
//! }
//! let m1 = ClipClassifier::new(cfg.clone(), w1)?;
//! let n = 12;
//! let images: Vec<f32> = (0..n * cfg.image_numel()).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect();
//! let labels: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
//! let data = InMemoryDataset::new("toy", images, cfg.image_numel(), labels)?;
//! let config = EvalConfig { methods: vec![Method::Zs, Method::Ft, Method::DawinSample],
//!                           progress: false, ..EvalConfig::default() };
//! let report = evaluate(&Named::new("θ0", &m0, "seed0"), &Named::new("θ1", &m1, "seed1"),
//!                       &data, &data, &[], &config)?;
//! assert_eq!(report.report.methods.len(), 3);
//! # Ok::<(), dawin::Error>(())
//! ```
#![warn(missing_docs)]

pub use dawin_core as core;
pub use dawin_kernels as kernels;
pub use dawin_mixture as mixture;
pub use dawin_vit as vit;

pub mod cache;
pub mod cuda;
pub mod data;
mod error;
pub mod eval;
pub mod model;
pub mod mtl;
pub mod plot;
pub mod progress;
pub mod report;

pub use data::{read_class_subset, Dataset, ImageFolderDataset, InMemoryDataset, WithClassSubset};
pub use error::{Error, Result};
pub use model::{Interpolate, Model, PerSampleForward};
