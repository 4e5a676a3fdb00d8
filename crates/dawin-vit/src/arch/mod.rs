//! Architecture resolution: every field of a checkpoint's tower, with where it came from.
//!
//! A state dict's shapes fix the width, patch, image size, layers, MLP width, embedding width,
//! classes and LayerScale, but not the number of attention heads nor the MLP activation
//! (QuickGELU for OpenAI's towers, exact GELU for open_clip's LAION/DataComp ones). Each field
//! is resolved from these sources, highest precedence first:
//!
//! 1. flags: `--activation`, `--heads`, then `--arch NAME` (one of open_clip's model names,
//!    [`OPEN_CLIP_PRESETS`]);
//! 2. a Hugging Face `config.json` beside the checkpoint (`vision_config.hidden_act`,
//!    `num_attention_heads`, `hidden_size`, `intermediate_size`, `image_size`, `patch_size`,
//!    `projection_dim`, `layer_norm_eps`; a key it omits takes transformers' default);
//! 3. open_clip's `open_clip_config.json` beside it (`model_cfg.quick_gelu` — absent means exact
//!    GELU, as open_clip reads it — and `model_cfg.vision_cfg.{width, layers, head_width,
//!    patch_size, image_size, mlp_ratio, ls_init_value}`, `model_cfg.embed_dim`);
//! 4. the checkpoint itself: the `dawin.vit.*` metadata this tool writes, and the tensor shapes;
//! 5. defaults: QuickGELU, `heads = width / 64` (only when 64 divides the width), eps 1e-5.
//!
//! The checkpoint's own facts (shapes, metadata) are never overridden: a flag or a config file
//! that disagrees with them is an error naming both. Among flags and config files the higher
//! one wins and the override is recorded ([`Architecture::overrides`]). Where a default decides
//! the activation or the heads, [`Architecture::warnings`] says so and how to override it.
//!
//! Tensors under the vision tower's prefix that the model does not read are listed
//! ([`Architecture::unused`]): loading refuses them unless told to ignore them; everything
//! outside the tower (text tower, `logit_scale`, …) is listed as ignored, grouped by prefix.

mod configs;
mod presets;
mod report;
mod resolve;
mod shapes;
mod source;
mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub(crate) use configs::ConfigFiles;
pub use configs::{
    ACTIVATION_METADATA_KEY, ARCH_METADATA_KEY, LAYER_NORM_EPS_METADATA_KEY,
    LAYER_SCALE_METADATA_KEY,
};
pub use presets::{open_clip_preset, OpenClipPreset, OPEN_CLIP_PRESETS};
pub use report::default_warnings;
pub(crate) use resolve::{resolve, HeadInput, Inputs};
pub(crate) use source::{Claim, Field, Value};
pub use source::{Resolved, Source, SourceKind};

use crate::config::{Activation, VitConfig};
use crate::error::{Error, Result};
use crate::tensors::HEADS_METADATA_KEY;
use crate::weights::CheckpointNaming;

/// The metadata keys that carry a resolved architecture in a safetensors file.
pub const METADATA_KEYS: &[&str] = &[
    HEADS_METADATA_KEY,
    ACTIVATION_METADATA_KEY,
    LAYER_SCALE_METADATA_KEY,
    LAYER_NORM_EPS_METADATA_KEY,
    ARCH_METADATA_KEY,
    crate::head::NORMALIZE_METADATA_KEY,
];

/// Tensors the model does not read and that are not an error: grouped by prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredGroup {
    /// The common prefix (`model.transformer.`, `model.logit_scale`, …).
    pub prefix: String,
    /// How many tensors.
    pub count: usize,
    /// Why they are ignored.
    pub why: String,
}

/// The head: where it is, its classes and its `normalize` flag.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadSummary {
    /// The file it is read from.
    pub source_name: String,
    /// Its weight tensor there.
    pub weight_name: String,
    /// Number of classes (the weight's rows).
    pub classes: Resolved<usize>,
    /// Whether the embedding is L2-normalised before it.
    pub normalize: Resolved<bool>,
}

/// The text tower's fields, where the checkpoint or a source gives them (for the zero-shot head
/// builder); each absent when nothing says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextArchitecture {
    /// Transformer width.
    pub width: Option<Resolved<usize>>,
    /// Number of blocks.
    pub layers: Option<Resolved<usize>>,
    /// Attention heads (default `width / 64`, OpenAI's rule, when 64 divides the width).
    pub heads: Option<Resolved<usize>>,
    /// Context length (positional embedding rows).
    pub context_length: Option<Resolved<usize>>,
    /// Vocabulary size.
    pub vocab_size: Option<Resolved<usize>>,
    /// Output width of `text_projection`.
    pub embed_dim: Option<Resolved<usize>>,
    /// The MLP activation (open_clip uses one for both towers).
    pub activation: Option<Resolved<Activation>>,
    /// Whether the checkpoint holds the text tower's tensors.
    pub in_checkpoint: bool,
}

/// A checkpoint's resolved architecture: every field of the vision tower with its source, the
/// head, the text tower (where known), and what the model ignores or does not use.
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// The checkpoint.
    pub checkpoint: String,
    /// Its layout (`safetensors`, `torch.save (zip)`, …, `shard index (…)`).
    pub format: String,
    /// Its naming, with the vision tower's prefix.
    pub naming: CheckpointNaming,
    /// Number of tensors in the checkpoint.
    pub tensor_count: usize,
    /// Tensors per dtype, over the whole checkpoint.
    pub dtypes: BTreeMap<String, usize>,
    /// Input side in pixels.
    pub image_size: Resolved<usize>,
    /// Patch side in pixels.
    pub patch_size: Resolved<usize>,
    /// Transformer width.
    pub width: Resolved<usize>,
    /// Number of blocks.
    pub layers: Resolved<usize>,
    /// Attention heads.
    pub heads: Resolved<usize>,
    /// Width of one head, `width / heads` (source: the heads').
    pub head_width: Resolved<usize>,
    /// MLP hidden width.
    pub mlp_dim: Resolved<usize>,
    /// Embedding width (the projection's output).
    pub embed_dim: Resolved<usize>,
    /// The dtype of the vision tower's tensors (`f32`, `f16`, `bf16`, or a mix).
    pub dtype: Resolved<String>,
    /// The MLP activation.
    pub activation: Resolved<Activation>,
    /// Whether the blocks have LayerScale (`ls_1.gamma`, `ls_2.gamma`).
    pub layer_scale: Resolved<bool>,
    /// Layer-norm epsilon.
    pub layer_norm_eps: Resolved<f32>,
    /// The head, when there is one (in the checkpoint or a head file).
    pub head: Option<HeadSummary>,
    /// The text tower, when a tensor or a source speaks about it.
    pub text: Option<TextArchitecture>,
    /// Values of a lower source overridden by a higher one (a flag over a config file).
    pub overrides: Vec<String>,
    /// The config files read.
    pub config_files: Vec<String>,
    /// Config files looked at and not used, with why.
    pub notes: Vec<String>,
    /// Tensors the model does not read, outside the vision tower, grouped by prefix.
    pub ignored: Vec<IgnoredGroup>,
    /// Tensors under the vision tower's prefix that the model does not read.
    pub unused: Vec<String>,
}

/// Finds the config files for a checkpoint at `path` (`config.json`, `open_clip_config.json` in
/// its directory, or in it when it is a directory) and `explicit`.
pub(crate) fn config_files_for(
    path: Option<&Path>,
    explicit: Option<&Path>,
) -> Result<ConfigFiles> {
    let dir = path.map(|p| {
        if p.is_dir() {
            p.to_path_buf()
        } else {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        }
    });
    ConfigFiles::find(dir.as_deref(), explicit)
}

impl Architecture {
    /// The model configuration (needs the head, for the classes).
    pub fn config(&self) -> Result<VitConfig> {
        if self.head.is_none() {
            return Err(Error::MissingTensor {
                name: "classification_head.weight".into(),
                source_name: format!("{} (and no head file was given)", self.checkpoint),
            });
        }
        Ok(self.shape_config())
    }

    /// The configuration with 1 class when there is no head (the encoder's shapes).
    pub(crate) fn shape_config(&self) -> VitConfig {
        VitConfig {
            image_size: self.image_size.value,
            patch_size: self.patch_size.value,
            width: self.width.value,
            layers: self.layers.value,
            heads: self.heads.value,
            mlp_dim: self.mlp_dim.value,
            embed_dim: self.embed_dim.value,
            num_classes: self.head.as_ref().map_or(1, |h| h.classes.value),
            layer_norm_eps: self.layer_norm_eps.value,
            activation: self.activation.value,
            layer_scale: self.layer_scale.value,
        }
    }

    /// Whether a default decided the activation.
    pub fn activation_defaulted(&self) -> bool {
        self.activation.source.kind == SourceKind::Default
    }

    /// Whether a default decided the number of heads.
    pub fn heads_defaulted(&self) -> bool {
        self.heads.source.kind == SourceKind::Default
    }

    /// For a model fine-tuned from `base` (same architecture): every field a default decided here
    /// takes the base's value and source (fine-tuning changes no architecture field), then every
    /// field must equal the base's; the error names the field and both sources.
    pub fn inherit_from(&mut self, base: &Architecture) -> Result<()> {
        fn take<T: Clone>(mine: &mut Resolved<T>, theirs: &Resolved<T>) {
            if mine.source.kind == SourceKind::Default {
                *mine = Resolved::new(
                    theirs.value.clone(),
                    Source::new(
                        theirs.source.kind,
                        format!("the base's: {}", theirs.source.detail),
                    ),
                );
            }
        }
        take(&mut self.heads, &base.heads);
        take(&mut self.activation, &base.activation);
        take(&mut self.layer_norm_eps, &base.layer_norm_eps);
        self.head_width = Resolved::new(
            self.width.value / self.heads.value,
            self.heads.source.clone(),
        );
        fn same<T: PartialEq + fmt::Debug>(
            field: &str,
            a: &Resolved<T>,
            b: &Resolved<T>,
            base: &str,
        ) -> Result<()> {
            if a.value != b.value {
                return Err(Error::Config(format!(
                    "{field}: {:?} ({}) here, but {:?} ({}) in the base {base}",
                    a.value, a.source, b.value, b.source
                )));
            }
            Ok(())
        }
        let b = &base.checkpoint;
        same("width", &self.width, &base.width, b)?;
        same("layers", &self.layers, &base.layers, b)?;
        same("heads", &self.heads, &base.heads, b)?;
        same("patch_size", &self.patch_size, &base.patch_size, b)?;
        same("image_size", &self.image_size, &base.image_size, b)?;
        same("mlp_dim", &self.mlp_dim, &base.mlp_dim, b)?;
        same("embed_dim", &self.embed_dim, &base.embed_dim, b)?;
        same("activation", &self.activation, &base.activation, b)?;
        same("layer_scale", &self.layer_scale, &base.layer_scale, b)?;
        same(
            "layer_norm_eps",
            &self.layer_norm_eps,
            &base.layer_norm_eps,
            b,
        )?;
        Ok(())
    }

    /// The unused tensors as an error naming them, unless `ignore` (then `Ok` with the warning
    /// line to print, if any).
    pub fn check_unused(&self, ignore: bool) -> Result<Option<String>> {
        if self.unused.is_empty() {
            return Ok(None);
        }
        let list = list_names(&self.unused);
        if ignore {
            return Ok(Some(format!(
                "{}: ignoring {} tensor(s) under the vision tower's prefix that the model does \
                 not use: {list}",
                self.checkpoint,
                self.unused.len()
            )));
        }
        Err(Error::NotClipVision {
            source_name: self.checkpoint.clone(),
            reason: format!(
                "{} tensor(s) under the vision tower's prefix are not used by a {}-layer \
                 tower{}: {list}; a model that skipped them would compute something else. Pass \
                 --ignore-unused to run without them",
                self.unused.len(),
                self.layers.value,
                if self.layer_scale.value {
                    " with LayerScale"
                } else {
                    " without LayerScale"
                }
            ),
        })
    }
}

/// Up to 8 names, then a count.
fn list_names(names: &[String]) -> String {
    let mut s: Vec<String> = names.iter().take(8).map(|n| format!("`{n}`")).collect();
    if names.len() > 8 {
        s.push(format!("… ({} more)", names.len() - 8));
    }
    s.join(", ")
}
