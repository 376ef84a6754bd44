//! Typed views of the checkpoint's JSON files: `config.json`, `preprocessor_config.json`
//! (or the processor settings inside `processor_config.json`) and `generation_config.json`.
//!
//! Field names follow the Hugging Face files (`SmolVLMConfig` / `Idefics3Config` and the nested
//! `LlamaConfig`); only the fields that inference uses are read.

use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// Largest width a configuration may state: the text and vision `hidden_size`,
/// `intermediate_size`, `head_dim` and head counts (GGUF: `embedding_length`,
/// `feed_forward_length`, `key_length`, `head_count`). Published models stay below 2^17 (the
/// widest MLPs are ~53k); 2^20 keeps every product of two or three of them far inside `usize`
/// (parameter counts, shapes), so an absurd value is refused before anything is sized by it.
pub const MAX_WIDTH: usize = 1 << 20;

/// Most layers a decoder or a vision encoder may state (`num_hidden_layers`, GGUF
/// `block_count`): published models have at most a few hundred; the loader's step count and
/// the KV cache's per-layer lists are sized by it.
pub const MAX_LAYERS: usize = 1 << 12;

/// Largest vocabulary (`vocab_size`): published vocabularies hold at most ~262k tokens; 2^24
/// leaves room and bounds what the embedding's shape implies before the weights are checked.
pub const MAX_VOCAB: usize = 1 << 24;

/// Longest context a configuration may state (`max_position_embeddings`, GGUF
/// `context_length`): 2^24 tokens (published models reach 10M). It becomes the engine's default
/// context length: what a session's KV cache may grow to, and the largest RoPE position.
pub const MAX_CONTEXT: usize = 1 << 24;

/// Largest image side, in pixels, a checkpoint may ask for: the vision encoder's `image_size`,
/// the preprocessor's `size.longest_edge` and `max_image_size.longest_edge` (GGUF:
/// `clip.vision.image_size`, `clip.vision.preproc_image_size`). 8192 is also the most
/// `EngineOptions::longest_edge` accepts: an 8192² image is already ~800 MB of f32 pixels, and
/// preprocessing sizes its buffers by these values before any weight is read.
pub const MAX_IMAGE_SIDE: usize = 8192;

/// Largest JSON file of a checkpoint folder read (`config.json`, `preprocessor_config.json`,
/// `processor_config.json`, `generation_config.json`, `tokenizer_config.json`,
/// `chat_template.json`, `model.safetensors.index.json`): 64 MiB. These files are a few KB
/// (the largest `tokenizer_config.json` files, with every added token listed, a few MB); the cap
/// bounds what a huge file or a device (`/dev/zero` behind a symlink) makes the reader hold.
pub const MAX_JSON_BYTES: u64 = 64 << 20;

/// Which model family a checkpoint belongs to (`model_type` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    /// SmolVLM v1 checkpoints (`idefics3`): SmolVLM-Instruct 2.2B, and the 256M/500M-Instruct.
    Idefics3,
    /// SmolVLM2 checkpoints (`smolvlm`).
    SmolVlm,
    /// A plain Llama text model (e.g. SmolLM2 from a GGUF file): no vision tower.
    Llama,
}

/// The SigLIP-style vision encoder's shape.
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    /// Width of the encoder (D).
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Input channels (3).
    #[serde(default = "three")]
    pub num_channels: usize,
    /// Side of one square tile in pixels (M).
    pub image_size: usize,
    /// Side of one patch in pixels (P).
    pub patch_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
}

/// The Llama-style text decoder's shape.
#[derive(Debug, Clone)]
pub struct TextConfig {
    /// Vocabulary size (rows of the embedding and of `lm_head`).
    pub vocab_size: usize,
    /// Width of the decoder.
    pub hidden_size: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    pub rope_theta: f64,
    /// Context length in tokens.
    pub max_position_embeddings: usize,
    /// Whether `lm_head` shares the embedding matrix.
    pub tie_word_embeddings: bool,
}

/// `config.json` of a SmolVLM / Idefics3 checkpoint.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// `idefics3` or `smolvlm`.
    pub family: ModelFamily,
    /// Token id of `<image>`, whose embeddings are replaced by image features (`u32::MAX`,
    /// matching no token, for a text-only model).
    pub image_token_id: u32,
    /// Pixel-shuffle factor r.
    pub scale_factor: usize,
    /// Vision encoder; `None` for a text-only model.
    pub vision: Option<VisionConfig>,
    /// Text decoder.
    pub text: TextConfig,
}

impl ModelConfig {
    /// Patches per tile side (N = image_size / patch_size); 0 without a vision tower.
    pub fn patches_per_side(&self) -> usize {
        self.vision.as_ref().map_or(0, |v| v.image_size / v.patch_size)
    }

    /// Image tokens per tile (S = N² / r²); 0 without a vision tower.
    pub fn image_seq_len(&self) -> usize {
        let n = self.patches_per_side();
        n.saturating_mul(n) / self.scale_factor.saturating_mul(self.scale_factor).max(1)
    }

    /// Whether the model has a vision tower (accepts images).
    pub fn has_vision(&self) -> bool {
        self.vision.is_some()
    }

    /// The vision encoder's configuration, or [`Error::InvalidArgument`] for a text-only model.
    pub fn vision(&self) -> Result<&VisionConfig> {
        self.vision
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("this model is text-only (no vision encoder): it cannot take images".into()))
    }

    /// Parameter count implied by the shapes (weights only; used to pick a default precision).
    pub fn parameter_count(&self) -> usize {
        // Saturating: a configuration that was never validated must not overflow.
        let mul = |xs: &[usize]| xs.iter().fold(1usize, |n, &x| n.saturating_mul(x));
        let t = &self.text;
        let (d, i, hd) = (t.hidden_size, t.intermediate_size, t.head_dim);
        let attn = mul(&[d, t.num_attention_heads, hd, 2]).saturating_add(mul(&[d, t.num_key_value_heads, hd, 2]));
        let heads = if t.tie_word_embeddings { 1 } else { 2 };
        let mut n =
            mul(&[t.num_hidden_layers, attn.saturating_add(mul(&[3, d, i]))]).saturating_add(mul(&[heads, t.vocab_size, d]));
        if let Some(v) = &self.vision {
            let (vd, vi) = (v.hidden_size, v.intermediate_size);
            n = n.saturating_add(mul(&[v.num_hidden_layers, mul(&[4, vd, vd]).saturating_add(mul(&[2, vd, vi]))]));
            n = n.saturating_add(mul(&[vd, self.scale_factor, self.scale_factor, d]));
        }
        n
    }

    /// Reads and checks `config.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let v = read_json(path)?;
        Self::from_json(&v).map_err(|reason| Error::file(path, reason))
    }

    fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let family = match v.get("model_type").and_then(Value::as_str) {
            Some("idefics3") => ModelFamily::Idefics3,
            Some("smolvlm") => ModelFamily::SmolVlm,
            Some(other) => return Err(format!("unsupported model_type {other:?} (expected idefics3 or smolvlm)")),
            None => return Err("missing model_type".into()),
        };
        let image_token_id = get_u64(v, "image_token_id")?;
        let image_token_id =
            u32::try_from(image_token_id).map_err(|_| format!("image_token_id {image_token_id} is not a token id (u32)"))?;
        let scale_factor = opt_u64(v, "scale_factor")?.unwrap_or(2) as usize;
        let vision: VisionConfig = serde_json::from_value(v.get("vision_config").cloned().ok_or("missing vision_config")?)
            .map_err(|e| format!("vision_config: {e}"))?;
        let text = text_config(v.get("text_config").ok_or("missing text_config")?, v)?;
        let cfg = ModelConfig { family, image_token_id, scale_factor, vision: Some(vision), text };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the shapes for consistency (what the model code relies on).
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        let t = &self.text;
        check_ranges(&[
            ("text_config.vocab_size", t.vocab_size, 1, MAX_VOCAB),
            ("text_config.hidden_size", t.hidden_size, 1, MAX_WIDTH),
            ("text_config.intermediate_size", t.intermediate_size, 1, MAX_WIDTH),
            ("text_config.num_hidden_layers", t.num_hidden_layers, 0, MAX_LAYERS),
            ("text_config.num_attention_heads", t.num_attention_heads, 1, MAX_WIDTH),
            ("text_config.num_key_value_heads", t.num_key_value_heads, 1, MAX_WIDTH),
            ("text_config.head_dim", t.head_dim, 1, MAX_WIDTH),
            ("text_config.max_position_embeddings", t.max_position_embeddings, 1, MAX_CONTEXT),
        ])?;
        if !(t.rms_norm_eps.is_finite() && t.rms_norm_eps >= 0.0) {
            return Err(format!("text_config.rms_norm_eps {} must be a finite number >= 0", t.rms_norm_eps));
        }
        if !(t.rope_theta.is_finite() && t.rope_theta > 0.0) {
            return Err(format!("text_config.rope_theta {} must be a finite positive number", t.rope_theta));
        }
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return Err("num_attention_heads is not a multiple of num_key_value_heads".into());
        }
        if !t.head_dim.is_multiple_of(2) {
            return Err("head_dim must be even for RoPE".into());
        }
        let Some(v) = &self.vision else { return Ok(()) };
        check_ranges(&[
            ("vision_config.hidden_size", v.hidden_size, 1, MAX_WIDTH),
            ("vision_config.intermediate_size", v.intermediate_size, 1, MAX_WIDTH),
            ("vision_config.num_hidden_layers", v.num_hidden_layers, 0, MAX_LAYERS),
            ("vision_config.num_attention_heads", v.num_attention_heads, 1, MAX_WIDTH),
            ("vision_config.image_size", v.image_size, 1, MAX_IMAGE_SIDE),
            ("vision_config.patch_size", v.patch_size, 1, MAX_IMAGE_SIDE),
            ("scale_factor", self.scale_factor, 1, usize::MAX),
        ])?;
        if !(v.layer_norm_eps.is_finite() && v.layer_norm_eps >= 0.0) {
            return Err(format!("vision_config.layer_norm_eps {} must be a finite number >= 0", v.layer_norm_eps));
        }
        if v.hidden_size % v.num_attention_heads != 0 {
            return Err("vision hidden_size is not a multiple of num_attention_heads".into());
        }
        if v.num_channels != 3 {
            return Err(format!("vision num_channels {} (only 3 is supported)", v.num_channels));
        }
        let n = self.patches_per_side();
        if n == 0 || !n.is_multiple_of(self.scale_factor) {
            return Err(format!(
                "patches per side {n} (image_size / patch_size) is not a multiple of scale_factor {}",
                self.scale_factor
            ));
        }
        if self.image_token_id as usize >= t.vocab_size {
            return Err(format!("image_token_id {} is outside the vocabulary", self.image_token_id));
        }
        Ok(())
    }
}

fn text_config(t: &Value, top: &Value) -> std::result::Result<TextConfig, String> {
    let u = |k: &str| get_u64(t, k).map(|x| x as usize).map_err(|e| format!("text_config: {e}"));
    let hidden_size = u("hidden_size")?;
    let num_attention_heads = u("num_attention_heads")?;
    let opt_u = |k: &str| opt_u64(t, k).map(|x| x.map(|x| x as usize)).map_err(|e| format!("text_config: {e}"));
    let opt_f = |k: &str| opt_f64(t, k).map_err(|e| format!("text_config: {e}"));
    let num_key_value_heads = opt_u("num_key_value_heads")?.unwrap_or(num_attention_heads);
    let head_dim = match opt_u("head_dim")? {
        Some(d) => d,
        None if num_attention_heads > 0 => hidden_size / num_attention_heads,
        None => 0,
    };
    // transformers 5 moved `rope_theta` into `rope_parameters`; published checkpoints have it flat.
    let rope_theta = match opt_f("rope_theta")? {
        Some(x) => x,
        None => match t.get("rope_parameters") {
            Some(r @ Value::Object(_)) => opt_f64(r, "rope_theta").map_err(|e| format!("text_config.rope_parameters: {e}"))?,
            _ => None,
        }
        .unwrap_or(10000.0),
    };
    let rope_type = t
        .get("rope_parameters")
        .or_else(|| t.get("rope_scaling"))
        .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
        .and_then(Value::as_str)
        .unwrap_or("default");
    if rope_type != "default" {
        return Err(format!("text_config: rope type {rope_type:?} is not supported"));
    }
    if let Some(act) = t.get("hidden_act").and_then(Value::as_str) {
        if act != "silu" {
            return Err(format!("text_config: hidden_act {act:?} is not supported (silu)"));
        }
    }
    Ok(TextConfig {
        vocab_size: u("vocab_size")?,
        hidden_size,
        intermediate_size: u("intermediate_size")?,
        num_hidden_layers: u("num_hidden_layers")?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        rms_norm_eps: opt_f("rms_norm_eps")?.unwrap_or(1e-5),
        rope_theta,
        max_position_embeddings: opt_u("max_position_embeddings")?.unwrap_or(8192),
        // transformers 5 writes the flag at the top level, published checkpoints in text_config.
        tie_word_embeddings: t
            .get("tie_word_embeddings")
            .or_else(|| top.get("tie_word_embeddings"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Image preprocessing settings (`preprocessor_config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessorConfig {
    /// Resize so the longest side equals this (L); also upscales.
    pub longest_edge: u32,
    /// Side of one tile (M); equals the vision `image_size`.
    pub max_image_size: u32,
    /// Split images into tiles plus a global image.
    pub do_image_splitting: bool,
    /// Apply the longest-edge resize.
    pub do_resize: bool,
    /// Multiply pixel values by `rescale_factor`.
    pub do_rescale: bool,
    /// The rescale factor (1/255).
    pub rescale_factor: f64,
    /// Normalize with `image_mean` / `image_std`.
    pub do_normalize: bool,
    /// Per-channel mean.
    pub image_mean: [f32; 3],
    /// Per-channel standard deviation.
    pub image_std: [f32; 3],
    /// How frames of a video are chosen (`video_sampling`, SmolVLM2 checkpoints); `None` when
    /// the checkpoint takes no videos.
    pub video_sampling: Option<VideoSampling>,
}

/// Frame sampling for videos, as transformers' SmolVLM video processor does it: at most
/// `max_frames` frames, `fps` per second of video, 1 s trimmed at both ends of long videos.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSampling {
    /// Frames per second of video to keep.
    pub fps: f64,
    /// The most frames a video contributes.
    pub max_frames: usize,
    /// Frames are first resized so their longest side is this (the checkpoint's `size`, which
    /// transformers uses in place of `video_sampling.video_size`), then to a `max_image_size` square.
    pub longest_edge: u32,
}

impl PreprocessorConfig {
    /// Reads the settings from `preprocessor_config.json`, or from the `image_processor` entry of
    /// `processor_config.json` (the layout transformers 5 writes) when the former is absent.
    pub fn load(dir: &Path) -> Result<Self> {
        let pre = dir.join("preprocessor_config.json");
        let (path, v) = if pre.exists() {
            let v = read_json(&pre)?;
            (pre, v)
        } else {
            let proc = dir.join("processor_config.json");
            if !proc.exists() {
                return Err(Error::file(pre, "not found (nor processor_config.json)"));
            }
            let v = read_json(&proc)?;
            let ip = v
                .get("image_processor")
                .cloned()
                .ok_or_else(|| Error::file(&proc, "has no image_processor settings and preprocessor_config.json is missing"))?;
            (proc, ip)
        };
        Self::from_json(&v).map_err(|reason| Error::file(path, reason))
    }

    fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let flag = |k: &str| -> std::result::Result<bool, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(true),
                Some(x) => x.as_bool().ok_or_else(|| format!("{k} must be true or false, not {}", kind(x))),
            }
        };
        let edge = |k: &str| -> std::result::Result<u32, String> {
            let x = v
                .get(k)
                .and_then(|s| s.get("longest_edge"))
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("missing {k}.longest_edge"))?;
            if x > MAX_IMAGE_SIDE as u64 {
                return Err(format!("{k}.longest_edge {x} is larger than {MAX_IMAGE_SIDE}, the most this SDK accepts"));
            }
            Ok(x as u32)
        };
        let triple = |k: &str| -> std::result::Result<[f32; 3], String> {
            match v.get(k) {
                None => Ok([0.5; 3]),
                Some(a) => {
                    let xs: Vec<f32> = serde_json::from_value(a.clone()).map_err(|e| format!("{k}: {e}"))?;
                    match xs.as_slice() {
                        [a, b, c] => Ok([*a, *b, *c]),
                        [a] => Ok([*a; 3]),
                        _ => Err(format!("{k} must have 3 values")),
                    }
                }
            }
        };
        let cfg = PreprocessorConfig {
            longest_edge: edge("size")?,
            max_image_size: edge("max_image_size")?,
            do_image_splitting: flag("do_image_splitting")?,
            do_resize: flag("do_resize")?,
            do_rescale: flag("do_rescale")?,
            rescale_factor: opt_f64(v, "rescale_factor")?.unwrap_or(1.0 / 255.0),
            do_normalize: flag("do_normalize")?,
            image_mean: triple("image_mean")?,
            image_std: triple("image_std")?,
            video_sampling: match v.get("video_sampling") {
                None | Some(Value::Null) => None,
                Some(vs) => {
                    let fps = vs.get("fps").and_then(Value::as_f64).ok_or("video_sampling.fps missing")?;
                    let max_frames = vs.get("max_frames").and_then(Value::as_u64).ok_or("video_sampling.max_frames missing")?;
                    if !(fps.is_finite() && fps > 0.0) || max_frames == 0 {
                        return Err("video_sampling.fps and max_frames must be positive".into());
                    }
                    Some(VideoSampling { fps, max_frames: max_frames as usize, longest_edge: edge("size")? })
                }
            },
        };
        if cfg.max_image_size == 0 || cfg.longest_edge == 0 {
            return Err("size.longest_edge and max_image_size.longest_edge must be positive".into());
        }
        if cfg.image_std.contains(&0.0) {
            return Err("image_std must not be zero".into());
        }
        if !cfg.rescale_factor.is_finite() || cfg.image_mean.iter().chain(&cfg.image_std).any(|x| !x.is_finite()) {
            return Err("rescale_factor, image_mean and image_std must be finite".into());
        }
        Ok(cfg)
    }
}

/// Generation defaults (`generation_config.json`); every field is optional in the file.
#[derive(Debug, Clone, Default)]
pub struct GenerationConfig {
    /// Token ids that end generation.
    pub eos_token_ids: Vec<u32>,
}

impl GenerationConfig {
    /// Reads `generation_config.json`; a missing file gives the empty default.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let v = read_json(path)?;
        let eos_token_ids = match v.get("eos_token_id") {
            None | Some(Value::Null) => vec![],
            Some(Value::Number(n)) => {
                vec![n.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| Error::file(path, "bad eos_token_id"))?]
            }
            Some(a @ Value::Array(_)) => {
                serde_json::from_value::<Vec<u32>>(a.clone()).map_err(|e| Error::file(path, format!("eos_token_id: {e}")))?
            }
            Some(_) => return Err(Error::file(path, "eos_token_id must be an integer or a list")),
        };
        Ok(GenerationConfig { eos_token_ids })
    }
}

/// Reads a JSON file holding one object (every configuration file of a checkpoint is one),
/// naming it in the error. It must be a regular file (not a device or a pipe, which could block
/// or never end) of at most [`MAX_JSON_BYTES`].
pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let bytes = read_capped(path, MAX_JSON_BYTES)?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::file(path, format!("malformed JSON: {e}")))?;
    if !v.is_object() {
        return Err(Error::file(path, format!("expected a JSON object, found {}", kind(&v))));
    }
    Ok(v)
}

/// The bytes of the regular file `path`, refused (naming the file) when it holds more than
/// `limit` bytes; the read stops there even if the file grows meanwhile.
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::file(path, e))?;
    if !meta.is_file() {
        return Err(Error::file(path, "not a regular file"));
    }
    let too_large = || Error::file(path, format!("larger than {limit} bytes, the most this SDK reads"));
    if meta.len() > limit {
        return Err(too_large());
    }
    let file = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::file(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

fn get_u64(v: &Value, k: &str) -> std::result::Result<u64, String> {
    v.get(k).and_then(Value::as_u64).ok_or_else(|| format!("missing or non-integer {k}"))
}

/// `k` of `v` when present (`null` counts as absent), which must be a non-negative integer.
fn opt_u64(v: &Value, k: &str) -> std::result::Result<Option<u64>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_u64().map(Some).ok_or_else(|| format!("{k} must be a non-negative integer, not {}", kind(x))),
    }
}

/// `k` of `v` when present (`null` counts as absent), which must be a number.
fn opt_f64(v: &Value, k: &str) -> std::result::Result<Option<f64>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_f64().map(Some).ok_or_else(|| format!("{k} must be a number, not {}", kind(x))),
    }
}

/// What a JSON value is, for messages (never the value itself, which may be huge).
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Checks `(name, value, min, max)` fields (`min` is 0 or 1): the first zero one where a positive
/// value is required, else the first one over its bound, as a message.
fn check_ranges(fields: &[(&str, usize, usize, usize)]) -> std::result::Result<(), String> {
    if let Some((name, ..)) = fields.iter().find(|(_, x, min, _)| x < min) {
        return Err(format!("{name} must be positive"));
    }
    match fields.iter().find(|(_, x, _, max)| x > max) {
        Some((name, x, _, max)) => Err(format!("{name} {x} is larger than {max}, the most this SDK accepts")),
        None => Ok(()),
    }
}

fn three() -> usize {
    3
}

fn ln_eps() -> f64 {
    1e-6
}
