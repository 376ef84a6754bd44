//! Image preprocessing, bit-exact with transformers' PIL image processor for SmolVLM / Idefics3.
//!
//! [`decode_image`] / [`load_image`] reproduce `transformers.image_utils.load_image` (Pillow open,
//! EXIF transpose, `convert("RGB")`) followed by the processor's `convert_to_rgb`;
//! [`resize_lanczos`] is Pillow's fixed-point LANCZOS; [`preprocess`] chains the three resizes,
//! the tiling and the rescale/normalize steps into the model's `pixel_values`.

pub mod image;
pub mod preprocess;
pub mod resize;

pub use self::image::{decode_image, load_image, RgbImage};
pub use self::preprocess::{preprocess, ProcessedImage};
pub use self::resize::resize_lanczos;
