//! open_clip's model names (`--arch`): the vision and text configurations of open_clip 3.3.0's
//! `model_configs/*.json` for the CLIP ViTs researchers fine-tune, and what each says as claims.

use super::{Claim, Field, Source, SourceKind, Value};
use crate::config::Activation;
use crate::error::{Error, Result};

/// One of open_clip's model configurations (`open_clip/model_configs/<name>.json`, open_clip
/// 3.3.0), as `--arch` names it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpenClipPreset {
    /// The model name, e.g. `ViT-B-32-quickgelu`.
    pub name: &'static str,
    /// `vision_cfg.width`.
    pub width: usize,
    /// `vision_cfg.layers`.
    pub layers: usize,
    /// `vision_cfg.head_width` (open_clip's default 64 where the file omits it).
    pub head_width: usize,
    /// `vision_cfg.patch_size`.
    pub patch_size: usize,
    /// `vision_cfg.image_size`.
    pub image_size: usize,
    /// `vision_cfg.mlp_ratio` (default 4.0): the MLP width is `int(width · mlp_ratio)`.
    pub mlp_ratio: f64,
    /// `embed_dim`.
    pub embed_dim: usize,
    /// `quick_gelu` (absent = false: exact GELU).
    pub quick_gelu: bool,
    /// `text_cfg`: context length, vocabulary, width, heads, layers.
    pub text: [usize; 5],
}

const TEXT_B: [usize; 5] = [77, 49408, 512, 8, 12];
const TEXT_L: [usize; 5] = [77, 49408, 768, 12, 12];
const TEXT_H: [usize; 5] = [77, 49408, 1024, 16, 24];

const fn preset(
    name: &'static str,
    (width, layers, head_width, patch_size, image_size): (usize, usize, usize, usize, usize),
    mlp_ratio: f64,
    embed_dim: usize,
    quick_gelu: bool,
    text: [usize; 5],
) -> OpenClipPreset {
    OpenClipPreset {
        name,
        width,
        layers,
        head_width,
        patch_size,
        image_size,
        mlp_ratio,
        embed_dim,
        quick_gelu,
        text,
    }
}

/// open_clip 3.3.0's configurations of the CLIP ViTs researchers fine-tune, copied from its
/// `model_configs/*.json` (none of them sets `ls_init_value`: no LayerScale).
pub const OPEN_CLIP_PRESETS: &[OpenClipPreset] = &[
    preset("ViT-B-32", (768, 12, 64, 32, 224), 4.0, 512, false, TEXT_B),
    preset(
        "ViT-B-32-quickgelu",
        (768, 12, 64, 32, 224),
        4.0,
        512,
        true,
        TEXT_B,
    ),
    preset("ViT-B-16", (768, 12, 64, 16, 224), 4.0, 512, false, TEXT_B),
    preset(
        "ViT-B-16-quickgelu",
        (768, 12, 64, 16, 224),
        4.0,
        512,
        true,
        TEXT_B,
    ),
    preset("ViT-L-14", (1024, 24, 64, 14, 224), 4.0, 768, false, TEXT_L),
    preset(
        "ViT-L-14-quickgelu",
        (1024, 24, 64, 14, 224),
        4.0,
        768,
        true,
        TEXT_L,
    ),
    preset(
        "ViT-L-14-336",
        (1024, 24, 64, 14, 336),
        4.0,
        768,
        false,
        TEXT_L,
    ),
    preset(
        "ViT-L-14-336-quickgelu",
        (1024, 24, 64, 14, 336),
        4.0,
        768,
        true,
        TEXT_L,
    ),
    preset(
        "ViT-H-14",
        (1280, 32, 80, 14, 224),
        4.0,
        1024,
        false,
        TEXT_H,
    ),
    preset(
        "ViT-H-14-quickgelu",
        (1280, 32, 80, 14, 224),
        4.0,
        1024,
        true,
        TEXT_H,
    ),
    preset(
        "ViT-g-14",
        (1408, 40, 88, 14, 224),
        4.3637,
        1024,
        false,
        TEXT_H,
    ),
    preset(
        "ViT-bigG-14",
        (1664, 48, 104, 14, 224),
        4.9231,
        1280,
        false,
        [77, 49408, 1280, 20, 32],
    ),
];

/// `int(width · mlp_ratio)`, as open_clip computes the MLP width (Python's `int` truncates).
pub(crate) fn mlp_width(width: usize, ratio: f64) -> usize {
    (width as f64 * ratio) as usize
}

/// The preset called `name` (case-insensitive); the error lists the known names.
pub fn open_clip_preset(name: &str) -> Result<&'static OpenClipPreset> {
    OPEN_CLIP_PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            Error::arg(
                "arch",
                format!(
                    "`{name}` is not a known open_clip model name; known: {}",
                    OPEN_CLIP_PRESETS
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
}

impl OpenClipPreset {
    /// What `--arch NAME` says, vision and text.
    pub(crate) fn claims(&self) -> Vec<Claim> {
        let src =
            |key: &str| Source::new(SourceKind::Flag, format!("--arch {} ({key})", self.name));
        let n = |f: Field, v: usize, key: &str| Claim::new(f, Value::N(v), src(key));
        let act = if self.quick_gelu {
            Activation::QuickGelu
        } else {
            Activation::Gelu
        };
        let [ctx, vocab, tw, th, tl] = self.text;
        vec![
            n(Field::Width, self.width, "vision_cfg.width"),
            n(Field::Layers, self.layers, "vision_cfg.layers"),
            n(
                Field::Heads,
                self.width / self.head_width,
                &format!("width / head_width {}", self.head_width),
            ),
            n(Field::PatchSize, self.patch_size, "vision_cfg.patch_size"),
            n(Field::ImageSize, self.image_size, "vision_cfg.image_size"),
            n(
                Field::MlpDim,
                mlp_width(self.width, self.mlp_ratio),
                &format!("int(width · mlp_ratio {})", self.mlp_ratio),
            ),
            n(Field::EmbedDim, self.embed_dim, "embed_dim"),
            Claim::new(
                Field::Activation,
                Value::Act(act),
                src(if self.quick_gelu {
                    "quick_gelu = true"
                } else {
                    "quick_gelu absent: exact GELU"
                }),
            ),
            Claim::new(
                Field::LayerScale,
                Value::Bool(false),
                src("no ls_init_value"),
            ),
            n(Field::TextContext, ctx, "text_cfg.context_length"),
            n(Field::TextVocab, vocab, "text_cfg.vocab_size"),
            n(Field::TextWidth, tw, "text_cfg.width"),
            n(Field::TextHeads, th, "text_cfg.heads"),
            n(Field::TextLayers, tl, "text_cfg.layers"),
            Claim::new(Field::TextActivation, Value::Act(act), src("quick_gelu")),
        ]
    }
}
