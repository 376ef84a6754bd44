//! The engine (weights, tokenizer, template; shared and immutable) and its sessions (a
//! conversation plus its KV cache), with step-by-step generation.

use crate::chat::{Content, Message, Role};
use crate::checkpoint::{load_tokenizer, Checkpoint};
use crate::config::{ModelConfig, PreprocessorConfig};
use crate::error::{Error, Result};
use crate::generation::{top_logprobs, GenerationOptions, Sampler, TextStream, TokenLogprob};
pub use crate::model::LoadStage;
use crate::model::{KvCache, SmolVlmModel, WeightFormat};
use crate::processor::preprocess::{frames as image_frames, image_grid, preset_config};
pub use crate::processor::preprocess::ImagePreset;
use crate::prompt::{expand_images, ChatTemplate};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
    /// `max_position_embeddings`). A smaller cap also bounds each session's KV cache, which
    /// never grows past this many positions; a prompt beyond it fails with
    /// [`Error::ContextOverflow`]. 0 or more than the model's maximum is
    /// [`Error::InvalidArgument`].
    pub context_length: Option<usize>,
    /// Where the math runs: [`Backend::Cpu`] (the default), [`Backend::Metal`] or
    /// [`Backend::Auto`].
    pub backend: Backend,
}

/// Where the model math runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// The CPU (candle's CPU kernels). The default, and the only backend of GGUF models.
    #[default]
    Cpu,
    /// The Apple GPU through candle's Metal backend. Needs a build with this crate's `metal`
    /// feature and a Metal device; otherwise loading fails with [`Error::InvalidArgument`].
    Metal,
    /// Metal when this build has it, a Metal device exists and the model is not a GGUF file;
    /// the CPU otherwise.
    Auto,
}

impl Backend {
    /// The device for this backend; `gguf` models run on the CPU only.
    fn device(self, gguf: bool) -> Result<Device> {
        match self {
            Backend::Cpu => Ok(Device::Cpu),
            Backend::Metal if gguf => {
                Err(Error::InvalidArgument("GGUF models run on the CPU only: use the CPU backend".into()))
            }
            Backend::Metal => metal_device(),
            Backend::Auto => Ok(if gguf { Device::Cpu } else { metal_device().unwrap_or(Device::Cpu) }),
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
    fn check(&self) -> Result<()> {
        if self.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
    }
}

/// A loaded SmolVLM model, ready to answer. Cheap to share (`Arc`) across sessions and threads.
pub struct Engine {
    config: ModelConfig,
    preprocessor: PreprocessorConfig,
    eos: Vec<u32>,
    model: SmolVlmModel,
    tokenizer: tokenizers::Tokenizer,
    template: ChatTemplate,
    device: Device,
    preset: ImagePreset,
    /// Most tokens one session holds (at most the model's `max_position_embeddings`).
    context_length: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a model folder in the Hugging Face hub layout, or a llama.cpp GGUF file (plus
    /// [`EngineOptions::mmproj`] for the vision half).
    pub fn load(dir: &Path, options: &EngineOptions) -> Result<Self> {
        Self::load_with_progress(dir, options, &mut |_, _| {})
    }

    /// [`Engine::load`], reporting progress to `on_progress` on the calling thread: a stage and
    /// the fraction of the whole load done, which only grows. It starts with
    /// `(Reading, 0.0)`, reports `Vision` after each vision encoder layer and after the
    /// connector, `Text` after each decoder layer and after the output head (fractions counted
    /// in those steps), and ends with `(Ready, 1.0)`. Nothing is reported after an error.
    pub fn load_with_progress(
        dir: &Path,
        options: &EngineOptions,
        on_progress: &mut dyn FnMut(LoadStage, f32),
    ) -> Result<Self> {
        on_progress(LoadStage::Reading, 0.0);
        let gguf = crate::gguf::is_gguf(dir);
        let device = options.backend.device(gguf)?;
        // `steps + 1` parts: the last one is Ready, so fractions grow strictly up to 1.0.
        let mut on_step = |stage: LoadStage, done: usize, steps: usize| {
            on_progress(stage, done as f32 / (steps + 1) as f32)
        };
        let engine = if gguf {
            Self::load_gguf(dir, options, &mut on_step)?
        } else {
            Self::load_dir(dir, options, device, &mut on_step)?
        };
        on_progress(LoadStage::Ready, 1.0);
        Ok(engine)
    }

    /// Loads a folder in the Hugging Face hub layout onto `device`.
    fn load_dir(
        dir: &Path,
        options: &EngineOptions,
        device: Device,
        on_step: &mut dyn FnMut(LoadStage, usize, usize),
    ) -> Result<Self> {
        if let Some(m) = &options.mmproj {
            return Err(Error::InvalidArgument(format!(
                "--mmproj {} needs a GGUF text model, not a folder",
                m.display()
            )));
        }
        let ckpt = Checkpoint::open(dir)?;
        let context_length = context_cap(options, &ckpt.config)?;
        let tokenizer = load_tokenizer(&ckpt.file("tokenizer.json"))?;
        let template = ChatTemplate::load(dir)?;
        let mut preprocessor = ckpt.preprocessor.clone();
        if let Some(split) = options.image_splitting {
            preprocessor.do_image_splitting = split;
        }
        if let Some(edge) = options.longest_edge {
            if edge == 0 || edge > 8192 {
                return Err(Error::InvalidArgument(format!("longest_edge {edge} is outside 1..=8192")));
            }
            preprocessor.longest_edge = edge;
        }
        let mut eos = ckpt.generation.eos_token_ids.clone();
        for name in ["<end_of_utterance>"] {
            if let Some(id) = tokenizer.token_to_id(name) {
                if !eos.contains(&id) {
                    eos.push(id);
                }
            }
        }
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
        Ok(Engine { config: ckpt.config, preprocessor, eos, model, tokenizer, template, device, preset, context_length })
    }

    /// Loads a llama.cpp text GGUF (`path`) and, when [`EngineOptions::mmproj`] is set, its
    /// vision GGUF. The tokenizer, chat template and end-of-turn ids come from the text file's
    /// metadata, the image settings from the mmproj file's.
    fn load_gguf(path: &Path, options: &EngineOptions, on_step: &mut dyn FnMut(LoadStage, usize, usize)) -> Result<Self> {
        let gguf = crate::gguf::GgufModel::open(path, options.mmproj.as_deref())?;
        let cfg = gguf.config().clone();
        let context_length = context_cap(options, &cfg)?;
        let tokenizer = gguf.tokenizer()?;
        let source = gguf.chat_template().ok_or_else(|| Error::file(path, "no tokenizer.chat_template in the metadata"))?;
        let template = ChatTemplate::from_source(source.to_string(), gguf.special_tokens())
            .map_err(|reason| Error::file(path, reason))?;
        let mut preprocessor = gguf.preprocessor().unwrap_or(PreprocessorConfig {
            longest_edge: 0,
            max_image_size: 0,
            do_image_splitting: false,
            do_resize: false,
            do_rescale: false,
            rescale_factor: 1.0,
            do_normalize: false,
            image_mean: [0.0; 3],
            image_std: [1.0; 3],
        });
        if let Some(split) = options.image_splitting {
            preprocessor.do_image_splitting = split;
        }
        if let Some(edge) = options.longest_edge {
            if edge == 0 || edge > 8192 {
                return Err(Error::InvalidArgument(format!("longest_edge {edge} is outside 1..=8192")));
            }
            preprocessor.longest_edge = edge;
        }
        let mut eos = gguf.eos_token_ids();
        if let Some(id) = tokenizer.token_to_id("<end_of_utterance>") {
            if !eos.contains(&id) {
                eos.push(id);
            }
        }
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
        preset_config(&self.preprocessor, self.preset, width, height)
    }

    /// The tile grid `(rows, cols)` an image of this size is cut into (`(0, 0)`: one frame).
    pub fn image_grid(&self, width: u32, height: u32) -> (usize, usize) {
        image_grid(width, height, &self.image_config(width, height))
    }

    /// The most tokens (prompt plus answer) one conversation can hold:
    /// [`EngineOptions::context_length`], or the model's maximum.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Where the math runs ([`Backend::Cpu`] or [`Backend::Metal`]; `Auto` resolved).
    pub fn backend(&self) -> Backend {
        if self.device.is_metal() { Backend::Metal } else { Backend::Cpu }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// Token ids that end an answer.
    pub fn eos_token_ids(&self) -> &[u32] {
        &self.eos
    }

    /// The prompt text for `messages` after the chat template and image expansion, and its ids.
    pub fn prompt(&self, messages: &[Message]) -> Result<(String, Vec<u32>)> {
        if !self.has_vision() && messages.iter().any(|m| m.images().next().is_some()) {
            return Err(Error::InvalidArgument("this model is text-only (no vision encoder): it cannot take images".into()));
        }
        let text = self.template.render(messages, true)?;
        let grids: Vec<(usize, usize)> = messages
            .iter()
            .flat_map(Message::images)
            .map(|img| self.image_grid(img.width, img.height))
            .collect();
        let text = expand_images(&text, &grids, self.config.image_seq_len())?;
        let enc = self
            .tokenizer
            .encode(text.as_str(), false)
            .map_err(|e| Error::Internal(format!("tokenize: {e}")))?;
        Ok((text, enc.get_ids().to_vec()))
    }
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-turn token.
    EndOfTurn,
    /// A caller stop string appeared.
    StopString,
    /// `max_tokens` were generated, or the context is full.
    Length,
}

/// Timings and counts of one answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Time spent preprocessing and encoding images (0 when every image was already cached).
    pub vision_encode_ms: f64,
    /// Time of the prompt's forward pass.
    pub prefill_ms: f64,
    /// From the call to the first generated token.
    pub ttft_ms: f64,
    /// Generated tokens per second after the first one.
    pub decode_tokens_per_s: f64,
    /// Tokens in the whole prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens actually computed (the rest came from the session's cache).
    pub prefill_tokens: usize,
    /// Image tiles run through the vision encoder.
    pub vision_tiles: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
}

/// A finished answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The answer text (special tokens removed; stop string excluded).
    pub text: String,
    /// Generated ids, in order (the end-of-turn token excluded).
    pub token_ids: Vec<u32>,
    /// Per generated token, the most likely candidates (when asked for).
    pub top_logprobs: Vec<Vec<TokenLogprob>>,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Timings and counts.
    pub stats: Stats,
}

/// One conversation with its KV cache. Follow-up questions reuse the cache, so an image already
/// seen is not encoded again and only new tokens are computed.
pub struct Session {
    engine: Arc<Engine>,
    messages: Vec<Message>,
    cache: KvCache,
    /// Ids whose keys and values `cache` holds.
    cached: Vec<u32>,
}

impl Session {
    /// A new, empty conversation.
    pub fn new(engine: Arc<Engine>) -> Self {
        let cache = engine.model.new_cache_with_limit(engine.context_length);
        Session { engine, messages: Vec::new(), cache, cached: Vec::new() }
    }

    /// The engine this session runs on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The transcript so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Appends a message to the transcript (nothing is computed until [`Session::reply`]).
    pub fn push(&mut self, message: Message) {
        self.messages.push(message);
    }

    /// Drops every message after the first `len` (for undoing a failed or cancelled question).
    /// The KV cache is kept: the part of it that still matches the shorter conversation is reused.
    pub fn truncate(&mut self, len: usize) {
        self.messages.truncate(len);
    }

    /// Forgets the conversation and the cache.
    pub fn reset(&mut self) {
        self.messages.clear();
        self.cache.clear();
        self.cached.clear();
    }

    /// Starts the assistant's answer to the transcript: encodes new images and runs the prompt.
    /// Pull the text with [`Reply::next_piece`]. When the reply ends, it is appended to the
    /// transcript as an assistant message.
    pub fn reply(&mut self, options: &GenerationOptions, cancel: &CancelToken) -> Result<Reply<'_>> {
        options.validate()?;
        let start = Instant::now();
        let engine = self.engine.clone();
        if self.messages.is_empty() {
            return Err(Error::InvalidArgument("the conversation is empty".into()));
        }
        let has_content = self.messages.iter().any(|m| {
            m.content.iter().any(|c| match c {
                Content::Text(t) => !t.trim().is_empty(),
                Content::Image(_) => true,
            })
        });
        if !has_content {
            return Err(Error::InvalidArgument("the prompt is empty".into()));
        }
        let (_, ids) = engine.prompt(&self.messages)?;
        let limit = engine.context_length();
        if ids.len() + 1 > limit {
            return Err(Error::ContextOverflow { tokens: ids.len() + 1, limit });
        }

        // Reuse the longest cached prefix, but never cut into an image's block of tokens.
        let images: Vec<_> = self.messages.iter().flat_map(Message::images).cloned().collect();
        let image_id = engine.config.image_token_id;
        let per_tile = engine.config.image_seq_len();
        let mut image_starts = Vec::with_capacity(images.len());
        let mut pos = 0;
        for img in &images {
            let (r, c) = engine.image_grid(img.width, img.height);
            let tokens = (r * c + 1) * per_tile;
            let first = ids[pos..].iter().position(|&t| t == image_id).map(|i| i + pos).ok_or_else(|| {
                Error::Internal("image tokens missing from the prompt".into())
            })?;
            image_starts.push(first);
            pos = first + tokens;
        }
        let mut keep = self.cached.iter().zip(&ids).take_while(|(a, b)| a == b).count().min(ids.len() - 1);
        let mut first_new_image = images.len();
        for (k, &s) in image_starts.iter().enumerate() {
            let end = s + (image_block(&images[k], &engine) * per_tile);
            if end > keep {
                keep = keep.min(s);
                first_new_image = k;
                break;
            }
        }
        self.cache.truncate(keep);
        self.cached.truncate(keep);
        // The prompt and the longest answer: the KV buffers are sized for both at once.
        self.cache.reserve(ids.len().saturating_add(options.max_tokens));

        // Vision: one tile at a time so a cancel is honoured between tiles; each tile's pixels
        // are made just before it is encoded and dropped after, so only one exists at a time.
        let vision_start = Instant::now();
        let mut features = Vec::new();
        let mut tiles = 0;
        for img in &images[first_new_image..] {
            cancel.check()?;
            let frames = image_frames(img, &engine.image_config(img.width, img.height))?;
            let m = frames.tile_size;
            for f in 0..frames.frames {
                cancel.check()?;
                let mut pixels = vec![0f32; frames.frame_len()];
                frames.write(f, &mut pixels)?;
                let tile = Tensor::from_vec(pixels, (1, 3, m, m), &engine.device)?;
                let feats = engine.model.encode_images(&tile)?;
                features.push(feats.squeeze(0)?);
                tiles += 1;
            }
        }
        let features = if features.is_empty() { None } else { Some(Tensor::cat(&features, 0)?) };
        let vision_ms = if tiles == 0 { 0.0 } else { ms(vision_start) };

        cancel.check()?;
        let prefill_start = Instant::now();
        let logits = engine.model.logits(&ids[keep..], features.as_ref(), &mut self.cache)?;
        let prefill_ms = ms(prefill_start);
        let prefill_tokens = ids.len() - keep;
        let prompt_tokens = ids.len();
        self.cached = ids;

        Ok(Reply {
            stream: TextStream::new(&options.stop),
            sampler: Sampler::new(options),
            options: options.clone(),
            cancel: cancel.clone(),
            session: self,
            logits,
            pending: None,
            generated: Vec::new(),
            top: Vec::new(),
            finish: None,
            start,
            first_token: None,
            stats: Stats {
                vision_encode_ms: vision_ms,
                prefill_ms,
                prompt_tokens,
                prefill_tokens,
                vision_tiles: tiles,
                ..Stats::default()
            },
        })
    }

    /// Adds `message` to the transcript and answers it, calling `on_text` with each new piece
    /// of text as it is generated.
    pub fn ask(
        &mut self,
        message: Message,
        options: &GenerationOptions,
        cancel: &CancelToken,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        self.push(message);
        self.generate(options, cancel, on_text)
    }

    /// Answers the transcript as it stands (see [`Session::reply`]), streaming into `on_text`.
    pub fn generate(
        &mut self,
        options: &GenerationOptions,
        cancel: &CancelToken,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let mut reply = self.reply(options, cancel)?;
        while let Some(piece) = reply.next_piece()? {
            on_text(&piece);
        }
        reply.into_answer()
    }
}

/// Number of tiles (including the global view) an image is cut into.
fn image_block(img: &crate::processor::image::RgbImage, engine: &Engine) -> usize {
    let (r, c) = engine.image_grid(img.width, img.height);
    r * c + 1
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// An answer being generated; pull its text with [`Reply::next_piece`].
pub struct Reply<'s> {
    session: &'s mut Session,
    options: GenerationOptions,
    cancel: CancelToken,
    sampler: Sampler,
    stream: TextStream,
    /// Logits for the next token (valid when `pending` is `None`).
    logits: Vec<f32>,
    /// A sampled token not yet fed to the model.
    pending: Option<u32>,
    generated: Vec<u32>,
    top: Vec<Vec<TokenLogprob>>,
    finish: Option<FinishReason>,
    start: Instant,
    first_token: Option<Instant>,
    stats: Stats,
}

impl Reply<'_> {
    /// The next piece of text, or `None` once the answer is complete. Pieces never split a
    /// UTF-8 character. Fails with [`Error::Cancelled`] after a cancel.
    pub fn next_piece(&mut self) -> Result<Option<String>> {
        loop {
            if self.finish.is_some() {
                return Ok(None);
            }
            let engine = self.session.engine.clone();
            if let Some(tok) = self.pending.take() {
                if self.cancel.is_cancelled() {
                    self.pending = Some(tok);
                    return Err(Error::Cancelled);
                }
                self.logits = engine.model.logits(&[tok], None, &mut self.session.cache)?;
                self.session.cached.push(tok);
            }
            self.cancel.check()?;
            if self.options.top_logprobs > 0 {
                self.top.push(top_logprobs(&self.logits, self.options.top_logprobs));
            }
            let tok = self.sampler.pick(&self.logits, &self.session.cached);
            if self.first_token.is_none() {
                self.first_token = Some(Instant::now());
                self.stats.ttft_ms = ms(self.start);
            }
            if engine.eos.contains(&tok) {
                return self.end(FinishReason::EndOfTurn);
            }
            self.generated.push(tok);
            let (piece, stopped) = self.stream.push(&engine.tokenizer, tok)?;
            if stopped {
                self.end(FinishReason::StopString)?;
                return Ok(Some(piece).filter(|p| !p.is_empty()));
            }
            let full = self.session.cached.len() + 1 >= engine.context_length();
            if self.generated.len() >= self.options.max_tokens || full {
                let rest = self.stream.flush(&engine.tokenizer)?;
                self.end(FinishReason::Length)?;
                let piece = piece + &rest;
                return Ok(Some(piece).filter(|p| !p.is_empty()));
            }
            self.pending = Some(tok);
            if !piece.is_empty() {
                return Ok(Some(piece));
            }
        }
    }

    fn end(&mut self, reason: FinishReason) -> Result<Option<String>> {
        let engine = self.session.engine.clone();
        let rest = if reason == FinishReason::EndOfTurn { self.stream.flush(&engine.tokenizer)? } else { String::new() };
        self.finish = Some(reason);
        self.session.messages.push(Message::text(Role::Assistant, self.stream.text().trim_start()));
        Ok(Some(rest).filter(|p| !p.is_empty()))
    }

    /// Generates to the end and returns the whole answer with its statistics.
    pub fn into_answer(mut self) -> Result<Answer> {
        while self.next_piece()?.is_some() {}
        let mut stats = self.stats.clone();
        stats.generated_tokens = self.generated.len();
        if let Some(first) = self.first_token {
            let secs = first.elapsed().as_secs_f64();
            let after_first = self.generated.len().saturating_sub(1);
            stats.decode_tokens_per_s = if secs > 0.0 && after_first > 0 { after_first as f64 / secs } else { 0.0 };
        }
        Ok(Answer {
            text: self.stream.text().to_string(),
            token_ids: self.generated.clone(),
            top_logprobs: std::mem::take(&mut self.top),
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
            stats,
        })
    }
}
