//! A live session: the camera loop. The app pushes frames as fast as the camera makes them; a
//! worker thread keeps answering a standing prompt about the newest one, drops the frames that
//! arrive while it works, skips frames that barely changed, and answers questions asked
//! mid-stream about the newest frame. With [`LiveOptions::history_seconds`] it also keeps one
//! frame per second of the recent past, for questions about what happened in the last seconds
//! ([`LiveSession::ask_recent`]), asked as a video. Events (text pieces, answers with latency
//! stats, frame errors) are pulled with [`LiveSession::next_event`].

use crate::chat::{Content, Message, Role, Video};
use crate::engine::{CancelToken, Engine};
use crate::error::{Error, Result};
use crate::generation::GenerationOptions;
use crate::processor::image::RgbImage;
use crate::session::{FinishReason, Session};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a live session answers.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveOptions {
    /// The standing prompt, answered about each frame taken.
    pub prompt: String,
    /// Instructions placed before every question (`None`: none).
    pub system_prompt: Option<String>,
    /// Most tokens per answer.
    pub max_tokens: usize,
    /// The least time from the start of one caption to the start of the next (0: back to back).
    pub min_interval: Duration,
    /// Split frames into tiles. Off by default: one 64-token view per frame (SmolVLM-256M/500M),
    /// so that a caption comes within about a second.
    pub image_splitting: bool,
    /// Skip a frame whose mean absolute luma difference from the last answered frame, on a
    /// 32×24 thumbnail, is below this (0–255; 0 answers every frame).
    pub change_threshold: f32,
    /// Report a caption only when its text differs from the previous caption's (its pieces are
    /// then not streamed: whether it is new is known only at its end).
    pub only_new_text: bool,
    /// Seconds of the recent past kept for [`LiveSession::ask_recent`]: the first frame pushed
    /// in each second (by its timestamp), the newest `history_seconds` of them (0: none). A kept
    /// frame holds what its converter holds (the frame's bytes) and is converted at most once.
    pub history_seconds: usize,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            prompt: "Describe what you see in one sentence.".into(),
            system_prompt: None,
            max_tokens: 48,
            min_interval: Duration::ZERO,
            image_splitting: false,
            change_threshold: 2.0,
            only_new_text: false,
            history_seconds: 0,
        }
    }
}

/// Turns a pushed frame into pixels; called only for the frame that is used.
pub type FrameConverter = Box<dyn FnOnce() -> Result<RgbImage> + Send>;

/// A frame as the session knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Its number, from 1, in push order.
    pub id: u64,
    /// The app's timestamp for it (e.g. the camera's, in ms).
    pub timestamp_ms: u64,
}

/// Timings and counts of one live answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStats {
    /// From the frame's push to the answer's first token.
    pub frame_to_first_token_ms: f64,
    /// Vision encoding (0 when the frame's encoding was cached).
    pub vision_ms: f64,
    /// Decode speed.
    pub decode_tokens_per_s: f64,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Frames pushed but never used since the previous answer (replaced by newer ones).
    pub frames_dropped: u64,
    /// Frames taken but skipped as unchanged since the previous answer.
    pub frames_skipped: u64,
}

/// What a live session reports.
#[derive(Debug)]
pub enum LiveEvent {
    /// A piece of the answer being generated about `frame` (in order; not sent with
    /// [`LiveOptions::only_new_text`]).
    Piece {
        /// The frame answered about.
        frame: FrameInfo,
        /// The question, for an answer to [`LiveSession::ask`]; `None` for a caption.
        question: Option<String>,
        /// The text.
        text: String,
    },
    /// An answer is complete.
    Answer {
        /// The frame answered about.
        frame: FrameInfo,
        /// The question, for an answer to [`LiveSession::ask`]; `None` for a caption.
        question: Option<String>,
        /// The whole answer.
        text: String,
        /// Why it ended.
        finish_reason: FinishReason,
        /// Its timings.
        stats: LiveStats,
    },
    /// A frame could not be used (e.g. its planes do not match its size), or answering about it
    /// failed (e.g. a question too long for the context); the loop goes on.
    FrameError {
        /// The frame.
        frame: FrameInfo,
        /// Why.
        error: Error,
    },
}

/// A pushed frame, converted at most once, by whoever needs it first (the caption loop, or a
/// question about the recent past).
struct LazyFrame {
    convert: Mutex<Option<FrameConverter>>,
    image: OnceLock<std::result::Result<Arc<RgbImage>, String>>,
}

impl LazyFrame {
    fn new(convert: FrameConverter) -> Arc<Self> {
        Arc::new(LazyFrame { convert: Mutex::new(Some(convert)), image: OnceLock::new() })
    }

    /// The pixels. The first caller gets the converter's own error; later ones its message.
    fn get(&self) -> Result<Arc<RgbImage>> {
        let mut first_error = None;
        let done = self.image.get_or_init(|| {
            let convert = self.convert.lock().unwrap_or_else(|e| e.into_inner()).take();
            match convert.map(|f| f()) {
                Some(Ok(image)) => Ok(Arc::new(image)),
                Some(Err(e)) => {
                    let message = e.to_string();
                    first_error = Some(e);
                    Err(message)
                }
                None => Err("the frame was already used".into()),
            }
        });
        match (done, first_error) {
            (Ok(image), _) => Ok(image.clone()),
            (Err(_), Some(e)) => Err(e),
            (Err(message), None) => Err(Error::InvalidImage(message.clone())),
        }
    }
}

struct Pending {
    info: FrameInfo,
    pushed: Instant,
    frame: Arc<LazyFrame>,
}

/// The frame last answered about, kept for questions while paused and for change detection.
struct Frozen {
    info: FrameInfo,
    pushed: Instant,
    image: Arc<RgbImage>,
    thumb: Vec<u8>,
}

/// A question waiting to be answered.
struct Question {
    text: String,
    /// Seconds of the recent past to look at ([`LiveSession::ask_recent`]); `None`: the frame.
    recent: Option<f64>,
}

#[derive(Default)]
struct State {
    newest: Option<Pending>,
    questions: VecDeque<Question>,
    /// One frame per second of the recent past, oldest first.
    history: VecDeque<(FrameInfo, Arc<LazyFrame>)>,
    events: VecDeque<LiveEvent>,
    next_id: u64,
    dropped: u64,
    pushed: u64,
    paused: bool,
    closed: bool,
    /// The worker ended (after close, or a failure that ends the session).
    finished: Option<Option<Error>>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the worker: a frame, a question, resume or close.
    work: Condvar,
    /// Wakes readers of events.
    event: Condvar,
    cancel: CancelToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the loop to stop: it ends within one decode step.
    fn stop(&self) {
        self.lock().closed = true;
        self.cancel.cancel();
        self.work.notify_all();
    }

    fn emit(&self, e: LiveEvent) {
        self.lock().events.push_back(e);
        self.event.notify_all();
    }
}

/// Counts since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounters {
    /// Frames pushed.
    pub frames_pushed: u64,
    /// Frames replaced by a newer one before they were used.
    pub frames_dropped: u64,
}

/// The camera loop over one engine. Dropping it closes it.
pub struct LiveSession {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    history_seconds: usize,
}

impl LiveSession {
    /// Starts the loop on its own thread; it waits for frames.
    pub fn start(engine: Arc<Engine>, options: LiveOptions) -> Result<Self> {
        let (mut session, worker) = Self::new(engine, options)?;
        let handle = std::thread::Builder::new()
            .name("smolvlm-live".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::Internal(format!("cannot start the live thread: {e}")))?;
        session.worker = Some(handle);
        Ok(session)
    }

    /// The session and its loop, for a caller that runs [`LiveWorker::run`] on a thread of its
    /// own choosing (say, inside a thread pool's scope).
    pub fn new(engine: Arc<Engine>, options: LiveOptions) -> Result<(Self, LiveWorker)> {
        if !engine.has_vision() {
            return Err(Error::InvalidArgument("a live session needs a model that takes images".into()));
        }
        if options.prompt.trim().is_empty() {
            return Err(Error::InvalidArgument("the live prompt is empty".into()));
        }
        if !(0.0..=255.0).contains(&options.change_threshold) {
            return Err(Error::InvalidArgument(format!("change_threshold {} is outside 0..=255", options.change_threshold)));
        }
        GenerationOptions { max_tokens: options.max_tokens, ..GenerationOptions::default() }.validate()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            event: Condvar::new(),
            cancel: CancelToken::new(),
        });
        let history_seconds = options.history_seconds;
        let worker = LiveWorker(Worker {
            shared: shared.clone(),
            engine,
            options,
            frozen: None,
            last_caption: None,
            frame_keys: Vec::new(),
            recent_keys: Vec::new(),
        });
        Ok((LiveSession { shared, worker: None, history_seconds }, worker))
    }

    /// Hands the session a new frame and returns its id. Never blocks on the model and converts
    /// nothing: it only replaces the waiting frame (which is then counted as dropped).
    /// `convert` runs later, on the session's thread, if this frame is the one taken.
    pub fn push_frame(&self, timestamp_ms: u64, convert: FrameConverter) -> u64 {
        let mut st = self.shared.lock();
        st.next_id += 1;
        st.pushed += 1;
        let info = FrameInfo { id: st.next_id, timestamp_ms };
        let frame = LazyFrame::new(convert);
        if self.history_seconds > 0 {
            // A clock that goes back (a restarted camera) starts the history again.
            if st.history.back().is_some_and(|(last, _)| timestamp_ms < last.timestamp_ms) {
                st.history.clear();
            }
            if st.history.back().is_none_or(|(last, _)| timestamp_ms >= last.timestamp_ms + 1000) {
                st.history.push_back((info, frame.clone()));
                if st.history.len() > self.history_seconds {
                    st.history.pop_front();
                }
            }
        }
        if st.newest.replace(Pending { info, pushed: Instant::now(), frame }).is_some() {
            st.dropped += 1;
        }
        drop(st);
        self.shared.work.notify_all();
        info.id
    }

    /// Asks `question` about the newest frame (or, while paused, the frame last answered about).
    /// It is answered after the answer in progress; captioning then goes on.
    pub fn ask(&self, question: impl Into<String>) {
        self.shared.lock().questions.push_back(Question { text: question.into(), recent: None });
        self.shared.work.notify_all();
    }

    /// Asks `question` about the last `seconds` of frames, as a video of the frames kept one per
    /// second ([`LiveOptions::history_seconds`]); answered after the answer in progress. Frames
    /// already encoded for an earlier such question come from the engine's image cache. With no
    /// frame kept yet, the answer is a [`LiveEvent::FrameError`].
    pub fn ask_recent(&self, question: impl Into<String>, seconds: f64) {
        let recent = if seconds.is_finite() { seconds.max(0.0) } else { f64::MAX };
        self.shared.lock().questions.push_back(Question { text: question.into(), recent: Some(recent) });
        self.shared.work.notify_all();
    }

    /// Stops captioning (frames are still accepted, and dropped); questions are answered about
    /// the frame last answered about, which stays frozen.
    pub fn pause(&self) {
        self.shared.lock().paused = true;
    }

    /// Captions again, from the newest frame.
    pub fn resume(&self) {
        self.shared.lock().paused = false;
        self.shared.work.notify_all();
    }

    /// Frames pushed and dropped so far.
    pub fn counters(&self) -> LiveCounters {
        let st = self.shared.lock();
        LiveCounters { frames_pushed: st.pushed, frames_dropped: st.dropped }
    }

    /// The next event, waiting up to `timeout` (`None`: as long as it takes). `Ok(None)`: the
    /// time ran out. After [`LiveSession::close`] the remaining events come, then
    /// [`Error::Cancelled`]; a failure that ended the loop comes as its error.
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Option<LiveEvent>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = st.events.pop_front() {
                return Ok(Some(e));
            }
            if let Some(end) = st.finished.as_mut() {
                // A failure is reported once; after it, and after a close, calls say Cancelled.
                return Err(end.take().unwrap_or(Error::Cancelled));
            }
            st = match deadline {
                None => self.shared.event.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    self.shared.event.wait_timeout(st, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }

    /// Stops the loop within one decode step, from any thread, and waits until it has stopped.
    /// Events not yet read can still be read; then [`LiveSession::next_event`] fails with
    /// [`Error::Cancelled`]. Safe to call more than once.
    pub fn close(&self) {
        self.shared.stop();
        let mut st = self.shared.lock();
        while st.finished.is_none() {
            st = self.shared.event.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        match self.worker.take() {
            Some(handle) => {
                self.close();
                let _ = handle.join();
            }
            // The caller's thread runs the loop: only ask it to stop.
            None => self.shared.stop(),
        }
    }
}

/// The loop of a [`LiveSession`] made with [`LiveSession::new`]; [`LiveWorker::run`] returns
/// when the session is closed or dropped.
pub struct LiveWorker(Worker);

impl LiveWorker {
    /// Runs the loop on the calling thread until the session is closed.
    pub fn run(self) {
        let shared = self.0.shared.clone();
        // A panic inside the loop ends it with an error that `next_event` reports, instead of
        // leaving readers and `close` waiting for a loop that is gone.
        let end = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.0.run())) {
            Ok(()) => None,
            Err(panic) => {
                let what = panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied());
                Some(Error::Internal(format!("the live loop panicked: {}", what.unwrap_or("unknown panic"))))
            }
        };
        shared.lock().finished = Some(end);
        shared.event.notify_all();
    }
}

/// What the worker does next.
enum Job {
    Caption(Pending),
    Question(String, Option<Pending>),
    /// A question about the frames kept from the last seconds.
    Recent(String, Vec<(FrameInfo, Arc<LazyFrame>)>),
}

struct Worker {
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    options: LiveOptions,
    frozen: Option<Frozen>,
    last_caption: Option<String>,
    /// The image-cache keys of the frame last answered about: dropped from the engine's cache
    /// when the next frame is, so that a stream of frames never seen again does not fill it.
    frame_keys: Vec<crate::image_cache::ImageKey>,
    /// The keys of the frames of the last question about the recent past, kept for the next.
    recent_keys: Vec<crate::image_cache::ImageKey>,
}

impl Worker {
    /// Answers until the session is closed.
    fn run(mut self) {
        let mut session = Session::new(self.engine.clone());
        session.set_image_splitting(Some(self.options.image_splitting));
        let mut next_caption = Instant::now();
        let mut skipped = 0u64;
        let mut dropped_before = 0u64;
        loop {
            let job = match self.next_job(next_caption) {
                Some(j) => j,
                None => return,
            };
            let (question, pending) = match job {
                Job::Caption(p) => (None, Some(p)),
                Job::Question(q, p) => (Some(q), p),
                Job::Recent(q, frames) => {
                    match self.answer_recent(&mut session, q, frames) {
                        Err((_, Error::Cancelled)) if self.shared.cancel.is_cancelled() => return,
                        Err((_, Error::Cancelled)) | Ok(()) => {}
                        Err((info, error)) => self.shared.emit(LiveEvent::FrameError { frame: info, error }),
                    }
                    continue;
                }
            };
            // The frame: a new one converted now, or the frozen one.
            let frame = match pending {
                Some(p) => match p.frame.get() {
                    Ok(image) => {
                        let thumb = thumbnail(&image);
                        if question.is_none() && self.unchanged(&thumb) {
                            skipped += 1;
                            continue;
                        }
                        self.frozen = Some(Frozen { info: p.info, pushed: p.pushed, image, thumb });
                        self.frozen.as_ref()
                    }
                    Err(error) => {
                        self.shared.emit(LiveEvent::FrameError { frame: p.info, error });
                        if let Some(q) = question {
                            // Asked again about the next usable frame (or the frozen one).
                            self.shared.lock().questions.push_front(Question { text: q, recent: None });
                        }
                        continue;
                    }
                },
                None => self.frozen.as_ref(),
            };
            // `next_job` hands out a question only with a frame to look at.
            let Some(frame) = frame else { continue };
            if question.is_none() {
                next_caption = Instant::now() + self.options.min_interval;
            }
            let (info, pushed, image) = (frame.info, frame.pushed, frame.image.clone());
            let dropped = self.shared.lock().dropped;
            let frames_dropped = dropped - dropped_before;
            dropped_before = dropped;
            let text = question.clone().unwrap_or_else(|| self.options.prompt.clone());
            let mut content = vec![Content::Image(image)];
            if !text.is_empty() {
                content.push(Content::Text(text));
            }
            match self.answer(&mut session, info, pushed, content, question, frames_dropped, skipped) {
                Err(Error::Cancelled) if self.shared.cancel.is_cancelled() => return,
                Err(Error::Cancelled) => {}
                // An answer that fails (a question too long for the context, say) is reported
                // for its frame; the loop goes on.
                Err(error) => self.shared.emit(LiveEvent::FrameError { frame: info, error }),
                Ok(()) => skipped = 0,
            }
        }
    }

    /// Waits for the next thing to do; `None` when closed.
    fn next_job(&mut self, next_caption: Instant) -> Option<Job> {
        let mut st = self.shared.lock();
        loop {
            if st.closed {
                return None;
            }
            if let Some(seconds) = st.questions.front().and_then(|q| q.recent) {
                let text = st.questions.pop_front().map(|q| q.text).unwrap_or_default();
                let newest = st.history.back().map_or(0, |(info, _)| info.timestamp_ms);
                let from = newest.saturating_sub((seconds * 1000.0).min(u64::MAX as f64) as u64);
                let frames = st.history.iter().filter(|(info, _)| info.timestamp_ms >= from).cloned().collect();
                return Some(Job::Recent(text, frames));
            }
            if let Some(q) = st.questions.pop_front().map(|q| q.text) {
                // The newest frame; while paused the frozen one, unless there is none yet.
                let pending = if !st.paused || self.frozen.is_none() { st.newest.take() } else { None };
                if pending.is_none() && self.frozen.is_none() {
                    // Nothing to look at yet: keep the question until a frame comes.
                    st.questions.push_front(Question { text: q, recent: None });
                } else {
                    return Some(Job::Question(q, pending));
                }
            } else if !st.paused && st.newest.is_some() {
                let now = Instant::now();
                if now >= next_caption {
                    return st.newest.take().map(Job::Caption);
                }
                st = self.shared.work.wait_timeout(st, next_caption - now).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            st = self.shared.work.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether `thumb` barely differs from the frame last answered about.
    fn unchanged(&self, thumb: &[u8]) -> bool {
        let Some(last) = &self.frozen else { return false };
        if self.options.change_threshold <= 0.0 || last.thumb.len() != thumb.len() {
            return false;
        }
        let diff: u64 = last.thumb.iter().zip(thumb).map(|(a, b)| a.abs_diff(*b) as u64).sum();
        (diff as f32 / thumb.len() as f32) < self.options.change_threshold
    }

    /// Answers a question about the kept frames of the last seconds, asked as a video (one
    /// frame per second, timestamps from the first). An error names the newest frame.
    fn answer_recent(
        &mut self,
        session: &mut Session,
        question: String,
        frames: Vec<(FrameInfo, Arc<LazyFrame>)>,
    ) -> std::result::Result<(), (FrameInfo, Error)> {
        let Some(&(newest, _)) = frames.last() else {
            let none = FrameInfo { id: 0, timestamp_ms: 0 };
            let why = "no frames of the recent past are kept yet (LiveOptions::history_seconds, one per second)";
            return Err((none, Error::InvalidArgument(why.into())));
        };
        let started = Instant::now();
        let mut images = Vec::with_capacity(frames.len());
        let mut times = Vec::with_capacity(frames.len());
        for (info, frame) in &frames {
            // A frame that cannot be converted is left out (it was reported when captioned).
            if let Ok(image) = frame.get() {
                images.push(image);
                times.push(info.timestamp_ms);
            }
        }
        let first = *times.first().ok_or_else(|| (newest, Error::InvalidImage("no kept frame could be converted".into())))?;
        let timestamps: Vec<f64> = times.iter().map(|&t| (t - first) as f64 / 1000.0).collect();
        let duration = timestamps.last().copied().unwrap_or(0.0) + 1.0;
        let video = Video::new(images, timestamps, duration).map_err(|e| (newest, e))?;
        let content = vec![Content::Video(Arc::new(video)), Content::Text(question.clone())];
        self.answer(session, newest, started, content, Some(question), 0, 0).map_err(|e| (newest, e))
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        session: &mut Session,
        info: FrameInfo,
        pushed: Instant,
        content: Vec<Content>,
        question: Option<String>,
        frames_dropped: u64,
        frames_skipped: u64,
    ) -> Result<()> {
        session.reset();
        if let Some(system) = &self.options.system_prompt {
            session.push(Message::text(Role::System, system.clone()));
        }
        let recent = content.iter().any(|c| matches!(c, Content::Video(_)));
        session.push(Message { role: Role::User, content });
        let options = GenerationOptions { max_tokens: self.options.max_tokens, ..GenerationOptions::default() };
        let stream = question.is_some() || !self.options.only_new_text;
        let mut first: Option<Instant> = None;
        let shared = self.shared.clone();
        let answer = session.generate(&options, &self.shared.cancel, &mut |piece| {
            first.get_or_insert_with(Instant::now);
            if stream {
                shared.emit(LiveEvent::Piece { frame: info, question: question.clone(), text: piece.to_string() });
            }
        })?;
        let first = first.unwrap_or_else(Instant::now);
        // Encodings of frames that will not be asked about again leave the engine's cache.
        let keys = session.image_keys().to_vec();
        let (replaced, kept) = if recent { (&self.recent_keys, &self.frame_keys) } else { (&self.frame_keys, &self.recent_keys) };
        for old in replaced.iter().filter(|k| !keys.contains(k) && !kept.contains(k)) {
            self.engine.image_cache.remove(old);
        }
        if recent {
            self.recent_keys = keys;
        } else {
            self.frame_keys = keys;
        }
        if question.is_none() {
            let same = self.last_caption.as_deref() == Some(answer.text.as_str());
            self.last_caption = Some(answer.text.clone());
            if same && self.options.only_new_text {
                return Ok(());
            }
        }
        let s = &answer.stats;
        self.shared.emit(LiveEvent::Answer {
            frame: info,
            question,
            text: answer.text,
            finish_reason: answer.finish_reason,
            stats: LiveStats {
                frame_to_first_token_ms: first.duration_since(pushed).as_secs_f64() * 1000.0,
                vision_ms: s.vision_encode_ms,
                decode_tokens_per_s: s.decode_tokens_per_s,
                generated_tokens: s.generated_tokens,
                frames_dropped,
                frames_skipped,
            },
        });
        Ok(())
    }
}

/// A 32×24 luma thumbnail (box-averaged), for change detection.
fn thumbnail(img: &RgbImage) -> Vec<u8> {
    const W: usize = 32;
    const H: usize = 24;
    let (w, h) = (img.width as usize, img.height as usize);
    let mut out = vec![0u8; W * H];
    if w == 0 || h == 0 {
        return out;
    }
    for ty in 0..H {
        let (y0, y1) = (ty * h / H, ((ty + 1) * h / H).max(ty * h / H + 1).min(h));
        for tx in 0..W {
            let (x0, x1) = (tx * w / W, ((tx + 1) * w / W).max(tx * w / W + 1).min(w));
            let mut sum = 0u64;
            // Every other pixel in each direction: plenty for a change test, a quarter of the reads.
            let mut n = 0u64;
            for y in (y0..y1).step_by(2) {
                let row = &img.data[(y * w + x0) * 3..(y * w + x1) * 3];
                for px in row.chunks_exact(3).step_by(2) {
                    sum += (77 * px[0] as u64 + 150 * px[1] as u64 + 29 * px[2] as u64) >> 8;
                    n += 1;
                }
            }
            out[ty * W + tx] = (sum / n.max(1)) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_see_change_and_ignore_none() {
        let img = |v: u8| RgbImage { width: 64, height: 48, data: vec![v; 64 * 48 * 3] };
        assert_eq!(thumbnail(&img(100)), thumbnail(&img(100)));
        let (a, b) = (thumbnail(&img(100)), thumbnail(&img(110)));
        let diff: u32 = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y) as u32).sum();
        assert_eq!(diff as usize / a.len(), 10);
        assert_eq!(thumbnail(&RgbImage { width: 1, height: 1, data: vec![255; 3] }).len(), 32 * 24);
    }
}
