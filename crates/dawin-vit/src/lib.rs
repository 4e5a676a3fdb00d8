//! CLIP ViT image classifier for DaWin.
//!
//! DaWin runs three forwards per sample (θ0, θ1 and their per-sample merge), so this crate gives
//! the CLIP ViT image tower plus a linear classification head as plain f32 weights, a batched
//! multi-threaded CPU forward that is the reference, an exact per-sample blended forward, and a
//! CUDA forward on the kernels of `dawin-kernels`.
//!
//! # A guide
//!
//! **Models.** [`VitConfig`] is the shape; [`ClipWeights`] the tensors (as PyTorch stores them:
//! a linear map `[out, in]`); [`ClipClassifier`] a config with its weights and the CPU forward.
//! Load a safetensors checkpoint in the Hugging Face or the OpenAI / open_clip naming with
//! [`ClipClassifier::from_files`] (naming detected: [`CheckpointNaming`], config inferred from
//! the shapes: [`infer_config`], what shapes cannot tell: [`LoadOptions`]), or build one from
//! tensors in memory ([`TensorMap`], any [`dawin_core::TensorSource`]).
//!
//! **The parameter list.** The tower's tensors are listed once ([`ParamList`]: per tensor its
//! [`ParamKey`], [`Role`], [`Group`], shape, and how each naming stores it, [`Stored`]); loading,
//! saving ([`ClipWeights::to_tensor_map`]), merging ([`ClipWeights::params`],
//! [`ClipWeights::encoder_params`], [`ClipWeights::encoder_specs`]), the blended stacks and the
//! CUDA parameter arena are all derived from it.
//!
//! **Forwards.** [`cpu`] is the reference, written as small layer functions (`embed`,
//! `layer_norm`, `linear`, `attention`, `activation`, `residual_block`) that variants reuse;
//! [`cpu::blended`] runs a batch in which every sample has its own interpolation coefficients,
//! exactly and without merging a model per sample, over [`BlendedWeights`] (θ0 and the deltas
//! θ_j − θ0 stacked). [`cuda`] is the GPU forward (hand-written fp16/bf16 tensor-core kernels,
//! plain and blended), taking the same config and weights and tested against [`cpu::forward`].
//!
//! **Inputs.** [`preprocess`] is CLIP's preprocessing, pixel for pixel what Pillow and
//! torchvision give (JPEG through libjpeg-turbo's decoder, Pillow's bicubic resize, centre crop,
//! normalisation); [`ImageDataset`] reads image-folder trees, safetensors files and WebDataset
//! `.tar` shards ([`webdataset`]) in batches, decoded on a [`DecodePool`] of worker threads; [`benchmarks`] knows the conventions of the
//! paper's ImageNet benchmarks (class lists, ImageNet-R/-A subsets, ObjectNet's max-pooled
//! mapping and border crop).
//!
//! **Text.** [`tokenizer`] is CLIP's BPE tokenizer, id for id open_clip's; [`prompts`] holds the
//! zero-shot template sets and ImageNet's class names; [`text`] is CLIP's text tower and the
//! zero-shot heads built with it ([`text::zero_shot_head`]).
//! Errors ([`Error`]) name the file, the tensor or the argument at fault.
//!
//! ```
//! use dawin_vit::{ClipClassifier, ClipWeights, VitConfig};
//!
//! // A tiny random model (real ones come from `ClipClassifier::from_source`).
//! let cfg = VitConfig { image_size: 16, patch_size: 8, width: 32, layers: 1, heads: 2,
//!                       mlp_dim: 64, embed_dim: 16, num_classes: 3, layer_norm_eps: 1e-5,
//!                       activation: Default::default(), layer_scale: false };
//! let model = ClipClassifier::new(cfg.clone(), ClipWeights::random(&cfg, 0)?)?;
//! let images = vec![0.1f32; 2 * cfg.image_numel()];          // [2, 3, 16, 16], preprocessed
//! let out = model.forward_with(&images, 2, true)?;
//! assert_eq!(out.logits.len(), 2 * 3);
//! let f = out.features.unwrap();                               // [2, 16], unit norm
//! assert!((f[..16].iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
//! # Ok::<(), dawin_vit::Error>(())
//! ```
#![warn(missing_docs)]

pub mod arch;
pub mod benchmarks;
mod blended;
mod checkpoint;
mod config;
mod convert;
pub mod cpu;
pub mod cuda;
mod dataset;
mod error;
mod head;
mod load;
mod model;
mod params;
pub mod preprocess;
pub mod prompts;
pub mod source;
mod tensors;
pub mod text;
pub mod tokenizer;
pub mod webdataset;
mod weights;

pub use blended::BlendedWeights;
pub use checkpoint::{
    complete_vision_tower, embed_width, open_checkpoint, Checkpoint, CheckpointEncoder,
    DIRECTORY_FILES,
};
pub use config::{Activation, VitConfig};
pub use convert::{convert, parse_size, ConvertOptions, Converted};
pub use dataset::{Batch, DecodePool, ImageDataset, Skipped};
pub use error::{Error, Result};
pub use head::{load_head, ClassificationHead, NORMALIZE_METADATA_KEY};
pub use load::{inspect_checkpoint, open_resolved, resolve_checkpoint, Opened};
pub use model::{ClipClassifier, DatasetPredictions, ForwardOutput};
pub use params::{Group, Module, ParamDef, ParamKey, ParamList, Part, Role, Stored};
pub use tensors::{Tensor, TensorMap, HEADS_METADATA_KEY};
pub use weights::{
    infer_config, CheckpointNaming, ClipWeights, LayerNorm, Linear, LoadOptions, ParamSpec,
    ResidualBlock, VisionWeights,
};
