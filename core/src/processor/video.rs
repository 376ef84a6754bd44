//! Video frames as transformers' SmolVLM video processor prepares them (transformers 5.23,
//! `video_processing_smolvlm.py`, torchvision 0.29 on the CPU):
//!
//! * [`sample_indices`]: which of the given frames are kept (`sample_frames`: `fps` frames per
//!   second of video up to `max_frames`, 1 s trimmed at both ends of long videos, `np.linspace`
//!   indices with duplicates removed);
//! * [`frame_pixels`]: two torchvision LANCZOS resizes of the uint8 frame (the longest side to
//!   the checkpoint's `size`, then a `max_image_size` square; never the image path's tiling),
//!   then the fused rescale + normalisation in f32, giving one `[3, M, M]` tile per frame.

use super::image::RgbImage;
use super::resize::resize_lanczos_torch;
use crate::config::{PreprocessorConfig, VideoSampling};
use crate::error::{Error, Result};

/// Seconds trimmed at both ends of a video that is long enough (`skip_secs`).
const SKIP_SECS: f64 = 1.0;

/// The frame rate of `frames` frames spanning `duration` seconds, as a decoder reports it: the
/// quotient rounded to 1e-6 so that, e.g., 50 frames over 50/3 s give exactly 3 fps (the trim
/// takes the integer part of it).
pub fn source_fps(frames: usize, duration: f64) -> f64 {
    let fps = frames as f64 / duration;
    let snapped = (fps * 1e6).round() / 1e6;
    if snapped > 0.0 {
        snapped
    } else {
        fps
    }
}

/// Indices of the frames to keep out of `total` frames at `fps` frames per second spanning
/// `duration` seconds, with the checkpoint's sampling and at most `max_frames` frames
/// (`SmolVLMVideoProcessor.sample_frames`). Never empty when `total > 0`.
pub fn sample_indices(total: usize, fps: f64, duration: f64, sampling: &VideoSampling, max_frames: usize) -> Vec<usize> {
    if total == 0 {
        return Vec::new();
    }
    // Python's round() rounds halves to even.
    let estimated = (sampling.fps * duration).round_ties_even();
    let desired = (estimated.min(max_frames as f64) as i64).max(1) as usize;
    let last = total as i64 - 1;
    let (mut start, mut end) = (0i64, last);
    if duration - 2.0 * SKIP_SECS > max_frames as f64 * sampling.fps {
        start = (SKIP_SECS * fps) as i64;
        end = (total as f64 - SKIP_SECS * fps) as i64;
    }
    start = start.max(0);
    end = end.min(last);
    if start >= end {
        (start, end) = (0, last);
    }
    let mut out: Vec<usize> = linspace(start as f64, end as f64, desired).into_iter().map(|x| x.floor() as usize).collect();
    out.dedup();
    out
}

/// `np.linspace(start, stop, num)` in f64: `i * step + start`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut y: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    y[num - 1] = stop;
    y
}

/// The first resize of a `width`×`height` frame (`get_resize_output_image_size`): the longest
/// side becomes `longest_edge` (at most 4096), the other keeps the aspect ratio, truncated and
/// then rounded up to an even number. Returns `(width, height)`.
pub fn frame_size(width: u32, height: u32, longest_edge: u32) -> (u32, u32) {
    let side = longest_edge.min(4096);
    let aspect = width as f64 / height as f64;
    let even = |x: u32| x + x % 2;
    let (w, h) =
        if width >= height { (side, even((side as f64 / aspect) as u32)) } else { (even((side as f64 * aspect) as u32), side) };
    (w.max(1), h.max(1))
}

/// Per channel and byte value, the model input the processor makes of it: torchvision's fused
/// rescale + normalize, `(x - mean / rescale) / (std / rescale)` in f32.
fn normalize_lut(cfg: &PreprocessorConfig) -> [[f32; 256]; 3] {
    let inv = (1.0 / cfg.rescale_factor) as f32;
    let mut lut = [[0f32; 256]; 3];
    for (c, row) in lut.iter_mut().enumerate() {
        for (v, out) in row.iter_mut().enumerate() {
            let x = v as f32;
            *out = match (cfg.do_rescale, cfg.do_normalize) {
                (true, true) => (x - cfg.image_mean[c] * inv) / (cfg.image_std[c] * inv),
                (false, true) => (x - cfg.image_mean[c]) / cfg.image_std[c],
                (true, false) => x * cfg.rescale_factor as f32,
                (false, false) => x,
            };
        }
    }
    lut
}

/// The model input of one video frame: a `[3, M, M]` tile (`M` = `max_image_size`) written to
/// `out` (length `3·M·M`), bit-exact with the video processor. `longest_edge` is the first
/// resize's target ([`VideoSampling::longest_edge`]).
pub fn frame_pixels(frame: &RgbImage, cfg: &PreprocessorConfig, longest_edge: u32, out: &mut [f32]) -> Result<()> {
    let m = cfg.max_image_size as usize;
    if out.len() != 3 * m * m {
        return Err(Error::Internal(format!("a frame tile needs {} values, got {}", 3 * m * m, out.len())));
    }
    if frame.width == 0 || frame.height == 0 {
        return Err(Error::InvalidImage("a video frame is empty".into()));
    }
    let (w, h) = frame_size(frame.width, frame.height, longest_edge);
    let first = resize_lanczos_torch(frame, w, h);
    let square = resize_lanczos_torch(&first, m as u32, m as u32);
    let lut = normalize_lut(cfg);
    let (r, rest) = out.split_at_mut(m * m);
    let (g, b) = rest.split_at_mut(m * m);
    for (i, px) in square.data.chunks_exact(3).enumerate() {
        r[i] = lut[0][px[0] as usize];
        g[i] = lut[1][px[1] as usize];
        b[i] = lut[2][px[2] as usize];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(fps: f64, max_frames: usize) -> VideoSampling {
        VideoSampling { fps, max_frames, longest_edge: 128 }
    }

    #[test]
    fn first_resize_sizes() {
        // Landscape: height = int(side / (w / h)), made even; portrait the other way round.
        assert_eq!(frame_size(48, 36, 128), (128, 96));
        assert_eq!(frame_size(640, 359, 512), (512, 288)); // int(287.19...) = 287 -> 288
        assert_eq!(frame_size(36, 48, 128), (96, 128));
        assert_eq!(frame_size(100, 3, 128), (128, 4)); // int(3.84) = 3 -> 4
        assert_eq!(frame_size(1, 1, 9000), (4096, 4096));
    }

    #[test]
    fn sampling_follows_the_reference_rules() {
        let s = sampling(1.0, 64);
        // 130 frames at 2 fps (65 s): 65 wanted, 64 allowed, no trim (63 s is not > 64 s).
        let idx = sample_indices(130, 2.0, 65.0, &s, 64);
        assert_eq!(idx.len(), 64);
        assert_eq!((idx[0], idx[63]), (0, 129));
        // 120 frames at 1.5 fps (80 s): the trim starts at int(1.5) = 1 and ends at int(118.5).
        let idx = sample_indices(120, 1.5, 80.0, &s, 64);
        assert_eq!((idx[0], *idx.last().unwrap()), (1, 118));
        // round(2.5) = 2 and round(3.5) = 4 (halves to even).
        assert_eq!(sample_indices(5, 2.0, 2.5, &s, 64), vec![0, 4]);
        assert_eq!(sample_indices(7, 2.0, 3.5, &s, 64), vec![0, 2, 4, 6]);
        // Shorter than half a second: still one frame.
        assert_eq!(sample_indices(3, 10.0, 0.3, &s, 64), vec![0]);
        // Fewer frames than wanted: linspace repeats indices, which are removed.
        assert_eq!(sample_indices(2, 0.5, 4.0, &s, 64), vec![0, 1]);
    }

    #[test]
    fn source_fps_is_snapped() {
        assert_eq!(source_fps(50, 50.0 / 3.0), 3.0);
        assert_eq!(source_fps(130, 65.0), 2.0);
        assert!((source_fps(300, 300.0 * 1001.0 / 30000.0) - 29.97003).abs() < 1e-9);
    }

    #[test]
    fn linspace_matches_numpy() {
        // np.linspace(1, 118, 64, dtype=int)[:5] == [1, 2, 4, 6, 8]
        let y: Vec<usize> = linspace(1.0, 118.0, 64).iter().map(|x| x.floor() as usize).collect();
        assert_eq!(&y[..5], &[1, 2, 4, 6, 8]);
        assert_eq!(y[63], 118);
    }
}
