//! Sources and claims: where a value came from ([`Source`], [`SourceKind`]), a value with its
//! source ([`Resolved`]), and what one source says about one field (`Claim`).

use std::fmt;

use crate::config::Activation;

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
    pub(crate) fn is_fact(self) -> bool {
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
    pub(crate) fn name(self) -> &'static str {
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
    pub(crate) field: Field,
    pub(crate) value: Value,
    pub(crate) source: Source,
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
