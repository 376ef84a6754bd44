//! smolvlm: on-device SmolVLM inference in plain Rust on candle.

pub mod config;
pub mod error;
pub mod model;
pub mod processor;

pub use error::{Error, Result};
