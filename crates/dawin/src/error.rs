//! The error type of the pipeline.
use std::path::PathBuf;

/// Everything that can go wrong in the pipeline; each variant names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From `dawin-core` (state dicts, coefficients, npy, metrics).
    #[error(transparent)]
    Core(#[from] dawin_core::Error),
    /// From `dawin-mixture`.
    #[error("mixture: {0}")]
    Mixture(#[from] dawin_mixture::MixtureError),
    /// From `dawin-vit` (checkpoints, datasets, forward).
    #[error(transparent)]
    Vit(#[from] dawin_vit::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A bad argument or input, named.
    #[error("{what}: {msg}")]
    Invalid {
        /// What was wrong (an argument, a dataset, a file).
        what: String,
        /// Why.
        msg: String,
    },
}

impl Error {
    /// An [`Error::Invalid`].
    pub fn invalid(what: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            msg: msg.into(),
        }
    }
    /// An [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
