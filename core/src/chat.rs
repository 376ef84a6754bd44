//! Conversations: roles, messages with text, images and videos, and the Hugging Face chat JSON
//! format.

use crate::error::{Error, Result};
use crate::processor::image::{load_image, RgbImage};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions for the assistant.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The lowercase name used in chat templates (`system`, `user`, `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// One item of a message: a piece of text, an image or a video.
#[derive(Debug, Clone)]
pub enum Content {
    /// Text, inserted verbatim.
    Text(String),
    /// A decoded image; its place in the prompt is where the template puts `<image>`.
    Image(Arc<RgbImage>),
    /// A video as decoded frames; its place in the prompt is where the template puts `<video>`.
    Video(Arc<Video>),
}

/// A video: decoded frames with their timestamps, and the video's duration.
///
/// Every frame is a candidate: when a conversation is answered, frames are chosen from them the
/// way transformers' SmolVLM video processor chooses from a decoded video (the checkpoint's `fps`
/// and `max_frames`, 1 s trimmed at both ends of long videos), with the source frame rate taken
/// as `frames / duration`. Give all frames of a clip, or frames sampled at a steady rate.
/// A decoder that only decodes the frames a question reads asks
/// [`crate::Engine::video_frame_indices`] which ones they are and passes those to
/// [`Video::chosen`].
#[derive(Debug, Clone)]
pub struct Video {
    frames: Vec<Arc<RgbImage>>,
    timestamps: Vec<f64>,
    duration: f64,
    /// The frames were chosen already: all of them are read.
    chosen: bool,
}

impl Video {
    /// Frames with their timestamps (seconds from the start, one per frame, not decreasing) and
    /// the duration in seconds. Fails with [`Error::InvalidArgument`] when there are no frames,
    /// the counts differ, or a time is negative or not finite.
    pub fn new(frames: Vec<Arc<RgbImage>>, timestamps: Vec<f64>, duration: f64) -> Result<Self> {
        let arg = |s: String| Err(Error::InvalidArgument(s));
        if frames.is_empty() {
            return arg("a video needs at least one frame".into());
        }
        if frames.len() != timestamps.len() {
            return arg(format!("a video has {} frames but {} timestamps", frames.len(), timestamps.len()));
        }
        if !(duration.is_finite() && duration > 0.0) {
            return arg(format!("video duration {duration} must be a positive number of seconds"));
        }
        if timestamps.iter().any(|t| !(t.is_finite() && *t >= 0.0)) || timestamps.windows(2).any(|w| w[1] < w[0]) {
            return arg("video timestamps must be finite, non-negative and in order".into());
        }
        Ok(Video { frames, timestamps, duration, chosen: false })
    }

    /// Frames already chosen from a longer video (by [`crate::Engine::video_frame_indices`]),
    /// with their timestamps and the whole video's duration: every one of them is read. The
    /// checks are those of [`Video::new`].
    pub fn chosen(frames: Vec<Arc<RgbImage>>, timestamps: Vec<f64>, duration: f64) -> Result<Self> {
        Ok(Video { chosen: true, ..Video::new(frames, timestamps, duration)? })
    }

    /// Whether the frames were chosen already ([`Video::chosen`]).
    pub fn is_chosen(&self) -> bool {
        self.chosen
    }

    /// The frames given, in order.
    pub fn frames(&self) -> &[Arc<RgbImage>] {
        &self.frames
    }

    /// Each frame's time in seconds from the start.
    pub fn timestamps(&self) -> &[f64] {
        &self.timestamps
    }

    /// The video's length in seconds.
    pub fn duration(&self) -> f64 {
        self.duration
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone)]
pub struct Message {
    /// The speaker.
    pub role: Role,
    /// Text and images, in order.
    pub content: Vec<Content>,
}

impl Message {
    /// A message holding only text.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message { role, content: vec![Content::Text(text.into())] }
    }

    /// A user message: the images first (as the SmolVLM model cards do), then the text.
    pub fn user(text: impl Into<String>, images: Vec<RgbImage>) -> Self {
        let mut content: Vec<Content> = images.into_iter().map(|i| Content::Image(Arc::new(i))).collect();
        let text = text.into();
        if !text.is_empty() || content.is_empty() {
            content.push(Content::Text(text));
        }
        Message { role: Role::User, content }
    }

    /// The images of this message, in order.
    pub fn images(&self) -> impl Iterator<Item = &Arc<RgbImage>> {
        self.content.iter().filter_map(|c| match c {
            Content::Image(i) => Some(i),
            _ => None,
        })
    }

    /// The videos of this message, in order.
    pub fn videos(&self) -> impl Iterator<Item = &Arc<Video>> {
        self.content.iter().filter_map(|c| match c {
            Content::Video(v) => Some(v),
            _ => None,
        })
    }
}

/// Reads a conversation in the Hugging Face chat format:
/// `[{"role": "user", "content": [{"type": "image", "path": "a.png"}, {"type": "text", "text": "…"}]}, …]`.
/// `content` may also be a plain string. A video item gives its decoded frames:
/// `{"type": "video", "frames": ["f0.png", …], "timestamps": [0.0, …], "duration": 12.5}`
/// (see [`parse_video`]). Relative image and frame paths resolve against the file's folder.
pub fn load_messages(path: &Path) -> Result<Vec<Message>> {
    let bad = |reason: String| Error::InvalidArgument(format!("{}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_messages(&json, base).map_err(|e| match e {
        Error::InvalidArgument(reason) => bad(reason),
        other => other,
    })
}

/// Parses Hugging Face chat JSON (see [`load_messages`]), resolving image paths against `base`.
pub fn parse_messages(json: &Value, base: &Path) -> Result<Vec<Message>> {
    let arg = |s: String| Error::InvalidArgument(s);
    let list = json.as_array().ok_or_else(|| arg("expected a JSON list of messages".into()))?;
    let mut loaded = Loaded::default();
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role_name = m.get("role").and_then(Value::as_str).ok_or_else(|| arg(format!("message {i}: missing role")))?;
        let role = Role::parse(role_name).ok_or_else(|| arg(format!("message {i}: unknown role {role_name:?}")))?;
        let content = match m.get("content") {
            Some(Value::String(s)) => vec![Content::Text(s.clone())],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(j, item)| parse_item(item, base, &mut loaded).map_err(|e| prefix(e, &format!("message {i} item {j}"))))
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(arg(format!("message {i}: content must be a string or a list"))),
        };
        out.push(Message { role, content });
    }
    Ok(out)
}

fn parse_item(item: &Value, base: &Path, loaded: &mut Loaded) -> Result<Content> {
    let arg = |s: &str| Error::InvalidArgument(s.to_string());
    match item.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(Content::Text(item.get("text").and_then(Value::as_str).ok_or_else(|| arg("text item without text"))?.to_string()))
        }
        Some("image") => {
            let p = item
                .get("path")
                .or_else(|| item.get("image"))
                .or_else(|| item.get("url"))
                .and_then(Value::as_str)
                .ok_or_else(|| arg("image item without a path"))?;
            let p = p.strip_prefix("file://").unwrap_or(p);
            if p.starts_with("http://") || p.starts_with("https://") {
                return Err(arg("image URLs are not fetched; give a local path"));
            }
            Ok(Content::Image(loaded.image(&base.join(p))?))
        }
        Some("video") => Ok(Content::Video(Arc::new(read_video(item, base, loaded)?))),
        Some(other) => Err(Error::InvalidArgument(format!("unsupported content type {other:?}"))),
        None => Err(arg("content item without a type")),
    }
}

/// Reads a video object, `{"frames": ["f0.png", …], "timestamps": [0.0, …], "duration": 12.5}`
/// (image files, paths relative to `base`). Without `timestamps`, frames are taken as evenly
/// spaced over the duration. Video files are not decoded here: the CLI's `--video` and the
/// platform helpers turn them into frames.
pub fn parse_video(item: &Value, base: &Path) -> Result<Video> {
    read_video(item, base, &mut Loaded::default())
}

fn read_video(item: &Value, base: &Path, loaded: &mut Loaded) -> Result<Video> {
    let arg = |s: &str| Error::InvalidArgument(s.to_string());
    if item.get("path").or_else(|| item.get("video")).or_else(|| item.get("url")).is_some() && item.get("frames").is_none() {
        return Err(arg("video files are not decoded here: give the frames (\"frames\", \"timestamps\", \"duration\"), or use the CLI's --video"));
    }
    let frames = item.get("frames").and_then(Value::as_array).ok_or_else(|| arg("video item without a \"frames\" list"))?;
    let duration =
        item.get("duration").and_then(Value::as_f64).ok_or_else(|| arg("video item without a numeric \"duration\""))?;
    let timestamps = match item.get("timestamps") {
        None => (0..frames.len()).map(|i| i as f64 * duration / frames.len() as f64).collect(),
        Some(t) => t
            .as_array()
            .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .ok_or_else(|| arg("video \"timestamps\" must be a list of numbers"))?,
    };
    let images = frames
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let p = f.as_str().ok_or_else(|| arg("video frames must be image paths"))?;
            loaded.image(&base.join(p)).map_err(|e| prefix(e, &format!("frame {k}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Video::new(images, timestamps, duration)
}

/// The images read while parsing one conversation, by file: a file named many times (a message
/// file of a few kilobytes can name one large image thousands of times) is decoded and held
/// once, so the memory stays in proportion to the files named, not to the names.
#[derive(Default)]
struct Loaded(HashMap<FileKey, Arc<RgbImage>>);

/// Identifies a file whatever path names it: device and inode (links, `./a.png` and `a.png`
/// alike), or the canonical path where there are no inodes.
#[cfg(unix)]
type FileKey = (u64, u64);
#[cfg(not(unix))]
type FileKey = std::path::PathBuf;

#[cfg(unix)]
fn file_key(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_key(path: &Path) -> Option<FileKey> {
    std::fs::canonicalize(path).ok()
}

impl Loaded {
    fn image(&mut self, path: &Path) -> Result<Arc<RgbImage>> {
        let key = file_key(path);
        if let Some(img) = key.as_ref().and_then(|k| self.0.get(k)) {
            return Ok(img.clone());
        }
        let img = Arc::new(load_image(path)?);
        if let Some(k) = key {
            self.0.insert(k, img.clone());
        }
        Ok(img)
    }
}

fn prefix(e: Error, at: &str) -> Error {
    match e {
        Error::InvalidArgument(s) => Error::InvalidArgument(format!("{at}: {s}")),
        Error::InvalidImage(s) => Error::InvalidImage(format!("{at}: {s}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_named_many_times_is_decoded_once() {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/images");
        let item = serde_json::json!({"type": "image", "path": "small.png"});
        let other = serde_json::json!({"type": "image", "path": "./../images/small.png"});
        let json = serde_json::json!([{"role": "user", "content": [item, item, other]}]);
        let msgs = parse_messages(&json, &base).unwrap();
        let imgs: Vec<_> = msgs[0].images().collect();
        assert_eq!(imgs.len(), 3);
        assert!(Arc::ptr_eq(imgs[0], imgs[1]) && Arc::ptr_eq(imgs[0], imgs[2]));
        let video = serde_json::json!({"frames": vec!["small.png"; 1000], "duration": 10.0});
        let v = parse_video(&video, &base).unwrap();
        assert!(v.frames().iter().all(|f| Arc::ptr_eq(f, &v.frames()[0])));
    }
}
