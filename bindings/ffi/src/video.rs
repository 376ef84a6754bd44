//! Videos for `ChatSession.ask`: frames (any [`ImageInput`]) with their timestamps and the
//! video's duration. The platforms decode the video (Android `MediaMetadataRetriever`, iOS
//! `AVAssetImageGenerator`); the library never links a video decoder.

use crate::error::SmolVlmError;
use crate::image::ImageInput;
use smolvlm::Video;
use std::sync::Arc;

/// A video as frames with timestamps, for `ChatSession.ask`.
///
/// Every frame is a candidate: when the question is answered, frames are chosen from them the
/// way transformers' SmolVLM2 video processor chooses from a decoded video (the checkpoint's
/// frames per second and frame limit, 1 s trimmed at both ends of long videos), so give all
/// frames of a clip or frames taken at a steady rate. Each chosen frame costs the vision tokens
/// of one image tile; `ModelInfo.videoFrameLimit` says how many fit.
#[derive(Debug, Clone, uniffi::Object)]
pub struct VideoInput {
    frames: Vec<Arc<ImageInput>>,
    timestamps: Vec<f64>,
    duration: f64,
    /// The frames were chosen with `SmolVlm.videoFrameIndices`: all are read.
    chosen: bool,
}

impl VideoInput {
    /// The core video (deferred frames converted now).
    pub(crate) fn to_core(&self) -> Result<Video, SmolVlmError> {
        let frames = self.frames.iter().map(|f| f.rgb()).collect::<smolvlm::Result<Vec<_>>>()?;
        let make = if self.chosen { Video::chosen } else { Video::new };
        Ok(make(frames, self.timestamps.clone(), self.duration)?)
    }
}

#[uniffi::export]
impl VideoInput {
    /// Frames in order, each one's time in seconds from the start, and the video's length in
    /// seconds. Throws `InvalidArgument` when there are no frames, the counts differ, the
    /// timestamps go backwards or a time is negative or not finite.
    #[uniffi::constructor]
    pub fn new(frames: Vec<Arc<ImageInput>>, timestamps: Vec<f64>, duration: f64) -> Result<Arc<Self>, SmolVlmError> {
        // The same checks as the core, on placeholders: deferred frames stay unconverted.
        let placeholder = Arc::new(smolvlm::RgbImage::new(1, 1, vec![0; 3])?);
        Video::new(vec![placeholder; frames.len()], timestamps.clone(), duration)?;
        Ok(Arc::new(VideoInput { frames, timestamps, duration, chosen: false }))
    }

    /// Frames already chosen from a longer video with `SmolVlm.videoFrameIndices` (decode only
    /// those), their timestamps and the whole video's duration: every one of them is read, at
    /// most `ModelInfo.videoFrameLimit`. Throws `InvalidArgument` as `new` does.
    #[uniffi::constructor]
    pub fn chosen(frames: Vec<Arc<ImageInput>>, timestamps: Vec<f64>, duration: f64) -> Result<Arc<Self>, SmolVlmError> {
        let all = Self::new(frames, timestamps, duration)?;
        Ok(Arc::new(VideoInput { chosen: true, ..Arc::unwrap_or_clone(all) }))
    }

    /// Number of frames given.
    pub fn frame_count(&self) -> i32 {
        i32::try_from(self.frames.len()).unwrap_or(i32::MAX)
    }

    /// The video's length in seconds.
    pub fn duration(&self) -> f64 {
        self.duration
    }
}
