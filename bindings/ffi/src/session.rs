//! `ChatSession` and `TokenStream`: a conversation behind a mutex, and its answers pulled piece by
//! piece from a worker thread that owns the core session while it generates.
//!
//! Why a worker thread: the core's `Reply` borrows the session mutably for as long as the answer
//! runs, while a uniffi object must be `'static` and shared. The worker owns the session for the
//! duration of one answer and computes the next piece only when [`TokenStream::next`] asks for it
//! (strict pull: nothing runs ahead of the host), then hands the session back.

use crate::error::SmolVlmError;
use crate::image::ImageInput;
use crate::ints::{non_negative, saturating_i32, saturating_i64};
use crate::video::VideoInput;
use crate::{lock, EngineCtx, LIVE_SESSIONS, LIVE_STREAMS};
use smolvlm::{CancelToken, Content, GenerationOptions, Message, Role, Session, Stats};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// How to pick tokens and when to stop. Defaults: greedy, 256 tokens.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct GenerationConfig {
    /// Most tokens to generate (at least 1).
    #[uniffi(default = 256)]
    pub max_tokens: i32,
    /// Softmax temperature; 0 picks the most likely token (greedy, deterministic).
    #[uniffi(default = 0.0)]
    pub temperature: f32,
    /// Sample only among the k most likely tokens (0 = off; not negative).
    #[uniffi(default = 0)]
    pub top_k: i32,
    /// Sample only among the most likely tokens whose probabilities add up to p (1.0 = off).
    #[uniffi(default = 1.0)]
    pub top_p: f32,
    /// Penalty for tokens already in the conversation (1.0 = off).
    #[uniffi(default = 1.0)]
    pub repetition_penalty: f32,
    /// Seed for sampling; the same seed gives the same answer. Any value: a negative seed is
    /// the same 64 bits read as unsigned.
    #[uniffi(default = 0)]
    pub seed: i64,
    /// The answer ends before the first of these strings (which is not included).
    #[uniffi(default)]
    pub stop: Vec<String>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationOptions::default().into()
    }
}

impl From<GenerationOptions> for GenerationConfig {
    fn from(o: GenerationOptions) -> Self {
        GenerationConfig {
            max_tokens: saturating_i32(o.max_tokens),
            temperature: o.temperature,
            top_k: saturating_i32(o.top_k),
            top_p: o.top_p,
            repetition_penalty: o.repetition_penalty,
            seed: o.seed as i64,
            stop: o.stop,
        }
    }
}

impl GenerationConfig {
    fn to_core(&self) -> Result<GenerationOptions, SmolVlmError> {
        let o = GenerationOptions {
            max_tokens: non_negative(self.max_tokens, "max_tokens")? as usize,
            temperature: self.temperature,
            top_k: non_negative(self.top_k, "top_k")? as usize,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            // Bit for bit: every 64-bit seed is a seed.
            seed: self.seed as u64,
            stop: self.stop.clone(),
            ..Default::default()
        };
        o.validate()?;
        Ok(o)
    }
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FinishReason {
    /// The model finished its turn.
    EndOfTurn,
    /// One of the `stop` strings appeared.
    StopString,
    /// `max_tokens` were generated, or the context is full.
    Length,
}

impl From<smolvlm::FinishReason> for FinishReason {
    fn from(r: smolvlm::FinishReason) -> Self {
        match r {
            smolvlm::FinishReason::EndOfTurn => FinishReason::EndOfTurn,
            smolvlm::FinishReason::StopString => FinishReason::StopString,
            smolvlm::FinishReason::Length => FinishReason::Length,
        }
    }
}

/// Timings and counts of one finished answer.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct GenerationStats {
    /// Milliseconds spent preprocessing and encoding images; 0 when every image was already
    /// encoded earlier in the session.
    pub vision_encode_ms: f64,
    /// Milliseconds of the prompt's forward pass.
    pub prefill_ms: f64,
    /// Milliseconds from the first `next()` to the first generated token.
    pub ttft_ms: f64,
    /// Generated tokens per second after the first one.
    pub decode_tokens_per_s: f64,
    /// Tokens in the whole conversation prompt.
    pub prompt_tokens: i64,
    /// Prompt tokens actually computed; the rest came from the session's cache.
    pub prefill_tokens: i64,
    /// Image tiles run through the vision encoder (0 for a follow-up about the same image).
    pub vision_tiles: i64,
    /// Images whose encoding came from the model's image cache (`LoadOptions.image_cache_mb`):
    /// seen before by any session of this model, so not encoded again.
    pub cached_images: i64,
    /// Tokens generated.
    pub generated_tokens: i64,
    /// Why the answer ended.
    pub finish_reason: FinishReason,
}

fn stats(s: &Stats, finish: smolvlm::FinishReason) -> GenerationStats {
    GenerationStats {
        vision_encode_ms: s.vision_encode_ms,
        prefill_ms: s.prefill_ms,
        ttft_ms: s.ttft_ms,
        decode_tokens_per_s: s.decode_tokens_per_s,
        prompt_tokens: saturating_i64(s.prompt_tokens),
        prefill_tokens: saturating_i64(s.prefill_tokens),
        vision_tiles: saturating_i64(s.vision_tiles),
        cached_images: saturating_i64(s.cached_images),
        generated_tokens: saturating_i64(s.generated_tokens),
        finish_reason: finish.into(),
    }
}

/// Who wrote a transcript message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ChatRole {
    /// The system prompt.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
}

/// One message of a session's transcript.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: ChatRole,
    /// Its text (all text parts joined).
    pub text: String,
    /// How many images it carries.
    pub image_count: i32,
}

fn to_chat(m: &Message) -> ChatMessage {
    let role = match m.role {
        Role::System => ChatRole::System,
        Role::User => ChatRole::User,
        Role::Assistant => ChatRole::Assistant,
    };
    let text = m
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.as_str()),
            Content::Image(_) | Content::Video(_) => None,
        })
        .collect::<Vec<_>>()
        .join("");
    ChatMessage { role, text, image_count: saturating_i32(m.images().count()) }
}

/// A core session, counted while it holds its KV cache.
struct Counted(Session);

impl Counted {
    fn new(s: Session) -> Self {
        LIVE_SESSIONS.fetch_add(1, Ordering::SeqCst);
        Counted(s)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE_SESSIONS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The mutable state of a [`ChatSession`], behind its mutex.
struct State {
    /// The engine; `None` after `release()`.
    ctx: Option<Arc<EngineCtx>>,
    /// The core session; `None` while an answer's worker holds it, and after `release()`.
    session: Option<Counted>,
    /// An answer is being generated (its worker holds `session`).
    busy: bool,
    closed: bool,
    /// `reset()` was called while busy: apply it when the session comes back.
    reset_pending: bool,
    /// The current (or last) answer's cancel flag.
    cancel: CancelToken,
    transcript: Vec<ChatMessage>,
    last_stats: Option<GenerationStats>,
}

/// A conversation with a model: its transcript and KV cache. Follow-up questions reuse the cache,
/// so an image is encoded once per session. Thread-safe; one answer at a time per session (open
/// more sessions on the same [`crate::SmolVlm`] to answer in parallel).
#[derive(uniffi::Object)]
pub struct ChatSession {
    state: Arc<Mutex<State>>,
    system_prompt: Option<String>,
    defaults: GenerationConfig,
}

impl ChatSession {
    pub(crate) fn new(
        ctx: Arc<EngineCtx>,
        system_prompt: Option<String>,
        defaults: GenerationConfig,
    ) -> Result<Arc<Self>, SmolVlmError> {
        defaults.to_core()?;
        let session = Counted::new(Session::new(ctx.engine.clone()));
        let state = State {
            ctx: Some(ctx),
            session: Some(session),
            busy: false,
            closed: false,
            reset_pending: false,
            cancel: CancelToken::new(),
            transcript: Vec::new(),
            last_stats: None,
        };
        Ok(Arc::new(ChatSession { state: Arc::new(Mutex::new(state)), system_prompt, defaults }))
    }
}

#[uniffi::export]
impl ChatSession {
    /// Asks a question about zero or more videos and images (placed before the text, videos
    /// first, as the model cards do) and returns the answer as a stream: pull it with `next()`
    /// until it returns null/nil. Nothing is computed until the first `next()`. `options`
    /// overrides the session defaults.
    ///
    /// Throws `InvalidArgument` if the session is closed, if a previous answer is still
    /// streaming (read it to the end, cancel or release it first), if `options` are out of
    /// range, or if the model takes no videos; `InvalidImage` if a deferred frame's bytes do not
    /// match its size. If the answer later fails or is cancelled, the question is removed from
    /// the transcript again, as if it had never been asked.
    #[uniffi::method(default(images = [], options = None, videos = []))]
    pub fn ask(
        &self,
        text: String,
        images: Vec<Arc<ImageInput>>,
        options: Option<GenerationConfig>,
        videos: Vec<Arc<VideoInput>>,
    ) -> Result<Arc<TokenStream>, SmolVlmError> {
        let opts = options.as_ref().unwrap_or(&self.defaults).to_core()?;
        // Deferred camera frames are converted here, before the session is touched.
        let videos = videos.iter().map(|v| v.to_core().map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
        let pixels = images.iter().map(|i| i.rgb()).collect::<smolvlm::Result<Vec<_>>>()?;
        let mut st = lock(&self.state);
        let Some(ctx) = st.ctx.clone().filter(|_| !st.closed) else {
            return Err(SmolVlmError::invalid_argument("the session is released"));
        };
        if st.busy {
            return Err(SmolVlmError::invalid_argument(
                "an answer is still streaming in this session: read it to the end, cancel() or release() it first",
            ));
        }
        let Some(mut session) = st.session.take() else {
            return Err(SmolVlmError::internal("session state lost", "no session while idle"));
        };
        let before = session.0.messages().len();
        if before == 0 {
            if let Some(sys) = self.system_prompt.as_ref().filter(|s| !s.is_empty()) {
                session.0.push(Message::text(Role::System, sys.clone()));
            }
        }
        let mut content: Vec<Content> = videos.into_iter().map(Content::Video).collect();
        content.extend(pixels.into_iter().map(Content::Image));
        if !text.is_empty() || content.is_empty() {
            content.push(Content::Text(text));
        }
        session.0.push(Message { role: Role::User, content });
        st.transcript = session.0.messages().iter().map(to_chat).collect();
        st.busy = true;
        st.cancel = CancelToken::new();
        let cancel = st.cancel.clone();
        drop(st);

        let (req_tx, req_rx) = channel::<()>();
        let (resp_tx, resp_rx) = channel::<Msg>();
        let worker = Worker { ctx: ctx.clone(), state: self.state.clone(), opts, cancel: cancel.clone(), rollback: before };
        LIVE_STREAMS.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name("smolvlm-answer".into())
            .stack_size(8 << 20)
            .spawn(move || worker.run(session, req_rx, resp_tx));
        if let Err(e) = spawned {
            LIVE_STREAMS.fetch_sub(1, Ordering::SeqCst);
            let mut st = lock(&self.state);
            st.busy = false;
            // The session moved into the failed closure and is gone: start over.
            st.session = Some(Counted::new(Session::new(ctx.engine.clone())));
            st.transcript.clear();
            return Err(SmolVlmError::internal("cannot start the answer's thread", e.to_string()));
        }
        Ok(Arc::new(TokenStream {
            inner: Mutex::new(StreamInner {
                req: Some(req_tx),
                resp: Some(resp_rx),
                done: false,
                text: String::new(),
                stats: None,
            }),
            cancel,
        }))
    }

    /// Stops the answer being generated, from any thread: its stream ends with a `Cancelled`
    /// error within one decode step (or one image tile). Does nothing when idle.
    pub fn cancel(&self) {
        lock(&self.state).cancel.cancel();
    }

    /// Forgets the conversation and its cache (the system prompt is kept for the next question).
    /// An answer still streaming is cancelled first.
    pub fn reset(&self) {
        let mut st = lock(&self.state);
        if st.busy {
            st.cancel.cancel();
            st.reset_pending = true;
        } else if let Some(s) = st.session.as_mut() {
            s.0.reset();
        }
        st.transcript.clear();
        st.last_stats = None;
    }

    /// The conversation so far: the system prompt (once asked), questions and answers. While an
    /// answer streams, it ends with the pending question.
    pub fn transcript(&self) -> Vec<ChatMessage> {
        lock(&self.state).transcript.clone()
    }

    /// Statistics of the last answer that finished (null/nil before the first one).
    pub fn stats(&self) -> Option<GenerationStats> {
        lock(&self.state).last_stats.clone()
    }

    /// Whether an answer is being generated.
    pub fn is_busy(&self) -> bool {
        lock(&self.state).busy
    }

    /// Frees the native memory now: the KV cache, the transcript and this session's share of the
    /// model, cancelling an answer still streaming. Later calls to `ask` throw `InvalidArgument`.
    /// Safe to call more than once. (The Kotlin and Swift wrappers call it from `close()`.)
    pub fn release(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        st.cancel.cancel();
        st.session = None;
        st.ctx = None;
        st.transcript.clear();
    }
}

/// One message from the worker.
enum Msg {
    Piece(String),
    End(GenerationStats),
    Failed(SmolVlmError),
}

/// What an answer's worker thread needs.
struct Worker {
    ctx: Arc<EngineCtx>,
    state: Arc<Mutex<State>>,
    opts: GenerationOptions,
    cancel: CancelToken,
    /// Transcript length before the question, restored if the answer does not finish.
    rollback: usize,
}

/// How an answer's worker ended.
enum Outcome {
    Finished(GenerationStats),
    /// Failed, cancelled or abandoned (the stream was dropped): undo the question.
    Undone,
    /// A panic: the session's cache may be inconsistent; start it over.
    Panicked,
}

impl Worker {
    fn run(self, mut session: Counted, req: Receiver<()>, resp: Sender<Msg>) {
        let (outcome, last) =
            catch_unwind(AssertUnwindSafe(|| answer(&self.ctx, &mut session.0, &self.opts, &self.cancel, &req, &resp)))
                .unwrap_or_else(|panic| {
                    let details = crate::error::panic_message(panic);
                    (Outcome::Panicked, Some(Msg::Failed(SmolVlmError::internal("Rust panic while generating", details))))
                });
        // Hand the session back before the host hears that the answer ended, so that its next
        // `ask` finds the session idle.
        let mut st = lock(&self.state);
        match outcome {
            Outcome::Finished(s) => st.last_stats = Some(s),
            Outcome::Undone => session.0.truncate(self.rollback),
            Outcome::Panicked => session = Counted::new(Session::new(self.ctx.engine.clone())),
        }
        if st.reset_pending {
            session.0.reset();
            st.reset_pending = false;
        }
        st.transcript = session.0.messages().iter().map(to_chat).collect();
        st.busy = false;
        if !st.closed {
            st.session = Some(session);
        } else {
            drop(session);
            st.ctx = None;
        }
        drop(st);
        LIVE_STREAMS.fetch_sub(1, Ordering::SeqCst);
        if let Some(m) = last {
            let _ = resp.send(m);
        }
        // Give up this answer's share of the engine first (parameters would drop after `resp`),
        // so the weights are freed as soon as the host closes the session and model; then
        // dropping `resp` tells a waiting `TokenStream::finish` that the worker is done.
        drop(self);
        drop(resp);
    }
}

/// Generates one answer, one piece per request on `req`; stops early if the stream goes away.
/// Returns how it ended and the last message for the host (sent once the session is back).
fn answer(
    ctx: &EngineCtx,
    session: &mut Session,
    opts: &GenerationOptions,
    cancel: &CancelToken,
    req: &Receiver<()>,
    resp: &Sender<Msg>,
) -> (Outcome, Option<Msg>) {
    if req.recv().is_err() {
        return (Outcome::Undone, None);
    }
    // The math runs on the engine's thread pool; the waiting for requests stays here.
    let mut reply = match ctx.install(|| session.reply(opts, cancel)) {
        Ok(r) => r,
        Err(e) => return (Outcome::Undone, Some(Msg::Failed(e.into()))),
    };
    loop {
        match ctx.install(|| reply.next_piece()) {
            Ok(Some(piece)) => {
                if resp.send(Msg::Piece(piece)).is_err() || req.recv().is_err() {
                    return (Outcome::Undone, None);
                }
            }
            Ok(None) => {
                return match ctx.install(|| reply.into_answer()) {
                    Ok(a) => {
                        let s = stats(&a.stats, a.finish_reason);
                        (Outcome::Finished(s.clone()), Some(Msg::End(s)))
                    }
                    Err(e) => (Outcome::Undone, Some(Msg::Failed(e.into()))),
                };
            }
            Err(e) => return (Outcome::Undone, Some(Msg::Failed(e.into()))),
        }
    }
}

struct StreamInner {
    req: Option<Sender<()>>,
    resp: Option<Receiver<Msg>>,
    done: bool,
    text: String,
    stats: Option<GenerationStats>,
}

/// An answer being generated. Pull it with [`TokenStream::next`] (blocking; call it off the UI
/// thread). Releasing or dropping the stream before the end cancels the answer.
#[derive(uniffi::Object)]
pub struct TokenStream {
    inner: Mutex<StreamInner>,
    cancel: CancelToken,
}

#[uniffi::export]
impl TokenStream {
    /// Computes and returns the next piece of the answer, or null/nil once it is complete (and
    /// on every call after that). Pieces never split a character. Throws `Cancelled` after a
    /// cancel, `ContextOverflow` if the conversation no longer fits, `InvalidImage`, or
    /// `Internal`. After a throw the stream is finished and the question is undone.
    pub fn next(&self) -> Result<Option<String>, SmolVlmError> {
        let mut inner = lock(&self.inner);
        if inner.done {
            return Ok(None);
        }
        let sent = inner.req.as_ref().map(|r| r.send(()).is_ok()).unwrap_or(false);
        let msg = if sent { inner.resp.as_ref().and_then(|r| r.recv().ok()) } else { None };
        match msg {
            Some(Msg::Piece(p)) => {
                inner.text.push_str(&p);
                Ok(Some(p))
            }
            Some(Msg::End(s)) => {
                inner.stats = Some(s);
                Self::finish(&mut inner);
                Ok(None)
            }
            Some(Msg::Failed(e)) => {
                Self::finish(&mut inner);
                Err(e)
            }
            None => {
                Self::finish(&mut inner);
                Err(SmolVlmError::internal("the answer's thread stopped", "worker disconnected"))
            }
        }
    }

    /// The text received so far.
    pub fn text(&self) -> String {
        lock(&self.inner).text.clone()
    }

    /// Statistics of the answer once `next()` has returned null/nil; null/nil before that and
    /// after an error.
    pub fn stats(&self) -> Option<GenerationStats> {
        lock(&self.inner).stats.clone()
    }

    /// Whether the stream has ended (completed, failed, cancelled or closed).
    pub fn is_finished(&self) -> bool {
        lock(&self.inner).done
    }

    /// Asks the answer to stop, from any thread: the pending or next `next()` throws `Cancelled`.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Cancels the answer if it is still running and hands the session back for the next
    /// question. Waits at most one decode step for a `next()` running on another thread.
    /// (The Kotlin and Swift wrappers call it when a stream is closed or abandoned.)
    pub fn release(&self) {
        self.cancel.cancel();
        let mut inner = lock(&self.inner);
        Self::finish(&mut inner);
    }
}

impl TokenStream {
    /// Ends the stream: tells the worker to stop (by dropping the request channel) and waits
    /// until it has handed the session back (its end of the response channel closes).
    fn finish(inner: &mut StreamInner) {
        inner.done = true;
        inner.req = None;
        if let Some(resp) = inner.resp.take() {
            while resp.recv().is_ok() {}
        }
    }
}
