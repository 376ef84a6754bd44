//! The errors a host app sees: a few variants it can act on, each with a readable message.

use smolvlm::Error as CoreError;

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
        tokens: u64,
        /// Tokens the model's context holds.
        limit: u64,
        /// The same, as a sentence.
        reason: String,
    },
    /// The answer was cancelled (`cancel()`, or the stream was closed) before it finished.
    #[error("cancelled")]
    Cancelled,
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
                SmolVlmError::ContextOverflow { tokens: tokens as u64, limit: limit as u64, reason }
            }
            CoreError::Cancelled => SmolVlmError::cancelled(),
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
