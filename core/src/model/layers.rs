//! The layers the networks are built from: a linear layer (weights in f32, f16 or quantized
//! blocks, with its bias and what follows it fused into one pass) and the token embedding.

use crate::kernels::ops::{fast_path, BiasAct, BiasResidual, MatVec};
use crate::kernels::qmatrix::QMatrix;
use crate::kernels::Target;
use candle_core::{DType, Device, Result, Tensor};
use std::sync::Arc;

/// What follows a linear layer's product, fused into its bias pass where possible.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    /// Nothing (the bias only).
    None,
    /// tanh-GELU.
    Gelu,
    /// Adding a tensor of the output's shape (a residual connection).
    Add(&'a Tensor),
}

/// How a linear layer's weight matrix is held.
enum Weight {
    /// `[out, in]` f32: the reference path (unchanged arithmetic).
    F32(Tensor),
    /// `[out, in]` f16: activations are rounded to f16 for the matmul, the result widened back.
    F16(Tensor),
    /// GGML blocks (Q8_0, Q4_K, Q4_1 from a GGUF file, …) run by this crate's kernels.
    Quant(Arc<QMatrix>),
}

/// A linear layer `y = x·Wᵀ (+ b)` (optionally followed by tanh-GELU) over any leading dims,
/// with the weight in f32, f16 or quantized blocks; the bias stays f32.
pub(crate) struct Linear {
    weight: Weight,
    /// Rows of the weight (output width).
    out_dim: usize,
    bias: Option<Tensor>,
    /// The bias as a host vector for the in-place CPU kernel.
    bias_host: Option<Vec<f32>>,
}

impl Linear {
    /// Wraps loaded f32 weights.
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        let out_dim = weight.dim(0)?;
        Self::build(Weight::F32(weight), out_dim, bias)
    }

    fn build(weight: Weight, out_dim: usize, bias: Option<Tensor>) -> Result<Self> {
        let bias_host = match &bias {
            Some(b) if matches!(b.device(), Device::Cpu) && b.dtype() == DType::F32 => Some(b.to_vec1::<f32>()?),
            _ => None,
        };
        Ok(Self { weight, out_dim, bias, bias_host })
    }

    /// An f32 weight `[out, in]` stored as `target` (the f32 tensor is dropped when converted).
    pub(crate) fn with_format(weight: Tensor, bias: Option<Tensor>, target: Target) -> Result<Self> {
        let out_dim = weight.dim(0)?;
        let weight = match target {
            Target::F32 => Weight::F32(weight),
            Target::F16 => Weight::F16(weight.to_dtype(DType::F16)?),
            Target::Quant(dt, memory) => Weight::Quant(Arc::new(QMatrix::quantize(&weight, dt, memory)?)),
        };
        Self::build(weight, out_dim, bias)
    }

    /// A quantized weight `[out, in]` as read from a file.
    pub(crate) fn quantized(weight: Arc<QMatrix>, bias: Option<Tensor>) -> Result<Self> {
        let out_dim = weight.rows();
        Self::build(Weight::Quant(weight), out_dim, bias)
    }

    /// Whether the weight is quantized.
    pub(crate) fn is_quantized(&self) -> bool {
        matches!(self.weight, Weight::Quant(_))
    }

    /// With quantized weights: quantize the activations in one 8-bit level instead of two
    /// ([`QMatrix::single_level_activations`]); other weights are unchanged.
    pub(crate) fn single_level_activations(self) -> Self {
        match self.weight {
            Weight::Quant(q) => {
                let q = Arc::try_unwrap(q).map(|m| Arc::new(m.single_level_activations())).unwrap_or_else(|q| q);
                Self { weight: Weight::Quant(q), ..self }
            }
            _ => self,
        }
    }

    /// `lm_head` tied to the token embedding: shares its storage.
    pub(crate) fn tied(emb: &Embedding) -> Result<Self> {
        match emb {
            Embedding::Dense(t) if t.dtype() == DType::F16 => Self::build(Weight::F16(t.clone()), t.dim(0)?, None),
            Embedding::Dense(t) => Self::new(t.clone(), None),
            Embedding::Quant(q) => Self::quantized(q.clone(), None),
        }
    }

    /// Loads `weight` `[out, in]` and, when `bias`, `bias` `[out]` from `vb`, in f32.
    #[allow(dead_code)]
    pub(crate) fn load(in_dim: usize, out_dim: usize, bias: bool, vb: candle_nn::VarBuilder) -> Result<Self> {
        let w = vb.get((out_dim, in_dim), "weight")?;
        let b = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Self::new(w, b)
    }

    /// `x` `[.., in]` -> `[.., out]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, Epilogue::None)
    }

    /// `gelu_pytorch_tanh(x·Wᵀ + b)`.
    pub(crate) fn forward_gelu(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, Epilogue::Gelu)
    }

    /// `residual + (x·Wᵀ + b)`, `residual` shaped like the output.
    pub(crate) fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.run(x, Epilogue::Add(residual))
    }

    /// The layers side by side as one (`[Σ out, in]`: one product, outputs concatenated), when
    /// their weights are stored alike (one dense dtype, or quantized matrices that
    /// [`QMatrix::concat`] joins) and all or none have a bias; None otherwise.
    pub(crate) fn concat(parts: &[&Linear]) -> Result<Option<Linear>> {
        let biases: Option<Vec<&Tensor>> = parts.iter().map(|l| l.bias.as_ref()).collect();
        if parts.is_empty() || (biases.is_none() && parts.iter().any(|l| l.bias.is_some())) {
            return Ok(None);
        }
        let dense: Option<Vec<&Tensor>> = parts
            .iter()
            .map(|l| match &l.weight {
                Weight::F32(w) | Weight::F16(w) => Some(w),
                Weight::Quant(_) => None,
            })
            .collect();
        let quant: Option<Vec<&QMatrix>> = parts
            .iter()
            .map(|l| match &l.weight {
                Weight::Quant(q) => Some(q.as_ref()),
                _ => None,
            })
            .collect();
        let weight = match (dense, quant) {
            (Some(ws), _) if ws.iter().all(|w| w.dtype() == ws[0].dtype()) => {
                let w = Tensor::cat(&ws, 0)?;
                if w.dtype() == DType::F16 {
                    Weight::F16(w)
                } else {
                    Weight::F32(w)
                }
            }
            (_, Some(qs)) => match QMatrix::concat(&qs) {
                Some(q) => Weight::Quant(Arc::new(q)),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        let out_dim = parts.iter().map(|l| l.out_dim).sum();
        let b = biases.map(|b| Tensor::cat(&b, 0)).transpose()?;
        Self::build(weight, out_dim, b).map(Some)
    }

    /// Bytes held by the weight matrix.
    #[allow(dead_code)]
    pub(crate) fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::F32(w) | Weight::F16(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Weight::Quant(q) => q.size_in_bytes(),
        }
    }

    /// `x·Wᵀ (+ b)` for one host row `x` (the decode step), without tensors when the weight is
    /// quantized.
    pub(crate) fn forward_row(&self, x: &[f32]) -> Result<Vec<f32>> {
        match &self.weight {
            Weight::Quant(q) if self.bias.is_none() || self.bias_host.is_some() => {
                let mut y = q.matmul(x, 1)?;
                if let Some(b) = &self.bias_host {
                    y.iter_mut().zip(b).for_each(|(y, b)| *y += b);
                }
                Ok(y)
            }
            _ => self.forward(&Tensor::from_slice(x, (1, x.len()), &Device::Cpu)?)?.flatten_all()?.to_vec1(),
        }
    }

    /// [`Self::forward_row`] of several layers over the same row: bias-free quantized layers share
    /// one activation quantization and one pass over the thread pool (Q, K, V; gate and up).
    pub(crate) fn forward_rows<const N: usize>(layers: [&Linear; N], x: &[f32]) -> Result<[Vec<f32>; N]> {
        let quant: Option<Vec<&QMatrix>> = layers
            .iter()
            .map(|l| match (&l.weight, &l.bias) {
                (Weight::Quant(q), None) => Some(q.as_ref()),
                _ => None,
            })
            .collect();
        let outs = match quant {
            Some(mats) => QMatrix::matvec_many(&mats, x)?,
            None => layers.iter().map(|l| l.forward_row(x)).collect::<Result<Vec<_>>>()?,
        };
        Ok(outs.try_into().expect("one output per layer"))
    }

    /// `f(a·x, b·x)` for one host row (`f` updates its first argument in place): bias-free
    /// quantized layers of one shape compute both products and `f` in one pass over the thread
    /// pool ([`QMatrix::matvec_pair`]); others run [`Self::forward_rows`], then `f`.
    pub(crate) fn forward_gated(a: &Linear, b: &Linear, x: &[f32], f: &(dyn Fn(&mut [f32], &[f32]) + Sync)) -> Result<Vec<f32>> {
        if let (Weight::Quant(qa), None, Weight::Quant(qb), None) = (&a.weight, &a.bias, &b.weight, &b.bias) {
            if let Ok(y) = QMatrix::matvec_pair(qa, qb, x, f) {
                return Ok(y);
            }
        }
        let [mut ya, yb] = Self::forward_rows([a, b], x)?;
        f(&mut ya, &yb);
        Ok(ya)
    }

    fn run(&self, x: &Tensor, epilogue: Epilogue) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / k.max(1);
        let x2 = x.reshape((rows, k))?;
        let y = match &self.weight {
            Weight::F32(w) => {
                if rows == 1 && fast_path(&x2) && fast_path(w) {
                    x2.apply_op2_no_bwd(w, &MatVec)?
                } else {
                    x2.matmul(&w.t()?)?
                }
            }
            Weight::F16(w) => {
                let in_dtype = x2.dtype();
                x2.to_dtype(DType::F16)?.matmul(&w.t()?)?.to_dtype(in_dtype)?
            }
            Weight::Quant(q) => {
                // The kernels run on the CPU; other devices hand their activations over.
                let (in_dtype, device) = (x2.dtype(), x2.device().clone());
                let x = x2.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.contiguous()?;
                x.apply_op1_no_bwd(q.as_ref())?.to_device(&device)?.to_dtype(in_dtype)?
            }
        };
        let mut out = dims;
        *out.last_mut().expect("rank >= 1") = self.out_dim;
        let y = y.reshape(out)?;
        match (epilogue, &self.bias_host) {
            (Epilogue::Add(r), Some(bias)) if fast_path(&y) && fast_path(r) && r.shape() == y.shape() => {
                y.inplace_op2(r, &BiasResidual { bias })?;
                Ok(y)
            }
            (Epilogue::None | Epilogue::Gelu, Some(bias)) if fast_path(&y) => {
                y.inplace_op1(&BiasAct { bias, gelu: matches!(epilogue, Epilogue::Gelu) })?;
                Ok(y)
            }
            _ => {
                let y = match &self.bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                };
                match epilogue {
                    Epilogue::None => Ok(y),
                    Epilogue::Gelu => y.gelu(),
                    Epilogue::Add(r) => r + y,
                }
            }
        }
    }
}

/// A token embedding table `[vocab, d]`: dense (f32 or f16) or quantized rows.
pub(crate) enum Embedding {
    /// f32 or f16 rows.
    Dense(Tensor),
    /// GGML blocks; looked-up rows are dequantized.
    Quant(Arc<QMatrix>),
}

impl Embedding {
    /// Rows `ids` as f32 `[t, d]`.
    pub(crate) fn lookup(&self, ids: &[u32]) -> Result<Tensor> {
        match self {
            Embedding::Dense(t) => {
                let idx = Tensor::from_slice(ids, ids.len(), &Device::Cpu)?;
                let rows = t.index_select(&idx.to_device(t.device())?, 0)?;
                if rows.dtype() == DType::F32 {
                    Ok(rows)
                } else {
                    rows.to_dtype(DType::F32)
                }
            }
            Embedding::Quant(q) => q.rows_f32(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::weight_memory::Memory;
    use candle_core::quantized::GgmlDType;

    /// Quantized and f16 layers compute `x · dequant(W)ᵀ + b` up to the rounding of the
    /// activations (Q8 blocks for the quantized kernels, f16 for the f16 one).
    #[test]
    fn stored_formats_match_their_dequantized_weights() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (96, 512), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.5, 96, &dev).unwrap();
        for rows in [1usize, 7] {
            let x = Tensor::randn(0f32, 1.0, (rows, 512), &dev).unwrap();
            for target in
                [Target::F16, Target::Quant(GgmlDType::Q8_0, Memory::Own), Target::Quant(GgmlDType::Q4K, Memory::Packed)]
            {
                let lin = Linear::with_format(w.clone(), Some(b.clone()), target).unwrap();
                let wd = match &lin.weight {
                    Weight::F16(t) => t.to_dtype(DType::F32).unwrap(),
                    Weight::Quant(q) => q.dequantize().unwrap(),
                    Weight::F32(_) => unreachable!(),
                };
                let want = x.matmul(&wd.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
                let got = lin.forward(&x).unwrap();
                let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                let d = (got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(d / scale < 0.02, "{target:?} rows={rows}: {d} vs scale {scale}");
                // and the stored weights are close to the original
                let dw = (wd - &w).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(dw > 0.0 && dw < 0.05, "{target:?}: weight error {dw}");
            }
        }
    }

    #[test]
    fn fused_passes_match_plain_ops() {
        let dev = Device::Cpu;
        // bias + gelu against candle's ops (tanh GELU), big enough to take the threaded path.
        let x = Tensor::randn(0f32, 2.0, (300, 256), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.1, (192, 256), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.5, 192, &dev).unwrap();
        let lin = Linear::new(w.clone(), Some(b.clone())).unwrap();
        let plain = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
        let d = (lin.forward(&x).unwrap() - &plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() == 0.0);
        // one row takes the matvec kernel
        let x1 = x.narrow(0, 7, 1).unwrap();
        let d = (lin.forward(&x1).unwrap() - plain.narrow(0, 7, 1).unwrap()).unwrap().abs().unwrap();
        assert!(d.max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-5);
        let big = Tensor::randn(0f32, 0.1, (5000, 999), &dev).unwrap();
        let xb = Tensor::randn(0f32, 1.0, (1, 999), &dev).unwrap();
        let got = Linear::new(big.clone(), None).unwrap().forward(&xb).unwrap();
        let want = xb.matmul(&big.t().unwrap()).unwrap();
        let d = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "{d}");
        let d = (lin.forward_gelu(&x).unwrap() - plain.gelu().unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6, "{d}");
        // bias + residual in one pass, bit for bit
        let r = Tensor::randn(0f32, 1.0, (300, 192), &dev).unwrap();
        let d = (lin.forward_add(&x, &r).unwrap() - (&r + &plain).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
        assert!(lin.forward_add(&x, &r.narrow(0, 0, 299).unwrap()).is_err(), "a residual of another shape is an error");
    }
}
