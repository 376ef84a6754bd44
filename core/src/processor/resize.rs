//! LANCZOS resampling of 8-bit images, bit-exact with Pillow (the image path) and with torch's
//! antialiased uint8 LANCZOS (the video path, through torchvision).
//!
//! The Pillow path is a line-for-line port of the 8-bit path of Pillow's `src/libImaging/Resample.c`
//! (`ImagingResample` with `LANCZOS`, no `box`, no `reducing_gap`), which is what
//! `Image.resize((w, h), Image.LANCZOS)` runs:
//!
//! * per axis, `precompute_coeffs` builds for every output index `i` a window `[xmin, xmin + n)` of
//!   input indices and f64 weights `lanczos((k + xmin - center + 0.5) / filterscale)`, normalised by
//!   their sum, then quantised to 22-bit fixed point (`normalize_coeffs_8bpc`);
//! * two separable passes with a **uint8** intermediate image. Pillow 13 runs the vertical pass
//!   first when the height shrinks by more than twice as many pixels as the width
//!   (`horizontal_first`); otherwise the horizontal pass runs first, only over the input rows the
//!   vertical pass will read. (Pillow <= 12 always went horizontal first: results differ for such
//!   shapes, e.g. tall phone screenshots; the fixtures pin Pillow 13.0.0.)
//! * every output sample is `clamp((2^21 + Σ u8 · k) >> 22, 0, 255)` in 32-bit integers;
//! * a pass whose dimension is unchanged is skipped; resizing to the same size is a copy.
//!
//! torch's `_upsample_lanczos2d_aa` on uint8 tensors (what torchvision's `resize` runs on the CPU,
//! torch 2.15) computes the same f64 weights, but quantises them to **int16** with a precision
//! chosen per axis: the largest number of bits (at most 22) for which the largest weight still
//! fits in 15 bits. It always runs the horizontal pass first; every sample is
//! `clamp((2^(p-1) + Σ u8 · k) >> p, 0, 255)`.
//!
//! The weights only depend on `(input size, output size, variant)`, so they are computed once per
//! triple and kept in a small process-wide cache (the same triples recur for every frame of a shape).

use std::f64::consts::PI;
use std::sync::{Arc, Mutex};

use super::image::RgbImage;

/// `PRECISION_BITS` of Resample.c: 32 - 8 - 2.
const PRECISION_BITS: u32 = 22;
/// LANCZOS support (lobes).
const SUPPORT: f64 = 3.0;

/// Whose fixed-point arithmetic a resize reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fixed {
    /// Pillow's `Resample.c`: 22-bit weights, Pillow 13's pass order.
    Pillow,
    /// torch's antialiased uint8 kernel: int16 weights with a per-axis precision, horizontal first.
    Torch,
}

/// Fixed-point resampling weights for one axis, `(in_size, out_size)`.
#[derive(Debug)]
pub(crate) struct Coeffs {
    /// Fractional bits of the weights.
    precision: u32,
    /// For each output index: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// Taps per output index in `kk` (the maximum window length, `ceil(support) * 2 + 1`).
    ksize: usize,
    /// `out_size * ksize` fixed-point weights, row `i` holds the taps of output `i`.
    kk: Vec<i32>,
}

impl Coeffs {
    /// Taps of output index `i`: first input index and the weights.
    #[inline(always)]
    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let (xmin, n) = self.bounds[i];
        (xmin, &self.kk[i * self.ksize..i * self.ksize + n])
    }
}

/// `sinc_filter` of Resample.c.
#[inline]
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * PI;
        x.sin() / x
    }
}

/// `lanczos_filter` of Resample.c (truncated sinc, 3 lobes).
#[inline]
fn lanczos(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` of Resample.c for `box = (0, in_size)` (Pillow),
/// or torch's `_compute_index_ranges_int16_weights` (same f64 weights, int16 quantisation).
pub(crate) fn compute_coeffs(in_size: usize, out_size: usize, fixed: Fixed) -> Coeffs {
    // Resample.c: `filterscale = scale = (double)(in1 - in0) / outSize` with float in0/in1;
    // sizes up to 2^24 are exact in f32, ours are capped far below that.
    let scale = in_size as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;

    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0f64; out_size * ksize];
    let mut max_weight = 0f64;
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // `(int)` truncates toward zero, then clamps.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin).min(ksize);
        let w = &mut weights[xx * ksize..xx * ksize + n];
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate() {
            *wx = lanczos((x as f64 + xmin as f64 - center + 0.5) * inv_filterscale);
            ww += *wx;
        }
        if ww != 0.0 {
            for wx in w.iter_mut() {
                *wx /= ww;
                max_weight = max_weight.max(*wx);
            }
        }
        bounds.push((xmin, n));
    }
    let precision = match fixed {
        Fixed::Pillow => PRECISION_BITS,
        // The most bits (up to 22) for which the largest weight, rounded, stays below 2^15.
        Fixed::Torch => (0..22).find(|p| (0.5 + max_weight * (1u32 << (p + 1)) as f64) as i32 >= 1 << 15).unwrap_or(22),
    };
    let one = (1u32 << precision) as f64;
    let kk = weights
        .iter()
        .map(|&v| {
            let f = v * one;
            if f < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            }
        })
        .collect();
    Coeffs { precision, bounds, ksize, kk }
}

/// Process-wide cache of weights keyed by `(in_size, out_size, variant)`; a handful of entries suffice.
type CacheEntry = ((usize, usize, Fixed), Arc<Coeffs>);
static CACHE: Mutex<Vec<CacheEntry>> = Mutex::new(Vec::new());
const CACHE_ENTRIES: usize = 16;

/// Weights for `(in_size, out_size)`, from the cache when present.
pub(crate) fn coeffs(in_size: usize, out_size: usize, fixed: Fixed) -> Arc<Coeffs> {
    let key = (in_size, out_size, fixed);
    if let Ok(cache) = CACHE.lock() {
        if let Some((_, c)) = cache.iter().find(|(k, _)| *k == key) {
            return Arc::clone(c);
        }
    }
    let c = Arc::new(compute_coeffs(in_size, out_size, fixed));
    if let Ok(mut cache) = CACHE.lock() {
        if !cache.iter().any(|(k, _)| *k == key) {
            if cache.len() >= CACHE_ENTRIES {
                cache.remove(0);
            }
            cache.push((key, Arc::clone(&c)));
        }
    }
    c
}

/// `clip8` of Resample.c: arithmetic shift, then clamp to 0..=255.
#[inline(always)]
fn clip8(acc: i32, precision: u32) -> u8 {
    (acc >> precision).clamp(0, 255) as u8
}

/// Horizontal pass over `rows` of `src` (`ch` interleaved channels, `src_w` pixels per row) into
/// `dst` (`out_w` pixels per row).
fn horizontal(src: &[u8], src_w: usize, ch: usize, rows: std::ops::Range<usize>, c: &Coeffs, dst: &mut [u8]) {
    let out_w = c.bounds.len();
    let (half, p) = (1i32 << (c.precision - 1), c.precision);
    let src_stride = src_w * ch;
    let dst_stride = out_w * ch;
    for (dy, y) in rows.enumerate() {
        let line = &src[y * src_stride..(y + 1) * src_stride];
        let out = &mut dst[dy * dst_stride..(dy + 1) * dst_stride];
        match ch {
            3 => {
                for (xx, px) in out.chunks_exact_mut(3).enumerate() {
                    let (xmin, k) = c.taps(xx);
                    let win = &line[xmin * 3..(xmin + k.len()) * 3];
                    let (mut s0, mut s1, mut s2) = (half, half, half);
                    for (p, &kq) in win.chunks_exact(3).zip(k) {
                        s0 = s0.wrapping_add(p[0] as i32 * kq);
                        s1 = s1.wrapping_add(p[1] as i32 * kq);
                        s2 = s2.wrapping_add(p[2] as i32 * kq);
                    }
                    px[0] = clip8(s0, p);
                    px[1] = clip8(s1, p);
                    px[2] = clip8(s2, p);
                }
            }
            _ => {
                for (xx, px) in out.chunks_exact_mut(ch).enumerate() {
                    let (xmin, k) = c.taps(xx);
                    for (b, o) in px.iter_mut().enumerate() {
                        let mut s = half;
                        for (j, &kq) in k.iter().enumerate() {
                            s = s.wrapping_add(line[(xmin + j) * ch + b] as i32 * kq);
                        }
                        *o = clip8(s, p);
                    }
                }
            }
        }
    }
}

/// Vertical pass: output row `i` mixes rows `ymin - row_offset ..` of `src` (`row_len` bytes each).
fn vertical(src: &[u8], row_len: usize, row_offset: usize, c: &Coeffs, dst: &mut [u8]) {
    // One accumulator row, reused for every output row; the inner loop is a plain
    // multiply-add over contiguous bytes that the compiler vectorises. Integer sums are
    // order-independent, so this equals Pillow's per-pixel loop.
    let mut acc = vec![0i32; row_len];
    for (yy, out) in dst.chunks_exact_mut(row_len).enumerate() {
        let (ymin, k) = c.taps(yy);
        acc.fill(1 << (c.precision - 1));
        for (j, &kq) in k.iter().enumerate() {
            let y = ymin + j - row_offset;
            let line = &src[y * row_len..(y + 1) * row_len];
            for (a, &p) in acc.iter_mut().zip(line) {
                *a = a.wrapping_add(p as i32 * kq);
            }
        }
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = clip8(a, c.precision);
        }
    }
}

/// Pillow 13's pass order (`ImagingResampleInner`): the vertical pass runs first when the height
/// shrinks by more than twice as many pixels as the width does; otherwise horizontal first.
/// (Pillow 12 and older always run the horizontal pass first; the two orders round differently
/// because the intermediate image is uint8.)
#[inline]
pub(crate) fn horizontal_first(w: usize, h: usize, out_w: usize, out_h: usize) -> bool {
    let (dh, dw) = (h as i64 - out_h as i64, w as i64 - out_w as i64);
    !(dh > 0 && dh > dw * 2)
}

/// Pillow `ImagingResampleInner` (or torch's uint8 antialiased kernel) for an interleaved 8-bit
/// image of `ch` channels.
pub(crate) fn resize_u8(src: &[u8], w: usize, h: usize, ch: usize, out_w: usize, out_h: usize, fixed: Fixed) -> Vec<u8> {
    debug_assert_eq!(src.len(), w * h * ch);
    let need_h = out_w != w;
    let need_v = out_h != h;
    if !need_h && !need_v {
        return src.to_vec();
    }
    if !need_h {
        let cv = coeffs(h, out_h, fixed);
        let mut out = vec![0u8; w * out_h * ch];
        vertical(src, w * ch, 0, &cv, &mut out);
        return out;
    }
    let chc = coeffs(w, out_w, fixed);
    if !need_v {
        let mut out = vec![0u8; out_w * h * ch];
        horizontal(src, w, ch, 0..h, &chc, &mut out);
        return out;
    }
    let cv = coeffs(h, out_h, fixed);
    if fixed == Fixed::Torch || horizontal_first(w, h, out_w, out_h) {
        // Horizontal pass only over the rows the vertical pass reads.
        let first = cv.bounds[0].0;
        let (lmin, ln) = cv.bounds[out_h - 1];
        let last = lmin + ln;
        let mut tmp = vec![0u8; out_w * (last - first) * ch];
        horizontal(src, w, ch, first..last, &chc, &mut tmp);
        let mut out = vec![0u8; out_w * out_h * ch];
        vertical(&tmp, out_w * ch, first, &cv, &mut out);
        out
    } else {
        let mut tmp = vec![0u8; w * out_h * ch];
        vertical(src, w * ch, 0, &cv, &mut tmp);
        let mut out = vec![0u8; out_w * out_h * ch];
        horizontal(&tmp, w, ch, 0..out_h, &chc, &mut out);
        out
    }
}

/// Pillow-exact LANCZOS resize (`Image.resize((width, height), Image.LANCZOS)`) of an RGB8 image.
///
/// Bit-identical to Pillow's fixed-point implementation: 22-bit weights, horizontal pass first
/// with a uint8 intermediate, then vertical; an unchanged dimension skips its pass. `width` and
/// `height` must be non-zero (a zero size yields an empty image, as a [`RgbImage`] cannot).
pub fn resize_lanczos(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (img.width as usize, img.height as usize);
    let (ow, oh) = (width as usize, height as usize);
    if ow == 0 || oh == 0 || w == 0 || h == 0 {
        return RgbImage { width, height, data: Vec::new() };
    }
    let data = resize_u8(&img.data, w, h, 3, ow, oh, Fixed::Pillow);
    RgbImage { width, height, data }
}

/// torchvision's LANCZOS resize of a uint8 image tensor on the CPU (`resize(..., LANCZOS,
/// antialias=True)`, torch's `_upsample_lanczos2d_aa`), bit-exact: the video frames' path.
/// `width` and `height` must be non-zero.
pub fn resize_lanczos_torch(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (img.width as usize, img.height as usize);
    let (ow, oh) = (width as usize, height as usize);
    if ow == 0 || oh == 0 || w == 0 || h == 0 {
        return RgbImage { width, height, data: Vec::new() };
    }
    let data = resize_u8(&img.data, w, h, 3, ow, oh, Fixed::Torch);
    RgbImage { width, height, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for &(i, o) in &[(640, 2048), (2048, 512), (7, 3), (1, 5), (5, 1), (1536, 1536)] {
            let c = compute_coeffs(i, o, Fixed::Pillow);
            assert_eq!(c.bounds.len(), o);
            for xx in 0..o {
                let (xmin, k) = c.taps(xx);
                assert!(!k.is_empty() && xmin + k.len() <= i);
                let s: i64 = k.iter().map(|&v| v as i64).sum();
                assert!((s - (1 << 22)).abs() <= k.len() as i64, "{i}->{o} at {xx}: {s}");
            }
        }
    }

    #[test]
    fn torch_precision_keeps_the_largest_weight_in_15_bits() {
        // Upscaling: the centre weight is close to 1, so 14 bits; a 7x downscale spreads the
        // weights over ~43 taps, so more bits fit.
        assert_eq!(compute_coeffs(48, 128, Fixed::Torch).precision, 14);
        let c = compute_coeffs(224, 32, Fixed::Torch);
        assert!(c.precision > 14 && c.precision <= 22, "{}", c.precision);
        assert!(c.kk.iter().all(|&k| k.abs() < 1 << 15));
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::new(13, 7, [10u8, 128, 250].repeat(13 * 7)).unwrap();
        for &(w, h) in &[(40, 3), (2, 2), (1, 1), (13, 20), (100, 7)] {
            for r in [resize_lanczos(&img, w, h), resize_lanczos_torch(&img, w, h)] {
                assert_eq!((r.width, r.height), (w, h));
                assert!(r.data.chunks(3).all(|p| p == [10, 128, 250]), "{w}x{h}");
            }
        }
    }

    #[test]
    fn same_size_is_a_copy() {
        let data: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
        let img = RgbImage::new(5, 4, data.clone()).unwrap();
        assert_eq!(resize_lanczos(&img, 5, 4).data, data);
    }

    #[test]
    fn pass_order_rule() {
        assert!(horizontal_first(640, 480, 2048, 1536)); // upscale
        assert!(horizontal_first(2048, 1536, 512, 512)); // dh 1024 <= 2 * 1536
        assert!(!horizontal_first(1024, 2048, 512, 512)); // dh 1536 > 2 * 512
        assert!(!horizontal_first(1080, 2400, 922, 2048)); // tall screenshot: 352 > 316
        assert!(!horizontal_first(300, 500, 384, 384)); // width grows, height shrinks
        assert!(horizontal_first(300, 500, 384, 500)); // height unchanged
    }

    #[test]
    fn cache_returns_identical_weights() {
        let a = coeffs(123, 45, Fixed::Pillow);
        let b = coeffs(123, 45, Fixed::Pillow);
        assert!(Arc::ptr_eq(&a, &b) || a.kk == b.kk);
        assert_eq!(a.kk, compute_coeffs(123, 45, Fixed::Pillow).kk);
        assert_ne!(a.kk, coeffs(123, 45, Fixed::Torch).kk);
    }
}
