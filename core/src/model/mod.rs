//! The SmolVLM / Idefics3 network: SigLIP vision encoder, pixel-shuffle connector, Llama decoder
//! (spec §4–§6), with a key/value cache for incremental decoding.
//!
//! Everything is computed in f32 by default (the reference precision: logits match transformers'
//! f32 run to about 1e-5); weights stored as bf16/f16 are converted on load by the
//! [`candle_nn::VarBuilder`]'s dtype. [`WeightFormat`] selects f16 or quantized (Q8_0, Q4_K)
//! storage of the weight matrices instead; activations stay f32. The vision tower is optional:
//! a plain Llama GGUF gives a text-only model.

mod attention;
mod connector;
mod decode_attention;
mod ops;
mod qkernels;
mod qmatrix;
mod qtiles;
mod safetensors_files;
mod spin_pool;
mod text;
mod vision;
mod weight_memory;
mod weights;

pub use qmatrix::quantized_kernels;
pub use weights::WeightFormat;

use crate::config::ModelConfig;
use crate::engine::LoadStage;
use crate::error::{Error, Result};
use crate::gguf::GgufModel;
use candle_core::{CpuStorage, DType, Device, Tensor};
use candle_nn::VarBuilder;
use connector::Connector;
use safetensors_files::SafetensorsFiles;
use std::path::{Path, PathBuf};
use text::TextModel;
use vision::VisionModel;
use weights::{Loader, Source};

/// The whole model: vision encoder + connector + text decoder with immutable weights.
///
/// It is `Send + Sync`; all mutable state of a conversation lives in a [`KvCache`].
pub struct SmolVlmModel {
    cfg: ModelConfig,
    /// The vision encoder and connector; `None` for a text-only model.
    vision: Option<(VisionModel, Connector)>,
    text: TextModel,
    /// How the weight matrices are stored.
    format: WeightFormat,
    /// Compute dtype of activations (the VarBuilder's dtype; f32 is the reference).
    dtype: DType,
    device: Device,
}

impl SmolVlmModel {
    /// Builds the model from a VarBuilder over the checkpoint (names as published:
    /// `model.vision_model.*`, `model.connector.modality_projection.proj.weight`,
    /// `model.text_model.*`, `lm_head.weight`; `lm_head` falls back to `embed_tokens` when
    /// `tie_word_embeddings` and the file has no `lm_head.weight`).
    ///
    /// The VarBuilder's dtype is the compute dtype; use `DType::F32` for reference accuracy
    /// (bf16/f16 weights are converted on load). A missing or mis-shaped tensor gives
    /// [`Error::ModelFile`].
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_format(cfg, vb, WeightFormat::F32)
    }

    /// Like [`new`](Self::new), storing the weight matrices as `format` (`Auto` resolved by
    /// [`ModelConfig::parameter_count`]). Each matrix is read, converted and its f32 copy dropped
    /// before the next is read, so no full-precision copy of the model is ever held.
    pub fn with_format(cfg: &ModelConfig, vb: VarBuilder, format: WeightFormat) -> Result<Self> {
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let format = format.resolve(cfg.parameter_count());
        Self::build(cfg, Loader::new(Source::Safetensors(vb), format), dtype, device, format, &mut |_, _, _| {})
            .map_err(|(_, e)| Error::file("model weights (safetensors)", e))
    }

    /// Builds the model from safetensors files (`model.safetensors`, or every shard of a sharded
    /// checkpoint; names as for [`new`](Self::new)) onto `device`, storing the weight matrices as
    /// `format`. Unlike a memory-mapped [`VarBuilder`], the files are read one tensor at a time
    /// and a matrix to be quantized a few rows at a time, so loading holds little more than the
    /// finished model; the values are bit for bit those of the VarBuilder path with f32.
    ///
    /// A file that cannot be read or has an invalid header gives [`Error::ModelFile`] naming it;
    /// a missing or mis-shaped tensor gives [`Error::ModelFile`] naming the first file.
    pub fn from_safetensors(cfg: &ModelConfig, paths: &[PathBuf], format: WeightFormat, device: &Device) -> Result<Self> {
        let Some(first) = paths.first() else {
            return Err(Error::InvalidArgument("no safetensors file to load".into()));
        };
        Self::from_safetensors_reporting(cfg, paths, first, format, device, &mut |_, _, _| {})
    }

    /// [`from_safetensors`](Self::from_safetensors), naming `tensors_file` in the errors about
    /// missing or mis-shaped tensors and calling `on_step(stage, done, steps)` after each
    /// building step (see [`build`](Self::build)).
    pub(crate) fn from_safetensors_reporting(
        cfg: &ModelConfig,
        paths: &[PathBuf],
        tensors_file: &Path,
        format: WeightFormat,
        device: &Device,
        on_step: &mut dyn FnMut(LoadStage, usize, usize),
    ) -> Result<Self> {
        let files = SafetensorsFiles::open(paths).map_err(|(path, e)| Error::file(path, e))?;
        let format = format.resolve(cfg.parameter_count());
        let loader = Loader::new(Source::Files(&files, device.clone()), format);
        Self::build(cfg, loader, DType::F32, device.clone(), format, on_step)
            .map_err(|(_, e)| Error::file(tensors_file, e))
    }

    /// Builds the model from llama.cpp GGUF files (see [`crate::gguf`]); `cfg` is
    /// [`GgufModel::config`]. Tensors stored quantized are used as stored; f32/f16/bf16 ones
    /// follow `format`. The model has a vision tower exactly when `cfg.vision` is set.
    pub fn from_gguf(cfg: &ModelConfig, gguf: &GgufModel, format: WeightFormat) -> Result<Self> {
        Self::from_gguf_reporting(cfg, gguf, format, &mut |_, _, _| {})
    }

    /// [`from_gguf`](Self::from_gguf), calling `on_step(stage, done, steps)` after each building
    /// step (see [`build`](Self::build)).
    pub(crate) fn from_gguf_reporting(
        cfg: &ModelConfig,
        gguf: &GgufModel,
        format: WeightFormat,
        on_step: &mut dyn FnMut(LoadStage, usize, usize),
    ) -> Result<Self> {
        let format = format.resolve(cfg.parameter_count());
        let loader = Loader::new(Source::Gguf(gguf), format);
        Self::build(cfg, loader, DType::F32, Device::Cpu, format, on_step).map_err(
            |(vision, e)| {
                let path = match (vision, gguf.mmproj_file()) {
                    (true, Some(m)) => m.path(),
                    _ => gguf.text_file().path(),
                };
                Error::file(path, e)
            },
        )
    }

    /// Builds the parts; an error says whether it came from the vision half. The steps are the
    /// vision encoder layers and the connector (`LoadStage::Vision`), then the decoder layers and
    /// the output head (`LoadStage::Text`); `on_step(stage, done, steps)` follows each.
    fn build(
        cfg: &ModelConfig,
        vb: Loader,
        dtype: DType,
        device: Device,
        format: WeightFormat,
        on_step: &mut dyn FnMut(LoadStage, usize, usize),
    ) -> std::result::Result<Self, (bool, candle_core::Error)> {
        let t = &cfg.text;
        let vision_steps = cfg.vision.as_ref().map_or(0, |v| v.num_hidden_layers + 1);
        let steps = vision_steps + t.num_hidden_layers + 1;
        let mut done = 0;
        let vision = match &cfg.vision {
            None => None,
            Some(v) => {
                let mut on_layer = || {
                    done += 1;
                    on_step(LoadStage::Vision, done, steps)
                };
                let vision = VisionModel::new(v, vb.pp("model.vision_model"), &mut on_layer).map_err(|e| (true, e))?;
                let connector = Connector::new(
                    v.hidden_size,
                    cfg.patches_per_side(),
                    cfg.scale_factor,
                    t.hidden_size,
                    vb.pp("model.connector"),
                )
                .map_err(|e| (true, e))?;
                on_step(LoadStage::Vision, vision_steps, steps);
                Some((vision, connector))
            }
        };
        let mut done = vision_steps;
        let mut on_layer = || {
            done += 1;
            on_step(LoadStage::Text, done, steps)
        };
        let text = TextModel::new(t, vb.pp("model.text_model"), vb.clone(), &mut on_layer).map_err(|e| (false, e))?;
        on_step(LoadStage::Text, steps, steps);
        Ok(Self { cfg: cfg.clone(), vision, text, format, dtype, device })
    }

    /// The storage format of the weight matrices (after resolving `Auto`).
    pub fn weight_format(&self) -> WeightFormat {
        self.format
    }

    /// Whether the model has a vision tower.
    pub fn has_vision(&self) -> bool {
        self.vision.is_some()
    }

    /// Encodes tiles: `pixel_values` `[n, 3, M, M]` (f32, already normalized, M = the vision
    /// `image_size`) -> image features `[n, S, text_hidden]` (S = [`ModelConfig::image_seq_len`]),
    /// in the compute dtype.
    /// A text-only model answers [`Error::InvalidArgument`].
    pub fn encode_images(&self, pixel_values: &Tensor) -> Result<Tensor> {
        let Some((vision, connector)) = &self.vision else {
            return Err(Error::InvalidArgument("this model is text-only (no vision encoder): it cannot take images".into()));
        };
        let m = self.cfg.vision()?.image_size;
        let dims = pixel_values.dims();
        match dims {
            [n, 3, h, w] if *n > 0 && *h == m && *w == m => {}
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "pixel_values must have shape [n>0, 3, {m}, {m}], got {dims:?}"
                )))
            }
        }
        let px = pixel_values.to_device(&self.device)?.to_dtype(self.dtype)?;
        let hidden = vision.forward(&px)?;
        Ok(connector.forward(&hidden)?)
    }

    /// Runs the decoder over `input_ids` appended after what `cache` already holds (positions
    /// start at `cache.len()`).
    ///
    /// Every id equal to `image_token_id` takes, in order, the next row of `image_features`
    /// (`[k, text_hidden]`, i.e. [`encode_images`](Self::encode_images) output flattened over n
    /// and S; `[n, S, text_hidden]` is accepted too); the number of image tokens must equal k
    /// exactly, else [`Error::InvalidArgument`]. Returns the f32 logits of the LAST position
    /// only, shape `[vocab]`. On success the cache grows by `input_ids.len()`; on error it is
    /// left as it was.
    pub fn forward(&self, input_ids: &[u32], image_features: Option<&Tensor>, cache: &mut KvCache) -> Result<Tensor> {
        let logits = self.logits(input_ids, image_features, cache)?;
        let n = logits.len();
        Ok(Tensor::from_vec(logits, n, &self.device)?)
    }

    /// [`forward`](Self::forward)'s logits as a host vector (what the engine samples from: a
    /// decode step's logits are not copied).
    pub(crate) fn logits(&self, input_ids: &[u32], image_features: Option<&Tensor>, cache: &mut KvCache) -> Result<Vec<f32>> {
        let t = input_ids.len();
        if t == 0 {
            return Err(Error::InvalidArgument("forward needs at least one input id".into()));
        }
        if cache.layers.len() != self.text.num_layers() {
            return Err(Error::InvalidArgument("KV cache was not made by this model".into()));
        }
        let vocab = self.cfg.text.vocab_size;
        if let Some(&bad) = input_ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::InvalidArgument(format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        let img = self.cfg.image_token_id;
        let n_img = input_ids.iter().filter(|&&id| id == img).count();
        let hidden = self.cfg.text.hidden_size;
        let feats = match image_features {
            None => None,
            Some(f) => {
                let f = match f.dims() {
                    [_, d] if *d == hidden => f.clone(),
                    [a, b, d] if *d == hidden => f.reshape((a * b, hidden))?,
                    dims => {
                        return Err(Error::InvalidArgument(format!(
                            "image features must be [k, {hidden}], got {dims:?}"
                        )))
                    }
                };
                Some(f)
            }
        };
        let n_feat = feats.as_ref().map_or(0, |f| f.dims()[0]);
        if n_feat != n_img {
            return Err(Error::InvalidArgument(format!(
                "{n_img} image tokens in the input but {n_feat} image feature rows"
            )));
        }
        let text_emb = self.text.embed(input_ids)?;
        let x = match feats {
            Some(f) if n_img > 0 => {
                // Gather from [text rows ; feature rows]: image token number j takes row t + j.
                let f = f.to_device(&self.device)?.to_dtype(self.dtype)?;
                let all = Tensor::cat(&[&text_emb, &f], 0)?;
                let mut j = 0u32;
                let idx: Vec<u32> = input_ids
                    .iter()
                    .enumerate()
                    .map(|(i, &id)| {
                        if id == img {
                            j += 1;
                            t as u32 + j - 1
                        } else {
                            i as u32
                        }
                    })
                    .collect();
                all.index_select(&Tensor::from_vec(idx, t, &self.device)?, 0)?
            }
            _ => text_emb,
        };
        let offset = cache.len;
        let logits = self.text.forward(x, offset, &mut cache.layers)?;
        cache.len = offset + t;
        Ok(logits)
    }

    /// An empty cache for this model, sized for up to `max_position_embeddings` positions.
    pub fn new_cache(&self) -> KvCache {
        self.new_cache_with_limit(self.cfg.text.max_position_embeddings)
    }

    /// An empty cache whose buffers never grow beyond `max_tokens` positions (they grow
    /// geometrically up to that; only appending past it would allocate exactly what is needed).
    pub fn new_cache_with_limit(&self, max_tokens: usize) -> KvCache {
        // Quantized decoders keep the cache in f16 (as llama.cpp does): half the bytes a decode
        // step reads, an error (2⁻¹¹ relative, per value) far below the weights' own. The f32
        // model keeps f32, the reference.
        let dtype = if self.text.is_quantized() { DType::F16 } else { DType::F32 };
        let layers = (0..self.text.num_layers()).map(|_| LayerKv::new(max_tokens, dtype)).collect();
        KvCache { layers, len: 0 }
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }
}

/// Per-layer key/value cache of one sequence (keys after RoPE).
///
/// Storage is preallocated and grows geometrically up to the cache's limit, so appending a token
/// does not copy the history. Not `Clone`: the buffers are written in place.
pub struct KvCache {
    layers: Vec<LayerKv>,
    len: usize,
}

impl KvCache {
    /// Number of positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps only the first `len` positions (no-op when `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forgets every position (the buffers are kept for reuse).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Positions the buffers can hold before growing again (0 before the first append).
    pub fn capacity(&self) -> usize {
        self.layers.first().map_or(0, LayerKv::capacity)
    }

    /// Announces that the cache will hold up to `positions` positions (capped at the cache's
    /// limit): the next time the buffers grow within that, they grow to exactly that size at once,
    /// instead of doubling (a 1141-token prompt plus its answer then never moves to 2304
    /// positions, nor holds the old and the new buffers together while it copies).
    pub fn reserve(&mut self, positions: usize) {
        for layer in &mut self.layers {
            layer.planned = positions.min(layer.limit);
        }
    }
}

/// One layer's K and V buffers, `[kv_heads, capacity, head_dim]` each.
pub(crate) struct LayerKv {
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// The buffers' element type (f32, or f16 for quantized models).
    dtype: DType,
    /// Most positions the buffers grow to (unless a single append needs more).
    limit: usize,
    /// Positions announced by [`KvCache::reserve`]: a growth that fits grows to this at once.
    planned: usize,
}

impl LayerKv {
    fn new(limit: usize, dtype: DType) -> Self {
        Self { k: None, v: None, dtype, limit, planned: 0 }
    }

    fn capacity(&self) -> usize {
        self.k.as_ref().map_or(0, |b| b.dims()[1])
    }

    /// Makes room for positions `0..need` in `[kv_heads, _, head_dim]` buffers, keeping the
    /// first `held` positions when the buffers grow.
    fn make_room(&mut self, held: usize, need: usize, (kvh, hd): (usize, usize), dev: &Device) -> candle_core::Result<()> {
        let cap = self.capacity();
        if need <= cap {
            return Ok(());
        }
        let new_cap =
            if need <= self.planned { self.planned } else { need.max(cap * 2).max(256).next_multiple_of(64).min(self.limit).max(need) };
        let grow = |old: &Option<Tensor>| -> candle_core::Result<Tensor> {
            let buf = Tensor::zeros((kvh, new_cap, hd), self.dtype, dev)?;
            if let Some(old) = old {
                if held > 0 {
                    buf.slice_set(&old.narrow(1, 0, held)?.contiguous()?, 1, 0)?;
                }
            }
            Ok(buf)
        };
        self.k = Some(grow(&self.k)?);
        self.v = Some(grow(&self.v)?);
        Ok(())
    }

    /// Writes `k`, `v` (`[kv_heads, t, head_dim]`) at positions `offset..offset+t` and returns
    /// positions `0..offset+t`, in `k`'s dtype (views when the buffers hold that dtype).
    pub(crate) fn append(&mut self, offset: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (kvh, t, hd) = k.dims3()?;
        let need = offset + t;
        self.make_room(offset, need, (kvh, hd), k.device())?;
        let (kb, vb) = (self.k.as_ref().expect("allocated"), self.v.as_ref().expect("allocated"));
        kb.slice_set(&k.to_dtype(self.dtype)?.contiguous()?, 1, offset)?;
        vb.slice_set(&v.to_dtype(self.dtype)?.contiguous()?, 1, offset)?;
        Ok((kb.narrow(1, 0, need)?.to_dtype(k.dtype())?, vb.narrow(1, 0, need)?.to_dtype(k.dtype())?))
    }

    /// Writes one position's keys and values (host rows of `kv_heads · head_dim` values) at `pos`
    /// into CPU buffers, in place (rounded to f16 in an f16 cache).
    pub(crate) fn write_row(&mut self, pos: usize, k: &[f32], v: &[f32], head_dim: usize) -> candle_core::Result<()> {
        self.make_room(pos, pos + 1, (k.len() / head_dim.max(1), head_dim), &Device::Cpu)?;
        let (kb, vb) = (self.k.as_ref().expect("allocated"), self.v.as_ref().expect("allocated"));
        kb.inplace_op1(&WriteRow { pos, rows: k })?;
        vb.inplace_op1(&WriteRow { pos, rows: v })
    }

    /// Calls `f` with the host buffers (head `h`, position `p` at `h·stride + p·head_dim`) and
    /// the stride, once they hold at least `len` positions.
    pub(crate) fn with_host<R>(&self, len: usize, f: impl FnOnce(HostKv<'_>, usize) -> R) -> candle_core::Result<R> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else { candle_core::bail!("kv cache: empty") };
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (candle_core::Storage::Cpu(kc), candle_core::Storage::Cpu(vc)) = (&*ks, &*vs) else {
            candle_core::bail!("kv cache: host access needs CPU buffers")
        };
        if !kl.is_contiguous() || !vl.is_contiguous() || kl.dims()[1] < len {
            candle_core::bail!("kv cache: host access needs contiguous buffers holding {len} positions")
        }
        let stride = kl.dims()[1] * kl.dims()[2];
        let (kr, vr) = (kl.start_offset()..kl.start_offset() + kl.shape().elem_count(), vl.start_offset()..vl.start_offset() + vl.shape().elem_count());
        match (kc, vc) {
            (CpuStorage::F32(kd), CpuStorage::F32(vd)) => Ok(f(HostKv::F32(&kd[kr], &vd[vr]), stride)),
            (CpuStorage::F16(kd), CpuStorage::F16(vd)) => Ok(f(HostKv::F16(&kd[kr], &vd[vr]), stride)),
            _ => candle_core::bail!("kv cache: host access needs f32 or f16 buffers"),
        }
    }
}

/// A layer's cached keys and values on the host: `(keys, values)` in the cache's element type.
pub(crate) enum HostKv<'a> {
    F32(&'a [f32], &'a [f32]),
    F16(&'a [half::f16], &'a [half::f16]),
}

/// Writes `rows` (`[kv_heads · head_dim]`) at one position of a `[kv_heads, capacity, head_dim]`
/// f32 or f16 buffer.
struct WriteRow<'a> {
    pos: usize,
    rows: &'a [f32],
}

impl candle_core::InplaceOp1 for WriteRow<'_> {
    fn name(&self) -> &'static str {
        "kv-write-row"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &candle_core::Layout) -> candle_core::Result<()> {
        let (Some((start, _)), [kvh, cap, hd]) = (layout.contiguous_offsets(), layout.dims()) else {
            candle_core::bail!("kv cache: a row write needs contiguous [heads, capacity, dim] buffers")
        };
        if self.rows.len() != kvh * hd || self.pos >= *cap {
            candle_core::bail!("kv cache: {} values at position {} of [{kvh}, {cap}, {hd}]", self.rows.len(), self.pos)
        }
        for (h, src) in self.rows.chunks_exact(*hd).enumerate() {
            let at = start + (h * cap + self.pos) * hd;
            match storage {
                CpuStorage::F32(buf) => buf[at..at + hd].copy_from_slice(src),
                CpuStorage::F16(buf) => half::slice::HalfFloatSliceExt::convert_from_f32_slice(&mut buf[at..at + hd], src),
                _ => candle_core::bail!("kv cache: a row write needs f32 or f16 buffers"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn model_and_cache_are_send_sync() {
        assert_send_sync::<SmolVlmModel>();
        assert_send_sync::<KvCache>();
    }

    /// The buffers grow geometrically (at least 256 positions) but never past the limit.
    #[test]
    fn kv_buffers_stop_growing_at_the_limit() {
        let kv = |t: usize| Tensor::ones((2, t, 4), DType::F32, &Device::Cpu).unwrap();
        let mut unlimited = LayerKv::new(usize::MAX, DType::F32);
        let mut limited = LayerKv::new(300, DType::F32);
        for layer in [&mut unlimited, &mut limited] {
            layer.append(0, &kv(1), &kv(1)).unwrap();
            assert_eq!(layer.capacity(), 256);
        }
        let (k, _) = limited.append(1, &kv(260), &kv(260)).unwrap();
        assert_eq!((limited.capacity(), k.dims()[1]), (300, 261), "capped at the limit");
        unlimited.append(1, &kv(260), &kv(260)).unwrap();
        assert_eq!(unlimited.capacity(), 512, "doubled");
        // Held positions survive the growth, and an append past the limit still fits exactly.
        let (k, _) = limited.append(261, &kv(50), &kv(50)).unwrap();
        assert_eq!((limited.capacity(), k.dims()[1]), (311, 311));
        assert_eq!(k.sum_all().unwrap().to_scalar::<f32>().unwrap(), (2 * 311 * 4) as f32);
    }

    /// A reservation makes the next growth exactly that size (capped at the limit); growing past
    /// it is geometric again.
    #[test]
    fn reserved_positions_are_allocated_at_once() {
        let kv = |t: usize| Tensor::ones((2, t, 4), DType::F32, &Device::Cpu).unwrap();
        let mut layer = LayerKv::new(2000, DType::F32);
        layer.planned = 1150;
        layer.append(0, &kv(1141), &kv(1141)).unwrap();
        assert_eq!(layer.capacity(), 1150);
        layer.append(1141, &kv(9), &kv(9)).unwrap();
        assert_eq!(layer.capacity(), 1150, "no growth within the reservation");
        let (k, _) = layer.append(1150, &kv(1), &kv(1)).unwrap();
        assert_eq!((layer.capacity(), k.dims()[1]), (2000, 1151), "doubling, capped at the limit");
        let mut cache = KvCache { layers: vec![LayerKv::new(300, DType::F32)], len: 0 };
        cache.reserve(5000);
        assert_eq!(cache.layers[0].planned, 300);
    }

    /// A decode step's in-place row write lands where an append of the same row would, growing
    /// the buffers the same way and keeping what they held, in an f32 and in an f16 cache.
    #[test]
    fn row_writes_match_appends() {
        // integers below 2048, exact in f16 too
        let row = |p: usize| (0..2 * 4).map(|i| (p % 200 * 10 + i) as f32).collect::<Vec<f32>>();
        let host = |layer: &LayerKv| {
            layer
                .with_host(300, |kv, s| match kv {
                    HostKv::F32(k, v) => (k.to_vec(), v.to_vec(), s),
                    HostKv::F16(k, v) => (k.iter().map(|x| x.to_f32()).collect(), v.iter().map(|x| x.to_f32()).collect(), s),
                })
                .unwrap()
        };
        for dtype in [DType::F32, DType::F16] {
            let (mut appended, mut written) = (LayerKv::new(usize::MAX, dtype), LayerKv::new(usize::MAX, dtype));
            for p in 0..300 {
                let t = Tensor::from_vec(row(p), (2, 1, 4), &Device::Cpu).unwrap();
                let (k, _) = appended.append(p, &t, &(&t * 2.0).unwrap()).unwrap();
                assert_eq!(k.dtype(), DType::F32, "appends return the caller's dtype");
                let twice: Vec<f32> = row(p).iter().map(|v| v * 2.0).collect();
                written.write_row(p, &row(p), &twice, 4).unwrap();
            }
            assert_eq!(written.capacity(), 512);
            let (a, w) = (host(&appended), host(&written));
            assert!(a == w, "{dtype:?}");
            assert_eq!(w.0[512 * 4 + 299 * 4 + 3], 997.0, "head 1, position 299, column 3 ({dtype:?})");
            assert!(written.write_row(0, &[1.0; 6], &[1.0; 6], 4).is_err(), "a row of the wrong width");
        }
    }
}
