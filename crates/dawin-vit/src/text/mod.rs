//! CLIP's text tower and zero-shot heads built from class names.
//!
//! DaWin's θ0 is the zero-shot CLIP classifier, whose head is made of text: every class name is
//! filled into prompt templates ([`crate::prompts`]), tokenized ([`crate::tokenizer`]), encoded
//! by the text tower ([`ClipTextModel`]), and the normalised embeddings averaged per class
//! ([`zero_shot_head`]).
//!
//! * [`TextConfig`], [`TextWeights`] (named as the checkpoints name them; both namings listed
//!   once in [`TextParamList`]), [`TextNaming`] (OpenAI / open_clip or Hugging Face, with
//!   prefixes), [`infer_text_config`] (shapes give the sizes; heads and activation are given in
//!   [`TextOptions`] or take stated defaults, [`InferredText::assumptions`]);
//! * [`ClipTextModel::encode`]: the batched, multi-threaded CPU forward on [`crate::cpu`]'s
//!   layers with a causal attention ([`causal_attention`]), computing each text only up to its
//!   end token and each prefix that texts share once ([`TextPositions`], [`Segment`]);
//! * [`zero_shot_head`] → [`ZeroShotHead`], written as `classification_head.weight` / `.bias`
//!   with the class names, templates and tokenizer in its metadata.
//!
//! ```
//! use dawin_vit::text::{zero_shot_head, ClipTextModel, TextConfig, TextWeights};
//! use dawin_vit::tokenizer::ClipTokenizer;
//!
//! let cfg = TextConfig { width: 32, layers: 1, heads: 2, mlp_dim: 64, embed_dim: 16,
//!                        ..TextConfig::vit_b32() };
//! let model = ClipTextModel::new(cfg.clone(), TextWeights::random(&cfg, 0)?)?;
//! let head = zero_shot_head(&model, &ClipTokenizer::builtin(), &["cat", "dog"],
//!                           &["a photo of a {}.", "a drawing of a {}."], &mut |_| {})?;
//! assert_eq!(head.weight.len(), 2 * 16);
//! // Each row has norm exp(logit_scale) = 1/0.07 (random weights: CLIP's initial scale).
//! let n: f32 = head.weight[..16].iter().map(|v| v * v).sum::<f32>().sqrt();
//! assert!((n - 1.0 / 0.07).abs() < 1e-3);
//! # Ok::<(), dawin_vit::Error>(())
//! ```

mod forward;
mod model;
mod params;
mod zeroshot;

pub use forward::{causal_attention, computed_positions, encode, Segment, TextPositions};
pub use model::{
    infer_text_config, ClipTextModel, InferredText, TextConfig, TextNaming, TextOptions,
    TextWeights,
};
pub use params::{TextModule, TextParamDef, TextParamKey, TextParamList};
pub use zeroshot::{
    zero_shot_head, ZeroShotHead, META_CLASSES, META_LOGIT_SCALE, META_TEMPLATES, META_TOKENIZER,
    META_TOKENIZER_SHA256, META_TRUNCATED,
};
