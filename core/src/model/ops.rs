//! Small fused CPU kernels that work in place on freshly computed f32 tensors (matmul outputs),
//! saving a full-size allocation and pass each: bias add, bias add + tanh-GELU, and the attention
//! softmax with its scale and causal mask. Other devices or dtypes fall back to plain candle ops.
//! A matrix–vector kernel serves the one-token decode steps, which gemm runs on one thread.
//! Work is split over rayon's global pool (shared with candle).

use super::vision::softmax_f32;
use super::weights::Target;
use super::qmatrix::QMatrix;
use std::sync::Arc;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, InplaceOp1, InplaceOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// Below this much work (multiply-adds or elements) a kernel runs on the calling thread; no
/// parallel chunk gets less than this.
const PAR_MIN_WORK: usize = 1 << 14;

/// Runs `f(first_row_index, rows)` over `data` split in whole rows of `row` elements, on rayon's
/// pool (the one candle uses) when `rows · work_per_row` is large enough.
fn par_rows(data: &mut [f32], row: usize, work_per_row: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let row = row.max(1);
    let rows = data.len() / row;
    let nt = rayon::current_num_threads();
    if nt <= 1 || rows < 2 || rows * work_per_row < 2 * PAR_MIN_WORK {
        f(0, data);
        return;
    }
    let per = rows.div_ceil(nt * 4).max(PAR_MIN_WORK.div_ceil(work_per_row.max(1)));
    data.par_chunks_mut(per * row).enumerate().for_each(|(i, c)| f(i * per, c));
}

/// The contiguous f32 slice of a CPU storage, or None.
fn f32_slice<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Option<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Some(&mut v[a..b]),
        _ => None,
    }
}

/// Whether `x` is a contiguous f32 tensor on the CPU (what the fused kernels take).
pub(crate) fn fast_path(x: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.is_contiguous()
}

/// `e^x` in f32 without branches or calls, so loops over it vectorize (libm's `expf` is a call
/// per element): `x = n·ln2 + r` with `|r| ≤ ln2/2`, `e^r` by Cephes' degree-7 polynomial (within
/// 2 ulp of the exact value), `2^n` built in the exponent bits. Inputs are clamped to
/// `[-87.3, 88.7]`, where the result stays a normal f32.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with few mantissa bits so n·LN2_HI is exact
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // adding then subtracting 1.5·2^23 rounds to the nearest integer (|x·log2 e| < 2^22)
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.336_54, 88.722_83);
    // t = 1.5·2^23 + n exactly: n sits in the low mantissa bits, read back with integer ops (a
    // float-to-int cast would saturate, which x86 cannot do in vector registers)
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let er = p * r * r + r + 1.0;
    // n ∈ [-126, 128]: 2^n is applied as two factors, since 2^128 has no f32 exponent
    let n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let (n1, n2) = (n >> 1, n - (n >> 1));
    er * f32::from_bits(((n1 + 127) as u32) << 23) * f32::from_bits(((n2 + 127) as u32) << 23)
}

/// `gelu_pytorch_tanh(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, with tanh evaluated as
/// `1 − 2/(e^{2u} + 1)` through [`exp`] (absolute error ~1e-7, vectorizes).
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const K: f32 = 0.797_884_6; // sqrt(2/pi)
    let u = K * (x + 0.044715 * x * x * x);
    let t = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    0.5 * x * (1.0 + t)
}

struct BiasAct<'a> {
    bias: &'a [f32],
    gelu: bool,
}

impl InplaceOp1 for BiasAct<'_> {
    fn name(&self) -> &'static str {
        "bias-act"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let Some(data) = f32_slice(storage, layout) else { candle_core::bail!("bias-act: needs contiguous f32") };
        let n = self.bias.len();
        let (bias, gelu) = (self.bias, self.gelu);
        par_rows(data, n, n, |_, rows| {
            for row in rows.chunks_exact_mut(n) {
                if gelu {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v = gelu_tanh(*v + b));
                } else {
                    row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
                }
            }
        });
        Ok(())
    }
}

/// `y = (y + bias) + residual`, row by row: the output projections' bias and the residual
/// connection in one pass.
struct BiasResidual<'a> {
    bias: &'a [f32],
}

impl InplaceOp2 for BiasResidual<'_> {
    fn name(&self) -> &'static str {
        "bias-residual"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout, res: &CpuStorage, res_layout: &Layout) -> Result<()> {
        let r = match (res, res_layout.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) if res_layout.shape() == layout.shape() => &v[a..b],
            _ => candle_core::bail!("bias-residual: the residual must be contiguous f32 of the output's shape"),
        };
        let Some(data) = f32_slice(storage, layout) else { candle_core::bail!("bias-residual: needs contiguous f32") };
        let n = self.bias.len();
        let bias = self.bias;
        par_rows(data, n, n, |first, rows| {
            let r = &r[first * n..first * n + rows.len()];
            for (row, res) in rows.chunks_exact_mut(n).zip(r.chunks_exact(n)) {
                row.iter_mut().zip(bias).zip(res).for_each(|((v, b), r)| *v = (*v + b) + r);
            }
        });
        Ok(())
    }
}

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

/// Sum of `f(v)` over `v` in 8 lanes (vectorizes).
#[inline(always)]
fn sum8(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|x| f(*x)).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// LayerNorm over the last dimension of a contiguous f32 tensor, one row at a time (mean, then
/// the biased variance of the centred row, then `(x − mean)·rstd·weight + bias`), rows spread
/// over the threads: one pass and one allocation where the op-by-op version makes nine.
pub(crate) struct LayerNormRows<'a> {
    pub(crate) weight: &'a [f32],
    pub(crate) bias: &'a [f32],
    pub(crate) eps: f32,
}

impl CustomOp1 for LayerNormRows<'_> {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let n = self.weight.len();
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) if layout.dims().last() == Some(&n) && self.bias.len() == n => &v[a..b],
            _ => candle_core::bail!("layer-norm: needs contiguous f32 rows of {n}"),
        };
        let mut out = vec![0f32; x.len()];
        let (w, b, eps) = (self.weight, self.bias, self.eps);
        par_rows(&mut out, n, 4 * n, |first, rows| {
            for (ri, y) in rows.chunks_exact_mut(n).enumerate() {
                let x = &x[(first + ri) * n..(first + ri + 1) * n];
                let mean = sum8(x, |v| v) / n as f32;
                let var = sum8(x, |v| (v - mean) * (v - mean)) / n as f32;
                let rstd = 1.0 / (var + eps).sqrt();
                for (((y, x), w), b) in y.iter_mut().zip(x).zip(w).zip(b) {
                    *y = (x - mean) * rstd * w + b;
                }
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
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
                if w.dtype() == DType::F16 { Weight::F16(w) } else { Weight::F32(w) }
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
                if rows.dtype() == DType::F32 { Ok(rows) } else { rows.to_dtype(DType::F32) }
            }
            Embedding::Quant(q) => q.rows_f32(ids),
        }
    }
}

/// `[1, k] · [n, k]ᵀ -> [1, n]`: one dot product per weight row, rows split over threads.
struct MatVec;

/// Dot product with 16 independent accumulators (vectorizes; summation order like a blocked gemm),
/// summed pairwise at the end (four dependent vector adds instead of sixteen scalar ones: decode
/// attention calls this once per cached position and head).
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut w = 16;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0] + tail
}

impl CustomOp2 for MatVec {
    fn name(&self) -> &'static str {
        "matvec"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, w) = match (s1, l1.contiguous_offsets(), s2, l2.contiguous_offsets()) {
            (CpuStorage::F32(x), Some((a, b)), CpuStorage::F32(w), Some((c, d))) => (&x[a..b], &w[c..d]),
            _ => candle_core::bail!("matvec: needs contiguous f32"),
        };
        let (n, k) = l2.shape().dims2()?;
        if x.len() != k {
            candle_core::bail!("matvec: x has {} elements, weight is [{n}, {k}]", x.len())
        }
        let mut out = vec![0f32; n];
        par_rows(&mut out, 1, k, |first, o| {
            for (j, o) in o.iter_mut().enumerate() {
                let r = (first + j) * k;
                *o = dot(x, &w[r..r + k]);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from_dims(&[1, n])))
    }
}

struct AttnSoftmax {
    scale: f32,
    /// `(t, offset)`: row r is query position `offset + r % t`; later keys are masked.
    causal: Option<(usize, usize)>,
}

impl InplaceOp1 for AttnSoftmax {
    fn name(&self) -> &'static str {
        "attn-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let Some(data) = f32_slice(storage, layout) else { candle_core::bail!("attn-softmax: needs contiguous f32") };
        let l = layout.dims().last().copied().unwrap_or(0);
        if l == 0 {
            return Ok(());
        }
        let (scale, causal) = (self.scale, self.causal);
        par_rows(data, l, l, |first, rows| {
            for (ri, row) in rows.chunks_exact_mut(l).enumerate() {
                // number of visible keys
                let valid = match causal {
                    Some((t, offset)) => (offset + (first + ri) % t + 1).min(l),
                    None => l,
                };
                let (vis, masked) = row.split_at_mut(valid);
                softmax_scaled(vis, scale);
                masked.fill(0.0);
            }
        });
        Ok(())
    }
}

/// `softmax(row · scale)` in place (max subtracted first), in 8 lanes so every pass vectorizes.
pub(crate) fn softmax_scaled(row: &mut [f32], scale: f32) {
    let (_, sum) = exp_shifted(row, scale);
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `row[t] ← e^(row[t]·scale − m)` with `m` the largest `row[t]·scale`; returns `(m, Σ row[t])`.
pub(crate) fn exp_shifted(row: &mut [f32], scale: f32) -> (f32, f32) {
    const L: usize = 8;
    let mut lanes = [f32::NEG_INFINITY; L];
    let mut chunks = row.chunks_exact_mut(L);
    for c in &mut chunks {
        for i in 0..L {
            c[i] *= scale;
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let mut max = lanes.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    for v in chunks.into_remainder() {
        *v *= scale;
        max = max.max(*v);
    }
    let mut sums = [0f32; L];
    let mut chunks = row.chunks_exact_mut(L);
    for c in &mut chunks {
        for i in 0..L {
            c[i] = exp(c[i] - max);
            sums[i] += c[i];
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    (max, sum)
}

/// Bytes of attention scores computed at once: heads are taken in groups whose score matrices
/// together fit in this (at least one head per group).
const SCORES_BUDGET: usize = 8 << 20;

/// `softmax(q·kᵀ·scale (+ causal mask))·v` for `q` `[H, R, d]` and `k`, `v` `[H, L, d]`:
/// `[H, R, d]`. Heads are taken a group at a time, so only one group's `[R, L]` score matrices
/// exist at once (a 1024-patch tile: 4 MiB per head instead of 48 MiB for all twelve). Every
/// head's products are the same gemm calls that one batched matmul makes (candle multiplies a
/// batch one matrix at a time), so the result does not depend on the grouping. `causal` is as
/// for [`attn_softmax`] (`R` a multiple of `t`).
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, causal: Option<(usize, usize)>) -> Result<Tensor> {
    let (h, r, _) = q.dims3()?;
    let l = k.dim(1)?;
    let per_head = r * l * q.dtype().size_in_bytes();
    let group = (SCORES_BUDGET / per_head.max(1)).clamp(1, h.max(1));
    let run = |h0: usize, n: usize| -> Result<Tensor> {
        let (q, k, v) = (q.narrow(0, h0, n)?, k.narrow(0, h0, n)?, v.narrow(0, h0, n)?);
        attn_softmax(q.matmul(&k.t()?)?, scale, causal)?.matmul(&v)
    };
    if group >= h {
        return run(0, h);
    }
    let outs = (0..h).step_by(group).map(|h0| run(h0, group.min(h - h0))).collect::<Result<Vec<_>>>()?;
    Tensor::cat(&outs, 0)
}

/// `softmax(scores · scale + mask)` over the last dim, in place when possible. With
/// `causal = Some((t, offset))` the scores are `[.., R, offset + t]` where row `r` is query
/// position `offset + r % t`, and keys after the query are masked out.
pub(crate) fn attn_softmax(scores: Tensor, scale: f64, causal: Option<(usize, usize)>) -> Result<Tensor> {
    if fast_path(&scores) {
        scores.inplace_op1(&AttnSoftmax { scale: scale as f32, causal })?;
        return Ok(scores);
    }
    let s = (scores * scale)?;
    let s = match causal {
        None => s,
        Some((t, offset)) => {
            let (r, l) = (s.dim(D::Minus2)?, s.dim(D::Minus1)?);
            let mut m = vec![0f32; r * l];
            for (ri, row) in m.chunks_exact_mut(l).enumerate() {
                let valid = (offset + ri % t + 1).min(l);
                row[valid..].fill(f32::NEG_INFINITY);
            }
            let m = Tensor::from_vec(m, (r, l), s.device())?.to_dtype(s.dtype())?;
            s.broadcast_add(&m)?
        }
    };
    softmax_f32(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;
    use crate::model::weight_memory::Memory;

    /// Quantized and f16 layers compute `x · dequant(W)ᵀ + b` up to the rounding of the
    /// activations (Q8 blocks for the quantized kernels, f16 for the f16 one).
    #[test]
    fn stored_formats_match_their_dequantized_weights() {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (96, 512), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.5, 96, &dev).unwrap();
        for rows in [1usize, 7] {
            let x = Tensor::randn(0f32, 1.0, (rows, 512), &dev).unwrap();
            for target in [Target::F16, Target::Quant(GgmlDType::Q8_0, Memory::Own), Target::Quant(GgmlDType::Q4K, Memory::Packed)] {
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

    /// Attention taken a group of heads at a time is bit for bit the batched computation, with and
    /// without the causal mask (here 3 groups of one head: 1200² scores are 5.5 MiB per head).
    #[test]
    fn grouped_attention_equals_the_batched_one() {
        let dev = Device::Cpu;
        let (h, t, offset, d) = (3usize, 1200usize, 0usize, 64usize);
        let q = Tensor::randn(0f32, 1.0, (h, t, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (h, offset + t, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (h, offset + t, d), &dev).unwrap();
        assert!(t * (offset + t) * 4 > SCORES_BUDGET / 2, "one head per group");
        for causal in [None, Some((t / 2, offset + t / 2))] {
            let got = attention(&q, &k, &v, 0.125, causal).unwrap();
            let want = attn_softmax(q.matmul(&k.t().unwrap()).unwrap(), 0.125, causal).unwrap().matmul(&v).unwrap();
            let (got, want) = (got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            assert!(got == want, "{causal:?}");
        }
    }

    #[test]
    fn exp_is_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f32 / 200_000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1.2e-38 && exp(-1000.0) > 0.0 && exp(1000.0).is_finite());
    }

    #[test]
    fn kernels_match_plain_ops() {
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
        // one-pass LayerNorm against the op-by-op formula
        let (g, b) = (Tensor::randn(1f32, 0.2, 256, &dev).unwrap(), Tensor::randn(0f32, 0.2, 256, &dev).unwrap());
        let (gv, bv): (Vec<f32>, Vec<f32>) = (g.to_vec1().unwrap(), b.to_vec1().unwrap());
        let fused = x.apply_op1_no_bwd(&LayerNormRows { weight: &gv, bias: &bv, eps: 1e-6 }).unwrap();
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let want = xc.broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap()).unwrap().broadcast_mul(&g).unwrap().broadcast_add(&b).unwrap();
        let d = (fused - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-5, "layer norm: {d}");
        // softmax with scale and causal mask against the unfused version.
        let (t, offset, rep) = (37usize, 50usize, 3usize);
        let s = Tensor::randn(0f32, 3.0, (2, rep * t, offset + t), &dev).unwrap();
        let fused = attn_softmax(s.copy().unwrap(), 0.125, Some((t, offset))).unwrap();
        let unfused = {
            let mut m = vec![0f32; rep * t * (offset + t)];
            for r in 0..rep * t {
                for j in offset + r % t + 1..offset + t {
                    m[r * (offset + t) + j] = f32::NEG_INFINITY;
                }
            }
            let m = Tensor::from_vec(m, (rep * t, offset + t), &dev).unwrap();
            candle_nn::ops::softmax_last_dim(&(s * 0.125).unwrap().broadcast_add(&m).unwrap()).unwrap()
        };
        let d = (fused - unfused).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 1e-6, "{d}");
    }
}
