//! `ImageInput`: an image decoded (or converted from camera pixels) as soon as it is created, so
//! that bad input fails at once and borrowed pixel buffers are never kept; or, for the live camera
//! loop, a copy of a raw frame converted only when it is used (`from_pixels_deferred`,
//! `from_yuv420_deferred`).

use crate::error::SmolVlmError;
use crate::ints::{non_negative, saturating_i32};
use smolvlm::RgbImage;
use smolvlm::{frame_to_rgb, mirror, Frame, PackedFormat, Plane, Rotation, YuvRange};
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
///
/// The `…_deferred` constructors instead keep a copy of the raw pixels and convert them each
/// time the image is used: a live captioner converts only the frames it takes (most pushed
/// frames are dropped unconverted), and a frame whose bytes do not match its size is reported
/// then (a `FrameError` event; `InvalidImage` from `ChatSession.ask`).
#[derive(Debug, uniffi::Object)]
pub struct ImageInput {
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// Decoded or converted when created.
    Ready(Arc<RgbImage>),
    /// A copy of a raw frame, converted (and then mirrored left to right if the flag is set)
    /// when used.
    Raw(Arc<RawFrame>, bool),
}

/// An owned raw frame and how to read it.
#[derive(Debug)]
enum RawFrame {
    Single {
        data: Vec<u8>,
        format: PixelFormat,
        width: u32,
        height: u32,
        row_stride: u32,
        pixel_stride: u32,
        rotation: Rotation,
    },
    Yuv420 {
        y: Vec<u8>,
        u: Vec<u8>,
        v: Vec<u8>,
        width: u32,
        height: u32,
        strides: Yuv420Strides,
        range: YuvColorRange,
        rotation: Rotation,
    },
}

/// Row and pixel strides of a three-plane YUV 4:2:0 frame (all at least 1).
#[derive(Debug, Clone, Copy)]
struct Yuv420Strides {
    y_row: usize,
    uv_row: usize,
    uv_pixel: usize,
}

impl Yuv420Strides {
    fn new(y_row: i32, uv_row: i32, uv_pixel: i32) -> Result<Self, SmolVlmError> {
        Ok(Yuv420Strides {
            y_row: stride(y_row, "y_row_stride")?,
            uv_row: stride(uv_row, "uv_row_stride")?,
            uv_pixel: stride(uv_pixel, "uv_pixel_stride")?,
        })
    }
}

fn rotation(degrees: i32) -> Result<Rotation, SmolVlmError> {
    Ok(Rotation::from_degrees(degrees)?)
}

fn stride(v: i32, what: &str) -> Result<usize, SmolVlmError> {
    if v < 1 {
        return Err(SmolVlmError::invalid_argument(format!("{what} must be at least 1, got {v}")));
    }
    Ok(v as usize)
}

/// Width and height, checked not negative (whether they match the bytes is checked when the
/// frame is converted).
fn frame_size(width: i32, height: i32) -> Result<(u32, u32), SmolVlmError> {
    Ok((non_negative(width, "width")?, non_negative(height, "height")?))
}

/// Row and pixel strides of a single-buffer frame, checked not negative (0: the natural size).
fn packed_strides(row_stride: i32, pixel_stride: i32) -> Result<(u32, u32), SmolVlmError> {
    Ok((non_negative(row_stride, "row_stride")?, non_negative(pixel_stride, "pixel_stride")?))
}

/// Converts one buffer of raw pixels (see [`ImageInput::from_pixels`]).
fn convert_pixels(
    data: &[u8],
    format: PixelFormat,
    width: u32,
    height: u32,
    row_stride: u32,
    pixel_stride: u32,
    rot: Rotation,
) -> smolvlm::Result<RgbImage> {
    let packed = |f: PackedFormat| -> Frame<'_> {
        let ps = if pixel_stride == 0 { f.bytes_per_pixel() } else { pixel_stride as usize };
        let rs = if row_stride == 0 { ps * width as usize } else { row_stride as usize };
        Frame::Packed { format: f, plane: Plane::new(data, rs, ps) }
    };
    let frame = match format {
        PixelFormat::Rgba8888 => packed(PackedFormat::Rgba8888),
        PixelFormat::Bgra8888 => packed(PackedFormat::Bgra8888),
        PixelFormat::Rgb888 => packed(PackedFormat::Rgb888),
        PixelFormat::Nv21 => Frame::nv21(data, width, height, row_stride as usize)?,
        PixelFormat::Nv12 => Frame::nv12(data, width, height, row_stride as usize)?,
    };
    frame_to_rgb(&frame, width, height, rot)
}

/// Converts a three-plane YUV 4:2:0 frame (see [`ImageInput::from_yuv420`]).
#[allow(clippy::too_many_arguments)]
fn convert_yuv420(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    width: u32,
    height: u32,
    s: Yuv420Strides,
    range: YuvColorRange,
    rot: Rotation,
) -> smolvlm::Result<RgbImage> {
    let frame = Frame::Yuv420 {
        y: Plane::new(y, s.y_row, 1),
        u: Plane::new(u, s.uv_row, s.uv_pixel),
        v: Plane::new(v, s.uv_row, s.uv_pixel),
        range: range.into(),
    };
    frame_to_rgb(&frame, width, height, rot)
}

impl ImageInput {
    fn ready(image: RgbImage) -> Arc<Self> {
        Arc::new(ImageInput { source: Source::Ready(Arc::new(image)) })
    }

    fn raw(frame: RawFrame) -> Arc<Self> {
        Arc::new(ImageInput { source: Source::Raw(Arc::new(frame), false) })
    }

    /// The pixels: shared when decoded at creation, converted now for a deferred frame.
    pub(crate) fn rgb(&self) -> smolvlm::Result<Arc<RgbImage>> {
        match &self.source {
            Source::Ready(image) => Ok(image.clone()),
            Source::Raw(raw, mirrored) => raw.convert(*mirrored).map(Arc::new),
        }
    }

    /// The pixels as an owned image (what a live session's frame converter returns).
    pub(crate) fn to_rgb(&self) -> smolvlm::Result<RgbImage> {
        match &self.source {
            Source::Ready(image) => Ok(RgbImage::clone(image)),
            Source::Raw(raw, mirrored) => raw.convert(*mirrored),
        }
    }
}

impl RawFrame {
    /// The frame as RGB, upright, then mirrored left to right if `mirrored`.
    fn convert(&self, mirrored: bool) -> smolvlm::Result<RgbImage> {
        let image = match self {
            RawFrame::Single { data, format, width, height, row_stride, pixel_stride, rotation } => {
                convert_pixels(data, *format, *width, *height, *row_stride, *pixel_stride, *rotation)
            }
            RawFrame::Yuv420 { y, u, v, width, height, strides, range, rotation } => {
                convert_yuv420(y, u, v, *width, *height, *strides, *range, *rotation)
            }
        }?;
        Ok(if mirrored { mirror(image) } else { image })
    }

    /// Width and height after rotation.
    fn size(&self) -> (u32, u32) {
        let (w, h, rot) = match self {
            RawFrame::Single { width, height, rotation, .. } | RawFrame::Yuv420 { width, height, rotation, .. } => {
                (*width, *height, *rotation)
            }
        };
        match rot {
            Rotation::R90 | Rotation::R270 => (h, w),
            Rotation::R0 | Rotation::R180 => (w, h),
        }
    }
}

#[uniffi::export]
impl ImageInput {
    /// Decodes an encoded image (JPEG, PNG, WebP, GIF, BMP). Throws `InvalidImage` if the bytes
    /// are not a supported image.
    #[uniffi::constructor]
    pub fn from_encoded(bytes: &[u8]) -> Result<Arc<Self>, SmolVlmError> {
        Ok(Self::ready(smolvlm::decode_image(bytes)?))
    }

    /// Reads and decodes an image file. Throws `InvalidImage` if the file is missing, unreadable
    /// or not a supported image.
    #[uniffi::constructor]
    pub fn from_file(path: String) -> Result<Arc<Self>, SmolVlmError> {
        Ok(Self::ready(smolvlm::load_image(std::path::Path::new(&path))?))
    }

    /// Converts one buffer of raw pixels. `row_stride` is the bytes from one row to the next
    /// (0: tightly packed); for NV21/NV12 it applies to the Y and the chroma rows alike and the
    /// chroma starts at `row_stride * height`. `pixel_stride` is the bytes from one pixel to the
    /// next for packed formats (0: 4 for RGBA/BGRA, 3 for RGB; ignored for NV21/NV12).
    /// `rotation_degrees` (0, 90, 180, 270) is the clockwise rotation that makes the frame
    /// upright, e.g. CameraX's `imageInfo.rotationDegrees`. The bytes are read during the call
    /// only (no copy is kept). A negative size or stride is `InvalidArgument`.
    #[uniffi::constructor]
    pub fn from_pixels(
        data: &[u8],
        format: PixelFormat,
        width: i32,
        height: i32,
        row_stride: i32,
        pixel_stride: i32,
        rotation_degrees: i32,
    ) -> Result<Arc<Self>, SmolVlmError> {
        let rot = rotation(rotation_degrees)?;
        let (width, height) = frame_size(width, height)?;
        let (row_stride, pixel_stride) = packed_strides(row_stride, pixel_stride)?;
        Ok(Self::ready(convert_pixels(data, format, width, height, row_stride, pixel_stride, rot)?))
    }

    /// Converts a three-plane YUV 4:2:0 frame (Android `ImageFormat.YUV_420_888`, as CameraX's
    /// `ImageProxy.planes` hands it over): pass each plane's buffer with its `rowStride` and
    /// `pixelStride` (U and V share theirs; all at least 1). `range` is usually `Full` for camera
    /// frames. A negative size or a stride below 1 is `InvalidArgument`.
    #[uniffi::constructor]
    #[allow(clippy::too_many_arguments)]
    pub fn from_yuv420(
        y: &[u8],
        u: &[u8],
        v: &[u8],
        width: i32,
        height: i32,
        y_row_stride: i32,
        uv_row_stride: i32,
        uv_pixel_stride: i32,
        range: YuvColorRange,
        rotation_degrees: i32,
    ) -> Result<Arc<Self>, SmolVlmError> {
        let rot = rotation(rotation_degrees)?;
        let (width, height) = frame_size(width, height)?;
        let strides = Yuv420Strides::new(y_row_stride, uv_row_stride, uv_pixel_stride)?;
        Ok(Self::ready(convert_yuv420(y, u, v, width, height, strides, range, rot)?))
    }

    /// [`ImageInput::from_pixels`] without the conversion, for `LiveCaptioner.push_frame`: copies
    /// the bytes (one memcpy) and converts them each time the image is used, so a live captioner
    /// converts only the frames it takes. Only the rotation and the signs of the size and
    /// strides are checked now (`InvalidArgument`); bytes that do not match the size and strides
    /// are reported when the image is used: a `FrameError` event in a live captioner,
    /// `InvalidImage` from `ChatSession.ask`.
    #[uniffi::constructor]
    pub fn from_pixels_deferred(
        data: &[u8],
        format: PixelFormat,
        width: i32,
        height: i32,
        row_stride: i32,
        pixel_stride: i32,
        rotation_degrees: i32,
    ) -> Result<Arc<Self>, SmolVlmError> {
        let rotation = rotation(rotation_degrees)?;
        let (width, height) = frame_size(width, height)?;
        let (row_stride, pixel_stride) = packed_strides(row_stride, pixel_stride)?;
        Ok(Self::raw(RawFrame::Single { data: data.to_vec(), format, width, height, row_stride, pixel_stride, rotation }))
    }

    /// [`ImageInput::from_yuv420`] without the conversion (see
    /// [`ImageInput::from_pixels_deferred`]): copies the three planes and converts them when the
    /// image is used. The rotation, the size (not negative) and the strides (at least 1) are
    /// checked now (`InvalidArgument`), plane sizes when the image is used.
    #[uniffi::constructor]
    #[allow(clippy::too_many_arguments)]
    pub fn from_yuv420_deferred(
        y: &[u8],
        u: &[u8],
        v: &[u8],
        width: i32,
        height: i32,
        y_row_stride: i32,
        uv_row_stride: i32,
        uv_pixel_stride: i32,
        range: YuvColorRange,
        rotation_degrees: i32,
    ) -> Result<Arc<Self>, SmolVlmError> {
        let rotation = rotation(rotation_degrees)?;
        let (width, height) = frame_size(width, height)?;
        let strides = Yuv420Strides::new(y_row_stride, uv_row_stride, uv_pixel_stride)?;
        let (y, u, v) = (y.to_vec(), u.to_vec(), v.to_vec());
        Ok(Self::raw(RawFrame::Yuv420 { y, u, v, width, height, strides, range, rotation }))
    }

    /// Width in pixels, after rotation.
    pub fn width(&self) -> i32 {
        saturating_i32(match &self.source {
            Source::Ready(image) => image.width,
            Source::Raw(raw, _) => raw.size().0,
        })
    }

    /// Height in pixels, after rotation.
    pub fn height(&self) -> i32 {
        saturating_i32(match &self.source {
            Source::Ready(image) => image.height,
            Source::Raw(raw, _) => raw.size().1,
        })
    }

    /// Whether this is a deferred frame (`from_pixels_deferred`, `from_yuv420_deferred`),
    /// converted each time it is used.
    pub fn is_deferred(&self) -> bool {
        matches!(self.source, Source::Raw(..))
    }

    /// This image mirrored left to right, after its rotation: for frames and photos that are
    /// mirror images of the scene (a front camera's mirrored output; EXIF's mirrored
    /// orientations), so that text reads the right way round. (Mirroring after a clockwise
    /// rotation by `r` equals mirroring before a rotation by `360 - r`.) A deferred frame stays
    /// deferred: it is mirrored each time it is converted. Mirroring twice gives the original.
    pub fn mirrored(&self) -> Arc<Self> {
        Arc::new(ImageInput {
            source: match &self.source {
                Source::Ready(image) => Source::Ready(Arc::new(mirror(RgbImage::clone(image)))),
                Source::Raw(raw, mirrored) => Source::Raw(raw.clone(), !mirrored),
            },
        })
    }

    /// The pixels the model will see, before its own resizing: `width * height * 3` bytes, rows
    /// top to bottom, R G B per pixel (for previews and tests). A deferred frame is converted
    /// for this call; one whose bytes do not match its size gives an empty array.
    pub fn rgb_bytes(&self) -> Vec<u8> {
        match &self.source {
            Source::Ready(image) => image.data.clone(),
            Source::Raw(raw, mirrored) => raw.convert(*mirrored).map(|i| i.data).unwrap_or_default(),
        }
    }
}
