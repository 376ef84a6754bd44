//! The decoder's error type, and the `Res` / `invalid` shorthands every stage uses.

use std::fmt;

/// Why [`decode_jpeg`](super::decode_jpeg) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JpegError {
    /// Corrupt data, or data Pillow refuses (it raises an error for it).
    Invalid(String),
    /// The data ends before the image is complete (Pillow: "image file is truncated").
    Truncated,
    /// A valid JPEG using a process this decoder does not implement.
    Unsupported(String),
    /// The frame exceeds the caller's limits (checked before anything is allocated for it).
    TooLarge { width: u32, height: u32 },
    /// The frame declares far more 8x8 blocks than the file has bits, which no complete JPEG
    /// does (see [`SMALL_FRAME_PIXELS`](super::SMALL_FRAME_PIXELS)); refused before anything is
    /// allocated for the frame. Pillow would decode such a file as mostly grey.
    TooLittleData { width: u32, height: u32, bytes: usize },
    /// Arithmetic-coded data asking for far more decoding work than its size justifies (see
    /// `arith::decision_budget`); no real file does. Pillow would spend the time.
    TooMuchWork { bytes: usize },
}

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JpegError::Invalid(m) => write!(f, "JPEG: {m}"),
            JpegError::Truncated => f.write_str("JPEG: image file is truncated"),
            JpegError::Unsupported(m) => write!(f, "JPEG: unsupported {m}"),
            JpegError::TooLarge { width, height } => write!(f, "JPEG: {width}x{height} image is too large"),
            JpegError::TooLittleData { width, height, bytes } => {
                write!(f, "JPEG: declares {width}x{height} but holds only {bytes} bytes")
            }
            JpegError::TooMuchWork { bytes } => {
                write!(f, "JPEG: arithmetic-coded data asks for more decoding work than its {bytes} bytes justify")
            }
        }
    }
}

pub(super) type Res<T> = Result<T, JpegError>;

pub(super) fn invalid<T>(msg: impl Into<String>) -> Res<T> {
    Err(JpegError::Invalid(msg.into()))
}
