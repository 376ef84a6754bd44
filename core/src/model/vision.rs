//! The SigLIP-style vision encoder (spec §4): patch embedding, learned position embedding,
//! pre-LN transformer layers and a final LayerNorm.

use super::attention::attention_rows;
use super::layers::Linear;
use super::weights::Loader;
use crate::config::VisionConfig;
use crate::kernels::ops::{attention, fast_path, LayerNormRows};
use candle_core::{DType, Device, Result, Tensor, D};

/// Patch embedding (a stride-P, kernel-P convolution, computed as one matmul) plus the learned
/// position embedding (identity position ids for full tiles, spec §4.2).
struct Embeddings {
    /// Convolution kernel flattened to `[D, 3·P·P]` (row-major over channel, ky, kx, as torch).
    patch_weight: Tensor,
    /// `[D]`.
    patch_bias: Tensor,
    /// `[N·N, D]`.
    position: Tensor,
    patch: usize,
    n: usize,
    channels: usize,
}

impl Embeddings {
    fn new(cfg: &VisionConfig, vb: Loader) -> Result<Self> {
        let (d, p, c) = (cfg.hidden_size, cfg.patch_size, cfg.num_channels);
        let n = cfg.image_size / p;
        let pvb = vb.pp("patch_embedding");
        let patch_weight = pvb.tensor((d, c, p, p), "weight")?.reshape((d, c * p * p))?;
        let patch_bias = pvb.tensor(d, "bias")?;
        let table = vb.pp("position_embedding").tensor((n * n, d), "weight")?;
        let ids = Tensor::from_vec(full_tile_position_ids(n), n * n, table.device())?;
        let position = table.index_select(&ids, 0)?;
        Ok(Self { patch_weight, patch_bias, position, patch: p, n, channels: c })
    }

    /// `[b, 3, M, M]` -> `[b, N·N, D]`.
    fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, _, _, _) = pixels.dims4()?;
        let (n, p, c) = (self.n, self.patch, self.channels);
        // "valid" convolution: pixels beyond N·P on either axis are never read.
        let px = pixels.narrow(2, 0, n * p)?.narrow(3, 0, n * p)?;
        // [b, c, N(h), P(ky), N(w), P(kx)] -> [b, N(h), N(w), c, P(ky), P(kx)]
        let patches =
            px.reshape((b, c, n, p, n, p))?.permute((0, 2, 4, 1, 3, 5))?.contiguous()?.reshape((b * n * n, c * p * p))?;
        let x = patches.matmul(&self.patch_weight.t()?)?.broadcast_add(&self.patch_bias)?;
        x.reshape((b, n * n, ()))?.broadcast_add(&self.position)
    }
}

/// Position ids of a tile whose patches are all valid, computed exactly as transformers 5 does
/// (f32 fractional coordinates bucketized against `torch.arange(1/N, 1, 1/N)`). This is the
/// identity `0..N²` for the published sizes; computing it keeps any other N exact too.
pub(crate) fn full_tile_position_ids(n: usize) -> Vec<u32> {
    // torch.arange(1/N, 1.0, 1/N) in f32 on CPU: length ceil((end-start)/step) in f64; the kernel
    // fills blocks of 8 lanes (two per iteration) as `f32(f32(start + step*i0) as f64 + k*step)`
    // and the remainder as `f32(start + step*i)`. (Matches torch 2.15 for every N < 200; the
    // plain `f32(start + step*i)` does not, e.g. N = 19.)
    let step = 1.0f64 / n as f64;
    let len = ((1.0 - step) / step).ceil().max(0.0) as usize;
    const LANES: usize = 8;
    let mut boundaries: Vec<f32> = Vec::with_capacity(len);
    let mut i = 0;
    while i + 2 * LANES <= len {
        for _ in 0..2 {
            let base = (step + step * i as f64) as f32;
            boundaries.extend((0..LANES).map(|k| (base as f64 + k as f64 * step) as f32));
            i += LANES;
        }
    }
    boundaries.extend((i..len).map(|j| (step + step * j as f64) as f32));
    // step_h = 1.0 / nb (f32), coords = f32(i) * step_h, clamped at f32(1 - 1e-6).
    let step_f = 1.0f32 / n as f32;
    let max = (1.0f64 - 1e-6) as f32;
    let bucket = |i: usize| -> u32 {
        let c = (i as f32 * step_f).min(max);
        boundaries.iter().filter(|&&b| b <= c).count() as u32
    };
    let b: Vec<u32> = (0..n).map(bucket).collect();
    let mut ids = Vec::with_capacity(n * n);
    for &bh in &b {
        for &bw in &b {
            ids.push(bh * n as u32 + bw);
        }
    }
    ids
}

/// The query, key and value projections: one product when their weights can be stacked.
enum Qkv {
    /// `[3·d, d]`: queries, keys, values side by side in each output row.
    Fused(Linear),
    Split(Linear, Linear, Linear),
}

/// Bidirectional multi-head self-attention with biased projections.
struct Attention {
    qkv: Qkv,
    out: Linear,
    heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &VisionConfig, vb: Loader) -> Result<Self> {
        let d = cfg.hidden_size;
        let heads = cfg.num_attention_heads;
        let head_dim = d / heads;
        let (q, k, v) =
            (vb.pp("q_proj").linear(d, d, true)?, vb.pp("k_proj").linear(d, d, true)?, vb.pp("v_proj").linear(d, d, true)?);
        let qkv = match Linear::concat(&[&q, &k, &v])? {
            Some(fused) => Qkv::Fused(fused),
            None => Qkv::Split(q, k, v),
        };
        Ok(Self { qkv, out: vb.pp("out_proj").linear(d, d, true)?, heads, head_dim, scale: (head_dim as f64).powf(-0.5) })
    }

    /// `residual + attention(x)`.
    fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        let (q, k, v) = match &self.qkv {
            Qkv::Fused(l) => {
                // the three column ranges of one contiguous buffer
                let qkv = l.forward(x)?;
                (qkv.narrow(2, 0, d)?, qkv.narrow(2, d, d)?, qkv.narrow(2, 2 * d, d)?)
            }
            Qkv::Split(q, k, v) => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
        };
        let on_cpu = |t: &Tensor| matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32 && t.stride().last() == Some(&1);
        if [&q, &k, &v].iter().all(|t| on_cpu(t)) {
            return self.out.forward_add(&attention_rows(&q, &k, &v, self.heads, self.scale)?, residual);
        }
        // [b, s, d] -> [b·heads, s, head_dim]
        let split = |t: Tensor| -> Result<Tensor> {
            t.contiguous()?.reshape((b, s, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()?.reshape((
                b * self.heads,
                s,
                self.head_dim,
            ))
        };
        let (q, k, v) = (split(q)?, split(k)?, split(v)?);
        // eager path: softmax((q @ kᵀ) * scale) @ v in f32, no mask for full tiles.
        let o = attention(&q, &k, &v, self.scale, None)?;
        let o = o.reshape((b, self.heads, s, self.head_dim))?.transpose(1, 2)?.reshape((b, s, d))?;
        self.out.forward_add(&o, residual)
    }
}

/// LayerNorm over the last dimension with affine weight and bias, as torch computes it: biased
/// variance of the centred input (two passes, no `E[x²] − E[x]²` cancellation), in f32.
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
    /// `weight` and `bias` on the host, for the fused CPU kernel.
    host: (Vec<f32>, Vec<f32>),
}

impl LayerNorm {
    /// Width of the normalized dimension.
    fn dim(&self) -> usize {
        self.weight.dims1().unwrap_or(0)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if fast_path(x) {
            let (weight, bias) = (&self.host.0[..], &self.host.1[..]);
            return x.apply_op1_no_bwd(&LayerNormRows { weight, bias, eps: self.eps as f32 });
        }
        let dt = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let mean = xf.mean_keepdim(D::Minus1)?;
        let xc = xf.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + self.eps)?.sqrt()?.recip()?;
        let y = xc.broadcast_mul(&rstd)?.to_dtype(dt)?;
        y.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

fn layer_norm(d: usize, eps: f64, vb: Loader) -> Result<LayerNorm> {
    let (weight, bias) = (vb.tensor(d, "weight")?, vb.tensor(d, "bias")?);
    let host = (weight.to_device(&Device::Cpu)?.to_vec1()?, bias.to_device(&Device::Cpu)?.to_vec1()?);
    Ok(LayerNorm { weight, bias, eps, host })
}

struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    /// `residual + fc2(gelu_pytorch_tanh(fc1(x)))`.
    fn forward_add(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.fc2.forward_add(&self.fc1.forward_gelu(x)?, residual)
    }
}

struct EncoderLayer {
    ln1: LayerNorm,
    attn: Attention,
    ln2: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    fn new(cfg: &VisionConfig, vb: Loader) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            ln1: layer_norm(d, cfg.layer_norm_eps, vb.pp("layer_norm1"))?,
            attn: Attention::new(cfg, vb.pp("self_attn"))?,
            ln2: layer_norm(d, cfg.layer_norm_eps, vb.pp("layer_norm2"))?,
            mlp: Mlp { fc1: vb.pp("mlp.fc1").linear(d, i, true)?, fc2: vb.pp("mlp.fc2").linear(i, d, true)? },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.attn.forward_add(&self.ln1.forward(x)?, x)?;
        self.mlp.forward_add(&self.ln2.forward(&h)?, &h)
    }
}

/// `model.vision_model`: embeddings, encoder layers, post-LayerNorm.
pub(crate) struct VisionModel {
    embeddings: Embeddings,
    layers: Vec<EncoderLayer>,
    post_layernorm: LayerNorm,
}

impl VisionModel {
    /// Loads the weights under `vb` (= `model.vision_model`), calling `on_layer` after each
    /// encoder layer.
    pub(crate) fn new(cfg: &VisionConfig, vb: Loader, on_layer: &mut dyn FnMut() -> Result<()>) -> Result<Self> {
        let embeddings = Embeddings::new(cfg, vb.pp("embeddings"))?;
        let lvb = vb.pp("encoder.layers");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::new(cfg, lvb.pp(i)).and_then(|l| on_layer().map(|_| l)))
            .collect::<Result<Vec<_>>>()?;
        let post_layernorm = layer_norm(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("post_layernorm"))?;
        Ok(Self { embeddings, layers, post_layernorm })
    }

    /// `[b, 3, M, M]` normalized pixels -> `[b, N·N, D]` last hidden state.
    pub(crate) fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut x = self.embeddings.forward(pixels)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        debug_assert_eq!(x.dim(D::Minus1)?, self.post_layernorm.dim());
        self.post_layernorm.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::full_tile_position_ids;

    /// Row/column buckets as torch 2.15 / transformers 5.23 compute them (printed from Python).
    #[test]
    fn position_ids_match_torch() {
        let cases: &[(usize, &[u32])] = &[
            (19, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 13, 14, 15, 16, 17, 18]),
            (25, &[0, 1, 2, 3, 4, 4, 6, 7, 8, 8, 9, 10, 11, 12, 14, 14, 16, 17, 17, 19, 19, 21, 22, 22, 24]),
            (29, &[0, 1, 2, 2, 4, 5, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 23, 25, 26, 27, 28]),
            (
                31,
                &[
                    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 16, 18, 19, 20, 20, 22, 23, 24, 24, 26, 27, 28, 28,
                    30,
                ],
            ),
        ];
        for &(n, buckets) in cases {
            let ids = full_tile_position_ids(n);
            for h in 0..n {
                for w in 0..n {
                    assert_eq!(ids[h * n + w], buckets[h] * n as u32 + buckets[w], "n={n} h={h} w={w}");
                }
            }
        }
        // The published sizes (N = 32 for 512/16, 27 for 384/14) and small ones are the identity.
        for n in [1usize, 2, 3, 4, 8, 16, 27, 32] {
            assert_eq!(full_tile_position_ids(n), (0..(n * n) as u32).collect::<Vec<_>>(), "n={n}");
        }
    }
}
