//! smolvlm: on-device SmolVLM inference in plain Rust on candle.
//!
//! Load a checkpoint in the Hugging Face layout with [`Engine::load`], open a [`Session`], push
//! [`Message`]s (text and images) and pull the answer with [`Session::reply`] /
//! [`Reply::next_piece`], or get it whole with [`Session::generate`]. Preprocessing, prompt
//! layout and the network reproduce transformers' reference implementation exactly.
//!
//! Images come from files or bytes ([`load_image`], [`decode_image`]) or from camera frames
//! ([`frame_to_rgb`]); [`resolve_model`] finds a checkpoint in the Hugging Face cache.
//!
//! The modules marked hidden (`model`, `gguf`, `processor`) are public for this crate's own tests
//! and benchmarks, not for applications: their items may change between releases.

mod chat;
mod checkpoint;
pub mod config;
mod engine;
mod error;
mod generation;
#[doc(hidden)]
pub mod gguf;
mod hub;
mod kernels;
#[doc(hidden)]
pub mod model;
#[doc(hidden)]
pub mod processor;
mod prompt;
mod session;

pub use chat::{load_messages, parse_messages, Content, Message, Role};
pub use engine::{set_num_threads, Backend, CancelToken, Engine, EngineOptions, ImagePreset, LoadStage};
pub use error::{Error, Result};
pub use generation::{GenerationOptions, TokenLogprob};
pub use gguf::is_gguf;
pub use hub::resolve_model;
pub use kernels::quantized_kernels;
pub use model::WeightFormat;
pub use processor::camera::{frame_to_rgb, Frame, PackedFormat, Plane, Rotation, YuvRange};
pub use processor::image::{decode_image, load_image, RgbImage};
pub use session::{Answer, FinishReason, Reply, Session, Stats};
