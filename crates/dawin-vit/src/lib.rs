//! CLIP ViT image classifier for DaWin.
//!
//! DaWin runs three forwards per sample (θ0, θ1 and their per-sample merge), so this crate gives
//! the CLIP ViT image tower plus a linear classification head as plain f32 weights
//! ([`ClipWeights`]), loaded from safetensors checkpoints in the Hugging Face or the
//! OpenAI / open_clip naming or built from tensors in memory, a batched multi-threaded CPU
//! forward that is the reference ([`cpu`]), CLIP's preprocessing ([`preprocess`]) and datasets
//! ([`dataset`]): image-folder trees and safetensors files.
//!
//! Layout: [`VitConfig`] and [`ClipWeights`] are backend-independent; [`cpu`] holds the forward
//! as small layer functions (`embed`, `layer_norm`, `linear`, `attention`, `quick_gelu`,
//! `residual_block`) that variants reuse: [`cpu::blended`] runs a batch in which every sample has
//! its own interpolation coefficients, exactly and without merging a model per sample, over
//! [`BlendedWeights`] (θ0 and the deltas θ_j − θ0 stacked). [`cuda`] is the GPU forward
//! (hand-written fp16/bf16 tensor-core kernels of `dawin-kernels`, plain and blended), taking
//! the same config and weights and tested against [`cpu::forward`].
//!
//! ```
//! use dawin_vit::{ClipClassifier, ClipWeights, VitConfig};
//!
//! // A tiny random model (real ones come from `ClipClassifier::from_source`).
//! let cfg = VitConfig { image_size: 16, patch_size: 8, width: 32, layers: 1, heads: 2,
//!                       mlp_dim: 64, embed_dim: 16, num_classes: 3, layer_norm_eps: 1e-5 };
//! let model = ClipClassifier::new(cfg.clone(), ClipWeights::random(&cfg, 0)?)?;
//! let images = vec![0.1f32; 2 * cfg.image_numel()];          // [2, 3, 16, 16], preprocessed
//! let out = model.forward_with(&images, 2, true)?;
//! assert_eq!(out.logits.len(), 2 * 3);
//! let f = out.features.unwrap();                               // [2, 16], unit norm
//! assert!((f[..16].iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
//! # Ok::<(), dawin_vit::Error>(())
//! ```
#![warn(missing_docs)]

pub mod blended;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod cuda;
pub mod dataset;
pub mod error;
pub mod model;
pub mod preprocess;
pub mod tensors;
pub mod weights;

pub use blended::BlendedWeights;
pub use checkpoint::{
    complete_vision_tower, embed_width, encoder_params, encoder_params_mut, load_head,
    open_checkpoint, Checkpoint, CheckpointEncoder,
};
pub use config::VitConfig;
pub use dataset::{Batch, ImageDataset, Skipped};
pub use error::{Error, Result};
pub use model::{ClipClassifier, DatasetPredictions, ForwardOutput};
pub use preprocess::{load_image, preprocess_file, preprocess_rgb, RgbImage, CLIP_MEAN, CLIP_STD};
pub use tensors::{Tensor, TensorMap, TensorSource, HEADS_METADATA_KEY};
pub use weights::{
    infer_config, CheckpointNaming, ClipWeights, LayerNorm, Linear, LoadOptions, ParamSpec,
    ResidualBlock, VisionWeights,
};
