//! `ImageInput`: an image decoded (or converted from camera pixels) as soon as it is created, so
//! that bad input fails at once and borrowed pixel buffers are never kept.

use crate::error::SmolVlmError;
use smolvlm::RgbImage;
use smolvlm::{frame_to_rgb, Frame, PackedFormat, Plane, Rotation, YuvRange};
use std::sync::Arc;

/// Layout of a single-buffer raw frame passed to [`ImageInput::from_pixels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PixelFormat {
    /// 4 bytes per pixel: R, G, B, A (Android `Bitmap` ARGB_8888 memory, CameraX `RGBA_8888`).
    Rgba8888,
    /// 4 bytes per pixel: B, G, R, A (Apple `kCVPixelFormatType_32BGRA`).
    Bgra8888,
    /// 3 bytes per pixel: R, G, B.
    Rgb888,
    /// YUV 4:2:0, Y plane then interleaved V,U (Android camera1 `ImageFormat.NV21`), full range.
    Nv21,
    /// YUV 4:2:0, Y plane then interleaved U,V (NV12), full range.
    Nv12,
}

/// Quantisation of YUV samples (both use the BT.601 matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum YuvColorRange {
    /// JFIF full range (0–255): what Android cameras produce. The default.
    Full,
    /// Video range (Y 16–235): Apple's `…VideoRange` formats and video decoders.
    Limited,
}

impl From<YuvColorRange> for YuvRange {
    fn from(r: YuvColorRange) -> Self {
        match r {
            YuvColorRange::Full => YuvRange::Full,
            YuvColorRange::Limited => YuvRange::Limited,
        }
    }
}

/// An image ready to be asked about: decoded from a file or encoded bytes (JPEG, PNG, WebP, GIF,
/// BMP; EXIF orientation applied), or converted from raw camera pixels. Immutable and
/// thread-safe; one input can be used in several questions and sessions.
#[derive(Debug, uniffi::Object)]
pub struct ImageInput {
    pub(crate) image: Arc<RgbImage>,
}

fn rotation(degrees: i32) -> Result<Rotation, SmolVlmError> {
    Ok(Rotation::from_degrees(degrees)?)
}

fn stride(v: u32, what: &str) -> Result<usize, SmolVlmError> {
    if v == 0 {
        return Err(SmolVlmError::invalid_argument(format!("{what} must be at least 1")));
    }
    Ok(v as usize)
}

#[uniffi::export]
impl ImageInput {
    /// Decodes an encoded image (JPEG, PNG, WebP, GIF, BMP). Throws `InvalidImage` if the bytes
    /// are not a supported image.
    #[uniffi::constructor]
    pub fn from_encoded(bytes: &[u8]) -> Result<Arc<Self>, SmolVlmError> {
        Ok(Arc::new(ImageInput { image: Arc::new(smolvlm::decode_image(bytes)?) }))
    }

    /// Reads and decodes an image file. Throws `InvalidImage` if the file is missing, unreadable
    /// or not a supported image.
    #[uniffi::constructor]
    pub fn from_file(path: String) -> Result<Arc<Self>, SmolVlmError> {
        Ok(Arc::new(ImageInput { image: Arc::new(smolvlm::load_image(std::path::Path::new(&path))?) }))
    }

    /// Converts one buffer of raw pixels. `row_stride` is the bytes from one row to the next
    /// (0: tightly packed); for NV21/NV12 it applies to the Y and the chroma rows alike and the
    /// chroma starts at `row_stride * height`. `pixel_stride` is the bytes from one pixel to the
    /// next for packed formats (0: 4 for RGBA/BGRA, 3 for RGB; ignored for NV21/NV12).
    /// `rotation_degrees` (0, 90, 180, 270) is the clockwise rotation that makes the frame
    /// upright, e.g. CameraX's `imageInfo.rotationDegrees`. The bytes are read during the call
    /// only (no copy is kept).
    #[uniffi::constructor]
    pub fn from_pixels(
        data: &[u8],
        format: PixelFormat,
        width: u32,
        height: u32,
        row_stride: u32,
        pixel_stride: u32,
        rotation_degrees: i32,
    ) -> Result<Arc<Self>, SmolVlmError> {
        let rot = rotation(rotation_degrees)?;
        let packed = |f: PackedFormat| -> Result<Frame<'_>, SmolVlmError> {
            let ps = if pixel_stride == 0 { f.bytes_per_pixel() } else { pixel_stride as usize };
            let rs = if row_stride == 0 { ps * width as usize } else { row_stride as usize };
            Ok(Frame::Packed { format: f, plane: Plane::new(data, rs, ps) })
        };
        let frame = match format {
            PixelFormat::Rgba8888 => packed(PackedFormat::Rgba8888)?,
            PixelFormat::Bgra8888 => packed(PackedFormat::Bgra8888)?,
            PixelFormat::Rgb888 => packed(PackedFormat::Rgb888)?,
            PixelFormat::Nv21 => Frame::nv21(data, width, height, row_stride as usize)?,
            PixelFormat::Nv12 => Frame::nv12(data, width, height, row_stride as usize)?,
        };
        Ok(Arc::new(ImageInput { image: Arc::new(frame_to_rgb(&frame, width, height, rot)?) }))
    }

    /// Converts a three-plane YUV 4:2:0 frame (Android `ImageFormat.YUV_420_888`, as CameraX's
    /// `ImageProxy.planes` hands it over): pass each plane's buffer with its `rowStride` and
    /// `pixelStride` (U and V share theirs). `range` is usually `Full` for camera frames.
    #[uniffi::constructor]
    #[allow(clippy::too_many_arguments)]
    pub fn from_yuv420(
        y: &[u8],
        u: &[u8],
        v: &[u8],
        width: u32,
        height: u32,
        y_row_stride: u32,
        uv_row_stride: u32,
        uv_pixel_stride: u32,
        range: YuvColorRange,
        rotation_degrees: i32,
    ) -> Result<Arc<Self>, SmolVlmError> {
        let rot = rotation(rotation_degrees)?;
        let (yr, ur, up) = (
            stride(y_row_stride, "y_row_stride")?,
            stride(uv_row_stride, "uv_row_stride")?,
            stride(uv_pixel_stride, "uv_pixel_stride")?,
        );
        let frame =
            Frame::Yuv420 { y: Plane::new(y, yr, 1), u: Plane::new(u, ur, up), v: Plane::new(v, ur, up), range: range.into() };
        Ok(Arc::new(ImageInput { image: Arc::new(frame_to_rgb(&frame, width, height, rot)?) }))
    }

    /// Width in pixels, after rotation.
    pub fn width(&self) -> u32 {
        self.image.width
    }

    /// Height in pixels, after rotation.
    pub fn height(&self) -> u32 {
        self.image.height
    }

    /// The pixels the model will see, before its own resizing: `width * height * 3` bytes, rows
    /// top to bottom, R G B per pixel (for previews and tests).
    pub fn rgb_bytes(&self) -> Vec<u8> {
        self.image.data.clone()
    }
}
