//! The compute layer: how the network's arithmetic runs on a phone's CPU, apart from what the
//! network is. Quantized weight storage and its products ([`qmatrix`], over the per-instruction-
//! set dot products of [`qkernels`] and the 16-row tiles of [`qtiles`]), the memory the weights
//! live in ([`weight_memory`]), the decode step's thread pool ([`spin_pool`]) and attention over
//! the key/value cache ([`decode_attention`]), and fused passes over candle tensors with their
//! vectorised helpers: exp, softmax, LayerNorm, bias and activation ([`ops`]).
//!
//! It depends on candle and nothing else of this crate's: no model, engine, processor, prompt or
//! chat module (checked by `tools/module_deps.py`).

pub(crate) mod decode_attention;
pub(crate) mod ops;
pub(crate) mod qkernels;
pub(crate) mod qmatrix;
pub(crate) mod qtiles;
pub(crate) mod spin_pool;
pub(crate) mod weight_memory;

pub use qmatrix::quantized_kernels;

use candle_core::quantized::GgmlDType;
use weight_memory::Memory;

/// How a dense weight matrix is stored once loaded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Kept f32.
    F32,
    /// Stored f16.
    F16,
    /// Quantized to this block type, the bytes held in this memory.
    Quant(GgmlDType, Memory),
}
