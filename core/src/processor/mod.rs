//! Image preprocessing, bit-exact with transformers' PIL image processor for SmolVLM / Idefics3.
//!
//! [`decode_image`] / [`load_image`] reproduce `transformers.image_utils.load_image` (Pillow open,
//! EXIF transpose, `convert("RGB")`) followed by the processor's `convert_to_rgb`;
//! [`resize_lanczos`] is Pillow's fixed-point LANCZOS; [`preprocess()`] chains the three resizes,
//! the tiling and the rescale/normalize steps into the model's `pixel_values`.
//!
//! Reference: transformers 5.23 `SmolVLMImageProcessorPil` with Pillow 13.0.0 (Pillow 13 changed
//! the LANCZOS pass order for shapes whose height shrinks a lot; older Pillow differs there).
//! Every step is bit-exact for PNG, GIF, BMP, WebP and JPEG input. JPEG is decoded by `jpeg`, a
//! port of what Pillow's libjpeg-turbo runs (ISLOW IDCT as its SIMD kernels compute it, fancy
//! upsampling, 16-bit YCbCr tables, progressive block smoothing, Pillow's CMYK conversion);
//! only arithmetic-coded, lossless, hierarchical and 12-bit JPEGs fall back to the `image` crate
//! and are not bit-exact.
//!
//! Video frames (`video.rs`) follow transformers' torchvision video processor instead: frame
//! sampling, torch's uint8 LANCZOS ([`resize::resize_lanczos_torch`]) twice, fused normalisation.

pub mod camera;
pub mod image;
mod jpeg;
pub mod preprocess;
pub mod resize;
pub mod video;

pub use self::image::{decode_image, load_image, RgbImage};
pub use self::preprocess::{preprocess, ProcessedImage};
pub use self::resize::resize_lanczos;
