//! The one error type of the crate.

use std::path::PathBuf;

/// Everything that can go wrong in smolvlm, in variants a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model file is missing, unreadable or malformed; `path` names the file.
    #[error("model file {}: {reason}", path.display())]
    ModelFile {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The model could not be found or fetched (hub cache miss, network failure).
    #[error("model unavailable: {0}")]
    ModelUnavailable(String),
    /// An image could not be decoded or is unusable (empty, too large, bad pixel layout).
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// A caller argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The prompt (plus room for one generated token) does not fit the model's context.
    #[error("prompt of {tokens} tokens exceeds the context length of {limit} tokens")]
    ContextOverflow {
        /// Tokens needed.
        tokens: usize,
        /// Tokens available.
        limit: usize,
    },
    /// The call was cancelled through its [`crate::CancelToken`].
    #[error("cancelled")]
    Cancelled,
    /// A failure inside the tensor library or the tokenizer that is not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

impl Error {
    /// A [`Error::ModelFile`] for `path` with the given reason.
    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::ModelFile { path: path.into(), reason: reason.to_string() }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
