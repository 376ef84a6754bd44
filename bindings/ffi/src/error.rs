//! The errors a host app sees: a few variants it can act on, each with a readable message.

use crate::ints::saturating_i64;
use smolvlm::{DownloadError, Error as CoreError};

/// Why a call failed. In Kotlin each variant is a subclass of `SmolVlmException`; in Swift a
/// case of `SmolVlmError`. `reason` is always a readable sentence (Kotlin's `message` shows the
/// fields as `reason=…`).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SmolVlmError {
    /// The model folder or one of its files does not exist (wrong path, files not downloaded).
    #[error("{reason}")]
    ModelMissing {
        /// What is missing, naming the path.
        reason: String,
    },
    /// A model file exists but is unreadable or malformed (truncated download, wrong checkpoint).
    #[error("{reason}")]
    ModelInvalid {
        /// The file at fault and what is wrong with it.
        reason: String,
    },
    /// An image could not be decoded or its pixel layout does not match its size and strides.
    #[error("{reason}")]
    InvalidImage {
        /// What is wrong with the image.
        reason: String,
    },
    /// An argument is out of range or inconsistent, or the object is in the wrong state for the
    /// call (closed, or still streaming an answer).
    #[error("{reason}")]
    InvalidArgument {
        /// Which argument, and why.
        reason: String,
    },
    /// The conversation (plus one generated token) does not fit the model's context; start a new
    /// session, `reset()` this one, or send smaller images.
    #[error("{reason}")]
    ContextOverflow {
        /// Tokens the prompt needs.
        tokens: i64,
        /// Tokens the model's context holds.
        limit: i64,
        /// The same, as a sentence.
        reason: String,
    },
    /// The model would not fit the memory the OS says is available (checked before loading;
    /// see `estimateMemory`): use a smaller precision (Q4_K, Q8_0) or a shorter context length.
    #[error("{reason}")]
    InsufficientMemory {
        /// Bytes the model would hold.
        needed: i64,
        /// Bytes available.
        available: i64,
        /// The same, as a sentence.
        reason: String,
    },
    /// The answer or download was cancelled (`cancel()`, the stream closed, the coroutine or
    /// task cancelled) before it finished.
    #[error("cancelled")]
    Cancelled,
    /// Download: the repo, the revision or a file does not exist on the hub (HTTP 404), or the
    /// repo lacks a file the engine needs.
    #[error("{reason}")]
    NotFound {
        /// What is missing, naming the repo (and file).
        reason: String,
    },
    /// Download: the hub asks for a token (HTTP 401): a gated or private repo and no token, or
    /// an invalid one. Pass the token of an account that has accepted the repo's terms.
    #[error("{reason}")]
    Unauthorized {
        /// The repo (and file), and what to do.
        reason: String,
    },
    /// Download: the token is valid but has no access (HTTP 403): accept the repo's terms on the
    /// hub, or use a token with read access.
    #[error("{reason}")]
    Forbidden {
        /// The repo (and file), and what to do.
        reason: String,
    },
    /// Download: a file's size or SHA-256 differs from what the hub states. Its partial file is
    /// deleted and nothing is put under its name; running the download again starts it over.
    #[error("{reason}")]
    IntegrityFailed {
        /// The file, and the expected and actual size or hash.
        reason: String,
    },
    /// Download: not enough free space at the destination (the bytes still to fetch plus
    /// `keep_free_bytes`), checked before anything is fetched; or the disk filled up.
    #[error("{reason}")]
    InsufficientSpace {
        /// Bytes needed.
        needed: i64,
        /// Bytes free.
        available: i64,
        /// The same, as a sentence naming the folder.
        reason: String,
    },
    /// Download: the hub could not be reached, or kept failing after retries (no network, DNS,
    /// timeouts, HTTP 5xx). Partial files stay: run the download again later to continue.
    #[error("{reason}")]
    NetworkFailed {
        /// What failed.
        reason: String,
    },
    /// Download: writing the destination failed (permissions, a read-only file system).
    #[error("{reason}")]
    StorageFailed {
        /// The file or folder at fault, and the system's reason.
        reason: String,
    },
    /// A bug or an unexpected failure inside the library (including a caught Rust panic).
    #[error("{reason}")]
    Internal {
        /// A short description.
        reason: String,
        /// Technical details for a bug report.
        details: String,
    },
}

impl SmolVlmError {
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        SmolVlmError::InvalidArgument { reason: message.into() }
    }
    pub(crate) fn cancelled() -> Self {
        SmolVlmError::Cancelled
    }
    pub(crate) fn internal(message: impl Into<String>, details: impl Into<String>) -> Self {
        SmolVlmError::Internal { reason: message.into(), details: details.into() }
    }
}

impl From<CoreError> for SmolVlmError {
    fn from(e: CoreError) -> Self {
        let reason = e.to_string();
        match e {
            CoreError::ModelFile { ref path, .. } if !path.exists() => SmolVlmError::ModelMissing { reason },
            CoreError::ModelFile { .. } => SmolVlmError::ModelInvalid { reason },
            CoreError::ModelUnavailable(_) => SmolVlmError::ModelMissing { reason },
            CoreError::InvalidImage(_) => SmolVlmError::InvalidImage { reason },
            CoreError::InvalidArgument(_) => SmolVlmError::InvalidArgument { reason },
            CoreError::ContextOverflow { tokens, limit } => {
                SmolVlmError::ContextOverflow { tokens: saturating_i64(tokens), limit: saturating_i64(limit), reason }
            }
            CoreError::InsufficientMemory { needed, available } => {
                SmolVlmError::InsufficientMemory { needed: saturating_i64(needed), available: saturating_i64(available), reason }
            }
            CoreError::Cancelled => SmolVlmError::cancelled(),
            CoreError::Download(d) => match d {
                DownloadError::NotFound { .. } => SmolVlmError::NotFound { reason },
                DownloadError::Unauthorized { .. } => SmolVlmError::Unauthorized { reason },
                DownloadError::Forbidden { .. } => SmolVlmError::Forbidden { reason },
                DownloadError::Integrity { .. } => SmolVlmError::IntegrityFailed { reason },
                DownloadError::InsufficientSpace { needed, available, .. } => SmolVlmError::InsufficientSpace {
                    needed: saturating_i64(needed),
                    available: saturating_i64(available),
                    reason,
                },
                DownloadError::Offline { .. } => SmolVlmError::ModelMissing { reason },
                DownloadError::Network(_) => SmolVlmError::NetworkFailed { reason },
                DownloadError::Storage { .. } => SmolVlmError::StorageFailed { reason },
                // `DownloadError` may grow variants; they are internal until mapped here.
                #[allow(unreachable_patterns)]
                _ => SmolVlmError::internal("download failed", reason),
            },
            CoreError::Internal(ref d) => SmolVlmError::internal("internal error", d.clone()),
            // `smolvlm::Error` may grow variants; they are internal until mapped here.
            #[allow(unreachable_patterns)]
            _ => SmolVlmError::internal("internal error", reason),
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SmolVlmError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SmolVlmError::internal("a callback implemented by the app failed", e.reason)
    }
}

/// The message a caught panic carried.
pub(crate) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
