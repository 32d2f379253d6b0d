//! The library's error type: every failure a user can cause is a value, never a panic.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {err}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The operating-system error.
        err: std::io::Error,
    },
    /// A model file is malformed: truncated, corrupt, or internally inconsistent.
    #[error("invalid model file: {0}")]
    Format(String),
    /// The model uses something Ember does not implement (architecture, tensor type, …).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A tensor the architecture needs is absent or has the wrong shape.
    #[error("tensor {name}: {problem}")]
    Tensor {
        /// The tensor's name in the file.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Tokenizer construction or encoding failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be parsed or rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// A request that cannot be served (prompt longer than the context, bad option value, …).
    #[error("{0}")]
    Invalid(String),
    /// The model computed NaN or infinity (a corrupt or badly quantized file).
    #[error("numeric fault: {0}")]
    NonFinite(String),
    /// A compute backend failed or is unavailable.
    #[error("backend: {0}")]
    Backend(String),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A [`Error::Format`] from anything printable.
    pub fn format(msg: impl Into<String>) -> Self {
        Error::Format(msg.into())
    }

    /// A [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }
}
