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
mod kv_cache;
mod layers;
mod safetensors_files;
mod text;
mod vision;
mod weights;

pub use kv_cache::KvCache;
pub use weights::WeightFormat;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gguf::GgufModel;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use connector::Connector;
use safetensors_files::SafetensorsFiles;
use std::path::{Path, PathBuf};
use text::TextModel;
use vision::VisionModel;
use weights::{Loader, Source};

/// What loading is doing when it reports progress (see [`crate::Engine::load_with_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStage {
    /// Reading the configuration, tokenizer, chat template and weight-file headers.
    Reading,
    /// Building the vision encoder and connector (reported after each encoder layer).
    Vision,
    /// Building the text decoder (reported after each decoder layer and the output head).
    Text,
    /// The engine is ready.
    Ready,
}

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
        Self::build(cfg, Loader::new(Source::Safetensors(vb), format), dtype, device, format, &mut |_, _, _| Ok(()))
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
        Self::from_safetensors_reporting(cfg, paths, first, format, device, &mut |_, _, _| Ok(()))
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
        on_step: &mut dyn FnMut(LoadStage, usize, usize) -> candle_core::Result<()>,
    ) -> Result<Self> {
        let files = SafetensorsFiles::open(paths).map_err(|(path, e)| Error::file(path, e))?;
        let format = format.resolve(cfg.parameter_count());
        let loader = Loader::new(Source::Files(&files, device.clone()), format);
        Self::build(cfg, loader, DType::F32, device.clone(), format, on_step).map_err(|(_, e)| Error::file(tensors_file, e))
    }

    /// Builds the model from llama.cpp GGUF files (see [`crate::gguf`]); `cfg` is
    /// [`GgufModel::config`]. Tensors stored quantized are used as stored; f32/f16/bf16 ones
    /// follow `format`. The model has a vision tower exactly when `cfg.vision` is set.
    pub fn from_gguf(cfg: &ModelConfig, gguf: &GgufModel, format: WeightFormat) -> Result<Self> {
        Self::from_gguf_reporting(cfg, gguf, format, &mut |_, _, _| Ok(()))
    }

    /// [`from_gguf`](Self::from_gguf), calling `on_step(stage, done, steps)` after each building
    /// step (see [`build`](Self::build)).
    pub(crate) fn from_gguf_reporting(
        cfg: &ModelConfig,
        gguf: &GgufModel,
        format: WeightFormat,
        on_step: &mut dyn FnMut(LoadStage, usize, usize) -> candle_core::Result<()>,
    ) -> Result<Self> {
        let format = format.resolve(cfg.parameter_count());
        let loader = Loader::new(Source::Gguf(gguf), format);
        Self::build(cfg, loader, DType::F32, Device::Cpu, format, on_step).map_err(|(vision, e)| {
            let path = match (vision, gguf.mmproj_file()) {
                (true, Some(m)) => m.path(),
                _ => gguf.text_file().path(),
            };
            Error::file(path, e)
        })
    }

    /// Builds the parts; an error says whether it came from the vision half. The steps are the
    /// vision encoder layers and the connector (`LoadStage::Vision`), then the decoder layers and
    /// the output head (`LoadStage::Text`); `on_step(stage, done, steps)` follows each, and an
    /// error from it stops the build (a cancelled load).
    fn build(
        cfg: &ModelConfig,
        vb: Loader,
        dtype: DType,
        device: Device,
        format: WeightFormat,
        on_step: &mut dyn FnMut(LoadStage, usize, usize) -> candle_core::Result<()>,
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
                on_step(LoadStage::Vision, vision_steps, steps).map_err(|e| (true, e))?;
                Some((vision, connector))
            }
        };
        let mut done = vision_steps;
        let mut on_layer = || {
            done += 1;
            on_step(LoadStage::Text, done, steps)
        };
        let text = TextModel::new(t, vb.pp("model.text_model"), vb.clone(), &mut on_layer).map_err(|e| (false, e))?;
        on_step(LoadStage::Text, steps, steps).map_err(|e| (false, e))?;
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
            _ => return Err(Error::InvalidArgument(format!("pixel_values must have shape [n>0, 3, {m}, {m}], got {dims:?}"))),
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
                    dims => return Err(Error::InvalidArgument(format!("image features must be [k, {hidden}], got {dims:?}"))),
                };
                Some(f)
            }
        };
        let n_feat = feats.as_ref().map_or(0, |f| f.dims()[0]);
        if n_feat != n_img {
            return Err(Error::InvalidArgument(format!("{n_img} image tokens in the input but {n_feat} image feature rows")));
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

    /// Bytes of one cached key or value element (f16 for quantized decoders, f32 otherwise).
    pub(crate) fn kv_element_bytes(&self) -> usize {
        if self.text.is_quantized() {
            2
        } else {
            4
        }
    }

    /// An empty cache whose buffers never grow beyond `max_tokens` positions (they grow
    /// geometrically up to that; only appending past it would allocate exactly what is needed).
    pub fn new_cache_with_limit(&self, max_tokens: usize) -> KvCache {
        // Quantized decoders keep the cache in f16 (as llama.cpp does): half the bytes a decode
        // step reads, an error (2⁻¹¹ relative, per value) far below the weights' own. The f32
        // model keeps f32, the reference.
        let dtype = if self.kv_element_bytes() == 2 { DType::F16 } else { DType::F32 };
        KvCache::new(self.text.num_layers(), max_tokens, dtype)
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
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
}
