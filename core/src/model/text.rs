//! The Llama decoder (spec §6.3): RMSNorm, rotate-half RoPE, grouped-query causal attention,
//! SwiGLU MLP, final norm and `lm_head`.
//!
//! Activations are kept 2-D (`[tokens, hidden]`): the engine runs one sequence at a time.

use super::kv_cache::{HostKv, LayerKv};
use super::layers::{Embedding, Linear};
use super::weights::Loader;
use crate::config::TextConfig;
use crate::kernels::decode_attention::{decode_attention, Cache};
use crate::kernels::ops::{attention, exp};
use candle_core::{DType, Device, Result, Tensor, D};

/// RMSNorm as transformers' `LlamaRMSNorm`: `weight * (x * rsqrt(mean(x²) + eps))`, the
/// normalisation in f32.
pub(crate) struct RmsNorm {
    weight: Tensor,
    /// The weight as a host f32 vector, for the decode step.
    weight_host: Vec<f32>,
    eps: f64,
}

impl RmsNorm {
    fn new(d: usize, eps: f64, vb: Loader) -> Result<Self> {
        let weight = vb.tensor(d, "weight")?;
        let weight_host = weight.to_dtype(DType::F32)?.to_vec1()?;
        Ok(Self { weight, weight_host, eps })
    }

    /// [`Self::forward`] of one f32 row, into `out`.
    fn forward_row(&self, x: &[f32], out: &mut [f32]) {
        // eight partial sums: one running sum is a chain of dependent adds, which does not vectorize
        let mut lanes = [0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
        for c in chunks {
            for i in 0..8 {
                lanes[i] += c[i] * c[i];
            }
        }
        let var = (lanes.iter().sum::<f32>() + tail) / x.len() as f32;
        let rstd = 1.0 / (var + self.eps as f32).sqrt();
        out.iter_mut().zip(x).zip(&self.weight_host).for_each(|((o, v), w)| *o = v * rstd * w);
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + self.eps)?.sqrt()?.recip()?;
        xf.broadcast_mul(&rstd)?.to_dtype(dt)?.broadcast_mul(&self.weight)
    }
}

/// Rotary embedding tables, computed as transformers' default RoPE does in f32.
pub(crate) struct Rope {
    /// `inv_freq[i] = 1 / theta^(f32(2i) / f32(d))`, all in f32.
    inv_freq: Vec<f32>,
}

impl Rope {
    fn new(head_dim: usize, theta: f64) -> Self {
        let base = theta as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|i| {
                let e = (2 * i) as f32 / head_dim as f32;
                // torch: f32 pow (correctly rounded up to an ulp), then f32 reciprocal.
                let p = (base as f64).powf(e as f64) as f32;
                1.0f32 / p
            })
            .collect();
        Self { inv_freq }
    }

    /// `(cos, sin)` rows, each `t·d/2` values, for positions `offset .. offset + t`.
    fn rows(&self, offset: usize, t: usize) -> (Vec<f32>, Vec<f32>) {
        let h = self.inv_freq.len();
        let mut cos = Vec::with_capacity(t * h);
        let mut sin = Vec::with_capacity(t * h);
        for pos in offset..offset + t {
            let p = pos as f32;
            for &f in &self.inv_freq {
                let a = p * f; // f32 product, as torch's f32 matmul of rank 1
                cos.push((a as f64).cos() as f32);
                sin.push((a as f64).sin() as f32);
            }
        }
        (cos, sin)
    }

    /// `(cos, sin)`, each `[t, d/2]`, for positions `offset .. offset + t`.
    fn tables(&self, offset: usize, t: usize, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
        let h = self.inv_freq.len();
        let (cos, sin) = self.rows(offset, t);
        let cos = Tensor::from_vec(cos, (t, h), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (t, h), dev)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}

/// Rotate-half RoPE of each `cos.len() * 2`-wide head of `x`, in place (as candle's `rope`).
fn rope_row(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_exact_mut(2 * half) {
        let (a, b) = head.split_at_mut(half);
        for i in 0..half {
            let (x1, x2) = (a[i], b[i]);
            a[i] = x1 * cos[i] - x2 * sin[i];
            b[i] = x1 * sin[i] + x2 * cos[i];
        }
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &TextConfig, vb: Loader) -> Result<Self> {
        let (h, kv, hd, d) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.hidden_size);
        Ok(Self {
            q: vb.pp("q_proj").linear(d, h * hd, false)?,
            k: vb.pp("k_proj").linear(d, kv * hd, false)?,
            v: vb.pp("v_proj").linear(d, kv * hd, false)?,
            o: vb.pp("o_proj").linear(h * hd, d, false)?,
            heads: h,
            kv_heads: kv,
            head_dim: hd,
            scale: (hd as f64).powf(-0.5),
        })
    }

    /// `x` `[t, d]` at positions `offset..offset+t`, attending causally to the cache plus itself.
    fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, offset: usize, kv: &mut LayerKv) -> Result<Tensor> {
        let (t, _) = x.dims2()?;
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let n_rep = h / kvh;
        // [t, heads·hd] -> [1, heads, t, hd]
        let heads_first = |y: Tensor, n: usize| -> Result<Tensor> { y.reshape((1, t, n, hd))?.transpose(1, 2)?.contiguous() };
        let q = heads_first(self.q.forward(x)?, h)?;
        let k = heads_first(self.k.forward(x)?, kvh)?;
        let v = heads_first(self.v.forward(x)?, kvh)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let (k, v) = kv.append(offset, &k.reshape((kvh, t, hd))?, &v.reshape((kvh, t, hd))?)?;
        // Query head j uses kv head j / n_rep: group the n_rep query heads of a kv head as rows
        // of one matrix, so K/V are never repeated. q: [kv, n_rep·t, hd].
        let q = q.reshape((kvh, n_rep * t, hd))?;
        // Scores [kv, n_rep·t, L], computed a kv group at a time when large.
        let causal = if t > 1 { Some((t, offset)) } else { None };
        let o = attention(&q, &k, &v, self.scale, causal)?; // [kv, n_rep·t, hd] = [heads, t, hd]
        let o = o.reshape((h, t, hd))?.transpose(0, 1)?.reshape((t, h * hd))?;
        self.o.forward(&o)
    }

    /// [`Self::forward`] of one token `x` at position `pos`, on host rows.
    fn step(&self, x: &[f32], cos: &[f32], sin: &[f32], pos: usize, kv: &mut LayerKv) -> Result<Vec<f32>> {
        let (h, kvh, hd) = (self.heads, self.kv_heads, self.head_dim);
        let [mut q, mut k, v] = Linear::forward_rows([&self.q, &self.k, &self.v], x)?;
        rope_row(&mut q, cos, sin);
        rope_row(&mut k, cos, sin);
        kv.write_row(pos, &k, &v, hd)?;
        let mut o = vec![0f32; h * hd];
        let (len, n_rep, scale) = (pos + 1, h / kvh, self.scale as f32);
        kv.with_host(len, |kv, stride| match kv {
            HostKv::F32(keys, values) => decode_attention(&q, Cache { keys, values, stride, len, hd }, n_rep, scale, &mut o),
            HostKv::F16(keys, values) => decode_attention(&q, Cache { keys, values, stride, len, hd }, n_rep, scale, &mut o),
        })?;
        self.o.forward_row(&o)
    }
}

struct Mlp {
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.gate.forward(x)?.silu()?;
        self.down.forward(&(g * self.up.forward(x)?)?)
    }

    /// [`Self::forward`] of one host row: silu(gate)·up is applied by the tasks that compute
    /// gate and up.
    fn step(&self, x: &[f32]) -> Result<Vec<f32>> {
        // silu as candle computes it, v / (1 + e^-v), with the vectorizing exp
        let silu_mul = |g: &mut [f32], u: &[f32]| g.iter_mut().zip(u).for_each(|(g, u)| *g = *g / (1.0 + exp(-*g)) * u);
        let g = Linear::forward_gated(&self.gate, &self.up, x, &silu_mul)?;
        self.down.forward_row(&g)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl DecoderLayer {
    fn new(cfg: &TextConfig, vb: Loader) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        let mvb = vb.pp("mlp");
        Ok(Self {
            input_layernorm: RmsNorm::new(d, cfg.rms_norm_eps, vb.pp("input_layernorm"))?,
            attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(d, cfg.rms_norm_eps, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp {
                gate: mvb.pp("gate_proj").linear(d, i, false)?,
                up: mvb.pp("up_proj").linear(d, i, false)?,
                down: mvb.pp("down_proj").linear(i, d, false)?,
            },
        })
    }
}

/// `model.text_model` plus `lm_head`.
pub(crate) struct TextModel {
    /// `[vocab, d]`.
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
}

impl TextModel {
    /// Loads `model.text_model.*` from `vb_text` and `lm_head.weight` from `vb_head` (falling back
    /// to the embedding when `tie_word_embeddings` and `lm_head.weight` is absent), calling
    /// `on_layer` after each decoder layer.
    pub(crate) fn new(
        cfg: &TextConfig,
        vb_text: Loader,
        vb_head: Loader,
        on_layer: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Self> {
        let (vocab, d) = (cfg.vocab_size, cfg.hidden_size);
        let embed_tokens = vb_text.pp("embed_tokens").embedding(vocab, d)?;
        let lvb = vb_text.pp("layers");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, lvb.pp(i)).and_then(|l| on_layer().map(|_| l)))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(d, cfg.rms_norm_eps, vb_text.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings && !vb_head.contains("lm_head.weight") {
            Linear::tied(&embed_tokens)?
        } else {
            vb_head.pp("lm_head").head(vocab, d)?
        };
        Ok(Self { embed_tokens, layers, norm, lm_head, rope: Rope::new(cfg.head_dim, cfg.rope_theta) })
    }

    /// Whether the decoder's projections are quantized (their error then dwarfs an f16 cache's).
    pub(crate) fn is_quantized(&self) -> bool {
        self.layers.first().is_some_and(|l| l.attn.q.is_quantized())
    }

    /// Number of decoder layers.
    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Token embeddings `[t, d]` for `ids` (already range-checked).
    pub(crate) fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        self.embed_tokens.lookup(ids)
    }

    /// Runs the layers over `x` `[t, d]` (positions `offset..offset+t`) and returns the f32
    /// logits of the last position (`vocab` values).
    pub(crate) fn forward(&self, x: Tensor, offset: usize, kv: &mut [LayerKv]) -> Result<Vec<f32>> {
        let (t, _) = x.dims2()?;
        if t == 1 && matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 {
            return self.step(x.flatten_all()?.to_vec1()?, offset, kv);
        }
        let dev = x.device().clone();
        let dtype = x.dtype();
        let (cos, sin) = self.rope.tables(offset, t, dtype, &dev)?;
        let mut x = x;
        for (layer, kv) in self.layers.iter().zip(kv.iter_mut()) {
            let a = layer.attn.forward(&layer.input_layernorm.forward(&x)?, &cos, &sin, offset, kv)?;
            x = (x + a)?;
            let m = layer.mlp.forward(&layer.post_attention_layernorm.forward(&x)?)?;
            x = (x + m)?;
        }
        // Norm and head are row-wise: only the last position is needed.
        let last = x.narrow(0, t - 1, 1)?;
        let logits = self.lm_head.forward(&self.norm.forward(&last)?)?;
        logits.squeeze(0)?.to_dtype(DType::F32)?.to_vec1()
    }

    /// [`Self::forward`] of one token on the CPU (the decode step): host rows and the quantized
    /// kernels directly, with no tensor operation per layer but the KV-cache write; Q, K, V (and
    /// gate, up) share one activation quantization and one thread-pool pass.
    fn step(&self, mut x: Vec<f32>, pos: usize, kv: &mut [LayerKv]) -> Result<Vec<f32>> {
        let (cos, sin) = self.rope.rows(pos, 1);
        let mut h = vec![0f32; x.len()];
        for (layer, kv) in self.layers.iter().zip(kv.iter_mut()) {
            layer.input_layernorm.forward_row(&x, &mut h);
            let a = layer.attn.step(&h, &cos, &sin, pos, kv)?;
            x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
            layer.post_attention_layernorm.forward_row(&x, &mut h);
            let m = layer.mlp.step(&h)?;
            x.iter_mut().zip(&m).for_each(|(x, m)| *x += m);
        }
        self.norm.forward_row(&x, &mut h);
        self.lm_head.forward_row(&h)
    }
}
