//! A session: one conversation with an [`Engine`] and its key/value cache, answered step by
//! step ([`Reply`]) or whole ([`Answer`]), with the answer's [`Stats`].

use crate::chat::{Content, Message, Role};
use crate::engine::{CancelToken, Engine, Visual};
use crate::error::{Error, Result};
use crate::generation::{top_logprobs, GenerationOptions, Sampler, TextStream, TokenLogprob};
use crate::image_cache::{ImageKey, KeyHasher};
use crate::memory::PREFILL_CHUNK;
use crate::model::KvCache;
use crate::processor::preprocess::frames;
use crate::processor::video::frame_pixels;
use candle_core::Tensor;
use std::sync::Arc;
use std::time::Instant;

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
    /// Images whose encoding came from the engine's cache (no vision work, 0 ms).
    pub cached_images: usize,
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
    /// Overrides the engine's image splitting for this session.
    image_splitting: Option<bool>,
    /// The image-cache keys of the images the last reply encoded or found in the cache.
    image_keys: Vec<ImageKey>,
}

impl Session {
    /// A new, empty conversation.
    pub fn new(engine: Arc<Engine>) -> Self {
        let cache = engine.model.new_cache_with_limit(engine.context_length);
        Session { engine, messages: Vec::new(), cache, cached: Vec::new(), image_splitting: None, image_keys: Vec::new() }
    }

    /// The engine this session runs on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Splits this session's images into tiles (`Some(true)`), never (`Some(false)`: one 64-token
    /// view per image, much faster), or as the engine does (`None`). Images already answered
    /// about keep the tiling they were read with until the transcript changes before them.
    pub fn set_image_splitting(&mut self, split: Option<bool>) {
        if split != self.image_splitting {
            self.image_splitting = split;
            self.cache.clear();
            self.cached.clear();
        }
    }

    /// The image-cache keys of the images the last reply read (encoded, or found cached).
    pub(crate) fn image_keys(&self) -> &[ImageKey] {
        &self.image_keys
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
                Content::Image(_) | Content::Video(_) => true,
            })
        });
        if !has_content {
            return Err(Error::InvalidArgument("the prompt is empty".into()));
        }
        let (_, ids, visuals) = engine.prompt_for(&self.messages, self.image_splitting)?;
        let limit = engine.context_length();
        if ids.len() + 1 > limit {
            return Err(Error::ContextOverflow { tokens: ids.len() + 1, limit });
        }

        // Every tile is one run of `per_tile` image tokens; visual k covers a contiguous range of
        // runs. Reuse the longest cached prefix, but never cut into a visual's tokens.
        let per_tile = engine.config.image_seq_len();
        let runs = image_token_runs(&ids, engine.config.image_token_id);
        let tiles: usize = visuals.iter().map(Visual::tiles).sum();
        if runs.len() != tiles || runs.iter().any(|(a, b)| b - a != per_tile) {
            return Err(Error::Internal(format!("{} image-token runs in the prompt for {tiles} tiles", runs.len())));
        }
        let mut keep = self.cached.iter().zip(&ids).take_while(|(a, b)| a == b).count().min(ids.len() - 1);
        let mut first_new_visual = visuals.len();
        let mut tile = 0;
        for (k, v) in visuals.iter().enumerate() {
            let (start, end) = (runs[tile].0, runs[tile + v.tiles() - 1].1);
            if end > keep {
                keep = keep.min(start);
                first_new_visual = k;
                break;
            }
            tile += v.tiles();
        }
        self.cache.truncate(keep);
        self.cached.truncate(keep);
        // The prompt and the longest answer: the KV buffers are sized for both at once.
        self.cache.reserve(ids.len().saturating_add(options.max_tokens));

        // Vision: one tile at a time so a cancel is honoured between tiles. An image or video
        // frame whose encoding is in the engine's cache (same preprocessed pixels) is not
        // encoded again.
        let vision_start = Instant::now();
        let mut features = Vec::new();
        let mut tiles = 0;
        let mut cached_images = 0;
        self.image_keys.clear();
        for v in &visuals[first_new_visual..] {
            cancel.check()?;
            let (encoded, key, work) = encode_visual(&engine, v, self.image_splitting, cancel)?;
            self.image_keys.extend(key);
            if work == 0 {
                cached_images += 1;
            }
            tiles += work;
            features.push(encoded);
        }
        let features = if features.is_empty() { None } else { Some(Tensor::cat(&features, 0)?) };
        let vision_ms = if tiles == 0 { 0.0 } else { ms(vision_start) };

        cancel.check()?;
        let prefill_start = Instant::now();
        let logits = prefill(&engine, &ids[keep..], features.as_ref(), &mut self.cache, cancel)?;
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
                cached_images,
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

/// Runs `ids` (after what `cache` holds) through the decoder in chunks of [`PREFILL_CHUNK`],
/// each chunk taking its image tokens' rows of `features`; the logits of the last position.
fn prefill(
    engine: &Engine,
    ids: &[u32],
    features: Option<&Tensor>,
    cache: &mut KvCache,
    cancel: &CancelToken,
) -> Result<Vec<f32>> {
    let image_id = engine.config.image_token_id;
    let mut logits = Vec::new();
    let mut row = 0;
    for chunk in ids.chunks(PREFILL_CHUNK) {
        cancel.check()?;
        let n = chunk.iter().filter(|&&t| t == image_id).count();
        let rows = match features {
            Some(f) if n > 0 => Some(f.narrow(0, row, n)?),
            _ => None,
        };
        row += n;
        logits = engine.model.logits(chunk, rows.as_ref(), cache)?;
    }
    Ok(logits)
}

/// `(start, end)` of every run of `image_id` in `ids`.
fn image_token_runs(ids: &[u32], image_id: u32) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        if ids[i] == image_id {
            let start = i;
            while i < ids.len() && ids[i] == image_id {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// The encoding of one image or video frame (`[tiles · tokens, hidden]`), its image-cache key
/// (when the cache is on), and the tiles run through the encoder (0: it came from the cache).
/// Each tile's pixels are made just before they are used and dropped after.
fn encode_visual(
    engine: &Engine,
    visual: &Visual,
    split: Option<bool>,
    cancel: &CancelToken,
) -> Result<(Tensor, Option<ImageKey>, usize)> {
    let m = engine.preprocessor.max_image_size as usize;
    let image_frames;
    let make: Box<dyn Fn(usize) -> Result<Vec<f32>> + '_> = match visual {
        Visual::Image(img, _) => {
            image_frames = frames(img, &engine.image_config_for(img.width, img.height, split))?;
            let f = &image_frames;
            Box::new(move |i| {
                let mut pixels = vec![0f32; f.frame_len()];
                f.write(i, &mut pixels)?;
                Ok(pixels)
            })
        }
        Visual::Frame(img) => {
            let edge = engine.preprocessor.video_sampling.map_or(engine.preprocessor.longest_edge, |s| s.longest_edge);
            Box::new(move |_| {
                let mut pixels = vec![0f32; 3 * m * m];
                frame_pixels(img, &engine.preprocessor, edge, &mut pixels)?;
                Ok(pixels)
            })
        }
    };
    let n = visual.tiles();
    // The cache key hashes every tile; a single tile's pixels are kept for the encoder.
    let mut kept = None;
    let key = if engine.image_cache.enabled() {
        let mut hasher = KeyHasher::new(n, m);
        for t in 0..n {
            let pixels = make(t)?;
            hasher.tile(&pixels);
            if n == 1 {
                kept = Some(pixels);
            }
        }
        let key = hasher.finish();
        if let Some(hit) = engine.image_cache.get(&key) {
            return Ok((hit, Some(key), 0));
        }
        Some(key)
    } else {
        None
    };
    let mut encoded = Vec::with_capacity(n);
    for t in 0..n {
        cancel.check()?;
        let pixels = match kept.take() {
            Some(p) => p,
            None => make(t)?,
        };
        let tile = Tensor::from_vec(pixels, (1, 3, m, m), &engine.device)?;
        encoded.push(engine.model.encode_images(&tile)?.squeeze(0)?);
    }
    let features = Tensor::cat(&encoded, 0)?;
    if let Some(key) = key {
        engine.image_cache.insert(key, &features);
    }
    Ok((features, key, n))
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
