//! smolvlm: on-device SmolVLM inference in plain Rust on candle.
//!
//! Load a checkpoint in the Hugging Face layout with [`Engine::load`], open a [`Session`], push
//! [`Message`]s (text, images and [`Video`]s) and pull the answer with [`Session::reply`] /
//! [`Reply::next_piece`], or get it whole with [`Session::generate`]. Preprocessing, prompt
//! layout and the network reproduce transformers' reference implementation exactly.
//!
//! Images come from files or bytes ([`load_image`], [`decode_image`]) or from camera frames
//! ([`frame_to_rgb`]). With the `download` feature, [`download`] fetches a checkpoint from the
//! Hugging Face hub (resumable, verified, cancellable); [`catalog`] lists the known ones.
//!
//! The modules marked hidden (`model`, `gguf`, `processor`) are public for this crate's own tests
//! and benchmarks, not for applications: their items may change between releases.

mod catalog;
mod chat;
mod checkpoint;
pub mod config;
#[cfg(feature = "download")]
mod download;
mod engine;
mod error;
/// Entry points shared by the fuzz targets and their regression tests, not API.
#[doc(hidden)]
pub mod fuzz_targets;
mod generation;
#[doc(hidden)]
pub mod gguf;
mod image_cache;
mod kernels;
mod live;
mod memory;
#[doc(hidden)]
pub mod model;
#[doc(hidden)]
pub mod processor;
mod prompt;
mod session;
mod threads;

pub use catalog::{catalog, find_in_catalog, CatalogEntry, CheckpointFormat};
pub use chat::{load_messages, parse_messages, parse_video, Content, Message, Role, Video};
#[cfg(feature = "download")]
pub use download::{download, hub_cache_dir, Destination, DownloadProgress, DownloadRequest};
pub use engine::{
    set_num_threads, Backend, CancelToken, Engine, EngineOptions, ImagePreset, LoadStage, MAX_MEDIA_PER_CONVERSATION,
};
pub use error::{DownloadError, Error, Result};
pub use generation::{GenerationOptions, TokenLogprob};
pub use gguf::is_gguf;
pub use kernels::quantized_kernels;
pub use live::{FrameConverter, FrameInfo, LiveCounters, LiveEvent, LiveOptions, LiveSession, LiveStats, LiveWorker};
pub use memory::MemoryEstimate;
pub use model::WeightFormat;
pub use processor::camera::{frame_to_rgb, mirror, Frame, PackedFormat, Plane, Rotation, YuvRange};
pub use processor::image::{decode_image, load_image, RgbImage};
pub use session::{Answer, FinishReason, Reply, Session, Stats};
pub use threads::performance_cores;
