//! `smolvlm bench --live`: the camera loop under load. A thread pushes synthetic 640×480 frames
//! (a moving pattern, so that none is skipped as unchanged) at `--live-fps` for
//! `--live-seconds` into a [`LiveSession`] with the live defaults; the answers' latencies, the
//! frames dropped and the peak memory are reported.

use serde_json::{json, Value};
use smolvlm::{Engine, FrameConverter, LiveEvent, LiveOptions, LiveSession, RgbImage};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const W: usize = 640;
const H: usize = 480;

/// Runs the loop and returns the measurements.
pub fn run(engine: Arc<Engine>, seconds: f64, fps: f64) -> smolvlm::Result<Value> {
    if !(seconds > 0.0 && fps > 0.0) {
        return Err(smolvlm::Error::InvalidArgument("--live-seconds and --live-fps must be above 0".into()));
    }
    let options = LiveOptions::default();
    let live = Arc::new(LiveSession::start(engine, options.clone())?);
    let done = Arc::new(AtomicBool::new(false));
    let pusher = {
        let (live, done) = (live.clone(), done.clone());
        std::thread::spawn(move || {
            // A camera makes its frames without the app's CPU: the pattern is drawn once, and
            // each frame is a window of it (row copies).
            let canvas = Canvas::new();
            let start = Instant::now();
            let period = Duration::from_secs_f64(1.0 / fps);
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < seconds {
                let t = Instant::now();
                let frame = canvas.frame(n);
                let convert: FrameConverter = Box::new(move || Ok(frame));
                live.push_frame((n as f64 * 1000.0 / fps) as u64, convert);
                n += 1;
                std::thread::sleep(period.saturating_sub(t.elapsed()));
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut ftft = Vec::new();
    let mut vision = Vec::new();
    let mut decode = Vec::new();
    let mut skipped = 0;
    let mut errors = 0;
    while !done.load(Ordering::SeqCst) {
        match live.next_event(Some(Duration::from_millis(100)))? {
            Some(LiveEvent::Answer { stats, .. }) => {
                ftft.push(stats.frame_to_first_token_ms);
                vision.push(stats.vision_ms);
                decode.push(stats.decode_tokens_per_s);
                skipped += stats.frames_skipped;
            }
            Some(LiveEvent::FrameError { .. }) => errors += 1,
            _ => {}
        }
    }
    let _ = pusher.join();
    live.close();
    let counters = live.counters();
    Ok(json!({
        "live_seconds": seconds,
        "live_fps": fps,
        "frame_size": "640x480",
        "max_tokens": options.max_tokens,
        "image_splitting": options.image_splitting,
        "answers": ftft.len(),
        "frames_pushed": counters.frames_pushed,
        "frames_dropped": counters.frames_dropped,
        "frames_skipped": skipped,
        "frame_errors": errors,
        "median_frame_to_first_token_ms": percentile(&ftft, 0.5),
        "p90_frame_to_first_token_ms": percentile(&ftft, 0.9),
        "median_vision_ms": percentile(&vision, 0.5),
        "decode_tokens_per_s": percentile(&decode, 0.5),
    }))
}

/// The `q`-quantile (nearest rank) of `v`, rounded to 0.01; `null` when empty.
fn percentile(v: &[f64], q: f64) -> Option<f64> {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return None;
    }
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Some((s[i] * 100.0).round() / 100.0)
}

/// A 1280×960 pattern (diagonal colour bands and a gradient); frame `n` is the 640×480 window
/// at (8n mod 640, 5n mod 480), so the picture moves every frame and repeats only after 480.
struct Canvas(Vec<u8>);

impl Canvas {
    fn new() -> Self {
        let mut data = Vec::with_capacity(4 * W * H * 3);
        for y in 0..2 * H {
            for x in 0..2 * W {
                let band = ((x + y) / 40 % 6) as u8;
                data.extend_from_slice(&[band * 40, (x % 256) as u8, 255 - band * 40 - (y % 16) as u8]);
            }
        }
        Canvas(data)
    }

    fn frame(&self, n: u64) -> RgbImage {
        let (x0, y0) = ((n * 8) as usize % W, (n * 5) as usize % H);
        let mut data = Vec::with_capacity(W * H * 3);
        for y in y0..y0 + H {
            let row = (y * 2 * W + x0) * 3;
            data.extend_from_slice(&self.0[row..row + W * 3]);
        }
        RgbImage { width: W as u32, height: H as u32, data }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 0.5), Some(3.0));
        assert_eq!(percentile(&v, 0.9), Some(5.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn frames_move_and_have_the_camera_size() {
        let c = Canvas::new();
        let (a, b) = (c.frame(0), c.frame(1));
        assert_eq!((a.width, a.height, a.data.len()), (640, 480, W * H * 3));
        assert_ne!(a.data, b.data);
        assert_ne!(c.frame(80).data, a.data, "x wraps after 80 frames, y has not");
    }
}
