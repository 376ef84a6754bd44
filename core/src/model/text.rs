//! The Llama decoder (spec §6.3): RMSNorm, rotate-half RoPE, grouped-query causal attention,
//! SwiGLU MLP, final norm and `lm_head`.
//!
//! Activations are kept 2-D (`[tokens, hidden]`): the engine runs one sequence at a time.

use super::ops::{attention, Embedding, Linear};
use super::LayerKv;
use crate::config::TextConfig;
use candle_core::{DType, Device, Result, Tensor, D};
use super::weights::Loader;

/// RMSNorm as transformers' `LlamaRMSNorm`: `weight * (x * rsqrt(mean(x²) + eps))`, the
/// normalisation in f32.
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(d: usize, eps: f64, vb: Loader) -> Result<Self> {
        Ok(Self { weight: vb.tensor(d, "weight")?, eps })
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

    /// `(cos, sin)`, each `[t, d/2]`, for positions `offset .. offset + t`.
    fn tables(&self, offset: usize, t: usize, dtype: DType, dev: &Device) -> Result<(Tensor, Tensor)> {
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
        let cos = Tensor::from_vec(cos, (t, h), dev)?.to_dtype(dtype)?;
        let sin = Tensor::from_vec(sin, (t, h), dev)?.to_dtype(dtype)?;
        Ok((cos, sin))
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
        let heads_first =
            |y: Tensor, n: usize| -> Result<Tensor> { y.reshape((1, t, n, hd))?.transpose(1, 2)?.contiguous() };
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
    pub(crate) fn new(cfg: &TextConfig, vb_text: Loader, vb_head: Loader, on_layer: &mut dyn FnMut()) -> Result<Self> {
        let (vocab, d) = (cfg.vocab_size, cfg.hidden_size);
        let embed_tokens = vb_text.pp("embed_tokens").embedding(vocab, d)?;
        let lvb = vb_text.pp("layers");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, lvb.pp(i)).inspect(|_| on_layer()))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(d, cfg.rms_norm_eps, vb_text.pp("norm"))?;
        let lm_head = if cfg.tie_word_embeddings && !vb_head.contains("lm_head.weight") {
            Linear::tied(&embed_tokens)?
        } else {
            vb_head.pp("lm_head").head(vocab, d)?
        };
        Ok(Self { embed_tokens, layers, norm, lm_head, rope: Rope::new(cfg.head_dim, cfg.rope_theta) })
    }

    /// Number of decoder layers.
    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Token embeddings `[t, d]` for `ids` (already range-checked).
    pub(crate) fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        self.embed_tokens.lookup(ids)
    }

    /// Runs the layers over `x` `[t, d]` (positions `offset..offset+t`) and returns the logits of
    /// the last position, `[vocab]`.
    pub(crate) fn forward(&self, x: Tensor, offset: usize, kv: &mut [LayerKv]) -> Result<Tensor> {
        let (t, _) = x.dims2()?;
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
        logits.squeeze(0)
    }
}
