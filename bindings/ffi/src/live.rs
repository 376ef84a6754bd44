//! `LiveCaptioner`: the camera loop. The host pushes frames as fast as the camera makes them
//! (never blocking, never converting); a worker thread keeps captioning the newest one, drops the
//! frames that arrive while it works, skips frames that barely changed, and answers questions
//! asked mid-stream. The host pulls the events with [`LiveCaptioner::next_event`].
//!
//! The loop is the core's [`smolvlm::LiveSession`], run by [`smolvlm::LiveWorker::run`] on a
//! thread of its own inside the engine's thread pool (as the chat workers' math is), so that a
//! model loaded with `threads` keeps to its pool.

use crate::error::SmolVlmError;
use crate::image::ImageInput;
use crate::ints::{non_negative, non_negative_64, non_negative_opt, saturating_i32, saturating_i64};
use crate::session::FinishReason;
use crate::{lock, EngineCtx, LIVE_CAPTIONERS};
use smolvlm::{LiveOptions, LiveSession};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How a live captioner answers. Every field has a default: `LiveConfig()` captions each changed
/// frame in one sentence, as fast as the model allows.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LiveConfig {
    /// The standing prompt, answered about each frame taken.
    #[uniffi(default = "Describe what you see in one sentence.")]
    pub prompt: String,
    /// Instructions placed before every caption and question (`null`: none).
    #[uniffi(default)]
    pub system_prompt: Option<String>,
    /// Most tokens per caption or answer (at least 1).
    #[uniffi(default = 48)]
    pub max_tokens: i32,
    /// The least time, in milliseconds, from the start of one caption to the start of the next
    /// (0: back to back; not negative). Questions are answered at once.
    #[uniffi(default = 0)]
    pub min_interval_ms: i32,
    /// Split frames into tiles. Off by default: one view per frame (64 tokens on
    /// SmolVLM-256M/500M), so that a caption comes within about a second on a phone.
    #[uniffi(default = false)]
    pub image_splitting: bool,
    /// Skip a frame whose mean absolute luma difference from the last answered frame, on a
    /// 32×24 thumbnail, is below this (0–255; 0 answers every frame). The default, 2, skips a
    /// camera held still.
    #[uniffi(default = 2.0)]
    pub change_threshold: f32,
    /// Report a caption only when its text differs from the previous caption's; its pieces are
    /// then not streamed (whether it is new is known only at its end). Questions always stream.
    #[uniffi(default = false)]
    pub only_new_text: bool,
    /// Seconds of the recent past kept for `ask_recent`: the first frame pushed in each second
    /// (by timestamp), the newest this many (0, the default: none; not negative). Each kept frame
    /// holds its pushed bytes until it falls out.
    #[uniffi(default = 0)]
    pub history_seconds: i32,
}

impl Default for LiveConfig {
    fn default() -> Self {
        let o = LiveOptions::default();
        LiveConfig {
            prompt: o.prompt,
            system_prompt: o.system_prompt,
            max_tokens: saturating_i32(o.max_tokens),
            min_interval_ms: saturating_i32(o.min_interval.as_millis()),
            image_splitting: o.image_splitting,
            change_threshold: o.change_threshold,
            only_new_text: o.only_new_text,
            history_seconds: saturating_i32(o.history_seconds),
        }
    }
}

impl LiveConfig {
    /// The core's options; a negative `max_tokens` or `min_interval_ms` is `InvalidArgument`
    /// (the core checks the rest).
    fn to_core(&self) -> Result<LiveOptions, SmolVlmError> {
        Ok(LiveOptions {
            prompt: self.prompt.clone(),
            system_prompt: self.system_prompt.clone(),
            max_tokens: non_negative(self.max_tokens, "max_tokens")? as usize,
            min_interval: Duration::from_millis(non_negative(self.min_interval_ms, "min_interval_ms")?.into()),
            image_splitting: self.image_splitting,
            change_threshold: self.change_threshold,
            only_new_text: self.only_new_text,
            history_seconds: non_negative(self.history_seconds, "history_seconds")? as usize,
        })
    }
}

/// A pushed frame, as events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct FrameInfo {
    /// Its number, from 1, in push order (what `push_frame` returned).
    pub id: i64,
    /// The timestamp passed to `push_frame`.
    pub timestamp_ms: i64,
}

impl From<smolvlm::FrameInfo> for FrameInfo {
    fn from(f: smolvlm::FrameInfo) -> Self {
        FrameInfo { id: saturating_i64(f.id), timestamp_ms: saturating_i64(f.timestamp_ms) }
    }
}

/// Timings and counts of one live answer.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LiveStats {
    /// Milliseconds from the frame's push to the answer's first token: the latency the user
    /// sees.
    pub frame_to_first_token_ms: f64,
    /// Milliseconds of vision encoding (0 when the frame's encoding was cached).
    pub vision_ms: f64,
    /// Generated tokens per second after the first one.
    pub decode_tokens_per_s: f64,
    /// Tokens generated.
    pub generated_tokens: i64,
    /// Frames pushed but never used since the previous answer (replaced by newer ones before
    /// the loop was free).
    pub frames_dropped: i64,
    /// Frames taken but skipped as unchanged since the previous answer.
    pub frames_skipped: i64,
}

impl From<smolvlm::LiveStats> for LiveStats {
    fn from(s: smolvlm::LiveStats) -> Self {
        LiveStats {
            frame_to_first_token_ms: s.frame_to_first_token_ms,
            vision_ms: s.vision_ms,
            decode_tokens_per_s: s.decode_tokens_per_s,
            generated_tokens: saturating_i64(s.generated_tokens),
            frames_dropped: saturating_i64(s.frames_dropped),
            frames_skipped: saturating_i64(s.frames_skipped),
        }
    }
}

/// What a live captioner reports, in order.
#[derive(Debug, uniffi::Enum)]
pub enum LiveEvent {
    /// A piece of the answer being generated about `frame` (not sent for captions with
    /// `LiveConfig.only_new_text`). The pieces of one answer come in order, then its `Answer`.
    Piece {
        /// The frame answered about.
        frame: FrameInfo,
        /// The question, for an answer to `ask`; null/nil for a caption.
        question: Option<String>,
        /// The text.
        text: String,
    },
    /// An answer is complete.
    Answer {
        /// The frame answered about.
        frame: FrameInfo,
        /// The question, for an answer to `ask`; null/nil for a caption.
        question: Option<String>,
        /// The whole answer.
        text: String,
        /// Why it ended.
        finish_reason: FinishReason,
        /// Its latency and counts.
        stats: LiveStats,
    },
    /// A frame could not be used (e.g. a deferred frame whose bytes do not match its size); the
    /// loop goes on with the next frame. A question waiting for that frame is asked about the
    /// next usable one.
    FrameError {
        /// The frame.
        frame: FrameInfo,
        /// Why: usually `InvalidImage`.
        error: SmolVlmError,
    },
}

impl From<smolvlm::LiveEvent> for LiveEvent {
    fn from(e: smolvlm::LiveEvent) -> Self {
        match e {
            smolvlm::LiveEvent::Piece { frame, question, text } => LiveEvent::Piece { frame: frame.into(), question, text },
            smolvlm::LiveEvent::Answer { frame, question, text, finish_reason, stats } => LiveEvent::Answer {
                frame: frame.into(),
                question,
                text,
                finish_reason: finish_reason.into(),
                stats: stats.into(),
            },
            smolvlm::LiveEvent::FrameError { frame, error } => LiveEvent::FrameError { frame: frame.into(), error: error.into() },
        }
    }
}

/// Frame counts since a live captioner started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct LiveCounters {
    /// Frames pushed.
    pub frames_pushed: i64,
    /// Frames replaced by a newer one before the loop took them (never converted).
    pub frames_dropped: i64,
}

/// The camera loop over one model: push frames with [`LiveCaptioner::push_frame`] as the camera
/// makes them, pull captions and answers with [`LiveCaptioner::next_event`]. Thread-safe: push
/// from the camera's thread, pull from another, ask, pause or close from any. Call
/// [`LiveCaptioner::release`] (the wrappers' `close()`) to stop it; dropping the last reference
/// stops it too.
///
/// The loop runs inside the model's thread pool and holds one of its threads while it is open
/// (also while it waits for frames): with `LoadOptions.threads = 1`, chats on the same model wait
/// until the captioner is closed.
#[derive(uniffi::Object)]
pub struct LiveCaptioner {
    session: LiveSession,
    closed: AtomicBool,
    /// The loop's thread, joined by `release()`.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LiveCaptioner {
    pub(crate) fn start(ctx: Arc<EngineCtx>, config: LiveConfig) -> Result<Arc<Self>, SmolVlmError> {
        let (session, worker) = LiveSession::new(ctx.engine.clone(), config.to_core()?)?;
        LIVE_CAPTIONERS.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new().name("smolvlm-live".into()).stack_size(8 << 20).spawn(move || {
            // The whole loop runs on the engine's pool, so its math uses that pool's threads. A
            // panic inside it is caught and reported by the loop itself (`next_event` fails).
            ctx.install(|| worker.run());
            // Give up the engine before the captioner counts as gone.
            drop(ctx);
            LIVE_CAPTIONERS.fetch_sub(1, Ordering::SeqCst);
        });
        match spawned {
            Ok(handle) => {
                Ok(Arc::new(LiveCaptioner { session, closed: AtomicBool::new(false), thread: Mutex::new(Some(handle)) }))
            }
            Err(e) => {
                LIVE_CAPTIONERS.fetch_sub(1, Ordering::SeqCst);
                Err(SmolVlmError::internal("cannot start the live thread", e.to_string()))
            }
        }
    }

    fn check_open(&self) -> Result<(), SmolVlmError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(SmolVlmError::invalid_argument("the live captioner is closed"));
        }
        Ok(())
    }
}

#[uniffi::export]
impl LiveCaptioner {
    /// Hands the loop a new frame and returns its id (1, 2, … in push order). Never blocks on
    /// the model and converts nothing: the frame only replaces the one waiting, which is then
    /// dropped. The loop converts a frame only when it takes it, so push deferred frames
    /// (`ImageInput.from_pixels_deferred` / `from_yuv420_deferred`); a frame that cannot be
    /// converted then comes back as a `FrameError` event. `timestamp_ms` is the app's
    /// timestamp for the frame (e.g. the camera's), returned in the events. Throws
    /// `InvalidArgument` for a negative timestamp or after `release()`.
    pub fn push_frame(&self, image: Arc<ImageInput>, timestamp_ms: i64) -> Result<i64, SmolVlmError> {
        self.check_open()?;
        let timestamp_ms = non_negative_64(timestamp_ms, "timestamp_ms")?;
        Ok(saturating_i64(self.session.push_frame(timestamp_ms, Box::new(move || image.to_rgb()))))
    }

    /// Asks `question` about the newest frame (while paused: about the frame last answered
    /// about). It is answered after the answer in progress, as `Piece`s and an `Answer` that
    /// carry the question; captioning then goes on. Throws `InvalidArgument` for an empty
    /// question or after `release()`.
    pub fn ask(&self, question: String) -> Result<(), SmolVlmError> {
        self.check_open()?;
        if question.trim().is_empty() {
            return Err(SmolVlmError::invalid_argument("the question is empty"));
        }
        self.session.ask(question);
        Ok(())
    }

    /// Asks `question` about the last `seconds` of frames (SmolVLM2 models): the frames kept one
    /// per second (`LiveConfig.historySeconds`) are asked about as a video, and frames encoded
    /// for an earlier such question are not encoded again. Answered after the answer in
    /// progress, as `Piece`s and an `Answer` carrying the question; with no frame kept yet the
    /// answer is a `FrameError`. Throws `InvalidArgument` for an empty question, a `seconds`
    /// that is not a positive number, or after `release()`.
    pub fn ask_recent(&self, question: String, seconds: f64) -> Result<(), SmolVlmError> {
        self.check_open()?;
        if question.trim().is_empty() {
            return Err(SmolVlmError::invalid_argument("the question is empty"));
        }
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err(SmolVlmError::invalid_argument(format!("seconds must be a positive number, got {seconds}")));
        }
        self.session.ask_recent(question, seconds);
        Ok(())
    }

    /// Stops captioning: frames are still accepted (and dropped), and questions are answered
    /// about the frame last answered about, which stays frozen. Throws `InvalidArgument` after
    /// `release()`.
    pub fn pause(&self) -> Result<(), SmolVlmError> {
        self.check_open()?;
        self.session.pause();
        Ok(())
    }

    /// Captions again, from the newest frame. Throws `InvalidArgument` after `release()`.
    pub fn resume(&self) -> Result<(), SmolVlmError> {
        self.check_open()?;
        self.session.resume();
        Ok(())
    }

    /// Frames pushed and dropped so far (also after `release()`).
    pub fn counters(&self) -> LiveCounters {
        let c = self.session.counters();
        LiveCounters { frames_pushed: saturating_i64(c.frames_pushed), frames_dropped: saturating_i64(c.frames_dropped) }
    }

    /// The next event, waiting up to `timeout_ms` milliseconds (null/nil: as long as it takes;
    /// negative: `InvalidArgument`); null/nil when the time ran out. Blocking: call it off the UI thread. After `release()` it
    /// throws `Cancelled` (events not yet read are discarded), also in a call already waiting;
    /// a failure that ended the loop (`Internal`: a panic inside it) is thrown once, then
    /// `Cancelled`, and the captioner counts as closed. A failed answer (a question too long for
    /// the model, say) is a `FrameError` event; the loop goes on.
    #[uniffi::method(default(timeout_ms = None))]
    pub fn next_event(&self, timeout_ms: Option<i32>) -> Result<Option<LiveEvent>, SmolVlmError> {
        let timeout = non_negative_opt(timeout_ms, "timeout_ms")?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(SmolVlmError::cancelled());
        }
        match self.session.next_event(timeout.map(|ms| Duration::from_millis(ms.into()))) {
            // Closed while waiting: events not yet read are dropped.
            Ok(Some(_)) if self.closed.load(Ordering::SeqCst) => Err(SmolVlmError::cancelled()),
            Ok(event) => Ok(event.map(Into::into)),
            Err(e) => {
                // The loop has ended (a failure is reported once): it takes nothing more.
                self.closed.store(true, Ordering::SeqCst);
                Err(e.into())
            }
        }
    }

    /// Closes the captioner: stops the loop within one decode step, from any thread, and returns
    /// once it has stopped and released its share of the model. Later `push_frame`, `ask`,
    /// `pause` and `resume` calls throw `InvalidArgument`, `next_event` throws `Cancelled`. Safe
    /// to call more than once. (Named `release` like the other objects' because Kotlin's
    /// generated `close()` frees the handle; the Kotlin and Swift wrappers call it from
    /// `close()` and when their event stream is cancelled.)
    pub fn release(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.session.close();
        let handle = lock(&self.thread).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Whether the captioner is closed: `release()` was called, or the loop ended on a failure.
    pub fn is_released(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}
