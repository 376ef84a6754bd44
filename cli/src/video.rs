//! Videos for `smolvlm ask`: `--video-frames FILE.json` (decoded frames with timestamps) and
//! `--video FILE`, decoded by the `ffmpeg` and `ffprobe` programs.
//!
//! Why the programs and not ffmpeg's libraries through a Rust binding: the binary then links no
//! codec (no build dependency on libav* versions, no codec licensing in what we ship, and the
//! phone libraries never see a decoder); a user with ffmpeg installed gets every container and
//! codec it knows. Frames are read as raw RGB from a pipe, one at a time, and only the frames
//! the question reads are kept, so a long video never sits in memory.
//!
//! Like transformers' PyAV reader, the video is the first video stream's frames as stored
//! (no rotation applied, no frames dropped or repeated), its frame rate the stream's average
//! rate, its duration `frames / rate`, and frame `i` is at `i / rate` seconds.

use serde_json::Value;
use smolvlm::{parse_video, Engine, Error, RgbImage, Video};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Reads `--video-frames`: one video object,
/// `{"frames": ["f0.png", …], "timestamps": [0.0, …], "duration": 12.5}`, paths relative to the file.
pub fn frames_file(path: &Path) -> smolvlm::Result<Video> {
    let bad = |reason: String| Error::InvalidArgument(format!("{}: {reason}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    parse_video(&json, path.parent().unwrap_or(Path::new("."))).map_err(|e| match e {
        Error::InvalidArgument(reason) => bad(reason),
        other => other,
    })
}

/// The stream facts the sampling needs.
struct Stream {
    width: u32,
    height: u32,
    fps: f64,
    frames: usize,
}

fn tool_missing(tool: &str, e: std::io::Error) -> Error {
    Error::Internal(format!("--video needs the {tool} program ({e}); install ffmpeg, or give decoded frames with --video-frames"))
}

/// `a/b` or a plain number.
fn rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    (d != 0.0 && n > 0.0).then(|| n / d)
}

fn probe(path: &Path, count: bool) -> smolvlm::Result<Stream> {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-select_streams", "v:0"]);
    if count {
        cmd.arg("-count_frames");
    }
    cmd.args(["-show_entries", "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_frames", "-of", "json"]);
    let out = cmd.arg(path).output().map_err(|e| tool_missing("ffprobe", e))?;
    let bad = |why: String| Error::InvalidImage(format!("{}: not a readable video ({why})", path.display()));
    if !out.status.success() {
        return Err(bad(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| bad(e.to_string()))?;
    let s = v["streams"].get(0).ok_or_else(|| bad("no video stream".into()))?;
    let num = |k: &str| s[k].as_u64().or_else(|| s[k].as_str().and_then(|x| x.parse().ok()));
    let fps = [s["avg_frame_rate"].as_str(), s["r_frame_rate"].as_str()]
        .into_iter()
        .flatten()
        .find_map(rate)
        .ok_or_else(|| bad("no frame rate".into()))?;
    let frames = num(if count { "nb_read_frames" } else { "nb_frames" }).unwrap_or(0) as usize;
    let (width, height) = (num("width").unwrap_or(0) as u32, num("height").unwrap_or(0) as u32);
    if width == 0 || height == 0 {
        return Err(bad("no frame size".into()));
    }
    Ok(Stream { width, height, fps, frames })
}

/// Decodes the frames of `path` that a question to `engine` reads (`--video`).
pub fn decode(path: &Path, engine: &Engine) -> smolvlm::Result<Video> {
    if !path.is_file() {
        return Err(Error::InvalidArgument(format!("{}: no such video file", path.display())));
    }
    // The container's frame count when it has one, otherwise count by decoding.
    let mut stream = probe(path, false)?;
    if stream.frames == 0 {
        stream = probe(path, true)?;
    }
    if stream.frames == 0 {
        return Err(Error::InvalidImage(format!("{}: the video has no frames", path.display())));
    }
    let duration = stream.frames as f64 / stream.fps;
    let wanted = engine.video_frame_indices(stream.frames, duration)?;

    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-noautorotate", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| tool_missing("ffmpeg", e))?;
    let mut pipe = child.stdout.take().ok_or_else(|| Error::Internal("ffmpeg gave no output pipe".into()))?;
    let frame_len = stream.width as usize * stream.height as usize * 3;
    let mut buf = vec![0u8; frame_len];
    let mut frames = Vec::with_capacity(wanted.len());
    let mut next = wanted.iter().peekable();
    let mut index = 0;
    while let Some(&&want) = next.peek() {
        if pipe.read_exact(&mut buf).is_err() {
            break;
        }
        if index == want {
            frames.push(Arc::new(RgbImage::new(stream.width, stream.height, buf.clone())?));
            next.next();
        }
        index += 1;
    }
    // Every frame the question reads is in: stop the decoder.
    drop(pipe);
    let _ = child.kill();
    let status = child.wait().map_err(|e| Error::Internal(format!("ffmpeg: {e}")))?;
    if frames.len() != wanted.len() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(Error::InvalidImage(format!(
            "{}: decoded {index} of {} frames ({status}): {}",
            path.display(),
            stream.frames,
            err.trim()
        )));
    }
    let timestamps = wanted.iter().map(|&i| i as f64 / stream.fps).collect();
    Video::chosen(frames, timestamps, duration)
}
