//! The crate's error type: every variant names the file, the tensor or the argument at fault.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Errors of model loading, preprocessing, datasets and the forward.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor the architecture needs is absent from the checkpoint.
    #[error("tensor `{name}` is missing from {source_name}")]
    MissingTensor {
        /// Checkpoint name of the tensor.
        name: String,
        /// File path (or `<memory>`) of the checkpoint.
        source_name: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor `{name}` in {source_name} has shape {got:?}, expected {expected}")]
    TensorShape {
        /// Checkpoint name of the tensor.
        name: String,
        /// File path (or `<memory>`) of the checkpoint.
        source_name: String,
        /// The shape found.
        got: Vec<usize>,
        /// The shape (or rule) expected.
        expected: String,
    },
    /// The checkpoint is not a CLIP ViT image tower (another architecture, or a text model).
    #[error("{source_name} is not a CLIP ViT image encoder checkpoint: {reason}")]
    NotClipVision {
        /// File path (or `<memory>`) of the checkpoint.
        source_name: String,
        /// What was looked for.
        reason: String,
    },
    /// The checkpoint has no CLIP text tower (an image-encoder-only checkpoint, another model).
    #[error("{source_name} has no CLIP text tower: {reason}")]
    NotClipText {
        /// File path (or `<memory>`) of the checkpoint.
        source_name: String,
        /// What was looked for.
        reason: String,
    },
    /// A tokenizer file that could not be read or is not CLIP's.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// Class names or templates that could not be used (file, line, or argument named).
    #[error(transparent)]
    Prompt(#[from] crate::prompts::PromptError),
    /// An inconsistent or invalid model configuration.
    #[error("invalid ViT config: {0}")]
    Config(String),
    /// A bad argument of a call (wrong buffer length, batch size, ...).
    #[error("invalid argument `{arg}`: {msg}")]
    Argument {
        /// Name of the argument.
        arg: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// An image file that could not be read or decoded.
    #[error("image {}: {msg}", path.display())]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// A dataset that could not be used (bad layout, bad tensor, empty).
    #[error("dataset {}: {msg}", path.display())]
    Dataset {
        /// The dataset file or folder.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// An error of dawin-core (state dicts: unreadable file, unsupported dtype, ...).
    #[error(transparent)]
    Core(#[from] dawin_core::Error),
    /// An I/O error on a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn arg(arg: &'static str, msg: impl Into<String>) -> Self {
        Error::Argument {
            arg,
            msg: msg.into(),
        }
    }
}
