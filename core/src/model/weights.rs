//! Where the weights come from (safetensors files read tensor by tensor, a safetensors
//! [`VarBuilder`], or llama.cpp GGUF files) and how the weight matrices are kept in memory
//! ([`WeightFormat`]).
//!
//! The model code asks a [`Loader`] for tensors by their Hugging Face names
//! (`model.text_model.layers.3.self_attn.q_proj.weight`, …); the GGUF source translates those
//! names to llama.cpp's (`blk.3.attn_q.weight`, …), see [`crate::gguf`].

use super::layers::{Embedding, Linear};
use super::safetensors_files::SafetensorsFiles;
use crate::gguf::GgufModel;
use crate::kernels::qmatrix::QMatrix;
use crate::kernels::weight_memory::Memory;
use crate::kernels::Target;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// How the weight matrices (every linear layer of the vision encoder, connector and decoder,
/// `lm_head` included, plus the token embedding) are stored in memory. Norms, biases, the patch
/// and position embeddings always stay f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// f32: the reference precision (logits within 1e-4 of transformers). Default.
    #[default]
    F32,
    /// f16 storage (bf16 files are converted); activations are rounded to f16 for each matmul,
    /// as candle's CPU f16 gemm computes `f16 × f16`.
    F16,
    /// 8-bit blocks of 32 (`Q8_0`, one f16 scale per block): ~3.8× smaller than f32.
    Q8_0,
    /// 4-bit k-quants (`Q4_K`, super-blocks of 256) for matrices whose input width is a multiple
    /// of 256, `Q8_0` for the others; the token embedding and `lm_head` are always `Q8_0`.
    Q4K,
    /// Picks by model size: f32 below 100M parameters (test-sized models: speed is not at
    /// stake and the result stays exact), `Q8_0` up to 1.5B (SmolVLM-256M/500M), `Q4K` above
    /// (SmolVLM 2.2B). Tensors that a GGUF file stores already quantized are always used as stored.
    Auto,
}

impl WeightFormat {
    /// Parses a command-line spelling: `none`/`f32`, `f16`, `q8_0`/`q8`, `q4k`/`q4_k`, `auto`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" | "f32" => Self::F32,
            "f16" => Self::F16,
            "q8_0" | "q8" => Self::Q8_0,
            "q4k" | "q4_k" => Self::Q4K,
            "auto" => Self::Auto,
            _ => return None,
        })
    }

    /// The concrete format for a model of `params` parameters (only `Auto` depends on it).
    pub fn resolve(self, params: usize) -> Self {
        match self {
            Self::Auto if params < 100_000_000 => Self::F32,
            Self::Auto if params <= 1_500_000_000 => Self::Q8_0,
            Self::Auto => Self::Q4K,
            f => f,
        }
    }

    /// The GGML block type used for a matrix with `in_dim` columns, or None to keep it dense.
    pub(crate) fn ggml(self, in_dim: usize, embedding_or_head: bool) -> Option<GgmlDType> {
        let q8 = in_dim.is_multiple_of(32).then_some(GgmlDType::Q8_0);
        match self {
            Self::F32 | Self::F16 | Self::Auto => None,
            Self::Q8_0 => q8,
            Self::Q4K if embedding_or_head => q8,
            Self::Q4K => in_dim.is_multiple_of(256).then_some(GgmlDType::Q4K).or(q8),
        }
    }
}

/// Where tensors are read from.
#[derive(Clone)]
pub(crate) enum Source<'a> {
    /// Safetensors files read one tensor at a time (Hugging Face names), placed on the device as
    /// f32; matrices to be quantized are converted a few rows at a time.
    Files(&'a SafetensorsFiles, Device),
    /// Safetensors (or any VarBuilder backend), Hugging Face names, converted to f32 on read.
    Safetensors(VarBuilder<'a>),
    /// llama.cpp GGUF files (text, and optionally the mmproj vision file).
    Gguf(&'a GgufModel),
}

/// A view of the weights under a name prefix, with the storage format to apply.
#[derive(Clone)]
pub(crate) struct Loader<'a> {
    src: Source<'a>,
    prefix: String,
    format: WeightFormat,
}

impl<'a> Loader<'a> {
    /// A loader at the root of `src`; `format` must already be resolved (not `Auto`).
    pub(crate) fn new(src: Source<'a>, format: WeightFormat) -> Self {
        Self { src, prefix: String::new(), format }
    }

    /// The loader for names under `prefix.` (like [`VarBuilder::pp`]).
    pub(crate) fn pp(&self, s: impl ToString) -> Self {
        let s = s.to_string();
        let prefix = if self.prefix.is_empty() { s } else { format!("{}.{s}", self.prefix) };
        Self { src: self.src.clone(), prefix, format: self.format }
    }

    fn full(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether the tensor `name` exists (under the prefix).
    pub(crate) fn contains(&self, name: &str) -> bool {
        let full = self.full(name);
        match &self.src {
            Source::Files(f, _) => f.contains(&full),
            Source::Safetensors(vb) => vb.contains_tensor(&full),
            Source::Gguf(g) => g.contains(&full),
        }
    }

    /// The f32 tensor `name`, checked to have `shape`.
    pub(crate) fn tensor(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        let shape = shape.into();
        match &self.src {
            Source::Files(f, device) => f.tensor_f32(&self.full(name), &shape, device),
            Source::Safetensors(vb) => vb.get(shape, &self.full(name))?.to_dtype(DType::F32),
            Source::Gguf(g) => {
                let full = self.full(name);
                // The directory's shape first: a mis-shaped tensor is neither read nor widened.
                if let Some(dims) = g.dims(&full) {
                    if dims != shape.dims() {
                        candle_core::bail!("{full} has shape {dims:?}, expected {shape:?}")
                    }
                }
                let t = g.qtensor(&full)?.dequantize(&Device::Cpu)?;
                if t.shape() != &shape {
                    candle_core::bail!("{full} has shape {:?}, expected {shape:?}", t.dims())
                }
                Ok(t)
            }
        }
    }

    /// The weight matrix `weight` `[out, in]`, checked for shape: quantized tensors of a GGUF
    /// file as stored, a matrix of safetensors files that `target` quantizes already quantized,
    /// otherwise dense f32 (for the caller to convert to `target`).
    fn matrix(&self, out_dim: usize, in_dim: usize, target: Target) -> Result<MatrixData> {
        match &self.src {
            Source::Files(f, _) => match target {
                Target::Quant(dt, memory) => {
                    let full = self.full("weight");
                    let q = f.quantized(&full, out_dim, in_dim, dt)?;
                    Ok(MatrixData::Quant(Arc::new(QMatrix::from_qtensor(&q, memory).map_err(|e| named(&full, e))?)))
                }
                Target::F32 | Target::F16 => Ok(MatrixData::Dense(self.tensor((out_dim, in_dim), "weight")?)),
            },
            Source::Safetensors(_) => Ok(MatrixData::Dense(self.tensor((out_dim, in_dim), "weight")?)),
            Source::Gguf(g) => {
                let full = self.full("weight");
                if let Some(dims) = g.dims(&full) {
                    if dims != [out_dim, in_dim] {
                        candle_core::bail!("{full} has shape {dims:?}, expected [{out_dim}, {in_dim}]")
                    }
                }
                let q = g.qtensor(&full)?;
                if q.shape().dims() != [out_dim, in_dim] {
                    candle_core::bail!("{full} has shape {:?}, expected [{out_dim}, {in_dim}]", q.shape().dims())
                }
                match q.dtype() {
                    GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => Ok(MatrixData::Dense(q.dequantize(&Device::Cpu)?)),
                    _ => Ok(MatrixData::Quant(Arc::new(QMatrix::from_qtensor(&q, self.memory()).map_err(|e| named(&full, e))?))),
                }
            }
        }
    }

    /// A linear layer from `weight` `[out, in]` and, when `bias`, `bias` `[out]`, stored in the
    /// loader's format (the dense copy is dropped once quantized).
    /// Quantized layers of the vision encoder and connector quantize their activations in one
    /// 8-bit level; the decoder's in two (its outlier channels need them; see `qkernels::XRows`).
    pub(crate) fn linear(&self, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
        let b = if bias { Some(self.tensor(out_dim, "bias")?) } else { None };
        let target = self.dense_target(in_dim, false);
        let lin = match self.matrix(out_dim, in_dim, target)? {
            MatrixData::Quant(q) => Linear::quantized(q, b),
            MatrixData::Dense(w) => Linear::with_format(w, b, target),
        }?;
        let vision = ["model.vision_model", "model.connector"].iter().any(|p| self.prefix.starts_with(p));
        Ok(if vision { lin.single_level_activations() } else { lin })
    }

    /// The token embedding `weight` `[vocab, d]`.
    pub(crate) fn embedding(&self, vocab: usize, d: usize) -> Result<Embedding> {
        let target = self.dense_target(d, true);
        match self.matrix(vocab, d, target)? {
            MatrixData::Quant(q) => Ok(Embedding::Quant(q)),
            MatrixData::Dense(w) => match target {
                Target::F32 => Ok(Embedding::Dense(w)),
                Target::F16 => Ok(Embedding::Dense(w.to_dtype(DType::F16)?)),
                Target::Quant(dt, memory) => Ok(Embedding::Quant(Arc::new(QMatrix::quantize(&w, dt, memory)?))),
            },
        }
    }

    /// `lm_head` `weight` `[vocab, d]` (untied).
    pub(crate) fn head(&self, vocab: usize, d: usize) -> Result<Linear> {
        let target = self.dense_target(d, true);
        match self.matrix(vocab, d, target)? {
            MatrixData::Quant(q) => Linear::quantized(q, None),
            MatrixData::Dense(w) => Linear::with_format(w, None, target),
        }
    }

    /// Whether the names are the vision encoder's or the connector's.
    fn is_vision(&self) -> bool {
        ["model.vision_model", "model.connector"].iter().any(|p| self.prefix.starts_with(p))
    }

    /// Where quantized matrices keep their bytes: the decoder's (streamed once per decode step)
    /// packed for huge pages, the vision encoder's on their own (read by batched products; the
    /// fused Q/K/V copies free theirs).
    fn memory(&self) -> Memory {
        if self.is_vision() {
            Memory::Own
        } else {
            Memory::Packed
        }
    }

    fn dense_target(&self, in_dim: usize, embedding_or_head: bool) -> Target {
        match self.format.ggml(in_dim, embedding_or_head) {
            Some(dt) => Target::Quant(dt, self.memory()),
            None if self.format == WeightFormat::F32 => Target::F32,
            // A quantized format on a matrix whose width does not fit its blocks keeps f16.
            None => Target::F16,
        }
    }
}

enum MatrixData {
    Dense(Tensor),
    Quant(Arc<QMatrix>),
}

/// `e`, saying which tensor it is about.
fn named(tensor: &str, e: candle_core::Error) -> candle_core::Error {
    candle_core::Error::Msg(format!("tensor {tensor}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_resolves() {
        assert_eq!(WeightFormat::parse("none"), Some(WeightFormat::F32));
        assert_eq!(WeightFormat::parse("Q8_0"), Some(WeightFormat::Q8_0));
        assert_eq!(WeightFormat::parse("q4k"), Some(WeightFormat::Q4K));
        assert_eq!(WeightFormat::parse("q3"), None);
        assert_eq!(WeightFormat::Auto.resolve(3_000_000), WeightFormat::F32);
        assert_eq!(WeightFormat::Auto.resolve(256_000_000), WeightFormat::Q8_0);
        assert_eq!(WeightFormat::Auto.resolve(2_200_000_000), WeightFormat::Q4K);
        assert_eq!(WeightFormat::F16.resolve(2_200_000_000), WeightFormat::F16);
        // Q4K falls back to Q8_0 where the width is not a multiple of 256, and for the head.
        assert_eq!(WeightFormat::Q4K.ggml(768, false), Some(GgmlDType::Q4K));
        assert_eq!(WeightFormat::Q4K.ggml(576, false), Some(GgmlDType::Q8_0));
        assert_eq!(WeightFormat::Q4K.ggml(768, true), Some(GgmlDType::Q8_0));
        assert_eq!(WeightFormat::Q8_0.ggml(20, false), None);
    }
}
