//! The error type shared by every fallible function of `dawin-core`.

use std::path::PathBuf;

/// Everything that can go wrong in `dawin-core`. Each variant names the file, tensor or argument
/// at fault so that a user can act on the message alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error while reading or writing `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not a valid safetensors (or `.npy`) file, or is truncated.
    #[error("{path}: not a valid {format} file: {reason}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// `"safetensors"` or `"npy"`.
        format: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor asked for by name is not in the file.
    #[error("{path}: no tensor named `{name}`")]
    MissingTensor {
        /// The file searched.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// Two checkpoints (or a checkpoint and what a model expects) do not match.
    #[error("checkpoints do not match: {0}")]
    Mismatch(String),
    /// A tensor has a dtype this operation cannot handle.
    #[error("tensor `{name}`: unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The tensor's name.
        name: String,
        /// The dtype as the file spells it.
        dtype: String,
    },
    /// An argument is out of its domain (an empty array, a λ outside [0, 1], a length mismatch …).
    #[error("invalid argument `{name}`: {reason}")]
    InvalidArgument {
        /// The argument's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A NaN or infinite value where finite numbers are required.
    #[error("{what} is not finite at {location}: {value}")]
    NonFinite {
        /// The array, e.g. `"logits"`.
        what: &'static str,
        /// Where, e.g. `"row 3, column 7"`.
        location: String,
        /// The offending value.
        value: f64,
    },
    /// A class label outside `[0, n_classes)`.
    #[error("label of sample {index} is {label}, outside [0, {n_classes})")]
    LabelOutOfRange {
        /// Sample index.
        index: usize,
        /// The label found.
        label: i64,
        /// Number of classes.
        n_classes: usize,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn arg(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
