//! smolvlm: on-device SmolVLM inference in plain Rust on candle.
//!
//! Load a checkpoint in the Hugging Face layout with [`Engine::load`], open a [`Session`], push
//! [`Message`]s (text and images) and pull the answer with [`Session::reply`] /
//! [`Reply::next_piece`], or get it whole with [`Session::generate`]. Preprocessing, prompt
//! layout and the network reproduce transformers' reference implementation exactly.

pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod engine;
pub mod error;
pub mod generation;
pub mod gguf;
pub mod hub;
mod kernels;
pub mod model;
pub mod processor;
pub mod prompt;

pub use chat::{load_messages, parse_messages, Content, Message, Role};
pub use engine::{Answer, CancelToken, Engine, EngineOptions, FinishReason, Reply, Session, Stats};
pub use error::{Error, Result};
pub use generation::{GenerationOptions, TokenLogprob};
pub use hub::resolve_model;
pub use kernels::quantized_kernels;
pub use model::WeightFormat;
pub use processor::image::{decode_image, load_image, RgbImage};
