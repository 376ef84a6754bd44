//! Raw camera frames to [`RgbImage`]: packed RGBA8888 / BGRA8888 / RGB888 and YUV 4:2:0 (NV21,
//! NV12, three-plane `YUV_420_888`), with row and pixel strides and a clockwise rotation, as
//! Android's CameraX `ImageProxy` and Apple's `CVPixelBuffer` hand frames over.
//!
//! # Colour conversion
//! YUV is converted with the BT.601 matrix. The default, [`YuvRange::Full`], is the JFIF
//! full-range variant (Y, Cb, Cr all in 0..=255) that Android's camera stack produces for
//! `YUV_420_888`/`NV21` (and that `android.graphics.YuvImage` assumes when it writes a JPEG):
//!
//! ```text
//! R = Y + 1.402 (Cr - 128)
//! G = Y - 0.344136 (Cb - 128) - 0.714136 (Cr - 128)
//! B = Y + 1.772 (Cb - 128)
//! ```
//!
//! [`YuvRange::Limited`] is the studio-swing variant (Y in 16..=235, chroma in 16..=240) that
//! video decoders and Apple's `…VideoRange` pixel formats use:
//! `R = 1.164383 (Y - 16) + 1.596027 (Cr - 128)`, `G = 1.164383 (Y - 16) - 0.391762 (Cb - 128)
//! - 0.812968 (Cr - 128)`, `B = 1.164383 (Y - 16) + 2.017232 (Cb - 128)`.
//!
//! Chroma is 2x2-subsampled and taken from the nearest sample (no interpolation), as libyuv
//! does. Results are rounded to nearest and clamped to 0..=255; the arithmetic is 16.16 fixed
//! point, so it is identical on every platform.
//!
//! # Rotation
//! [`Rotation`] is the clockwise rotation that makes the frame upright, i.e. CameraX's
//! `ImageInfo.rotationDegrees`; the returned image is already rotated.

use crate::processor::image::{RgbImage, MAX_PIXELS, MAX_SIDE};
use crate::{Error, Result};

/// Byte order of a packed (single-plane) pixel format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedFormat {
    /// R, G, B, A bytes (Android `Bitmap.Config.ARGB_8888` memory order, CameraX `RGBA_8888`).
    Rgba8888,
    /// B, G, R, A bytes (Apple `kCVPixelFormatType_32BGRA`).
    Bgra8888,
    /// R, G, B bytes.
    Rgb888,
}

impl PackedFormat {
    /// Bytes per pixel when the pixels are tightly packed.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PackedFormat::Rgba8888 | PackedFormat::Bgra8888 => 4,
            PackedFormat::Rgb888 => 3,
        }
    }

    /// Offsets of R, G and B inside one pixel.
    fn rgb_offsets(self) -> [usize; 3] {
        match self {
            PackedFormat::Rgba8888 | PackedFormat::Rgb888 => [0, 1, 2],
            PackedFormat::Bgra8888 => [2, 1, 0],
        }
    }
}

/// Which YUV quantisation the samples use (see the module docs for the formulas).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvRange {
    /// JFIF full range, 0..=255 for Y, Cb and Cr: Android camera output.
    #[default]
    Full,
    /// Studio (video) range, Y in 16..=235 and chroma in 16..=240.
    Limited,
}

/// Clockwise rotation that makes a frame upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    /// Already upright.
    #[default]
    R0,
    /// Rotate 90° clockwise.
    R90,
    /// Rotate 180°.
    R180,
    /// Rotate 270° clockwise (90° counter-clockwise).
    R270,
}

impl Rotation {
    /// Parses a rotation in degrees (0, 90, 180, 270; negative and ≥ 360 values are reduced
    /// modulo 360). Other angles fail with [`Error::InvalidArgument`].
    pub fn from_degrees(degrees: i32) -> Result<Self> {
        match degrees.rem_euclid(360) {
            0 => Ok(Rotation::R0),
            90 => Ok(Rotation::R90),
            180 => Ok(Rotation::R180),
            270 => Ok(Rotation::R270),
            _ => Err(Error::InvalidArgument(format!("rotation must be a multiple of 90 degrees, got {degrees}"))),
        }
    }
}

/// One plane of a frame: its bytes and how to step through them.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    /// The plane's bytes, starting at its first sample. The last row may be shorter than
    /// `row_stride` (Android trims the padding after the last pixel).
    pub data: &'a [u8],
    /// Bytes from the start of one row to the start of the next.
    pub row_stride: usize,
    /// Bytes from one sample (or pixel) to the next within a row.
    pub pixel_stride: usize,
}

impl<'a> Plane<'a> {
    /// A plane with the given strides.
    pub fn new(data: &'a [u8], row_stride: usize, pixel_stride: usize) -> Self {
        Plane { data, row_stride, pixel_stride }
    }

    /// Checks that `cols` samples of `sample_bytes` each, on `rows` rows, lie inside `data`.
    fn check(&self, name: &str, cols: usize, rows: usize, sample_bytes: usize) -> Result<()> {
        if self.pixel_stride < sample_bytes {
            return Err(Error::InvalidImage(format!(
                "{name} plane: pixel stride {} is smaller than a sample ({sample_bytes} bytes)",
                self.pixel_stride
            )));
        }
        // Checked: hostile strides must not wrap the sizes around to small numbers.
        let overflow = || {
            Error::InvalidImage(format!(
                "{name} plane: {cols}x{rows} samples with row stride {} and pixel stride {} span more than usize::MAX bytes",
                self.row_stride, self.pixel_stride
            ))
        };
        let row_bytes =
            (cols - 1).checked_mul(self.pixel_stride).and_then(|b| b.checked_add(sample_bytes)).ok_or_else(overflow)?;
        if self.row_stride < row_bytes && rows > 1 {
            return Err(Error::InvalidImage(format!(
                "{name} plane: row stride {} is smaller than a row ({row_bytes} bytes)",
                self.row_stride
            )));
        }
        let need = (rows - 1).checked_mul(self.row_stride).and_then(|b| b.checked_add(row_bytes)).ok_or_else(overflow)?;
        if self.data.len() < need {
            return Err(Error::InvalidImage(format!(
                "{name} plane holds {} bytes, {cols}x{rows} samples with row stride {} and pixel stride {} need {need}",
                self.data.len(),
                self.row_stride,
                self.pixel_stride
            )));
        }
        Ok(())
    }

    #[inline]
    fn at(&self, x: usize, y: usize) -> usize {
        y * self.row_stride + x * self.pixel_stride
    }
}

/// Where a frame's samples are.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// One plane of packed pixels.
    Packed {
        /// Byte order of each pixel.
        format: PackedFormat,
        /// The pixels (`pixel_stride` is usually 4, or 3 for RGB888).
        plane: Plane<'a>,
    },
    /// YUV 4:2:0: a full-resolution Y plane and two half-resolution chroma planes (U = Cb,
    /// V = Cr). Semi-planar layouts are expressed with a chroma `pixel_stride` of 2.
    Yuv420 {
        /// Luma.
        y: Plane<'a>,
        /// Blue-difference chroma (Cb).
        u: Plane<'a>,
        /// Red-difference chroma (Cr).
        v: Plane<'a>,
        /// Quantisation of the samples.
        range: YuvRange,
    },
}

impl<'a> Frame<'a> {
    /// A single NV21 buffer (Android's camera1 default): `height` rows of Y with `row_stride`,
    /// then `height / 2` rows of interleaved V,U starting at `row_stride * height`.
    pub fn nv21(data: &'a [u8], width: u32, height: u32, row_stride: usize) -> Result<Self> {
        Self::semi_planar(data, width, height, row_stride, true)
    }

    /// A single NV12 buffer: like [`Frame::nv21`] but with U before V in each chroma pair
    /// (Apple's `420YpCbCr8BiPlanar` planes laid end to end).
    pub fn nv12(data: &'a [u8], width: u32, height: u32, row_stride: usize) -> Result<Self> {
        Self::semi_planar(data, width, height, row_stride, false)
    }

    fn semi_planar(data: &'a [u8], width: u32, height: u32, row_stride: usize, v_first: bool) -> Result<Self> {
        check_dims(width, height)?;
        let row_stride = if row_stride == 0 { width as usize } else { row_stride };
        // Checked: a hostile row stride must not wrap the offset around to a small number.
        let offset = row_stride.checked_mul(height as usize);
        match offset {
            Some(offset) if data.len() >= offset.saturating_add(2) => {}
            _ => {
                return Err(Error::InvalidImage(format!(
                    "a {width}x{height} {} frame with row stride {row_stride} needs more than {} bytes, got {}",
                    if v_first { "NV21" } else { "NV12" },
                    offset.map_or_else(|| "usize::MAX".to_string(), |o| o.to_string()),
                    data.len()
                )))
            }
        }
        let offset = row_stride * height as usize;
        let (first, second) = (&data[offset..], &data[offset + 1..]);
        let (u, v) = if v_first { (second, first) } else { (first, second) };
        Ok(Frame::Yuv420 {
            y: Plane::new(&data[..offset], row_stride, 1),
            u: Plane::new(u, row_stride, 2),
            v: Plane::new(v, row_stride, 2),
            range: YuvRange::Full,
        })
    }
}

fn check_dims(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidImage(format!("frame has a zero dimension ({width}x{height})")));
    }
    if width > MAX_SIDE || height > MAX_SIDE || width as u64 * height as u64 > MAX_PIXELS {
        return Err(Error::InvalidImage(format!(
            "frame of {width}x{height} exceeds the limit of {MAX_SIDE} px per side and {MAX_PIXELS} pixels"
        )));
    }
    Ok(())
}

/// Converts a `width` x `height` frame to RGB and rotates it clockwise by `rotation`.
/// Fails with [`Error::InvalidImage`] when a plane is too small for the given strides.
pub fn frame_to_rgb(frame: &Frame<'_>, width: u32, height: u32, rotation: Rotation) -> Result<RgbImage> {
    check_dims(width, height)?;
    let (w, h) = (width as usize, height as usize);
    let mut rgb = vec![0u8; w * h * 3];
    match frame {
        Frame::Packed { format, plane } => {
            plane.check("pixel", w, h, format.bytes_per_pixel())?;
            let [ro, go, bo] = format.rgb_offsets();
            for (y, out) in rgb.chunks_exact_mut(w * 3).enumerate() {
                for (x, px) in out.chunks_exact_mut(3).enumerate() {
                    let i = plane.at(x, y);
                    px[0] = plane.data[i + ro];
                    px[1] = plane.data[i + go];
                    px[2] = plane.data[i + bo];
                }
            }
        }
        Frame::Yuv420 { y: yp, u, v, range } => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            yp.check("Y", w, h, 1)?;
            u.check("U", cw, ch, 1)?;
            v.check("V", cw, ch, 1)?;
            let m = Matrix::new(*range);
            for (y, out) in rgb.chunks_exact_mut(w * 3).enumerate() {
                for (x, px) in out.chunks_exact_mut(3).enumerate() {
                    let luma = yp.data[yp.at(x, y)];
                    let cb = u.data[u.at(x / 2, y / 2)];
                    let cr = v.data[v.at(x / 2, y / 2)];
                    px.copy_from_slice(&m.to_rgb(luma, cb, cr));
                }
            }
        }
    }
    Ok(rotate(RgbImage { width, height, data: rgb }, rotation))
}

/// BT.601 YCbCr → RGB coefficients in 16.16 fixed point.
struct Matrix {
    y_off: i32,
    y_mul: i32,
    r_cr: i32,
    g_cb: i32,
    g_cr: i32,
    b_cb: i32,
}

impl Matrix {
    fn new(range: YuvRange) -> Self {
        let f = |x: f64| (x * 65536.0).round() as i32;
        match range {
            YuvRange::Full => {
                Matrix { y_off: 0, y_mul: f(1.0), r_cr: f(1.402), g_cb: f(0.344136), g_cr: f(0.714136), b_cb: f(1.772) }
            }
            YuvRange::Limited => Matrix {
                y_off: 16,
                y_mul: f(255.0 / 219.0),
                r_cr: f(1.596027),
                g_cb: f(0.391762),
                g_cr: f(0.812968),
                b_cb: f(2.017232),
            },
        }
    }

    #[inline]
    fn to_rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let y = (y as i32 - self.y_off) * self.y_mul + 32768;
        let (cb, cr) = (cb as i32 - 128, cr as i32 - 128);
        let c = |v: i32| (v >> 16).clamp(0, 255) as u8;
        [c(y + self.r_cr * cr), c(y - self.g_cb * cb - self.g_cr * cr), c(y + self.b_cb * cb)]
    }
}

/// Rotates an image clockwise.
pub fn rotate(img: RgbImage, rotation: Rotation) -> RgbImage {
    let (w, h) = (img.width as usize, img.height as usize);
    let src = &img.data;
    let px = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        [src[i], src[i + 1], src[i + 2]]
    };
    // output (x, y) -> source (sx, sy)
    type Map = Box<dyn Fn(usize, usize) -> (usize, usize)>;
    let (nw, nh, map): (usize, usize, Map) = match rotation {
        Rotation::R0 => return img,
        // Output (x, y) comes from source (sx, sy).
        Rotation::R90 => (h, w, Box::new(move |x, y| (y, h - 1 - x))),
        Rotation::R180 => (w, h, Box::new(move |x, y| (w - 1 - x, h - 1 - y))),
        Rotation::R270 => (h, w, Box::new(move |x, y| (w - 1 - y, x))),
    };
    let mut out = vec![0u8; nw * nh * 3];
    for y in 0..nh {
        for x in 0..nw {
            let (sx, sy) = map(x, y);
            out[(y * nw + x) * 3..][..3].copy_from_slice(&px(sx, sy));
        }
    }
    RgbImage { width: nw as u32, height: nh as u32, data: out }
}

/// Mirrors an image left to right (a front camera's mirrored frames, EXIF's mirrored
/// orientations).
pub fn mirror(mut img: RgbImage) -> RgbImage {
    let w = img.width as usize;
    if w > 1 {
        for row in img.data.chunks_exact_mut(w * 3) {
            for x in 0..w / 2 {
                let (l, r) = (x * 3, (w - 1 - x) * 3);
                for c in 0..3 {
                    row.swap(l + c, r + c);
                }
            }
        }
    }
    img
}

/// RGB → full-range BT.601 YCbCr (JFIF), rounded; the inverse used by tests and by callers that
/// need to synthesise camera frames.
pub fn rgb_to_ycbcr_full(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (r as f64, g as f64, b as f64);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    let cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b;
    let cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b;
    let q = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    [q(y), q(cb), q(cr)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32) -> RgbImage {
        let data = (0..w * h).flat_map(|i| [i as u8, (i * 7) as u8, (255 - i) as u8]).collect();
        RgbImage::new(w, h, data).unwrap()
    }

    fn pixel(img: &RgbImage, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * img.width + x) * 3) as usize;
        [img.data[i], img.data[i + 1], img.data[i + 2]]
    }

    #[test]
    fn packed_formats_with_row_padding() {
        // 2x2 RGBA with 3 bytes of padding per row; the last row is trimmed (Android does that).
        let rows = [[1u8, 2, 3, 255, 4, 5, 6, 255, 9, 9, 9], [7, 8, 9, 255, 10, 11, 12, 255, 0, 0, 0]];
        let mut data: Vec<u8> = rows.concat();
        data.truncate(11 + 8);
        let f = Frame::Packed { format: PackedFormat::Rgba8888, plane: Plane::new(&data, 11, 4) };
        let out = frame_to_rgb(&f, 2, 2, Rotation::R0).unwrap();
        assert_eq!(out.data, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

        let bgra = [3u8, 2, 1, 0, 6, 5, 4, 0];
        let f = Frame::Packed { format: PackedFormat::Bgra8888, plane: Plane::new(&bgra, 8, 4) };
        assert_eq!(frame_to_rgb(&f, 2, 1, Rotation::R0).unwrap().data, vec![1, 2, 3, 4, 5, 6]);

        let rgb = [1u8, 2, 3, 4, 5, 6];
        let f = Frame::Packed { format: PackedFormat::Rgb888, plane: Plane::new(&rgb, 6, 3) };
        assert_eq!(frame_to_rgb(&f, 2, 1, Rotation::R0).unwrap().data, rgb.to_vec());
    }

    #[test]
    fn short_buffers_are_invalid_images() {
        let data = [0u8; 15];
        let f = Frame::Packed { format: PackedFormat::Rgba8888, plane: Plane::new(&data, 8, 4) };
        assert!(matches!(frame_to_rgb(&f, 2, 2, Rotation::R0), Err(Error::InvalidImage(_))));
        let f = Frame::Packed { format: PackedFormat::Rgba8888, plane: Plane::new(&data, 4, 4) };
        assert!(matches!(frame_to_rgb(&f, 2, 2, Rotation::R0), Err(Error::InvalidImage(_))), "row stride < row");
        assert!(matches!(Frame::nv21(&[0u8; 10], 4, 4, 4), Err(Error::InvalidImage(_))));
        let nv = [0u8; 16 + 7];
        let f = Frame::nv21(&nv, 4, 4, 4).unwrap();
        assert!(matches!(frame_to_rgb(&f, 4, 4, Rotation::R0), Err(Error::InvalidImage(_))), "chroma short by one");
        assert!(matches!(frame_to_rgb(&f, 0, 4, Rotation::R0), Err(Error::InvalidImage(_))));
    }

    #[test]
    fn absurd_strides_are_invalid_images() {
        // Strides whose products overflow usize: an error, not a wrapped (small) size.
        let data = [0u8; 64];
        for (row, px) in [(usize::MAX, 4), (8, usize::MAX / 2), (usize::MAX / 3, 4)] {
            let f = Frame::Packed { format: PackedFormat::Rgba8888, plane: Plane::new(&data, row, px) };
            assert!(matches!(frame_to_rgb(&f, 2, 4, Rotation::R0), Err(Error::InvalidImage(_))), "{row} {px}");
        }
        assert!(matches!(Frame::nv21(&data, 4, 4, usize::MAX / 2), Err(Error::InvalidImage(_))));
        assert!(matches!(Frame::nv12(&data, 4, 1, usize::MAX), Err(Error::InvalidImage(_))));
    }

    #[test]
    fn rotations_are_clockwise() {
        let a = img(3, 2);
        let r90 = rotate(a.clone(), Rotation::R90);
        assert_eq!((r90.width, r90.height), (2, 3));
        // Clockwise: the bottom-left source pixel becomes the top-left one.
        assert_eq!(pixel(&r90, 0, 0), pixel(&a, 0, 1));
        assert_eq!(pixel(&r90, 1, 0), pixel(&a, 0, 0));
        assert_eq!(pixel(&r90, 1, 2), pixel(&a, 2, 0));
        let r180 = rotate(a.clone(), Rotation::R180);
        assert_eq!(pixel(&r180, 0, 0), pixel(&a, 2, 1));
        let r270 = rotate(a.clone(), Rotation::R270);
        assert_eq!(pixel(&r270, 0, 0), pixel(&a, 2, 0));
        assert_eq!(rotate(r90, Rotation::R270), a);
        assert_eq!(rotate(rotate(a.clone(), Rotation::R180), Rotation::R180), a);
    }

    #[test]
    fn mirror_flips_left_to_right() {
        let a = img(3, 2);
        let m = mirror(a.clone());
        assert_eq!((m.width, m.height), (3, 2));
        for (x, y) in [(0, 0), (1, 0), (2, 1)] {
            assert_eq!(pixel(&m, x, y), pixel(&a, 2 - x, y));
        }
        assert_eq!(mirror(m), a);
        // Mirroring after a rotation is mirroring before the opposite rotation.
        assert_eq!(mirror(rotate(a.clone(), Rotation::R90)), rotate(mirror(a), Rotation::R270));
    }

    #[test]
    fn degrees_parse() {
        assert_eq!(Rotation::from_degrees(-90).unwrap(), Rotation::R270);
        assert_eq!(Rotation::from_degrees(450).unwrap(), Rotation::R90);
        assert!(matches!(Rotation::from_degrees(45), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn full_range_matches_jfif() {
        let m = Matrix::new(YuvRange::Full);
        assert_eq!(m.to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(m.to_rgb(0, 128, 128), [0, 0, 0]);
        assert_eq!(m.to_rgb(255, 128, 128), [255, 255, 255]);
        // Pure red in JFIF: Y=76, Cb=85, Cr=255 -> (254, 0, 0) after rounding.
        assert_eq!(rgb_to_ycbcr_full(255, 0, 0), [76, 85, 255]);
        let [r, g, b] = m.to_rgb(76, 85, 255);
        assert!(r >= 253 && g <= 1 && b <= 1, "{r} {g} {b}");
        // Round trips stay within 2 levels on a colour sweep.
        for (r, g, b) in [(12u8, 200u8, 90u8), (250, 250, 5), (30, 60, 240), (100, 100, 100)] {
            let [y, cb, cr] = rgb_to_ycbcr_full(r, g, b);
            let back = m.to_rgb(y, cb, cr);
            for (a, e) in back.iter().zip([r, g, b]) {
                assert!((*a as i32 - e as i32).abs() <= 2, "{:?} vs {:?}", back, (r, g, b));
            }
        }
    }

    #[test]
    fn limited_range_expands_studio_swing() {
        let m = Matrix::new(YuvRange::Limited);
        assert_eq!(m.to_rgb(16, 128, 128), [0, 0, 0]);
        assert_eq!(m.to_rgb(235, 128, 128), [255, 255, 255]);
        assert_eq!(m.to_rgb(126, 128, 128), [128, 128, 128]);
        // Full range would read Y=16 as dark grey, not black.
        assert_eq!(Matrix::new(YuvRange::Full).to_rgb(16, 128, 128), [16, 16, 16]);
    }

    /// Builds an NV21 buffer (with row padding) from an RGB image whose 2x2 blocks share a colour.
    fn nv21_of(src: &RgbImage, stride: usize, v_first: bool) -> Vec<u8> {
        let (w, h) = (src.width as usize, src.height as usize);
        let mut out = vec![0u8; stride * h + stride * h / 2];
        for y in 0..h {
            for x in 0..w {
                let p = pixel(src, x as u32, y as u32);
                let [l, cb, cr] = rgb_to_ycbcr_full(p[0], p[1], p[2]);
                out[y * stride + x] = l;
                let c = stride * h + (y / 2) * stride + (x / 2) * 2;
                let (a, b) = if v_first { (cr, cb) } else { (cb, cr) };
                out[c] = a;
                out[c + 1] = b;
            }
        }
        out
    }

    fn blocky(w: u32, h: u32) -> RgbImage {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let k = (x / 2 + 3 * (y / 2)) as u8;
                data.extend([k.wrapping_mul(40), 255 - k.wrapping_mul(25), k.wrapping_mul(70).wrapping_add(10)]);
            }
        }
        RgbImage::new(w, h, data).unwrap()
    }

    fn close(a: &RgbImage, b: &RgbImage, tol: i32) -> bool {
        a.width == b.width
            && a.height == b.height
            && a.data.iter().zip(&b.data).all(|(x, y)| (*x as i32 - *y as i32).abs() <= tol)
    }

    #[test]
    fn nv21_and_nv12_with_stride_and_rotation() {
        let src = blocky(6, 4);
        for v_first in [true, false] {
            let buf = nv21_of(&src, 8, v_first);
            let f = if v_first { Frame::nv21(&buf, 6, 4, 8) } else { Frame::nv12(&buf, 6, 4, 8) }.unwrap();
            let out = frame_to_rgb(&f, 6, 4, Rotation::R0).unwrap();
            assert!(close(&out, &src, 2), "{:?}\n{:?}", out.data, src.data);
            let rot = frame_to_rgb(&f, 6, 4, Rotation::R90).unwrap();
            assert!(close(&rot, &rotate(src.clone(), Rotation::R90), 2));
        }
        // Swapping the chroma order changes the colours: the two layouts are really distinguished.
        let buf = nv21_of(&src, 8, true);
        let wrong = frame_to_rgb(&Frame::nv12(&buf, 6, 4, 8).unwrap(), 6, 4, Rotation::R0).unwrap();
        assert!(!close(&wrong, &src, 2));
    }

    #[test]
    fn three_plane_yuv_with_pixel_stride() {
        // YUV_420_888 as CameraX delivers it on most phones: U and V planes are views into one
        // interleaved buffer (pixel stride 2), rows padded.
        let src = blocky(4, 4);
        let buf = nv21_of(&src, 6, true);
        let off = 6 * 4;
        let f = Frame::Yuv420 {
            y: Plane::new(&buf[..off], 6, 1),
            u: Plane::new(&buf[off + 1..], 6, 2),
            v: Plane::new(&buf[off..], 6, 2),
            range: YuvRange::Full,
        };
        assert!(close(&frame_to_rgb(&f, 4, 4, Rotation::R0).unwrap(), &src, 2));
        // Fully planar I420 (pixel stride 1), odd size: chroma planes are ceil(w/2) x ceil(h/2).
        let src = blocky(5, 3);
        let (mut yb, mut ub, mut vb) = (vec![0u8; 15], vec![0u8; 6], vec![0u8; 6]);
        for y in 0..3 {
            for x in 0..5 {
                let p = pixel(&src, x, y);
                let [l, cb, cr] = rgb_to_ycbcr_full(p[0], p[1], p[2]);
                yb[(y * 5 + x) as usize] = l;
                ub[((y / 2) * 3 + x / 2) as usize] = cb;
                vb[((y / 2) * 3 + x / 2) as usize] = cr;
            }
        }
        let f =
            Frame::Yuv420 { y: Plane::new(&yb, 5, 1), u: Plane::new(&ub, 3, 1), v: Plane::new(&vb, 3, 1), range: YuvRange::Full };
        let out = frame_to_rgb(&f, 5, 3, Rotation::R270).unwrap();
        assert!(close(&out, &rotate(src, Rotation::R270), 2));
    }
}
