//! Image decoding that reproduces what transformers hands its image processor.
//!
//! transformers 5.x loads an image given by path (`{"type": "image", "path": ...}` in a chat
//! message) with `transformers.image_utils.load_image`:
//!
//! ```text
//! image = PIL.Image.open(path)
//! image = PIL.ImageOps.exif_transpose(image)   # EXIF (or XMP) orientation
//! image = image.convert("RGB")                 # alpha is DROPPED, not composited
//! ```
//!
//! and the PIL image processor then runs `convert_to_rgb`, which composites onto white only when
//! the (already RGB) image still carries `info["transparency"]`. Pillow keeps that key through
//! `convert("RGB")` for colour-keyed images (PNG `tRNS` with a single transparent palette entry or a
//! grey/RGB key, GIF transparency index), converted to an RGB colour; `convert("RGBA")` then makes
//! every pixel of exactly that colour transparent and the composite turns it white. So the net
//! effect, replicated here, is:
//!
//! * RGBA / LA / PA / palette with per-entry alpha: alpha dropped, colours kept as stored;
//! * colour-keyed images: every pixel whose RGB equals the key colour becomes (255, 255, 255)
//!   (including opaque pixels that merely share the key colour, as in Pillow);
//! * grey: replicated to RGB; 1-bit: 0/255; 2/4-bit grey scaled (×85 / ×17);
//! * 16-bit PNG: RGB/RGBA/LA keep the high byte, 16-bit grey (`I;16`) is clipped to 255
//!   (Pillow's `I16_RGB`), palette indices outside the palette read black.
//!
//! PNG and GIF are decoded with the `png` / `gif` crates directly (raw samples, palette and
//! transparency key, as Pillow sees them); JPEG with our `jpeg` module, a port of the libjpeg-turbo
//! code paths Pillow runs (bit-exact, including CMYK/YCCK and Pillow's truncation errors), falling
//! back to the `image` crate only for processes it does not implement (lossless, hierarchical,
//! 12-bit); WebP and BMP through the `image` crate.

use std::io::Cursor;
use std::path::Path;

use super::jpeg::{self, JpegError, JpegPixels};
use crate::{Error, Result};

/// Largest accepted width or height of a decoded image, in pixels.
pub const MAX_SIDE: u32 = 8192;
/// Largest accepted number of pixels of a decoded image (64 megapixels).
pub const MAX_PIXELS: u64 = 64_000_000;
/// Upper bound on what a decoder may allocate (a 64 MP RGBA16 frame needs 512 MB).
const MAX_DECODER_BYTES: u64 = 8 * MAX_PIXELS + (16 << 20);

/// A decoded 8-bit RGB image, rows top to bottom, pixels packed RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes, row-major, R G B per pixel.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// Wraps packed RGB bytes; fails with [`Error::InvalidImage`] on a zero dimension or when
    /// `data.len() != width * height * 3`.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::InvalidImage(format!("image has a zero dimension ({width}x{height})")));
        }
        let want = width as u64 * height as u64 * 3;
        if data.len() as u64 != want {
            return Err(Error::InvalidImage(format!("{width}x{height} RGB image needs {want} bytes, got {}", data.len())));
        }
        Ok(RgbImage { width, height, data })
    }
}

/// Rejects empty or oversized dimensions before anything is allocated for them.
fn check_dims(width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidImage(format!("image has a zero dimension ({width}x{height})")));
    }
    if width > MAX_SIDE || height > MAX_SIDE || width as u64 * height as u64 > MAX_PIXELS {
        return Err(Error::InvalidImage(format!(
            "image of {width}x{height} exceeds the limit of {MAX_SIDE} px per side and {MAX_PIXELS} pixels"
        )));
    }
    Ok(())
}

fn bad(what: impl std::fmt::Display) -> Error {
    Error::InvalidImage(what.to_string())
}

/// Orientation metadata found in a file, in the order Pillow consults it.
#[derive(Default)]
struct Meta {
    /// Pillow's `info["exif"]`: the EXIF block as the format stores it (JPEG: the APP1 segment with
    /// its `Exif\0\0`; PNG: the eXIf chunk behind the `Exif\0\0` Pillow puts in front of it).
    exif: Option<Vec<u8>>,
    /// Raw XMP packet.
    xmp: Option<Vec<u8>>,
}

impl Meta {
    /// Pillow `Image.getexif()[Orientation]` with its XMP fallback (`tiff:Orientation`).
    fn orientation(&self) -> u32 {
        if let Some(o) = self.exif.as_deref().and_then(exif_orientation) {
            return o;
        }
        self.xmp.as_deref().and_then(xmp_orientation).unwrap_or(1)
    }
}

/// Tag 0x0112 of IFD0 of a TIFF-structured EXIF block; `None` when absent or malformed. Like
/// Pillow's `Exif.load`, one or two leading `Exif\0\0` are skipped (a writer that was handed
/// Pillow's `Exif.tobytes()`, prefix included, stores it twice).
fn exif_orientation(data: &[u8]) -> Option<u32> {
    const PREFIX: &[u8] = b"Exif\0\0";
    let once = data.strip_prefix(PREFIX).unwrap_or(data);
    let d = once.strip_prefix(PREFIX).unwrap_or(once);
    // Pillow's accepted TIFF headers, the reversed magic numbers included. Its BigTIFF test
    // looks at the third byte only, so "MM\0+" reads as a classic header, while "II+\0" fails
    // (an 8-byte head has no BigTIFF offset) and leaves the image unrotated.
    let le = match d.get(..4)? {
        [b'I', b'I', 42, 0] | [b'I', b'I', 0, 42] => true,
        [b'M', b'M', 0, 42] | [b'M', b'M', 42, 0] | [b'M', b'M', 0, 43] => false,
        _ => return None,
    };
    let u16_at = |o: usize| -> Option<u32> {
        let b = d.get(o..o + 2)?;
        Some(if le { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) } as u32)
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = d.get(o..o + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let ifd = u32_at(4)? as usize;
    let n = u16_at(ifd)? as usize;
    for i in 0..n {
        let e = ifd + 2 + 12 * i;
        if u16_at(e)? != 0x0112 {
            continue;
        }
        let (typ, count) = (u16_at(e + 2)?, u32_at(e + 4)?);
        if count != 1 {
            return None;
        }
        return match typ {
            1 => d.get(e + 8).map(|&b| b as u32), // BYTE
            3 => u16_at(e + 8),                   // SHORT
            4 => u32_at(e + 8),                   // LONG
            _ => None,
        };
    }
    None
}

/// Pillow's XMP fallback: the first match of `tiff:Orientation(="|>)([0-9])`.
fn xmp_orientation(xmp: &[u8]) -> Option<u32> {
    const KEY: &[u8] = b"tiff:Orientation";
    let mut i = 0;
    while let Some(p) = xmp[i..].windows(KEY.len()).position(|w| w == KEY) {
        let rest = &xmp[i + p + KEY.len()..];
        let digit = match rest {
            [b'=', b'"', d, ..] | [b'>', d, ..] if d.is_ascii_digit() => Some(d),
            _ => None,
        };
        if let Some(d) = digit {
            return Some((d - b'0') as u32);
        }
        i += p + 1;
    }
    None
}

/// Pillow `ImageOps.exif_transpose` for orientation values 2..=8 (others: unchanged).
fn apply_orientation(img: RgbImage, orientation: u32) -> RgbImage {
    if !(2..=8).contains(&orientation) {
        return img;
    }
    let (w, h) = (img.width as usize, img.height as usize);
    let swap = orientation >= 5;
    let (ow, oh) = if swap { (h, w) } else { (w, h) };
    let mut out = vec![0u8; img.data.len()];
    for y in 0..oh {
        for x in 0..ow {
            // Source pixel of output (x, y), per Pillow's Transpose methods.
            let (sx, sy) = match orientation {
                2 => (w - 1 - x, y),         // FLIP_LEFT_RIGHT
                3 => (w - 1 - x, h - 1 - y), // ROTATE_180
                4 => (x, h - 1 - y),         // FLIP_TOP_BOTTOM
                5 => (y, x),                 // TRANSPOSE
                6 => (y, h - 1 - x),         // ROTATE_270
                7 => (w - 1 - y, h - 1 - x), // TRANSVERSE
                _ => (w - 1 - y, x),         // 8: ROTATE_90
            };
            let s = (sy * w + sx) * 3;
            let o = (y * ow + x) * 3;
            out[o..o + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    RgbImage { width: ow as u32, height: oh as u32, data: out }
}

/// Pixels after Pillow's `convert("RGB")`, plus the colour key it keeps in `info["transparency"]`.
struct Decoded {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    key: Option<[u8; 3]>,
    meta: Meta,
}

impl Decoded {
    /// `convert_to_rgb`: pixels equal to the key colour are composited to white.
    fn finish(self) -> RgbImage {
        let mut rgb = self.rgb;
        if let Some(k) = self.key {
            for p in rgb.chunks_exact_mut(3) {
                if p == k {
                    p.copy_from_slice(&[255, 255, 255]);
                }
            }
        }
        let img = RgbImage { width: self.width, height: self.height, data: rgb };
        apply_orientation(img, self.meta.orientation())
    }
}

/// Decodes PNG/JPEG/WebP/GIF/BMP bytes, applies EXIF orientation, converts to RGB exactly as
/// transformers does when it loads an image from a path (`load_image` + `convert_to_rgb`; see the
/// module docs). Fails with [`Error::InvalidImage`] on empty, unrecognised, truncated or corrupt
/// data and on images larger than [`MAX_SIDE`] per side or [`MAX_PIXELS`] in total.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage> {
    if bytes.is_empty() {
        return Err(bad("empty image data"));
    }
    let format = image::guess_format(bytes).map_err(|_| bad("unrecognised image format"))?;
    let decoded = match format {
        image::ImageFormat::Png => decode_png(bytes)?,
        image::ImageFormat::Gif => decode_gif(bytes)?,
        image::ImageFormat::Jpeg => decode_jpeg(bytes)?,
        image::ImageFormat::WebP => {
            check_webp_complete(bytes)?;
            decode_generic(bytes, format)?
        }
        image::ImageFormat::Bmp => decode_generic(bytes, format)?,
        other => return Err(bad(format!("unsupported image format {other:?}"))),
    };
    Ok(decoded.finish())
}

/// Largest image file read (528 MB, what a decoder may allocate): more than any encoding of a
/// [`MAX_PIXELS`] image needs.
pub const MAX_IMAGE_FILE_BYTES: u64 = MAX_DECODER_BYTES;

/// Reads the file at `path`, then [`decode_image`]. A read failure, a path that is not a regular
/// file (a folder, a device such as `/dev/zero` or `/dev/stdin`, a pipe: their reads may never
/// end) and a file over [`MAX_IMAGE_FILE_BYTES`] are an [`Error::InvalidImage`] naming the path.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    use std::io::Read;
    let fail = |e: &dyn std::fmt::Display| bad(format!("{}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| fail(&e))?;
    if !meta.is_file() {
        return Err(fail(&"not a regular file"));
    }
    let too_large = || fail(&format!("larger than {MAX_IMAGE_FILE_BYTES} bytes, the most this SDK reads"));
    if meta.len() > MAX_IMAGE_FILE_BYTES {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The read stops past the cap even if the file grows meanwhile.
    file.take(MAX_IMAGE_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| fail(&e))?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(too_large());
    }
    decode_image(&bytes)
}

// ------------------------------------------------------------------------------------------------
// PNG

/// Raw sample `x` of a packed row at `bits` per sample.
#[inline]
fn sample(row: &[u8], x: usize, bits: u8) -> u16 {
    match bits {
        8 => row[x] as u16,
        16 => u16::from_be_bytes([row[2 * x], row[2 * x + 1]]),
        b => {
            let per_byte = 8 / b as usize;
            let shift = 8 - b as usize * (x % per_byte + 1);
            ((row[x / per_byte] >> shift) & ((1u8 << b) - 1)) as u16
        }
    }
}

fn decode_png(bytes: &[u8]) -> Result<Decoded> {
    use png::{BitDepth, ColorType};
    let limits = png::Limits { bytes: MAX_DECODER_BYTES as usize };
    let mut dec = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info().map_err(|e| bad(format!("PNG: {e}")))?;
    let (width, height) = reader.info().size();
    check_dims(width, height)?;
    let size = reader.output_buffer_size().ok_or_else(|| bad("PNG: image too large"))?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(|e| bad(format!("PNG: {e}")))?;
    // Trailing chunks (eXIf / text after IDAT); Pillow tolerates problems there too.
    let _ = reader.finish();
    let info = reader.info();
    let (w, h) = (out.width as usize, out.height as usize);
    if (out.width, out.height) != (width, height) {
        return Err(bad("PNG: first frame does not match the image size"));
    }
    let bits = match out.bit_depth {
        BitDepth::One => 1u8,
        BitDepth::Two => 2,
        BitDepth::Four => 4,
        BitDepth::Eight => 8,
        BitDepth::Sixteen => 16,
    };
    let stride = out.line_size;
    let trns = info.trns.as_deref();
    let be16 = |b: &[u8], i: usize| -> Option<u16> { Some(u16::from_be_bytes([*b.get(2 * i)?, *b.get(2 * i + 1)?])) };
    let mut rgb = vec![0u8; w * h * 3];
    let mut key = None;
    let rows = buf.chunks(stride).take(h);
    match out.color_type {
        ColorType::Grayscale => {
            // Pillow modes: "1" (1 bit), "L" (2/4/8 bits, scaled up), "I;16" (16 bits).
            let map = |v: u16| -> u8 {
                match bits {
                    1 => {
                        if v != 0 {
                            255
                        } else {
                            0
                        }
                    }
                    2 => (v * 85) as u8,
                    4 => (v * 17) as u8,
                    8 => v as u8,
                    _ => v.min(255) as u8, // I16_RGB clips
                }
            };
            for (row, o) in rows.zip(rgb.chunks_exact_mut(w * 3)) {
                for (x, p) in o.chunks_exact_mut(3).enumerate() {
                    p.fill(map(sample(row, x, bits)));
                }
            }
            // The png crate keeps the low byte of a sub-16-bit key (all Pillow can match anyway).
            let t = trns.and_then(|t| if bits == 16 { be16(t, 0) } else { t.first().map(|&v| v as u16) });
            if let Some(t) = t {
                key = match bits {
                    // "1" and "I;16" keep the integer key; convert_transparent reads it as (t, 0, 0).
                    1 | 16 => Some([(t & 0xff) as u8, 0, 0]),
                    _ => Some([t as u8; 3]),
                };
            }
        }
        ColorType::Rgb => {
            for (row, o) in rows.zip(rgb.chunks_exact_mut(w * 3)) {
                if bits == 8 {
                    o.copy_from_slice(&row[..w * 3]);
                } else {
                    for (d, s) in o.iter_mut().zip(row.chunks_exact(2)) {
                        *d = s[0]; // RGB;16B keeps the most significant byte
                    }
                }
            }
            // The 16-bit key is masked to its low byte by convert_transparent; the png crate
            // already reduced a sub-16-bit key to those low bytes.
            key = match trns {
                Some(t) if bits == 16 && t.len() >= 6 => Some([t[1], t[3], t[5]]),
                Some(t) if bits < 16 && t.len() >= 3 => Some([t[0], t[1], t[2]]),
                _ => None,
            };
        }
        ColorType::Indexed => {
            let pal = info.palette.as_deref().ok_or_else(|| bad("PNG: palette image without PLTE"))?;
            let color = |i: usize| -> [u8; 3] { pal.get(3 * i..3 * i + 3).map(|c| [c[0], c[1], c[2]]).unwrap_or([0, 0, 0]) };
            for (row, o) in rows.zip(rgb.chunks_exact_mut(w * 3)) {
                for (x, p) in o.chunks_exact_mut(3).enumerate() {
                    p.copy_from_slice(&color(sample(row, x, bits) as usize));
                }
            }
            // Pillow keeps a key only for "^\xff*\x00\xff*$" (one fully transparent entry, others
            // opaque); any other tRNS is an alpha table, and convert("RGB") drops it.
            if let Some(t) = trns {
                let zeros = t.iter().filter(|&&a| a == 0).count();
                if zeros == 1 && t.iter().all(|&a| a == 0 || a == 255) {
                    key = Some(color(t.iter().position(|&a| a == 0).unwrap_or(0)));
                }
            }
        }
        ColorType::GrayscaleAlpha => {
            let step = if bits == 16 { 4 } else { 2 };
            for (row, o) in rows.zip(rgb.chunks_exact_mut(w * 3)) {
                for (p, s) in o.chunks_exact_mut(3).zip(row.chunks_exact(step)) {
                    p.fill(s[0]);
                }
            }
        }
        ColorType::Rgba => {
            let step = if bits == 16 { 2 } else { 1 };
            for (row, o) in rows.zip(rgb.chunks_exact_mut(w * 3)) {
                for (p, s) in o.chunks_exact_mut(3).zip(row.chunks_exact(4 * step)) {
                    p[0] = s[0];
                    p[1] = s[step];
                    p[2] = s[2 * step];
                }
            }
        }
    }

    let exif = info.exif_metadata.as_deref().map(|chunk| [b"Exif\0\0".as_slice(), chunk].concat());
    let mut meta = Meta { exif, xmp: None };
    for t in &info.utf8_text {
        if t.keyword == "XML:com.adobe.xmp" {
            if let Ok(s) = t.get_text() {
                meta.xmp = Some(s.into_bytes());
            }
        }
    }
    if meta.exif.is_none() {
        // ImageMagick's "Raw profile type exif" text chunk: lines 3.. are hex.
        let raw = info
            .uncompressed_latin1_text
            .iter()
            .find(|t| t.keyword == "Raw profile type exif")
            .map(|t| t.text.clone())
            .or_else(|| {
                info.compressed_latin1_text.iter().find(|t| t.keyword == "Raw profile type exif").and_then(|t| t.get_text().ok())
            });
        if let Some(s) = raw {
            let hex: String = s.split('\n').skip(3).collect();
            meta.exif = hex_decode(&hex);
        }
    }
    Ok(Decoded { width, height, rgb, key, meta })
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if s.len() & 1 == 1 {
        return None;
    }
    s.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()).collect()
}

// ------------------------------------------------------------------------------------------------
// GIF

/// Pillow `GifImageFile._is_palette_needed`: a palette that is the identity grey ramp is dropped
/// (the image is then mode "L" with the raw index as grey value).
fn gif_palette_needed(p: &[u8]) -> bool {
    p.chunks(3).enumerate().any(|(i, c)| c.len() < 3 || c.iter().any(|&v| v as usize != i))
}

fn decode_gif(bytes: &[u8]) -> Result<Decoded> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::Indexed);
    opts.set_memory_limit(gif::MemoryLimit::Bytes(std::num::NonZeroU64::new(MAX_DECODER_BYTES).expect("non-zero")));
    let mut dec = opts.read_info(Cursor::new(bytes)).map_err(|e| bad(format!("GIF: {e}")))?;
    let (sw, sh) = (dec.width() as u32, dec.height() as u32);
    let global = dec.global_palette().map(<[u8]>::to_vec);
    // Check the frame geometry before its pixels are decoded.
    let (left, top, fw, fh) = {
        let f = dec.next_frame_info().map_err(|e| bad(format!("GIF: {e}")))?.ok_or_else(|| bad("GIF: no image"))?;
        (f.left as u32, f.top as u32, f.width as u32, f.height as u32)
    };
    // Pillow grows the canvas to hold the first frame.
    let (width, height) = (sw.max(left + fw), sh.max(top + fh));
    check_dims(width, height)?;
    let mut idx = vec![0u8; dec.buffer_size()];
    dec.read_into_buffer(&mut idx).map_err(|e| bad(format!("GIF: {e}")))?;
    let frame = dec.current_frame_info().ok_or_else(|| bad("GIF: no image"))?;
    let palette = frame.palette.as_deref().map(<[u8]>::to_vec).or(global).filter(|p| gif_palette_needed(p));
    let color = |i: u8| -> [u8; 3] {
        match &palette {
            Some(p) => p.get(3 * i as usize..3 * i as usize + 3).map(|c| [c[0], c[1], c[2]]).unwrap_or([0; 3]),
            None => [i; 3],
        }
    };
    let transparent = frame.transparent;
    // Outside the frame: the transparency index when there is one, else index 0.
    let bg = color(transparent.unwrap_or(0));
    let (w, h) = (width as usize, height as usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for _ in 0..w * h {
        rgb.extend_from_slice(&bg);
    }
    let (l, t, fw, fh) = (left as usize, top as usize, fw as usize, fh as usize);
    for y in 0..fh {
        for x in 0..fw {
            let o = ((t + y) * w + l + x) * 3;
            rgb[o..o + 3].copy_from_slice(&color(idx[y * fw + x]));
        }
    }
    let key = transparent.map(color);
    Ok(Decoded { width, height, rgb, key, meta: Meta::default() })
}

// ------------------------------------------------------------------------------------------------
// JPEG

/// Pillow's pixels and EXIF / XMP through `jpeg::decode_jpeg`; JPEG processes it does not
/// implement go to the `image` crate (not bit-exact, and Pillow may not read them at all).
fn decode_jpeg(bytes: &[u8]) -> Result<Decoded> {
    match jpeg::decode_jpeg(bytes, MAX_SIDE, MAX_PIXELS) {
        Ok(d) => {
            let rgb = match d.pixels {
                JpegPixels::Rgb(v) => v,
                JpegPixels::Gray(v) => {
                    let mut rgb = Vec::with_capacity(v.len() * 3);
                    for g in v {
                        rgb.extend_from_slice(&[g, g, g]);
                    }
                    rgb
                }
            };
            let meta = Meta { exif: d.exif, xmp: d.xmp };
            Ok(Decoded { width: d.width, height: d.height, rgb, key: None, meta })
        }
        Err(JpegError::Unsupported(what)) => {
            log::debug!("JPEG: {what}, decoding with the image crate");
            check_jpeg_complete(bytes)?;
            decode_generic(bytes, image::ImageFormat::Jpeg)
        }
        Err(JpegError::TooLarge { width, height }) => {
            check_dims(width, height)?;
            Err(bad(format!("JPEG: {width}x{height} image is too large")))
        }
        Err(e) => Err(bad(e)),
    }
}

// ------------------------------------------------------------------------------------------------
// WebP / BMP (and unusual JPEG) through the image crate

/// zune-jpeg pads a truncated JPEG with grey and succeeds; Pillow (libjpeg-turbo, without
/// `LOAD_TRUNCATED_IMAGES`) raises "image file is truncated" whenever the data ends before the EOI
/// marker, even by one byte. Walk the marker segments to the first SOS, then require an EOI after
/// it (0xFF 0xD9 cannot occur inside entropy-coded data, where 0xFF is stuffed).
fn check_jpeg_complete(bytes: &[u8]) -> Result<()> {
    let truncated = || bad("JPEG: image file is truncated");
    let mut i = 2; // after SOI
    loop {
        // Skip to a marker (fill bytes 0xFF allowed).
        while bytes.get(i) == Some(&0xff) && bytes.get(i + 1) == Some(&0xff) {
            i += 1;
        }
        let (Some(&0xff), Some(&m)) = (bytes.get(i), bytes.get(i + 1)) else {
            return Err(truncated());
        };
        i += 2;
        match m {
            0xd8 | 0x01 | 0xd0..=0xd7 => continue,
            0xd9 => return Err(truncated()), // EOI before any scan
            _ => {}
        }
        let len = match bytes.get(i..i + 2) {
            Some(l) => u16::from_be_bytes([l[0], l[1]]) as usize,
            None => return Err(truncated()),
        };
        if m == 0xda {
            let scan = bytes.get(i + len..).ok_or_else(truncated)?;
            return if scan.windows(2).any(|w| w == [0xff, 0xd9]) { Ok(()) } else { Err(truncated()) };
        }
        i += len;
    }
}

/// libwebp (Pillow) refuses a file shorter than its RIFF header says; image-webp decodes the
/// prefix. Mirror Pillow.
fn check_webp_complete(bytes: &[u8]) -> Result<()> {
    let size = bytes.get(4..8).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64);
    match size {
        Some(n) if bytes.len() as u64 >= n + 8 => Ok(()),
        _ => Err(bad("WebP: image file is truncated")),
    }
}

fn decode_generic(bytes: &[u8], format: image::ImageFormat) -> Result<Decoded> {
    use image::ImageDecoder;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODER_BYTES);
    reader.limits(limits);
    let mut dec = reader.into_decoder().map_err(|e| bad(format!("{format:?}: {e}")))?;
    let (width, height) = dec.dimensions();
    check_dims(width, height)?;
    let meta = Meta { exif: dec.exif_metadata().ok().flatten(), xmp: dec.xmp_metadata().ok().flatten() };
    let img = image::DynamicImage::from_decoder(dec).map_err(|e| bad(format!("{format:?}: {e}")))?;
    use image::DynamicImage as D;
    let rgb = match img {
        D::ImageRgb8(b) => b.into_raw(),
        D::ImageLuma8(b) => b.into_raw().iter().flat_map(|&v| [v, v, v]).collect(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
        D::ImageRgba8(b) => b.into_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        other => other.to_rgb8().into_raw(),
    };
    Ok(Decoded { width, height, rgb, key: None, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiff(le: bool, typ: u16, value: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let p16 = |v: &mut Vec<u8>, x: u16| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
        let p32 = |v: &mut Vec<u8>, x: u32| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
        v.extend(if le { *b"II" } else { *b"MM" });
        p16(&mut v, 42);
        p32(&mut v, 8);
        p16(&mut v, 1);
        p16(&mut v, 0x0112);
        p16(&mut v, typ);
        p32(&mut v, 1);
        if typ == 3 {
            p16(&mut v, value as u16);
            p16(&mut v, 0);
        } else {
            p32(&mut v, value);
        }
        p32(&mut v, 0);
        v
    }

    #[test]
    fn exif_orientation_parses_both_byte_orders() {
        assert_eq!(exif_orientation(&tiff(true, 3, 6)), Some(6));
        assert_eq!(exif_orientation(&tiff(false, 3, 8)), Some(8));
        let mut pre = b"Exif\0\0".to_vec();
        pre.extend(tiff(false, 4, 3));
        assert_eq!(exif_orientation(&pre), Some(3));
        let twice = [b"Exif\0\0".as_slice(), &pre].concat();
        assert_eq!(exif_orientation(&twice), Some(3));
        let thrice = [b"Exif\0\0".as_slice(), &twice].concat();
        assert_eq!(exif_orientation(&thrice), None);
        // Pillow's other accepted headers: reversed magic numbers, and "MM\0+" read as classic.
        for (magic, le, want) in [([0u8, 42], true, Some(6)), ([42, 0], false, Some(6)), ([0, 43], false, Some(6))] {
            let mut t = tiff(le, 3, 6);
            t[2..4].copy_from_slice(&magic);
            assert_eq!(exif_orientation(&t), want, "{magic:?}");
        }
        let mut big = tiff(true, 3, 6);
        big[2..4].copy_from_slice(&[43, 0]);
        assert_eq!(exif_orientation(&big), None);
        assert_eq!(exif_orientation(b"garbage"), None);
        assert_eq!(exif_orientation(&tiff(true, 3, 6)[..12]), None);
    }

    #[test]
    fn xmp_orientation_follows_pillow_pattern() {
        assert_eq!(xmp_orientation(br#"<x tiff:Orientation="6"/>"#), Some(6));
        assert_eq!(xmp_orientation(b"<tiff:Orientation>3</tiff:Orientation>"), Some(3));
        assert_eq!(xmp_orientation(b"tiff:Orientation=6 tiff:Orientation>8"), Some(8));
        assert_eq!(xmp_orientation(b"nothing"), None);
    }

    #[test]
    fn orientation_geometry() {
        // 3x2 image with distinct pixels 0..6 (stored in the R channel).
        let img = RgbImage::new(3, 2, (0..6u8).flat_map(|i| [i, 0, 0]).collect()).unwrap();
        let r = |o| {
            let t = apply_orientation(img.clone(), o);
            (t.width, t.height, t.data.chunks(3).map(|p| p[0]).collect::<Vec<_>>())
        };
        assert_eq!(r(1), (3, 2, vec![0, 1, 2, 3, 4, 5]));
        assert_eq!(r(2), (3, 2, vec![2, 1, 0, 5, 4, 3]));
        assert_eq!(r(3), (3, 2, vec![5, 4, 3, 2, 1, 0]));
        assert_eq!(r(4), (3, 2, vec![3, 4, 5, 0, 1, 2]));
        assert_eq!(r(5), (2, 3, vec![0, 3, 1, 4, 2, 5]));
        assert_eq!(r(6), (2, 3, vec![3, 0, 4, 1, 5, 2]));
        assert_eq!(r(7), (2, 3, vec![5, 2, 4, 1, 3, 0]));
        assert_eq!(r(8), (2, 3, vec![2, 5, 1, 4, 0, 3]));
    }

    #[test]
    fn rgb_image_new_validates() {
        assert!(RgbImage::new(2, 2, vec![0; 12]).is_ok());
        assert!(matches!(RgbImage::new(0, 2, vec![]), Err(Error::InvalidImage(_))));
        assert!(matches!(RgbImage::new(2, 2, vec![0; 11]), Err(Error::InvalidImage(_))));
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        assert!(matches!(decode_image(&[]), Err(Error::InvalidImage(_))));
        assert!(matches!(decode_image(b"definitely not an image"), Err(Error::InvalidImage(_))));
        // PNG signature followed by nothing.
        assert!(matches!(decode_image(b"\x89PNG\r\n\x1a\n"), Err(Error::InvalidImage(_))));
        // JPEG SOI only.
        assert!(matches!(decode_image(&[0xff, 0xd8, 0xff]), Err(Error::InvalidImage(_))));
        assert!(matches!(decode_image(b"GIF89a"), Err(Error::InvalidImage(_))));
        assert!(matches!(decode_image(b"RIFF\0\0\0\0WEBPVP8 "), Err(Error::InvalidImage(_))));
        assert!(matches!(decode_image(b"BM\0\0"), Err(Error::InvalidImage(_))));
        assert!(matches!(load_image(Path::new("/nonexistent/x.png")), Err(Error::InvalidImage(_))));
    }

    /// GIF frames: only the first is decoded (what Pillow's `open` shows); the file past it is
    /// never parsed, so a million frames cost no more than one and a broken tail is no error.
    #[test]
    fn gif_frames_after_the_first_are_never_read() {
        let mut gif_bytes = Vec::new();
        {
            let mut enc = gif::Encoder::new(&mut gif_bytes, 2, 1, &[0, 0, 0, 255, 0, 0, 0, 0, 255]).unwrap();
            enc.write_frame(&gif::Frame { width: 2, height: 1, buffer: vec![1, 2].into(), ..Default::default() }).unwrap();
        }
        let first = decode_image(&gif_bytes).unwrap();
        assert_eq!((first.width, first.height, first.data.clone()), (2, 1, vec![255, 0, 0, 0, 0, 255]));
        // Drop the trailer; append a frame declaring 65535x65535 pixels with garbage LZW data.
        gif_bytes.pop();
        gif_bytes.extend([0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 8, 0xff]);
        gif_bytes.extend(std::iter::repeat_n(0xab, 255));
        let with_tail = decode_image(&gif_bytes).unwrap();
        assert_eq!((with_tail.width, with_tail.height, with_tail.data), (first.width, first.height, first.data));
    }

    #[test]
    fn only_regular_files_are_read() {
        // A folder, and devices whose reads never end (or block): refused before any read.
        let folder = std::env::temp_dir();
        assert!(matches!(load_image(&folder), Err(Error::InvalidImage(ref s)) if s.contains("not a regular file")));
        #[cfg(unix)]
        for dev in ["/dev/zero", "/dev/urandom"] {
            if Path::new(dev).exists() {
                let r = load_image(Path::new(dev));
                assert!(matches!(r, Err(Error::InvalidImage(ref s)) if s.contains("not a regular file")), "{dev}: {r:?}");
            }
        }
    }

    #[test]
    fn dimension_caps() {
        assert!(check_dims(8192, 7812).is_ok());
        assert!(check_dims(8193, 1).is_err());
        assert!(check_dims(1, 8193).is_err());
        assert!(check_dims(8192, 8192).is_err()); // 67 MP
        assert!(check_dims(0, 5).is_err());
    }
}
