//! The errors a host app sees: a few variants it can act on, each with a readable message.

use smolvlm::Error as CoreError;

/// Why a call failed. In Kotlin each variant is a subclass of `SmolVlmException`; in Swift a
/// case of `SmolVlmError`. `message` is always a readable sentence.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum SmolVlmError {
    /// The model folder or one of its files does not exist (wrong path, files not downloaded).
    #[error("{message}")]
    ModelMissing {
        /// What is missing, naming the path.
        message: String,
    },
    /// A model file exists but is unreadable or malformed (truncated download, wrong checkpoint).
    #[error("{message}")]
    ModelInvalid {
        /// The file at fault and what is wrong with it.
        message: String,
    },
    /// An image could not be decoded or its pixel layout does not match its size and strides.
    #[error("{message}")]
    InvalidImage {
        /// What is wrong with the image.
        message: String,
    },
    /// An argument is out of range or inconsistent, or the object is in the wrong state for the
    /// call (closed, or still streaming an answer).
    #[error("{message}")]
    InvalidArgument {
        /// Which argument, and why.
        message: String,
    },
    /// The conversation (plus one generated token) does not fit the model's context; start a new
    /// session, `reset()` this one, or send smaller images.
    #[error("{message}")]
    ContextOverflow {
        /// Tokens the prompt needs.
        tokens: u64,
        /// Tokens the model's context holds.
        limit: u64,
        /// The same, as a sentence.
        message: String,
    },
    /// The answer was cancelled (`cancel()`, or the stream was closed) before it finished.
    #[error("{message}")]
    Cancelled {
        /// Always "cancelled".
        message: String,
    },
    /// A bug or an unexpected failure inside the library (including a caught Rust panic).
    #[error("{message}")]
    Internal {
        /// A short description.
        message: String,
        /// Technical details for a bug report.
        details: String,
    },
}

impl SmolVlmError {
    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        SmolVlmError::InvalidArgument { message: message.into() }
    }
    pub(crate) fn cancelled() -> Self {
        SmolVlmError::Cancelled { message: "cancelled".into() }
    }
    pub(crate) fn internal(message: impl Into<String>, details: impl Into<String>) -> Self {
        SmolVlmError::Internal { message: message.into(), details: details.into() }
    }
}

impl From<CoreError> for SmolVlmError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::ModelFile { ref path, .. } if !path.exists() => SmolVlmError::ModelMissing { message },
            CoreError::ModelFile { .. } => SmolVlmError::ModelInvalid { message },
            CoreError::ModelUnavailable(_) => SmolVlmError::ModelMissing { message },
            CoreError::InvalidImage(_) => SmolVlmError::InvalidImage { message },
            CoreError::InvalidArgument(_) => SmolVlmError::InvalidArgument { message },
            CoreError::ContextOverflow { tokens, limit } => {
                SmolVlmError::ContextOverflow { tokens: tokens as u64, limit: limit as u64, message }
            }
            CoreError::Cancelled => SmolVlmError::cancelled(),
            CoreError::Internal(ref d) => SmolVlmError::internal("internal error", d.clone()),
            // `smolvlm::Error` may grow variants; they are internal until mapped here.
            #[allow(unreachable_patterns)]
            _ => SmolVlmError::internal("internal error", message),
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SmolVlmError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SmolVlmError::internal("a callback implemented by the app failed", e.reason)
    }
}
