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
mod shapes;
mod text;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

pub(crate) use configs::ConfigFiles;
pub use configs::{
    open_clip_preset, OpenClipPreset, ACTIVATION_METADATA_KEY, ARCH_METADATA_KEY,
    LAYER_NORM_EPS_METADATA_KEY, LAYER_SCALE_METADATA_KEY, OPEN_CLIP_PRESETS,
};
pub(crate) use shapes::{in_vision_tower, LAYER_SCALE_TENSORS};

use crate::config::{Activation, VitConfig};
use crate::error::{Error, Result};
use crate::tensors::{TensorSource, HEADS_METADATA_KEY};
use crate::weights::{CheckpointNaming, LoadOptions};

/// The metadata keys that carry a resolved architecture in a safetensors file.
pub const METADATA_KEYS: &[&str] = &[
    HEADS_METADATA_KEY,
    ACTIVATION_METADATA_KEY,
    LAYER_SCALE_METADATA_KEY,
    LAYER_NORM_EPS_METADATA_KEY,
    ARCH_METADATA_KEY,
    crate::head::NORMALIZE_METADATA_KEY,
];

/// The kind of a source, in precedence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// A command-line flag or load option (`--arch`, `--activation`, `--heads`).
    Flag,
    /// A Hugging Face `config.json`.
    HfConfig,
    /// open_clip's `open_clip_config.json`.
    OpenClipConfig,
    /// The `dawin.*` metadata of the checkpoint.
    Metadata,
    /// A value pickled in the checkpoint (a head's `normalize` attribute).
    Checkpoint,
    /// The tensors' shapes.
    Shapes,
    /// A stated default.
    Default,
}

impl SourceKind {
    /// A short name: `flag`, `config.json`, `open_clip_config.json`, `metadata`, `checkpoint`,
    /// `tensor shapes`, `default`.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Flag => "flag",
            SourceKind::HfConfig => "config.json",
            SourceKind::OpenClipConfig => "open_clip_config.json",
            SourceKind::Metadata => "metadata",
            SourceKind::Checkpoint => "checkpoint",
            SourceKind::Shapes => "tensor shapes",
            SourceKind::Default => "default",
        }
    }

    /// Whether this is a fact of the checkpoint (never overridden).
    fn is_fact(self) -> bool {
        matches!(
            self,
            SourceKind::Metadata | SourceKind::Checkpoint | SourceKind::Shapes
        )
    }
}

/// Where a value came from: the kind of source and the detail (the flag, the file and key,
/// the tensor and its shape, the default's rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The kind.
    pub kind: SourceKind,
    /// The detail.
    pub detail: String,
}

impl Source {
    /// A source of `kind` with `detail`.
    pub fn new(kind: SourceKind, detail: impl Into<String>) -> Self {
        Source {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

/// A resolved value and its source.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub source: Source,
}

impl<T> Resolved<T> {
    /// `value` from `source`.
    pub fn new(value: T, source: Source) -> Self {
        Resolved { value, source }
    }
}

/// A field a source can speak about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Field {
    ImageSize,
    PatchSize,
    Width,
    Layers,
    Heads,
    MlpDim,
    EmbedDim,
    Activation,
    LayerScale,
    LayerNormEps,
    TextWidth,
    TextLayers,
    TextHeads,
    TextContext,
    TextVocab,
    TextEmbedDim,
    TextActivation,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::ImageSize => "image_size",
            Field::PatchSize => "patch_size",
            Field::Width => "width",
            Field::Layers => "layers",
            Field::Heads => "heads",
            Field::MlpDim => "mlp_dim",
            Field::EmbedDim => "embed_dim",
            Field::Activation => "activation",
            Field::LayerScale => "layer_scale",
            Field::LayerNormEps => "layer_norm_eps",
            Field::TextWidth => "text.width",
            Field::TextLayers => "text.layers",
            Field::TextHeads => "text.heads",
            Field::TextContext => "text.context_length",
            Field::TextVocab => "text.vocab_size",
            Field::TextEmbedDim => "text.embed_dim",
            Field::TextActivation => "text.activation",
        }
    }
}

/// A field's value, whatever its type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    N(usize),
    Act(Activation),
    Bool(bool),
    F(f32),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::N(n) => write!(f, "{n}"),
            Value::Act(a) => f.write_str(a.name()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::F(x) => write!(f, "{x:e}"),
        }
    }
}

/// What one source says about one field.
#[derive(Clone, Debug)]
pub(crate) struct Claim {
    field: Field,
    value: Value,
    source: Source,
}

impl Claim {
    pub(crate) fn new(field: Field, value: Value, source: Source) -> Self {
        Claim {
            field,
            value,
            source,
        }
    }
}

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

/// What the resolution needs besides the tensors: the checkpoint's layout in words, the config
/// files, and the head.
pub(crate) struct Inputs<'a> {
    pub format: String,
    pub configs: ConfigFiles,
    pub head: Option<HeadInput<'a>>,
}

/// The head as the resolution sees it.
pub(crate) struct HeadInput<'a> {
    pub src: &'a dyn TensorSource,
    pub weight_name: String,
    pub normalize: Resolved<bool>,
    /// Whether it comes from a head file (the checkpoint's own head, if any, is then ignored).
    pub from_file: bool,
    /// The names it reads in the checkpoint (empty when from a file).
    pub names_in_checkpoint: Vec<String>,
}

/// The claims of the flags in `opts`, highest precedence first.
fn flag_claims(opts: &LoadOptions) -> Result<Vec<Claim>> {
    let mut v = Vec::new();
    if let Some(a) = opts.activation {
        v.push(Claim::new(
            Field::Activation,
            Value::Act(a),
            Source::new(SourceKind::Flag, format!("--activation {}", a.name())),
        ));
        v.push(Claim::new(
            Field::TextActivation,
            Value::Act(a),
            Source::new(SourceKind::Flag, format!("--activation {}", a.name())),
        ));
    }
    if let Some(h) = opts.heads {
        v.push(Claim::new(
            Field::Heads,
            Value::N(h),
            Source::new(SourceKind::Flag, format!("--heads {h}")),
        ));
    }
    if let Some(e) = opts.layer_norm_eps {
        v.push(Claim::new(
            Field::LayerNormEps,
            Value::F(e),
            Source::new(SourceKind::Flag, format!("layer_norm_eps {e:e}")),
        ));
    }
    if let Some(name) = &opts.arch {
        v.extend(open_clip_preset(name)?.claims());
    }
    Ok(v)
}

/// Decides `field` from `claims` (see the module docs); `None` when nothing speaks about it.
fn decide(
    field: Field,
    claims: &[Claim],
    overrides: &mut Vec<String>,
) -> Result<Option<Resolved<Value>>> {
    let mut these: Vec<&Claim> = claims.iter().filter(|c| c.field == field).collect();
    these.sort_by_key(|c| c.source.kind); // stable: insertion order within a kind
    let Some(first) = these.first() else {
        return Ok(None);
    };
    if let Some(fact) = these.iter().find(|c| c.source.kind.is_fact()) {
        if let Some(c) = these
            .iter()
            .find(|c| c.source.kind != SourceKind::Default && c.value != fact.value)
        {
            return Err(Error::Config(format!(
                "{}: {} says {}, but {} says {}",
                field.name(),
                c.source,
                c.value,
                fact.source,
                fact.value
            )));
        }
    }
    for c in &these[1..] {
        if c.value != first.value && c.source.kind != SourceKind::Default {
            overrides.push(format!(
                "{}: {} ({}) overrides {} ({})",
                field.name(),
                first.value,
                first.source,
                c.value,
                c.source
            ));
        }
    }
    let mut source = first.source.clone();
    if !source.kind.is_fact() {
        if let Some(fact) = these.iter().find(|c| c.source.kind.is_fact()) {
            source.detail = format!("{} (= {})", source.detail, fact.source.kind.name());
        }
    }
    Ok(Some(Resolved::new(first.value.clone(), source)))
}

fn n(r: Resolved<Value>) -> Resolved<usize> {
    match r.value {
        Value::N(v) => Resolved::new(v, r.source),
        other => unreachable!("a count field holds {other:?}"),
    }
}

/// Resolves the architecture of `src` (see the module docs).
pub(crate) fn resolve(
    src: &dyn TensorSource,
    inputs: Inputs<'_>,
    opts: &LoadOptions,
) -> Result<Architecture> {
    let naming = CheckpointNaming::detect(src)?;
    let mut claims = flag_claims(opts)?;
    claims.extend(inputs.configs.claims()?);
    claims.extend(configs::metadata_claims(src)?);
    claims.extend(shapes::shape_claims(src, &naming)?);
    let text_shapes = text::text_shape_claims(src, &naming);
    let text_in_checkpoint = !text_shapes.is_empty();
    claims.extend(text_shapes);
    let mut overrides = Vec::new();
    let mut req = |f: Field, claims: &[Claim]| -> Result<Resolved<Value>> {
        decide(f, claims, &mut overrides)?
            .ok_or_else(|| Error::Config(format!("{}: no source gives it", f.name())))
    };
    let width = n(req(Field::Width, &claims)?);
    let image_size = n(req(Field::ImageSize, &claims)?);
    let patch_size = n(req(Field::PatchSize, &claims)?);
    let layers = n(req(Field::Layers, &claims)?);
    let mlp_dim = n(req(Field::MlpDim, &claims)?);
    let embed_dim = n(req(Field::EmbedDim, &claims)?);
    let layer_scale = match req(Field::LayerScale, &claims)? {
        Resolved {
            value: Value::Bool(b),
            source,
        } => Resolved::new(b, source),
        _ => unreachable!(),
    };
    let w = width.value;
    if w.is_multiple_of(64) {
        claims.push(Claim::new(
            Field::Heads,
            Value::N(w / 64),
            Source::new(
                SourceKind::Default,
                format!("width {w} / 64 (OpenAI's head width); pass --heads N or --arch NAME"),
            ),
        ));
    }
    claims.push(Claim::new(
        Field::Activation,
        Value::Act(Activation::QuickGelu),
        Source::new(
            SourceKind::Default,
            "QuickGELU, OpenAI CLIP's (nothing in a state dict says which); pass --activation \
             gelu|quick-gelu or --arch NAME",
        ),
    ));
    claims.push(Claim::new(
        Field::LayerNormEps,
        Value::F(1e-5),
        Source::new(SourceKind::Default, "CLIP's 1e-5"),
    ));
    let heads = decide(Field::Heads, &claims, &mut overrides)?.ok_or_else(|| {
        Error::Config(format!(
            "{}: width {w} is not a multiple of 64 and no source gives the number of attention \
             heads: pass --heads N or --arch NAME (open_clip's ViT-H-14: 16 heads of 80), or put \
             a config.json / open_clip_config.json beside the checkpoint",
            src.source_name()
        ))
    })?;
    let heads = n(heads);
    if heads.value == 0 || !w.is_multiple_of(heads.value) {
        return Err(Error::Config(format!(
            "heads {} ({}) does not divide width {w} ({})",
            heads.value, heads.source, width.source
        )));
    }
    let head_width = Resolved::new(w / heads.value, heads.source.clone());
    let activation = match decide(Field::Activation, &claims, &mut overrides)? {
        Some(Resolved {
            value: Value::Act(a),
            source,
        }) => Resolved::new(a, source),
        _ => unreachable!("the default is a claim"),
    };
    let layer_norm_eps = match decide(Field::LayerNormEps, &claims, &mut overrides)? {
        Some(Resolved {
            value: Value::F(e),
            source,
        }) => Resolved::new(e, source),
        _ => unreachable!("the default is a claim"),
    };
    let text = resolve_text(&claims, &activation, text_in_checkpoint, &mut overrides)?;

    let head = match &inputs.head {
        None => None,
        Some(h) => {
            let s = h.src.tensor_shape(&h.weight_name).unwrap_or_default();
            if s.len() != 2 || s.contains(&0) {
                return Err(Error::TensorShape {
                    name: h.weight_name.clone(),
                    source_name: h.src.source_name(),
                    got: s,
                    expected: "[classes, embedding width]".into(),
                });
            }
            if s[1] != embed_dim.value {
                return Err(Error::Config(format!(
                    "the head `{}` of {} reads embeddings of width {} ({:?}), but the encoder \
                     embeds to {} ({})",
                    h.weight_name,
                    h.src.source_name(),
                    s[1],
                    s,
                    embed_dim.value,
                    embed_dim.source
                )));
            }
            Some(HeadSummary {
                source_name: h.src.source_name(),
                weight_name: h.weight_name.clone(),
                classes: Resolved::new(
                    s[0],
                    Source::new(
                        SourceKind::Shapes,
                        format!("{} {s:?} of {}", h.weight_name, h.src.source_name()),
                    ),
                ),
                normalize: h.normalize.clone(),
            })
        }
    };

    let mut dtypes = BTreeMap::new();
    let mut vision_dtypes = BTreeMap::new();
    for name in src.tensor_names() {
        let d = src
            .tensor_meta(name)
            .map_or_else(|_| "other".to_string(), |(d, _)| d.name().to_string());
        if in_vision_tower(&naming, name) {
            *vision_dtypes.entry(d.clone()).or_insert(0usize) += 1;
        }
        *dtypes.entry(d).or_insert(0usize) += 1;
    }
    let dtype = Resolved::new(
        vision_dtypes.keys().cloned().collect::<Vec<_>>().join("+"),
        Source::new(
            SourceKind::Shapes,
            format!("{} vision tensors", vision_dtypes.values().sum::<usize>()),
        ),
    );
    let shape_cfg = VitConfig {
        image_size: image_size.value,
        patch_size: patch_size.value,
        width: w,
        layers: layers.value,
        heads: heads.value,
        mlp_dim: mlp_dim.value,
        embed_dim: embed_dim.value,
        num_classes: head.as_ref().map_or(1, |h| h.classes.value),
        layer_norm_eps: layer_norm_eps.value,
        activation: activation.value,
        layer_scale: layer_scale.value,
    };
    let used_head: Vec<String> = inputs
        .head
        .as_ref()
        .map(|h| h.names_in_checkpoint.clone())
        .unwrap_or_default();
    let head_replaced = inputs.head.as_ref().is_some_and(|h| h.from_file);
    let (unused, ignored) = shapes::classify(src, &naming, &shape_cfg, &used_head, head_replaced);
    Ok(Architecture {
        checkpoint: src.source_name(),
        format: inputs.format,
        naming,
        tensor_count: src.tensor_names().len(),
        dtypes,
        image_size,
        patch_size,
        width,
        layers,
        heads,
        head_width,
        mlp_dim,
        embed_dim,
        dtype,
        activation,
        layer_scale,
        layer_norm_eps,
        head,
        text,
        overrides,
        config_files: inputs.configs.paths(),
        notes: inputs.configs.notes.clone(),
        ignored,
        unused,
    })
}

fn resolve_text(
    claims: &[Claim],
    vision_activation: &Resolved<Activation>,
    in_checkpoint: bool,
    overrides: &mut Vec<String>,
) -> Result<Option<TextArchitecture>> {
    let mut get =
        |f: Field| -> Result<Option<Resolved<usize>>> { Ok(decide(f, claims, overrides)?.map(n)) };
    let mut t = TextArchitecture {
        width: get(Field::TextWidth)?,
        layers: get(Field::TextLayers)?,
        heads: get(Field::TextHeads)?,
        context_length: get(Field::TextContext)?,
        vocab_size: get(Field::TextVocab)?,
        embed_dim: get(Field::TextEmbedDim)?,
        activation: None,
        in_checkpoint,
    };
    if t == (TextArchitecture {
        in_checkpoint,
        ..Default::default()
    }) {
        return Ok(None);
    }
    if t.heads.is_none() {
        if let Some(w) = t.width.as_ref().filter(|w| w.value % 64 == 0) {
            t.heads = Some(Resolved::new(
                w.value / 64,
                Source::new(
                    SourceKind::Default,
                    format!("text width {} / 64 (OpenAI's rule)", w.value),
                ),
            ));
        }
    }
    t.activation = Some(match decide(Field::TextActivation, claims, overrides)? {
        Some(Resolved {
            value: Value::Act(a),
            source,
        }) => Resolved::new(a, source),
        _ => Resolved::new(
            vision_activation.value,
            Source::new(SourceKind::Default, "the vision tower's"),
        ),
    });
    Ok(Some(t))
}

mod report;
pub use report::default_warnings;

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
