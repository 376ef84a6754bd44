//! Image preprocessing, bit-exact with transformers' PIL image processor for SmolVLM / Idefics3.
//!
//! [`decode_image`] / [`load_image`] reproduce `transformers.image_utils.load_image` (Pillow open,
//! EXIF transpose, `convert("RGB")`) followed by the processor's `convert_to_rgb`;
//! [`resize_lanczos`] is Pillow's fixed-point LANCZOS; [`preprocess()`] chains the three resizes,
//! the tiling and the rescale/normalize steps into the model's `pixel_values`.
//!
//! Reference: transformers 5.23 `SmolVLMImageProcessorPil` with Pillow 13.0.0 (Pillow 13 changed
//! the LANCZOS pass order for shapes whose height shrinks a lot; older Pillow differs there).
//! Every step is bit-exact for PNG, GIF, BMP and WebP input; JPEG pixels come from zune-jpeg,
//! which differs from Pillow's libjpeg-turbo by a few levels on some pixels (IDCT, chroma
//! upsampling and YCbCr rounding), so JPEG input is close but not bit-exact.

pub mod camera;
pub mod image;
pub mod preprocess;
pub mod resize;

pub use self::image::{decode_image, load_image, RgbImage};
pub use self::preprocess::{preprocess, ProcessedImage};
pub use self::resize::resize_lanczos;
