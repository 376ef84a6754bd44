//! Small fused CPU kernels that work in place on freshly computed f32 tensors (matmul outputs),
//! saving a full-size allocation and pass each: bias add, bias add + tanh-GELU, and the attention
//! softmax with its scale and causal mask. Other devices or dtypes fall back to plain candle ops.
//! A matrix–vector kernel serves the one-token decode steps, which gemm runs on one thread.
//! Work is split over rayon's global pool (shared with candle).

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
    p = p * r + 0.5; // Cephes: 5.000_000_1e-1, which is 0.5 in f32
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

/// `y ← y + bias`, then tanh-GELU when `gelu`, in place, row by row.
pub(crate) struct BiasAct<'a> {
    pub(crate) bias: &'a [f32],
    pub(crate) gelu: bool,
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
pub(crate) struct BiasResidual<'a> {
    pub(crate) bias: &'a [f32],
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

/// `[1, k] · [n, k]ᵀ -> [1, n]`: one dot product per weight row, rows split over threads.
pub(crate) struct MatVec;

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

/// Softmax over the last dimension, computed in f32 and cast back.
pub(crate) fn softmax_f32(x: &Tensor) -> Result<Tensor> {
    let dt = x.dtype();
    if dt == DType::F32 {
        candle_nn::ops::softmax_last_dim(x)
    } else {
        candle_nn::ops::softmax_last_dim(&x.to_dtype(DType::F32)?)?.to_dtype(dt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let (got, want) =
                (got.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want.flatten_all().unwrap().to_vec1::<f32>().unwrap());
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

    /// The one-pass LayerNorm and the fused attention softmax (scale, causal mask) equal the
    /// op-by-op versions.
    #[test]
    fn norm_and_softmax_match_plain_ops() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (300, 256), &dev).unwrap();
        // one-pass LayerNorm against the op-by-op formula
        let (g, b) = (Tensor::randn(1f32, 0.2, 256, &dev).unwrap(), Tensor::randn(0f32, 0.2, 256, &dev).unwrap());
        let (gv, bv): (Vec<f32>, Vec<f32>) = (g.to_vec1().unwrap(), b.to_vec1().unwrap());
        let fused = x.apply_op1_no_bwd(&LayerNormRows { weight: &gv, bias: &bv, eps: 1e-6 }).unwrap();
        let mean = x.mean_keepdim(D::Minus1).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let want = xc
            .broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&g)
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
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
