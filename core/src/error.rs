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
    /// The model could not be found (not a model folder, not in the hub cache while offline).
    #[error("model unavailable: {0}")]
    ModelUnavailable(String),
    /// Downloading a model from the hub failed (the `download` feature).
    #[error("download failed: {0}")]
    Download(#[from] DownloadError),
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
    /// The model would not fit the memory this process can still use (checked before loading,
    /// from [`crate::Engine::estimate_memory`]). Use a smaller precision (Q4_K, Q8_0) or a
    /// shorter `context_length`.
    #[error(
        "the model needs about {} MB but {} MB are available: use a smaller precision (q4k, q8_0) or a shorter context length",
        needed / 1_000_000,
        available / 1_000_000
    )]
    InsufficientMemory {
        /// Bytes the model would hold (the estimate's total).
        needed: u64,
        /// Bytes the OS says are available.
        available: u64,
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

/// Why a download from the hub failed: each case names what the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The repo, the revision or a file does not exist (HTTP 404), or a checkpoint lacks a file
    /// the engine needs.
    #[error("{repo}{}: not found on the hub", file_suffix(file))]
    NotFound {
        /// The repo id.
        repo: String,
        /// The file, when the repo itself exists.
        file: Option<String>,
    },
    /// The hub wants a token (HTTP 401): a gated or private repo and no token, or an invalid one.
    /// Pass a token (or set `HF_TOKEN`) of an account that has accepted the repo's terms.
    #[error(
        "{repo}{}: the hub asks for a token (HTTP 401; gated or private repo): set HF_TOKEN or pass a token",
        file_suffix(file)
    )]
    Unauthorized {
        /// The repo id.
        repo: String,
        /// The file, when the refusal came for one file.
        file: Option<String>,
    },
    /// The token is valid but has no access (HTTP 403): the repo's terms are not accepted, or
    /// the token lacks read access.
    #[error(
        "{repo}{}: access refused (HTTP 403): accept the repo's terms on the hub, or use a token with read access",
        file_suffix(file)
    )]
    Forbidden {
        /// The repo id.
        repo: String,
        /// The file, when the refusal came for one file.
        file: Option<String>,
    },
    /// A downloaded file's size or SHA-256 differs from what the hub states. The partial file
    /// is deleted; nothing was put under the file's final name.
    #[error("{file}: integrity check failed: {reason}")]
    Integrity {
        /// The file.
        file: String,
        /// What differed (expected and actual size or hash).
        reason: String,
    },
    /// Not enough free space at the destination.
    #[error("not enough free space in {}: {needed} bytes needed, {available} available", path.display())]
    InsufficientSpace {
        /// The destination.
        path: std::path::PathBuf,
        /// Bytes still to download, plus the space the request asks to keep free.
        needed: u64,
        /// Bytes free for this process.
        available: u64,
    },
    /// `HF_HUB_OFFLINE` is set and the model is not (completely) at the destination.
    #[error("{repo}@{revision} is not in {} and HF_HUB_OFFLINE is set", path.display())]
    Offline {
        /// The repo id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// Where it was looked for.
        path: std::path::PathBuf,
    },
    /// The hub could not be reached or kept failing (after retries): DNS, connection, timeouts,
    /// HTTP 5xx or other unexpected answers.
    #[error("network: {0}")]
    Network(String),
    /// Writing the destination failed (permissions, a read-only or full file system, a lock).
    #[error("{}: {reason}", path.display())]
    Storage {
        /// The file or folder at fault.
        path: std::path::PathBuf,
        /// The operating system's reason.
        reason: String,
    },
}

fn file_suffix(file: &Option<String>) -> String {
    file.as_ref().map(|f| format!("/{f}")).unwrap_or_default()
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
