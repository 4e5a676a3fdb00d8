//! # dawin
//!
//! The one crate to `cargo add` for [DaWin](https://openreview.net/forum?id=L8e7tBf4pP)
//! (ICLR 2025): training-free, per-sample dynamic weight interpolation between a pre-trained
//! model θ0 and a fine-tuned model θ1. It re-exports the building blocks as modules
//! ([`core`], [`mixture`], [`vit`]) and holds the evaluation pipeline ([`eval`], [`report`])
//! that the `dawin` command-line tool drives: logits of θ0 and θ1 cached on disk, temperatures fitted on
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
//!                       mlp_dim: 32, embed_dim: 8, num_classes: 3, layer_norm_eps: 1e-5,
//!                       activation: Default::default(), layer_scale: false };
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

pub mod cuda;
mod data;
mod error;
mod model;
mod pipeline;
pub mod plot;
pub mod progress;

pub use data::{
    check_head, file_fingerprint, for_each_batch, read_class_subset, DataOptions, Dataset,
    ImageFolderDataset, InMemoryDataset, WithClassMapping, WithClassSubset, PREFETCH_DEPTH,
};
pub use error::{Error, Result};
pub use model::{Interpolate, Model, PerSampleForward};

/// The two-model evaluation: the paper's stages in order, and each stage's public pieces.
///
/// ```text
///  images ──(1) logits: forward_dataset, map_logits, the on-disk cache (Shard)──▶ z_0, z_1
///         ──(2) coefficients: T_j, e_j = exp(score_j), λ(x) by Eq. 1 / Eq. 2, α·λ──▶ λ(x)
///         ──(3) clustering: Beta mixture, k_i, λ_k = a_k / (a_k + b_k)──▶ K coefficients
///         ──(4) merged forwards: forward_by_lambda (K merges), forward_blended──▶ predictions
///         ──(5) report: Row, PerSample, Report──▶ the table
/// ```
///
/// [`evaluate`](eval::evaluate) runs them on an ID validation set (temperatures, WiSE-FT's λ,
/// the ensemble's weight), an ID test set and shifted test sets, beside the baselines (ZS, FT,
/// WiSE-FT, output ensemble, DCS, DOE, the oracles); [`evaluate_streaming`](eval::evaluate_streaming)
/// runs them batch by batch. [`coefficients_from_logits`](eval::coefficients_from_logits) and
/// [`fit_mixture`](eval::fit_mixture) are stages 2 and 3 on arrays read from files (`dawin coef`,
/// `dawin mixture`).
pub mod eval {
    pub use crate::pipeline::baselines::grid;
    pub use crate::pipeline::cache::{cache_file, cache_key, lookup, store, Lookup, Shard};
    pub use crate::pipeline::clustering::{fit_mixture, MixtureKind, MixtureSummary};
    pub use crate::pipeline::coefficients::{
        coefficients_from_logits, fit_temperatures, CoefOutput,
    };
    pub use crate::pipeline::config::{Coefficient, EvalConfig, Method, Named};
    pub use crate::pipeline::eval::evaluate;
    pub use crate::pipeline::logits::{forward_dataset, map_logits, shard_logits, CACHE_VERSION};
    pub use crate::pipeline::merged::{
        forward_blended, forward_by_lambda, forward_per_sample_loop,
    };
    pub use crate::pipeline::report::{EvalOutput, PairArrays, PerSample};
    pub use crate::pipeline::streaming::{evaluate_streaming, StreamingResult};
}

/// Zero-shot heads for a θ0 without one: built from class names and prompt templates with the
/// checkpoint's CLIP text tower ([`dawin_vit::text`]) and cached on disk
/// ([`zero_shot_head_cached`](zeroshot::zero_shot_head_cached)).
pub mod zeroshot {
    pub use crate::pipeline::zeroshot::{
        checkpoint_fingerprint, classifier_with_head, has_classification_head,
        write_zero_shot_head, zero_shot_head_cached, ZeroShotBuild, ZeroShotSpec, META_ASSUMPTIONS,
        META_CHECKPOINT, META_CHECKPOINT_SHA256, ZEROSHOT_CACHE_VERSION,
    };
}

/// The report of an evaluation (stage 5): table rows, the JSON report, the JSONL results file
/// and the per-sample `.npy` arrays; the mixtures as report data. Accuracies are in percent.
pub mod report {
    pub use crate::pipeline::clustering::{DirichletFitReport, MixtureReport};
    pub use crate::pipeline::report::{
        append_results_db, methods_of, write_outputs, DataInfo, IdOod, MethodRow, Report, Row,
        WisePoint,
    };
}

/// Multi-task evaluation with M fine-tuned models (the paper's §4.3 / Table 6 setting).
///
/// A base CLIP image encoder θ0 and M fine-tuned encoders θ_j (task vectors τ_j = θ_j − θ0);
/// every evaluation dataset `D` has its own classification head, which is never merged: only the
/// image encoder is. On `D` each fine-tuned model's entropy `H_j(x)` (temperature 1) is computed
/// with `D`'s head and
///
/// ```text
/// λ_j(x) = softmax_j(−H_j(x)),     θ(x) = θ0 + s Σ_j λ_j(x) τ_j,     s = 0.3·M by default.
/// ```
///
/// Methods ([`MtlMethod`](mtl::MtlMethod)): each fine-tuned model alone, `individual†` (model j
/// on dataset j, by name), the base (zero-shot with each head), weight averaging
/// (`θ0 + (1/M) Σ τ_j`), task arithmetic (`θ0 + 0.3 Σ τ_j`), TIES-merging
/// ([`dawin_core::merge::ties_task_vector`]), `dawin` (a K-component Dirichlet mixture over each
/// dataset's λ vectors, one merge per component with its mean λ; K = 1 gives one merge per
/// dataset with the mean λ vector) and `dawin-sample` (one λ vector per sample, run exactly with
/// [`dawin_vit::cpu::blended::forward`], coefficients `s·λ_ij`).
///
/// The fine-tuned encoders are [`ParamSource`](dawin_core::merge::ParamSource)s: a
/// [`ClipClassifier`](dawin_vit::ClipClassifier) in memory, or a memory-mapped
/// [`CheckpointEncoder`](dawin_vit::CheckpointEncoder) ([`load_mtl`](mtl::load_mtl)): each model
/// is read whole only to be evaluated (one at a time), and every merge is one pass over the
/// M + 1 encoders, parameter by parameter, so memory holds θ0, the merged encoder and one
/// parameter per model, whatever M (`examples/mtl_memory.rs` measures it). Only `dawin-sample`
/// holds all M + 1 encoders, as its blended forward must.
pub mod mtl {
    pub use crate::pipeline::clustering::DirichletReport;
    pub use crate::pipeline::logits::apply_head;
    pub use crate::pipeline::mtl::config::{MtlConfig, MtlMethod, MtlTask};
    pub use crate::pipeline::mtl::lambda::lambda_vectors;
    pub use crate::pipeline::mtl::report::{
        file_safe, write_mtl_outputs, MeanAccuracy, MtlOutput, MtlPerSample, MtlReport, MtlRow,
    };
    pub use crate::pipeline::mtl::task_arithmetic::{
        merge_encoders, relative_distance, ties_merge,
    };
    pub use crate::pipeline::mtl::{evaluate_mtl, evaluate_mtl_full, load_mtl, MtlModels};
    pub use crate::pipeline::report::TaskArrays;
}
