//! The SmolVLM / Idefics3 image processor (transformers `SmolVLMImageProcessorPil`).
//!
//! Per image (spec §2; transformers 5.23 `image_processing_pil_smolvlm.py`):
//! 1. `do_resize`: LANCZOS-resize so the longest side equals `size.longest_edge` (L), the other
//!    side `int(L / aspect)` rounded up to even (also upscales), capped at 4096;
//! 2. `do_image_splitting`: LANCZOS-resize to multiples of the tile side M, cut into row-major
//!    M×M tiles and append the whole image LANCZOS-resized to M×M (the "global" image), or keep
//!    the single image when it is no larger than M×M; without splitting: resize to M×M;
//! 3. rescale `f32(f64(u8) * rescale_factor)`, normalize `(x - mean) / std` in f32, CHW.
//!
//! Every resize is a separate Pillow uint8 LANCZOS resize ([`resize_lanczos`]), chained exactly as
//! transformers does. The rescale/normalize step is a 256-entry lookup table per channel written
//! straight into the output, so no intermediate float image exists.

use crate::config::PreprocessorConfig;
use crate::{Error, Result};
use std::borrow::Cow;

use super::image::RgbImage;
use super::resize::resize_lanczos;

/// transformers' `MAX_IMAGE_SIZE`: absolute cap of the longest side after step 1.
const MAX_IMAGE_SIZE: u32 = 4096;

/// The model-ready pixels of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedImage {
    /// Tile grid (0, 0 when not split).
    pub rows: usize,
    /// Tile grid (0, 0 when not split).
    pub cols: usize,
    /// Number of frames: rows*cols tiles then the global image (or 1 when not split).
    pub frames: usize,
    /// Tile side M.
    pub tile_size: usize,
    /// frames × 3 × M × M float32, CHW per frame, frames in the order the model consumes them.
    pub pixel_values: Vec<f32>,
}

/// `_resize_output_size_rescale_to_max_len` then `_resize_output_size_scale_below_upper_bound`
/// (f64 ratios, truncation, odd sides bumped to even). Sizes are `(width, height)`.
pub(crate) fn longest_edge_size(width: u32, height: u32, longest_edge: u32) -> (u32, u32) {
    let (w0, h0) = (width as f64, height as f64);
    let ar = w0 / h0;
    let (mut w, mut h) = if width >= height {
        let w = longest_edge as i64;
        let mut h = (w as f64 / ar) as i64;
        if h % 2 != 0 {
            h += 1;
        }
        (w, h)
    } else {
        let h = longest_edge as i64;
        let mut w = (h as f64 * ar) as i64;
        if w % 2 != 0 {
            w += 1;
        }
        (w, h)
    };
    h = h.max(1);
    w = w.max(1);
    // Scale below the 4096 upper bound (aspect ratio recomputed from the new size).
    let ar = w as f64 / h as f64;
    let cap = MAX_IMAGE_SIZE as i64;
    if w >= h && w > cap {
        w = cap;
        h = (w as f64 / ar) as i64;
    } else if h > w && h > cap {
        h = cap;
        w = (h as f64 * ar) as i64;
    }
    (w.max(1) as u32, h.max(1) as u32)
}

/// `resize_for_vision_encoder`: both sides up to multiples of `m`. Sizes are `(width, height)`.
pub(crate) fn tile_multiple_size(width: u32, height: u32, m: u32) -> (u32, u32) {
    let ar = width as f64 / height as f64;
    let mf = m as f64;
    let ceil_m = |x: f64| (x / mf).ceil() as u64 * m as u64;
    let (w, h) = if width >= height {
        let w = ceil_m(width as f64);
        let h = (w as f64 / ar) as u64;
        (w, ceil_m(h as f64))
    } else {
        let h = ceil_m(height as f64);
        let w = (h as f64 * ar) as u64;
        (ceil_m(w as f64), h)
    };
    (w as u32, h as u32)
}

/// Tile grid of an image after [`tile_multiple_size`]: `(rows, cols)`, `(0, 0)` when it fits in
/// one tile (`split_images`: `(H - M) // M + 1`).
pub(crate) fn tile_grid(width: u32, height: u32, m: u32) -> (usize, usize) {
    if height > m || width > m {
        (((height - m) / m + 1) as usize, ((width - m) / m + 1) as usize)
    } else {
        (0, 0)
    }
}

/// The tile grid `(rows, cols)` that [`preprocess`] gives an image of this size (`(0, 0)`: one
/// global view only). Cheap: no pixels are touched, so prompts can be laid out before decoding.
pub fn image_grid(width: u32, height: u32, cfg: &PreprocessorConfig) -> (usize, usize) {
    if !cfg.do_image_splitting || width == 0 || height == 0 || cfg.max_image_size == 0 {
        return (0, 0);
    }
    let (w, h) =
        if cfg.do_resize && cfg.longest_edge > 0 { longest_edge_size(width, height, cfg.longest_edge) } else { (width, height) };
    let (bw, bh) = tile_multiple_size(w, h, cfg.max_image_size);
    tile_grid(bw, bh, cfg.max_image_size)
}

/// How images are sized before tiling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ImagePreset {
    /// transformers' processor, exactly: every image is first resized so its longest side is
    /// `size.longest_edge` (2048 px on 256M/500M, 1536 on 2.2B; small images are upscaled), which
    /// gives up to 4×4 tiles plus the global view.
    #[default]
    Exact,
    /// For camera frames: no upscaling, and the longest side capped at two tiles (1024 px on
    /// 256M/500M, 768 on 2.2B), so an image gives at most 2×2 tiles plus the global view, and one
    /// no larger than a tile gives a single frame. Images no larger than the cap keep their size
    /// (step 1 is skipped); larger ones are resized as by the exact path with the cap as
    /// `longest_edge`. Tiles, normalisation and prompt layout are unchanged.
    Fast,
}

impl ImagePreset {
    /// The preset named `exact` or `fast`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "exact" => Some(ImagePreset::Exact),
            "fast" => Some(ImagePreset::Fast),
            _ => None,
        }
    }
}

/// Longest side allowed by [`ImagePreset::Fast`]: two tiles.
pub fn fast_longest_edge(cfg: &PreprocessorConfig) -> u32 {
    2 * cfg.max_image_size
}

/// The preprocessing settings that `preset` gives an image of this size: `cfg` itself for
/// [`ImagePreset::Exact`]; for [`ImagePreset::Fast`], step 1 skipped when the image's longest side
/// is at most `cap`, else `longest_edge = cap` (`cap`: `cfg.longest_edge` when smaller than
/// [`fast_longest_edge`], else that). Pass the result to [`image_grid`] and [`preprocess`].
pub fn preset_config(cfg: &PreprocessorConfig, preset: ImagePreset, width: u32, height: u32) -> PreprocessorConfig {
    let mut out = cfg.clone();
    if preset == ImagePreset::Fast && cfg.do_resize {
        let cap = fast_longest_edge(cfg).min(cfg.longest_edge.max(1));
        if width.max(height) <= cap {
            out.do_resize = false;
        } else {
            out.longest_edge = cap;
        }
    }
    out
}

/// Per-channel table `u8 -> f32` of the rescale + normalize steps, with numpy's rounding:
/// `f32(f64(v) * factor)`, then `(x - mean) / std` in f32.
fn normalize_lut(cfg: &PreprocessorConfig) -> [[f32; 256]; 3] {
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, out) in table.iter_mut().enumerate() {
            let mut x = if cfg.do_rescale { (v as f64 * cfg.rescale_factor) as f32 } else { v as f32 };
            if cfg.do_normalize {
                x = (x - cfg.image_mean[c]) / cfg.image_std[c];
            }
            *out = x;
        }
    }
    lut
}

/// Writes the `m`×`m` window at (`x0`, `y0`) of `img` as CHW floats into `out` (3·m·m values).
fn write_frame(img: &RgbImage, x0: usize, y0: usize, m: usize, lut: &[[f32; 256]; 3], out: &mut [f32]) {
    let w = img.width as usize;
    let (r_plane, rest) = out.split_at_mut(m * m);
    let (g_plane, b_plane) = rest.split_at_mut(m * m);
    for y in 0..m {
        let row = &img.data[((y0 + y) * w + x0) * 3..((y0 + y) * w + x0 + m) * 3];
        let span = y * m..(y + 1) * m;
        let (r, g, b) = (&mut r_plane[span.clone()], &mut g_plane[span.clone()], &mut b_plane[span]);
        for x in 0..m {
            r[x] = lut[0][row[3 * x] as usize];
            g[x] = lut[1][row[3 * x + 1] as usize];
            b[x] = lut[2][row[3 * x + 2] as usize];
        }
    }
}

/// `img` resized to `w`×`h`, or `img` itself when the size already matches (Pillow returns a copy
/// then; we skip the copy).
fn resized(img: Cow<'_, RgbImage>, w: u32, h: u32) -> Cow<'_, RgbImage> {
    if (img.width, img.height) == (w, h) {
        img
    } else {
        Cow::Owned(resize_lanczos(&img, w, h))
    }
}

/// One image resized and ready to be cut into the model's frames, which [`Frames::write`] turns
/// into floats one at a time: the float pixels of all frames (3 MiB per 512×512 frame, 17 frames
/// for a 512×512 image at the 256M model's sizes) never need to exist together.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    /// Tile grid (0, 0 when not split).
    pub rows: usize,
    /// Tile grid (0, 0 when not split).
    pub cols: usize,
    /// Number of frames: rows*cols tiles then the global image (or 1 when not split).
    pub frames: usize,
    /// Tile side M.
    pub tile_size: usize,
    /// The image the tiles are cut from, or the single M×M frame.
    tiles: Cow<'a, RgbImage>,
    /// The global image (M×M) that follows the tiles; `None` for a single frame.
    global: Option<RgbImage>,
    lut: [[f32; 256]; 3],
}

impl Frames<'_> {
    /// Floats in one frame: `3 · M · M`.
    pub fn frame_len(&self) -> usize {
        3 * self.tile_size * self.tile_size
    }

    /// Writes frame `i` (tiles row-major, then the global image) as CHW float32 into `out`
    /// ([`frame_len`](Self::frame_len) values). Fails with [`Error::InvalidArgument`] for a frame
    /// number or buffer length out of range.
    pub fn write(&self, i: usize, out: &mut [f32]) -> Result<()> {
        if i >= self.frames || out.len() != self.frame_len() {
            return Err(Error::InvalidArgument(format!(
                "frame {i} into {} floats: the image has {} frames of {} floats",
                out.len(),
                self.frames,
                self.frame_len()
            )));
        }
        let m = self.tile_size;
        match &self.global {
            Some(g) if i == self.frames - 1 => write_frame(g, 0, 0, m, &self.lut, out),
            Some(_) => write_frame(&self.tiles, (i % self.cols) * m, (i / self.cols) * m, m, &self.lut, out),
            None => write_frame(&self.tiles, 0, 0, m, &self.lut, out),
        }
        Ok(())
    }
}

/// Resizes one decoded image exactly as transformers' PIL image processor does and returns its
/// frames (tile grid, then each frame's pixels on demand through [`Frames::write`]). Fails with
/// [`Error::InvalidImage`] on an inconsistent image and [`Error::InvalidArgument`] on a
/// configuration with a zero size.
pub fn frames<'a>(img: &'a RgbImage, cfg: &PreprocessorConfig) -> Result<Frames<'a>> {
    if img.width == 0 || img.height == 0 || img.data.len() as u64 != img.width as u64 * img.height as u64 * 3 {
        return Err(Error::InvalidImage(format!("{}x{} image with {} bytes of RGB data", img.width, img.height, img.data.len())));
    }
    if cfg.max_image_size == 0 || (cfg.do_resize && cfg.longest_edge == 0) {
        return Err(Error::InvalidArgument("image sizes in the preprocessor config must be positive".into()));
    }
    let m = cfg.max_image_size;
    let mu = m as usize;
    let lut = normalize_lut(cfg);
    let single = |tiles| Frames { rows: 0, cols: 0, frames: 1, tile_size: mu, tiles, global: None, lut };

    // Step 1: longest edge.
    let a = Cow::Borrowed(img);
    let a = if cfg.do_resize {
        let (w, h) = longest_edge_size(img.width, img.height, cfg.longest_edge);
        resized(a, w, h)
    } else {
        a
    };

    if !cfg.do_image_splitting {
        return Ok(single(resized(a, m, m)));
    }

    // Step 2: multiples of M, then tiles + global image.
    let (bw, bh) = tile_multiple_size(a.width, a.height, m);
    let b = resized(a, bw, bh);
    let (rows, cols) = tile_grid(b.width, b.height, m);
    if rows == 0 {
        // Fits one tile; only reachable without the longest-edge resize. The image is kept as is
        // (it is exactly M×M here, since step 2 rounds both sides up to M).
        if (b.width, b.height) != (m, m) {
            return Err(Error::InvalidImage(format!("unexpected {}x{} single frame", b.width, b.height)));
        }
        return Ok(single(b));
    }
    let global = resized(Cow::Borrowed(&*b), m, m).into_owned();
    Ok(Frames { rows, cols, frames: rows * cols + 1, tile_size: mu, tiles: b, global: Some(global), lut })
}

/// Turns one decoded image into model input exactly as transformers' PIL image processor does:
/// returns the tile grid and `frames × 3 × M × M` float32 pixels (tiles row-major, then the global
/// image). Fails with [`Error::InvalidImage`] on an inconsistent image and
/// [`Error::InvalidArgument`] on a configuration with a zero size. [`frames()`] gives the same
/// pixels a frame at a time.
pub fn preprocess(img: &RgbImage, cfg: &PreprocessorConfig) -> Result<ProcessedImage> {
    let f = frames(img, cfg)?;
    let mut pixel_values = vec![0f32; f.frames * f.frame_len()];
    for (i, out) in pixel_values.chunks_exact_mut(f.frame_len()).enumerate() {
        f.write(i, out)?;
    }
    Ok(ProcessedImage { rows: f.rows, cols: f.cols, frames: f.frames, tile_size: f.tile_size, pixel_values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(l: u32, m: u32, split: bool) -> PreprocessorConfig {
        PreprocessorConfig {
            longest_edge: l,
            max_image_size: m,
            do_image_splitting: split,
            do_resize: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            video_sampling: None,
        }
    }

    #[test]
    fn spec_example_640x480() {
        assert_eq!(longest_edge_size(640, 480, 2048), (2048, 1536));
        assert_eq!(tile_multiple_size(2048, 1536, 512), (2048, 1536));
        assert_eq!(tile_grid(2048, 1536, 512), (3, 4));
    }

    #[test]
    fn size_arithmetic() {
        // Small square images are upscaled to 2048 -> 4x4 tiles.
        assert_eq!(longest_edge_size(386, 386, 2048), (2048, 2048));
        assert_eq!(tile_grid(2048, 2048, 512), (4, 4));
        // Portrait, odd result bumped to even.
        assert_eq!(longest_edge_size(333, 1000, 1536), (512, 1536)); // int(1536*0.333) = 511 -> 512
        assert_eq!(longest_edge_size(1000, 333, 1536), (1536, 512));
        // Extreme aspect ratio never reaches zero.
        assert_eq!(longest_edge_size(8000, 1, 2048), (2048, 1)); // int(0.256) = 0 -> even -> max(.,1)
        assert_eq!(tile_multiple_size(2048, 1, 512), (2048, 512));
        // 2.2B settings.
        assert_eq!(longest_edge_size(640, 480, 1536), (1536, 1152));
        assert_eq!(tile_multiple_size(1536, 1152, 384), (1536, 1152));
        assert_eq!(tile_grid(1536, 1152, 384), (3, 4));
        // Non-multiples round up.
        assert_eq!(tile_multiple_size(2048, 1366, 512), (2048, 1536));
        assert_eq!(tile_multiple_size(1366, 2048, 512), (1536, 2048));
        assert_eq!(tile_grid(512, 512, 512), (0, 0));
        assert_eq!(tile_grid(1024, 512, 512), (1, 2));
        // Cap at 4096 when L is larger.
        assert_eq!(longest_edge_size(100, 50, 5000), (4096, 2048));
    }

    #[test]
    fn f64_truncation_not_rounding() {
        // 2048 / (2048/93) = 92.99999999999999 in f64 -> 92 (even, kept); exact math would give
        // 93 -> 94. transformers truncates the f64 value.
        let ar = 2048f64 / 93f64;
        assert_eq!((2048f64 / ar) as i64, 92);
        assert_eq!(longest_edge_size(2048, 93, 2048), (2048, 92));
        assert_eq!(longest_edge_size(2048, 211, 2048), (2048, 210));
        // Step 2 on the same kind of ratio: int(2048 / (2048/93)) = 92 -> one 512 row either way.
        assert_eq!(tile_multiple_size(2048, 92, 512), (2048, 512));
    }

    #[test]
    fn frame_layout_and_normalisation() {
        let img = RgbImage::new(640, 480, vec![255; 640 * 480 * 3]).unwrap();
        let p = preprocess(&img, &cfg(2048, 512, true)).unwrap();
        assert_eq!((p.rows, p.cols, p.frames, p.tile_size), (3, 4, 13, 512));
        assert_eq!(p.pixel_values.len(), 13 * 3 * 512 * 512);
        assert!(p.pixel_values.iter().all(|&v| v == 1.0));
        let p = preprocess(&img, &cfg(2048, 512, false)).unwrap();
        assert_eq!((p.rows, p.cols, p.frames), (0, 0, 1));
        assert_eq!(p.pixel_values.len(), 3 * 512 * 512);
        let black = RgbImage::new(3, 5, vec![0; 45]).unwrap();
        let p = preprocess(&black, &cfg(1536, 384, true)).unwrap();
        assert_eq!((p.rows, p.cols, p.frames), (4, 3, 13));
        assert!(p.pixel_values.iter().all(|&v| v == -1.0));
    }

    /// Frames come one at a time in the model's order: tiles row-major, the global image last.
    #[test]
    fn frames_are_written_one_at_a_time() {
        // 2×2 tiles of 4 px whose columns and rows differ, so every tile has its own pixels.
        let (w, h) = (8u32, 8u32);
        let data: Vec<u8> = (0..h).flat_map(|y| (0..w).flat_map(move |x| [(x * 30) as u8, (y * 30) as u8, 7])).collect();
        let img = RgbImage::new(w, h, data).unwrap();
        let mut c = cfg(8, 4, true);
        c.do_resize = false;
        let f = frames(&img, &c).unwrap();
        assert_eq!((f.rows, f.cols, f.frames, f.frame_len()), (2, 2, 5, 48));
        let all = preprocess(&img, &c).unwrap().pixel_values;
        let mut out = vec![0f32; 48];
        for i in 0..5 {
            f.write(i, &mut out).unwrap();
            assert_eq!(out, all[i * 48..(i + 1) * 48], "frame {i}");
        }
        // Tile 1 is the top-right one: its first red value is column 4's.
        f.write(1, &mut out).unwrap();
        assert_eq!(out[0], (120.0 / 255.0 - 0.5) / 0.5);
        assert!(matches!(f.write(5, &mut out), Err(Error::InvalidArgument(_))));
        assert!(matches!(f.write(0, &mut out[..47]), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn lut_matches_numpy_rounding() {
        let lut = normalize_lut(&cfg(2048, 512, true));
        for (v, &got) in lut[0].iter().enumerate() {
            let x = (v as f64 * (1.0 / 255.0)) as f32;
            assert_eq!(got, (x - 0.5) / 0.5);
        }
        assert_eq!(lut[1][0], -1.0);
        assert_eq!(lut[2][255], 1.0);
    }

    /// (width, height) -> (tiles incl. the global view, image tokens) under `preset`.
    fn tokens(w: u32, h: u32, c: &PreprocessorConfig, preset: ImagePreset, seq: usize) -> (usize, usize) {
        let pc = preset_config(c, preset, w, h);
        let (r, cc) = image_grid(w, h, &pc);
        let tiles = r * cc + 1;
        if preset == ImagePreset::Fast {
            // The pixels agree with the grid (the exact path's agreement is tested elsewhere).
            let img = RgbImage::new(w, h, vec![128; (w * h * 3) as usize]).unwrap();
            assert_eq!(preprocess(&img, &pc).unwrap().frames, tiles, "{w}x{h} {preset:?}");
        }
        (tiles, tiles * seq)
    }

    #[test]
    fn preset_token_counts() {
        // The README table: (w, h), then (frames, image tokens) for SmolVLM-256M/500M exact and
        // fast (L 2048, M 512, 64 tokens per frame), and SmolVLM 2.2B exact and fast (L 1536,
        // M 384, 81 tokens per frame).
        let small = cfg(2048, 512, true);
        let big = cfg(1536, 384, true);
        let cases = [
            ((320, 240), (13, 832), (1, 64), (13, 1053), (1, 81)),
            ((512, 512), (17, 1088), (1, 64), (17, 1377), (5, 405)),
            ((640, 480), (13, 832), (5, 320), (13, 1053), (5, 405)),
            ((1280, 720), (13, 832), (5, 320), (13, 1053), (5, 405)),
            ((1920, 1080), (13, 832), (5, 320), (13, 1053), (5, 405)),
            ((1080, 1920), (13, 832), (5, 320), (13, 1053), (5, 405)),
            ((4032, 3024), (13, 832), (5, 320), (13, 1053), (5, 405)),
            ((1024, 256), (5, 320), (3, 192), (5, 405), (3, 243)),
        ];
        for ((w, h), e_small, f_small, e_big, f_big) in cases {
            assert_eq!(tokens(w, h, &small, ImagePreset::Exact, 64), e_small, "256M exact {w}x{h}");
            assert_eq!(tokens(w, h, &small, ImagePreset::Fast, 64), f_small, "256M fast {w}x{h}");
            assert_eq!(tokens(w, h, &big, ImagePreset::Exact, 81), e_big, "2.2B exact {w}x{h}");
            assert_eq!(tokens(w, h, &big, ImagePreset::Fast, 81), f_big, "2.2B fast {w}x{h}");
        }
        let c = big;
        // Exact is the identity; fast never exceeds 2x2 + 1 frames.
        assert_eq!(preset_config(&c, ImagePreset::Exact, 10, 10), c);
        for (w, h) in [(1, 1), (7, 5000), (5000, 7), (769, 769), (3000, 2000)] {
            assert!(tokens(w, h, &c, ImagePreset::Fast, 81).0 <= 5, "{w}x{h}");
        }
        assert_eq!(ImagePreset::parse("fast"), Some(ImagePreset::Fast));
        assert_eq!(ImagePreset::parse("exact"), Some(ImagePreset::Exact));
        assert_eq!(ImagePreset::parse("quick"), None);
    }

    #[test]
    fn invalid_inputs() {
        let bad = RgbImage { width: 4, height: 4, data: vec![0; 10] };
        assert!(matches!(preprocess(&bad, &cfg(2048, 512, true)), Err(Error::InvalidImage(_))));
        let zero = RgbImage { width: 0, height: 4, data: vec![] };
        assert!(matches!(preprocess(&zero, &cfg(2048, 512, true)), Err(Error::InvalidImage(_))));
        let ok = RgbImage::new(4, 4, vec![0; 48]).unwrap();
        assert!(matches!(preprocess(&ok, &cfg(2048, 0, true)), Err(Error::InvalidArgument(_))));
    }
}
