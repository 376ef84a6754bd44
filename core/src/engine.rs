//! The engine: a loaded model with its tokenizer and chat template, shared and immutable, and
//! the options it is loaded with. Conversations with it are [`crate::Session`]s.

use crate::chat::{Content, Message, Video};
use crate::checkpoint::{load_tokenizer, Checkpoint};
use crate::config::{ModelConfig, PreprocessorConfig, VideoSampling};
use crate::error::{Error, Result};
use crate::image_cache::{ImageCache, DEFAULT_BYTES};
use crate::memory::{self, MemoryEstimate};
pub use crate::model::LoadStage;
use crate::model::{SmolVlmModel, WeightFormat};
use crate::processor::image::RgbImage;
pub use crate::processor::preprocess::ImagePreset;
use crate::processor::preprocess::{image_grid, preset_config};
use crate::processor::video::{sample_indices, source_fps};
use crate::prompt::{expand_media, ChatTemplate, MediaLayout};
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How to load a model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineOptions {
    /// Split large images into tiles plus a global view (`None`: the checkpoint's setting).
    pub image_splitting: Option<bool>,
    /// Longest image side after the first resize (`None`: the checkpoint's `size.longest_edge`).
    pub longest_edge: Option<u32>,
    /// How the weight matrices are stored: f32 (the default, the exact reference), f16, Q8_0,
    /// Q4_K, or `Auto` (by model size; see [`WeightFormat`]). Quantized tensors of a GGUF file
    /// are always used as stored.
    pub weights: WeightFormat,
    /// With a GGUF text model: the llama.cpp `mmproj` GGUF holding the vision encoder and
    /// projector. Without it a GGUF model is text-only.
    pub mmproj: Option<PathBuf>,
    /// Image sizing: [`ImagePreset::Exact`] (the default, transformers' processor) or
    /// [`ImagePreset::Fast`] (no upscaling, at most 2×2 tiles plus the global view).
    pub preset: ImagePreset,
    /// Most tokens (prompt plus answer) one session holds (`None`: the model's
    /// `max_position_embeddings`, lowered to what the memory available at load time holds, not
    /// below 2048; see [`Engine::estimate_memory`]). A smaller cap also bounds each session's KV cache, which
    /// never grows past this many positions; a prompt beyond it fails with
    /// [`Error::ContextOverflow`]. 0 or more than the model's maximum is
    /// [`Error::InvalidArgument`].
    pub context_length: Option<usize>,
    /// Where the math runs: [`Backend::Cpu`] (the default), [`Backend::Metal`] or
    /// [`Backend::Auto`].
    pub backend: Backend,
    /// Bytes of image encodings the engine keeps, least recently used out first, so that an
    /// image seen again (a new session, a reset, a live session's question) is not encoded
    /// again (`None`: 32 MiB; `Some(0)`: no cache).
    pub image_cache_bytes: Option<usize>,
    /// Most frames one video contributes (`None`: the checkpoint's `video_sampling.max_frames`,
    /// lowered to what fits the context window; see [`Engine::video_frame_limit`]). Frames are
    /// chosen from the given ones as transformers chooses them with this `max_frames`. At least
    /// 1 (0 is [`Error::InvalidArgument`]).
    pub max_video_frames: Option<usize>,
}

impl EngineOptions {
    /// Refuses option values no model takes, before any file is read.
    fn validate(&self) -> Result<()> {
        if let Some(edge) = self.longest_edge.filter(|&e| e == 0 || e > 8192) {
            return Err(Error::InvalidArgument(format!("longest_edge {edge} is outside 1..=8192")));
        }
        if self.max_video_frames == Some(0) {
            return Err(Error::InvalidArgument("max_video_frames must be at least 1".into()));
        }
        Ok(())
    }

    /// `loaded` (the model's image settings) with these options' overrides applied.
    fn preprocessor(&self, mut loaded: PreprocessorConfig) -> PreprocessorConfig {
        if let Some(split) = self.image_splitting {
            loaded.do_image_splitting = split;
        }
        if let Some(edge) = self.longest_edge {
            loaded.longest_edge = edge;
        }
        loaded
    }
}

/// `eos` plus `<end_of_utterance>` when the tokenizer has it: the end of a SmolVLM turn, which
/// not every generation config lists.
fn with_end_of_utterance(mut eos: Vec<u32>, tokenizer: &tokenizers::Tokenizer) -> Vec<u32> {
    if let Some(id) = tokenizer.token_to_id("<end_of_utterance>") {
        if !eos.contains(&id) {
            eos.push(id);
        }
    }
    eos
}

/// Where the model math runs.
///
/// On Metal, f32 and f16 weights run every matrix product, attention, norm and activation of the
/// vision encoder, connector and decoder on the GPU; image decoding and preprocessing,
/// tokenization and sampling stay on the CPU. The quantized formats (Q8_0, Q4_K, and GGUF files)
/// have CPU kernels only: on Metal each of their products would copy its activations from the
/// GPU and back, which is slower than running on the CPU, so they never run there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// The CPU (candle's CPU kernels and this crate's). The default, and the only backend of
    /// quantized weights and GGUF models.
    #[default]
    Cpu,
    /// The Apple GPU through candle's Metal backend, for f32 and f16 weights. Needs a build with
    /// this crate's `metal` feature and a Metal device; otherwise, or with quantized weights or a
    /// GGUF model, loading fails with [`Error::InvalidArgument`].
    Metal,
    /// Metal when everything can run there (f32 or f16 weights of a model folder, a build with
    /// Metal, a Metal device); the CPU otherwise. It never picks a path that moves activations
    /// between the GPU and the CPU for every product.
    Auto,
}

impl Backend {
    /// The device for this backend and `format`, the weight format resolved for the model
    /// (`gguf`: a GGUF model, whose tensors keep the format they are stored in).
    fn device(self, gguf: bool, format: WeightFormat) -> Result<Device> {
        let cpu_only = if gguf {
            Some("GGUF models")
        } else if matches!(format, WeightFormat::Q8_0 | WeightFormat::Q4K) {
            Some("quantized weights (Q8_0, Q4_K)")
        } else {
            None
        };
        match (self, cpu_only) {
            (Backend::Cpu, _) | (Backend::Auto, Some(_)) => Ok(Device::Cpu),
            (Backend::Metal, Some(what)) => Err(Error::InvalidArgument(format!(
                "{what} run on the CPU only (their kernels are CPU kernels): use the CPU backend, or f32/f16 weights with Metal"
            ))),
            (Backend::Metal, None) => metal_device(),
            (Backend::Auto, None) => Ok(metal_device().unwrap_or(Device::Cpu)),
        }
    }
}

/// [`EngineOptions::context_length`], checked against the model's maximum.
fn context_cap(options: &EngineOptions, cfg: &ModelConfig) -> Result<usize> {
    let max = cfg.text.max_position_embeddings;
    match options.context_length {
        None => Ok(max),
        Some(n) if n == 0 || n > max => {
            Err(Error::InvalidArgument(format!("context_length {n} is outside 1..={max} (the model's maximum)")))
        }
        Some(n) => Ok(n),
    }
}

/// What a GGUF model's vocabulary costs, like a `tokenizer.json` of this size.
const GGUF_TOKENIZER_BYTES: u64 = 2 << 20;

/// Bytes of a GGUF text file and its mmproj (0 for one that cannot be read).
fn gguf_bytes(text: &Path, mmproj: Option<&Path>) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    size(text) + mmproj.map_or(0, size)
}

/// The shortest context a default cap is lowered to before a model is refused instead.
const MIN_DEFAULT_CONTEXT: usize = 2048;

/// The memory a model loaded with `options` will hold, and the context cap it will have: the
/// requested one, or by default the model's maximum lowered to what `available` (the memory the
/// OS reports) holds, not below [`MIN_DEFAULT_CONTEXT`]. Fails with
/// [`Error::InsufficientMemory`] when even that does not fit.
fn plan_memory(
    options: &EngineOptions,
    cfg: &ModelConfig,
    format: WeightFormat,
    weights_file_bytes: Option<u64>,
    tokenizer_file_bytes: u64,
    available: Option<u64>,
) -> Result<MemoryEstimate> {
    let cap = context_cap(options, cfg)?;
    let at = |context: usize| memory::estimate(cfg, format, context, weights_file_bytes, tokenizer_file_bytes);
    let mut plan = at(cap);
    let Some(available) = available else { return Ok(plan) };
    if options.context_length.is_none() && plan.total > available {
        // Past a prefill chunk, memory grows linearly with the context: find the longest that
        // fits from the slope at the cap.
        let full = at(cap).total;
        let per_token = full.saturating_sub(at(cap.saturating_sub(1)).total).max(1);
        let fixed = full.saturating_sub(per_token.saturating_mul(cap as u64));
        let fits = (available.saturating_sub(fixed) / per_token) as usize;
        plan = at(fits.clamp(MIN_DEFAULT_CONTEXT.min(cap), cap));
    }
    if plan.total > available {
        return Err(Error::InsufficientMemory { needed: plan.total, available });
    }
    Ok(plan)
}

/// The first Metal device. Without the `metal` feature candle answers that it was built without
/// Metal support.
fn metal_device() -> Result<Device> {
    Device::new_metal(0).map_err(|e| Error::InvalidArgument(format!("the Metal backend is unavailable: {e}")))
}

/// Sets how many CPU threads the model math uses, for the whole process (candle 0.11.1 has no
/// per-engine setting). Call it once, at start-up, before loading any engine and before other
/// threads exist: it builds rayon's global pool with `n` threads (used by candle's matmuls via
/// gemm and by this crate's kernels) and sets `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS`,
/// which candle reads for gemm's split, its private pool and the quantized-matmul pool. Without
/// it, candle uses the number of physical cores (or those variables, if set). Fails with
/// [`Error::InvalidArgument`] for 0, or when rayon's global pool already runs with another count.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::InvalidArgument("the thread count must be at least 1".into()));
    }
    if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n).build_global() {
        if rayon::current_num_threads() != n {
            return Err(Error::InvalidArgument(format!("cannot use {n} threads: {e}")));
        }
    }
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    Ok(())
}

/// A cancellation flag shared between the generating thread and any other thread.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, uncancelled token.
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks the work holding this token to stop at its next check (between vision tiles and
    /// between decode steps); it then fails with [`Error::Cancelled`].
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    /// Whether [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A loaded SmolVLM model, ready to answer. Cheap to share (`Arc`) across sessions and threads.
pub struct Engine {
    pub(crate) config: ModelConfig,
    pub(crate) preprocessor: PreprocessorConfig,
    pub(crate) eos: Vec<u32>,
    pub(crate) model: SmolVlmModel,
    pub(crate) tokenizer: tokenizers::Tokenizer,
    pub(crate) template: ChatTemplate,
    pub(crate) device: Device,
    pub(crate) preset: ImagePreset,
    /// Most tokens one session holds (at most the model's `max_position_embeddings`).
    pub(crate) context_length: usize,
    /// Image encodings by preprocessed pixels.
    pub(crate) image_cache: ImageCache,
    /// [`EngineOptions::max_video_frames`].
    pub(crate) max_video_frames: Option<usize>,
}

/// One thing the vision encoder reads, in prompt order.
#[derive(Debug, Clone)]
pub(crate) enum Visual {
    /// An image and its tile grid `(rows, cols)` (`(0, 0)`: one tile).
    Image(Arc<RgbImage>, (usize, usize)),
    /// A chosen video frame: one tile, prepared the video processor's way.
    Frame(Arc<RgbImage>),
}

impl Visual {
    /// Tiles (vision encoder passes) this item takes.
    pub(crate) fn tiles(&self) -> usize {
        match self {
            Visual::Image(_, (r, c)) => r * c + 1,
            Visual::Frame(_) => 1,
        }
    }
}

/// The most images and videos one conversation holds: each image is up to 17 tiles, and all of
/// a conversation's images are encoded for its first answer.
pub const MAX_MEDIA_PER_CONVERSATION: usize = 64;

/// Text tokens around each video frame's tile block (`\nFrame from MM:SS:` and the two
/// `<fake_token_around_image>` and `<global-img>` markers), rounded up.
const FRAME_TEXT_TOKENS: usize = 12;
/// Tokens kept free for the question and the answer when the frame limit is derived from the
/// context window.
const VIDEO_TEXT_RESERVE: usize = 512;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a model folder in the Hugging Face hub layout, a folder holding a llama.cpp GGUF
    /// pair (one text model and an `mmproj-*.gguf`, as downloaded from a ggml-org repo), or a
    /// llama.cpp GGUF file (plus
    /// [`EngineOptions::mmproj`] for the vision half).
    pub fn load(dir: &Path, options: &EngineOptions) -> Result<Self> {
        Self::load_with_progress(dir, options, &CancelToken::new(), &mut |_, _| {})
    }

    /// [`Engine::load`], reporting progress to `on_progress` on the calling thread: a stage and
    /// the fraction of the whole load done, which only grows. It starts with
    /// `(Reading, 0.0)`, reports `Vision` after each vision encoder layer and after the
    /// connector, `Text` after each decoder layer and after the output head (fractions counted
    /// in those steps), and ends with `(Ready, 1.0)`. Nothing is reported after an error.
    ///
    /// `cancel` stops the load after the layer being built, from any thread, with
    /// [`Error::Cancelled`]; what was built is freed.
    pub fn load_with_progress(
        dir: &Path,
        options: &EngineOptions,
        cancel: &CancelToken,
        on_progress: &mut dyn FnMut(LoadStage, f32),
    ) -> Result<Self> {
        // A folder holding a llama.cpp GGUF pair (as downloaded from a ggml-org repo).
        if let Some((text, mmproj)) = crate::gguf::pair_in_folder(dir) {
            let options = EngineOptions { mmproj: options.mmproj.clone().or(mmproj), ..options.clone() };
            return Self::load_with_progress(&text, &options, cancel, on_progress);
        }
        cancel.check()?;
        options.validate()?;
        on_progress(LoadStage::Reading, 0.0);
        let gguf = crate::gguf::is_gguf(dir);
        // `steps + 1` parts: the last one is Ready, so fractions grow strictly up to 1.0.
        let mut on_step = |stage: LoadStage, done: usize, steps: usize| {
            if cancel.is_cancelled() {
                candle_core::bail!("cancelled");
            }
            on_progress(stage, done as f32 / (steps + 1) as f32);
            Ok(())
        };
        let engine = if gguf { Self::load_gguf(dir, options, &mut on_step) } else { Self::load_dir(dir, options, &mut on_step) };
        let engine = match engine {
            Err(_) if cancel.is_cancelled() => return Err(Error::Cancelled),
            r => r?,
        };
        on_progress(LoadStage::Ready, 1.0);
        Ok(engine)
    }

    /// What loading `path` with `options` will hold in memory (weights in the format they will be
    /// held in, one session's KV cache at the context cap, the largest transient activations, the
    /// tokenizer and the process baseline), from the configuration alone: nothing is loaded.
    /// Its `context_length` is the cap the model would get (by default lowered to what fits).
    /// Fails like [`Engine::load`] for a missing or invalid checkpoint, and with
    /// [`Error::InsufficientMemory`] when the model does not fit the memory available.
    pub fn estimate_memory(path: &Path, options: &EngineOptions) -> Result<MemoryEstimate> {
        if let Some((text, mmproj)) = crate::gguf::pair_in_folder(path) {
            let options = EngineOptions { mmproj: options.mmproj.clone().or(mmproj), ..options.clone() };
            return Self::estimate_memory(&text, &options);
        }
        if crate::gguf::is_gguf(path) {
            let gguf = crate::gguf::GgufModel::open(path, options.mmproj.as_deref())?;
            let file_bytes = gguf_bytes(path, options.mmproj.as_deref());
            let available = memory::available_bytes();
            return plan_memory(options, gguf.config(), WeightFormat::Q8_0, Some(file_bytes), GGUF_TOKENIZER_BYTES, available);
        }
        let ckpt = Checkpoint::open(path)?;
        let format = options.weights.resolve(ckpt.config.parameter_count());
        let tokenizer_bytes = std::fs::metadata(ckpt.file("tokenizer.json")).map_or(0, |m| m.len());
        plan_memory(options, &ckpt.config, format, None, tokenizer_bytes, memory::available_bytes())
    }

    /// Loads a folder in the Hugging Face hub layout onto the device that
    /// [`EngineOptions::backend`] picks for its weight format.
    fn load_dir(
        dir: &Path,
        options: &EngineOptions,
        on_step: &mut dyn FnMut(LoadStage, usize, usize) -> candle_core::Result<()>,
    ) -> Result<Self> {
        if let Some(m) = &options.mmproj {
            return Err(Error::InvalidArgument(format!("--mmproj {} needs a GGUF text model, not a folder", m.display())));
        }
        let ckpt = Checkpoint::open(dir)?;
        let format = options.weights.resolve(ckpt.config.parameter_count());
        let device = options.backend.device(false, format)?;
        let tokenizer_bytes = std::fs::metadata(ckpt.file("tokenizer.json")).map_or(0, |m| m.len());
        let available = memory::available_bytes();
        let context_length = plan_memory(options, &ckpt.config, format, None, tokenizer_bytes, available)?.context_length;
        let tokenizer = load_tokenizer(&ckpt.file("tokenizer.json"))?;
        let template = ChatTemplate::load(dir)?;
        let preprocessor = options.preprocessor(ckpt.preprocessor.clone());
        let eos = with_end_of_utterance(ckpt.generation.eos_token_ids.clone(), &tokenizer);
        let vocab = ckpt.config.text.vocab_size;
        if tokenizer.get_vocab_size(true) > vocab {
            return Err(Error::file(
                ckpt.file("tokenizer.json"),
                format!("{} tokens do not fit the model's vocabulary of {vocab}", tokenizer.get_vocab_size(true)),
            ));
        }
        let image_token = tokenizer.token_to_id("<image>");
        if image_token != Some(ckpt.config.image_token_id) {
            return Err(Error::file(
                ckpt.file("tokenizer.json"),
                format!("<image> is token {image_token:?}, config.json says {}", ckpt.config.image_token_id),
            ));
        }
        // Name the file at fault: an unreadable or malformed file names itself; a missing or
        // mis-shaped tensor names the weights file, or the shard index of a sharded checkpoint.
        let weights_name = match ckpt.weights.as_slice() {
            [single] => single.clone(),
            _ => ckpt.file("model.safetensors.index.json"),
        };
        // The files are read tensor by tensor (not memory-mapped), so a quantized model never
        // holds the full-precision file in memory.
        let model = SmolVlmModel::from_safetensors_reporting(
            &ckpt.config,
            &ckpt.weights,
            &weights_name,
            options.weights,
            &device,
            on_step,
        )?;
        let preset = options.preset;
        let image_cache = ImageCache::new(options.image_cache_bytes.unwrap_or(DEFAULT_BYTES));
        Ok(Engine {
            config: ckpt.config,
            preprocessor,
            eos,
            model,
            tokenizer,
            template,
            device,
            preset,
            context_length,
            image_cache,
            max_video_frames: options.max_video_frames,
        })
    }

    /// Loads a llama.cpp text GGUF (`path`) and, when [`EngineOptions::mmproj`] is set, its
    /// vision GGUF. The tokenizer, chat template and end-of-turn ids come from the text file's
    /// metadata, the image settings from the mmproj file's.
    fn load_gguf(
        path: &Path,
        options: &EngineOptions,
        on_step: &mut dyn FnMut(LoadStage, usize, usize) -> candle_core::Result<()>,
    ) -> Result<Self> {
        options.backend.device(true, options.weights)?;
        let gguf = crate::gguf::GgufModel::open(path, options.mmproj.as_deref())?;
        let cfg = gguf.config().clone();
        let file_bytes = gguf_bytes(path, options.mmproj.as_deref());
        let context_length =
            plan_memory(options, &cfg, WeightFormat::Q8_0, Some(file_bytes), GGUF_TOKENIZER_BYTES, memory::available_bytes())?
                .context_length;
        let tokenizer = gguf.tokenizer()?;
        let source = gguf.chat_template().ok_or_else(|| Error::file(path, "no tokenizer.chat_template in the metadata"))?;
        let template =
            ChatTemplate::from_source(source.to_string(), gguf.special_tokens()).map_err(|reason| Error::file(path, reason))?;
        let preprocessor = options.preprocessor(gguf.preprocessor().unwrap_or(PreprocessorConfig {
            longest_edge: 0,
            max_image_size: 0,
            do_image_splitting: false,
            do_resize: false,
            do_rescale: false,
            rescale_factor: 1.0,
            do_normalize: false,
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
            video_sampling: None,
        }));
        let eos = with_end_of_utterance(gguf.eos_token_ids(), &tokenizer);
        if tokenizer.get_vocab_size(true) > cfg.text.vocab_size {
            return Err(Error::file(path, "the tokenizer has more tokens than the embedding has rows"));
        }
        let model = SmolVlmModel::from_gguf_reporting(&cfg, &gguf, options.weights, on_step)?;
        Ok(Engine {
            context_length,
            config: cfg,
            preprocessor,
            eos,
            model,
            tokenizer,
            template,
            device: Device::Cpu,
            preset: options.preset,
            image_cache: ImageCache::new(options.image_cache_bytes.unwrap_or(DEFAULT_BYTES)),
            max_video_frames: options.max_video_frames,
        })
    }

    /// Whether the model takes images (a text-only GGUF does not).
    pub fn has_vision(&self) -> bool {
        self.model.has_vision()
    }

    /// How the weight matrices are stored (after resolving [`WeightFormat::Auto`]).
    pub fn weight_format(&self) -> WeightFormat {
        self.model.weight_format()
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The image preprocessing settings in force.
    pub fn preprocessor(&self) -> &PreprocessorConfig {
        &self.preprocessor
    }

    /// The image sizing preset in force.
    pub fn image_preset(&self) -> ImagePreset {
        self.preset
    }

    /// The preprocessing settings for an image of this size (the preset applied).
    pub fn image_config(&self, width: u32, height: u32) -> PreprocessorConfig {
        self.image_config_for(width, height, None)
    }

    /// [`Engine::image_config`] with image splitting overridden (`None`: as loaded).
    pub(crate) fn image_config_for(&self, width: u32, height: u32, split: Option<bool>) -> PreprocessorConfig {
        let mut cfg = preset_config(&self.preprocessor, self.preset, width, height);
        if let Some(split) = split {
            cfg.do_image_splitting = split;
        }
        cfg
    }

    /// The tile grid `(rows, cols)` an image of this size is cut into (`(0, 0)`: one frame).
    pub fn image_grid(&self, width: u32, height: u32) -> (usize, usize) {
        self.image_grid_for(width, height, None)
    }

    pub(crate) fn image_grid_for(&self, width: u32, height: u32, split: Option<bool>) -> (usize, usize) {
        image_grid(width, height, &self.image_config_for(width, height, split))
    }

    /// The most tokens (prompt plus answer) one conversation can hold:
    /// [`EngineOptions::context_length`], or the model's maximum.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Where the math runs ([`Backend::Cpu`] or [`Backend::Metal`]; `Auto` resolved).
    pub fn backend(&self) -> Backend {
        if self.device.is_metal() {
            Backend::Metal
        } else {
            Backend::Cpu
        }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// Token ids that end an answer.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos
    }

    /// The most frames one video contributes: [`EngineOptions::max_video_frames`], or the
    /// checkpoint's `max_frames` lowered to what fits: the context window (each frame takes the
    /// vision tokens of one tile plus its timestamp text, and room is kept for the question and
    /// the answer), and half the memory the OS says is available now (each frame's keys and
    /// values in the KV cache and its encoding). 0 for a checkpoint that takes no videos.
    pub fn video_frame_limit(&self) -> usize {
        let Some(sampling) = self.preprocessor.video_sampling.filter(|_| self.has_vision()) else { return 0 };
        if let Some(n) = self.max_video_frames {
            return n;
        }
        let tokens = self.config.image_seq_len() + FRAME_TEXT_TOKENS;
        let by_context = self.context_length.saturating_sub(VIDEO_TEXT_RESERVE) / tokens;
        let t = &self.config.text;
        let kv_value = self.model.kv_element_bytes();
        let frame_bytes = (tokens * 2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * kv_value
            + self.config.image_seq_len() * t.hidden_size * 4) as u64;
        let by_memory = crate::memory::available_bytes().map_or(usize::MAX, |a| (a / 2 / frame_bytes.max(1)) as usize);
        sampling.max_frames.min(by_context).min(by_memory).max(1)
    }

    /// The checkpoint's video sampling settings, or [`Error::InvalidArgument`] when it takes no
    /// videos.
    fn video_sampling(&self) -> Result<VideoSampling> {
        match self.preprocessor.video_sampling {
            Some(s) if self.has_vision() => Ok(s),
            _ => Err(Error::InvalidArgument(
                "this checkpoint takes no videos (no video_sampling in its preprocessor config); SmolVLM2 checkpoints do".into(),
            )),
        }
    }

    /// Indices of the frames a question reads out of `frame_count` frames spanning `duration`
    /// seconds, chosen as transformers' SmolVLM video processor chooses them from a decoded
    /// video (the checkpoint's fps, [`Engine::video_frame_limit`], 1 s trimmed at both ends of
    /// long videos; the source frame rate is `frame_count / duration`). A decoder can decode just
    /// these and pass them to [`Video::chosen`]. Fails with [`Error::InvalidArgument`] for a
    /// checkpoint that takes no videos or a bad count or duration.
    pub fn video_frame_indices(&self, frame_count: usize, duration: f64) -> Result<Vec<usize>> {
        let sampling = self.video_sampling()?;
        if frame_count == 0 || !(duration.is_finite() && duration > 0.0) {
            return Err(Error::InvalidArgument(format!(
                "a video needs frames and a positive duration (got {frame_count} frames, {duration} s)"
            )));
        }
        let fps = source_fps(frame_count, duration);
        Ok(sample_indices(frame_count, fps, duration, &sampling, self.video_frame_limit()))
    }

    /// Indices of the frames of `video` that a question reads: all of a [`Video::chosen`] (at
    /// most [`Engine::video_frame_limit`] of them), otherwise
    /// [`Engine::video_frame_indices`].
    pub fn video_frames(&self, video: &Video) -> Result<Vec<usize>> {
        let n = video.frames().len();
        if !video.is_chosen() {
            return self.video_frame_indices(n, video.duration());
        }
        self.video_sampling()?;
        let limit = self.video_frame_limit();
        if n > limit {
            return Err(Error::InvalidArgument(format!("{n} chosen video frames, but at most {limit} fit")));
        }
        Ok((0..n).collect())
    }

    /// The prompt text for `messages` after the chat template and image expansion, and its ids.
    pub fn prompt(&self, messages: &[Message]) -> Result<(String, Vec<u32>)> {
        self.prompt_for(messages, None).map(|(text, ids, _)| (text, ids))
    }

    /// [`Engine::prompt`] with image splitting overridden (`None`: as loaded), and what the
    /// vision encoder reads for it, in prompt order.
    pub(crate) fn prompt_for(&self, messages: &[Message], split: Option<bool>) -> Result<(String, Vec<u32>, Vec<Visual>)> {
        let has_media = messages.iter().any(|m| m.content.iter().any(|c| !matches!(c, Content::Text(_))));
        if !self.has_vision() && has_media {
            return Err(Error::InvalidArgument(
                "this model is text-only (no vision encoder): it cannot take images or videos".into(),
            ));
        }
        let media = messages.iter().flat_map(|m| &m.content).filter(|c| !matches!(c, Content::Text(_))).count();
        if media > MAX_MEDIA_PER_CONVERSATION {
            return Err(Error::InvalidArgument(format!(
                "{media} images and videos in one conversation; at most {MAX_MEDIA_PER_CONVERSATION}"
            )));
        }
        let mut layouts = Vec::new();
        let mut visuals = Vec::new();
        for c in messages.iter().flat_map(|m| &m.content) {
            match c {
                Content::Text(_) => {}
                Content::Image(img) => {
                    let (rows, cols) = self.image_grid_for(img.width, img.height, split);
                    layouts.push(MediaLayout::Image { rows, cols });
                    visuals.push(Visual::Image(img.clone(), (rows, cols)));
                }
                Content::Video(video) => {
                    let chosen = self.video_frames(video)?;
                    visuals.extend(chosen.iter().map(|&i| Visual::Frame(video.frames()[i].clone())));
                    layouts.push(MediaLayout::Video {
                        timestamps: chosen.iter().map(|&i| video.timestamps()[i]).collect(),
                        duration: video.duration(),
                        stated_frames: chosen.len(),
                    });
                }
            }
        }
        // The processor pads the videos of one call to the longest and states that length in
        // every video's intro.
        let longest = layouts
            .iter()
            .filter_map(|l| match l {
                MediaLayout::Video { timestamps, .. } => Some(timestamps.len()),
                MediaLayout::Image { .. } => None,
            })
            .max();
        for l in &mut layouts {
            if let (MediaLayout::Video { stated_frames, .. }, Some(n)) = (l, longest) {
                *stated_frames = n;
            }
        }
        let text = self.template.render(messages, true)?;
        let text = expand_media(&text, &layouts, self.config.image_seq_len())?;
        let enc = self.tokenizer.encode(text.as_str(), false).map_err(|e| Error::Internal(format!("tokenize: {e}")))?;
        Ok((text, enc.get_ids().to_vec(), visuals))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_plans_lower_the_default_context_or_refuse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-smolvlm2");
        let mut cfg = Checkpoint::open(&dir).unwrap().config;
        cfg.text.max_position_embeddings = 16384;
        let max = 16384;
        let plan = |options: &EngineOptions, available| plan_memory(options, &cfg, WeightFormat::F32, None, 1 << 20, available);
        let full = plan(&EngineOptions::default(), None).unwrap();
        assert_eq!(full.context_length, max);
        assert_eq!(full.total, full.weights + full.kv_cache + full.activations + full.runtime);
        // Plenty of memory: nothing changes.
        assert_eq!(plan(&EngineOptions::default(), Some(full.total + 1)).unwrap(), full);
        // Too little for the full context: the default cap is lowered to what fits.
        let at_4000 = memory::estimate(&cfg, WeightFormat::F32, 4000, None, 1 << 20);
        let lowered = plan(&EngineOptions::default(), Some(at_4000.total)).unwrap();
        assert!((3990..=4000).contains(&lowered.context_length) && lowered.total <= at_4000.total, "{lowered:?}");
        // An explicit context that does not fit, or memory below even the smallest default: refused.
        let explicit = EngineOptions { context_length: Some(max), ..Default::default() };
        assert!(matches!(plan(&explicit, Some(at_4000.total)), Err(Error::InsufficientMemory { .. })));
        match plan(&EngineOptions::default(), Some(full.weights)) {
            Err(Error::InsufficientMemory { needed, available }) => assert!(needed > available),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn estimates_follow_the_precision_and_the_context() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        let dir = fixtures.join("models/tiny-smolvlm2");
        let at = |weights, context_length| {
            Engine::estimate_memory(&dir, &EngineOptions { weights, context_length, ..Default::default() }).unwrap()
        };
        let (f32, q8) = (at(WeightFormat::F32, Some(1024)), at(WeightFormat::Q8_0, Some(1024)));
        assert!(q8.weights < f32.weights && q8.kv_cache * 2 == f32.kv_cache, "{q8:?} {f32:?}");
        assert_eq!(at(WeightFormat::F32, Some(512)).kv_cache * 2, f32.kv_cache);
        assert_eq!(f32.total, f32.weights + f32.kv_cache + f32.activations + f32.runtime);
        // A GGUF pair: the files' sizes.
        let gguf = fixtures.join("gguf");
        let e = Engine::estimate_memory(&gguf, &EngineOptions::default()).unwrap();
        let files: u64 = std::fs::read_dir(&gguf).unwrap().map(|f| f.unwrap().metadata().unwrap().len()).sum();
        assert_eq!(e.weights, files);
        assert!(Engine::estimate_memory(Path::new("/no/such/model"), &EngineOptions::default()).is_err());
    }
}
