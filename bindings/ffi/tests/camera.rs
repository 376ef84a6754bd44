//! Rust tests of the live captioner (the camera loop), the deferred frames it takes, cancellable
//! loading and the image cache option, as Kotlin and Swift see them (minus the marshalling).

use smolvlm_ffi::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn model() -> String {
    fixtures().join("models/tiny-smolvlm2").to_string_lossy().into_owned()
}

fn image(name: &str) -> String {
    fixtures().join("images").join(name).to_string_lossy().into_owned()
}

fn engine() -> Arc<SmolVlm> {
    SmolVlm::load(model(), None, None, None).unwrap()
}

const W: i32 = 160;
const H: i32 = 120;

/// A 160×120 RGBA frame: a bright bar on a dark background, `step` pixels from the left edge.
fn frame(step: i32) -> Vec<u8> {
    let mut data = vec![0u8; (W * H * 4) as usize];
    for y in 0..H {
        for x in 0..W {
            let i = ((y * W + x) * 4) as usize;
            let lit = (x + W - step % W) % W < 40;
            let v = if lit { 230 } else { 20 + (y as u8 / 4) };
            data[i..i + 4].copy_from_slice(&[v, v / 2, 255 - v, 255]);
        }
    }
    data
}

fn deferred(data: &[u8]) -> Arc<ImageInput> {
    ImageInput::from_pixels_deferred(data, PixelFormat::Rgba8888, W, H, 0, 0, 0).unwrap()
}

/// Events until `until` holds or `limit` passes.
fn events_until(live: &LiveCaptioner, limit: Duration, mut until: impl FnMut(&LiveEvent) -> bool) -> Vec<LiveEvent> {
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    while Instant::now() < end {
        if let Some(e) = live.next_event(Some(50)).unwrap() {
            let stop = until(&e);
            out.push(e);
            if stop {
                break;
            }
        }
    }
    out
}

fn answers(events: &[LiveEvent]) -> Vec<(FrameInfo, Option<String>, String, LiveStats)> {
    events
        .iter()
        .filter_map(|e| match e {
            LiveEvent::Answer { frame, question, text, stats, .. } => {
                Some((*frame, question.clone(), text.clone(), stats.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Pushes a moving frame every `period` from another thread until `stop` is set.
fn pusher(live: Arc<LiveCaptioner>, period: Duration, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let mut n = 0i64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            if live.push_frame(deferred(&frame(n as i32 * 5)), n * 33).is_err() {
                break;
            }
            std::thread::sleep(period);
        }
        n
    })
}

#[test]
fn config_defaults_are_the_cores() {
    // The same values as the `#[uniffi(default = …)]` attributes, which Kotlin's `LiveConfig()`
    // and Swift's `LiveConfig()` use (their suites check those).
    let want = LiveConfig {
        prompt: "Describe what you see in one sentence.".into(),
        system_prompt: None,
        max_tokens: 48,
        min_interval_ms: 0,
        image_splitting: false,
        change_threshold: 2.0,
        only_new_text: false,
        history_seconds: 0,
    };
    assert_eq!(LiveConfig::default(), want);
}

#[test]
fn captions_the_newest_frame_and_drops_the_rest() {
    let vlm = engine();
    let live = vlm.live(Some(LiveConfig { max_tokens: 96, ..Default::default() })).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let push = pusher(live.clone(), Duration::from_millis(10), stop.clone());
    let mut n = 0;
    let events = events_until(&live, Duration::from_secs(20), |e| {
        n += matches!(e, LiveEvent::Answer { .. }) as usize;
        n == 5
    });
    stop.store(true, Ordering::SeqCst);
    let pushed = push.join().unwrap();
    let got = answers(&events);
    assert_eq!(got.len(), 5, "{events:?}");
    assert!(got.windows(2).all(|w| w[0].0.id < w[1].0.id), "newer frames each time: {got:?}");
    assert!(got.iter().all(|a| a.1.is_none() && a.3.generated_tokens > 0 && a.3.frame_to_first_token_ms > 0.0));
    assert!(got.iter().map(|a| a.3.frames_dropped).sum::<i64>() > 0, "frames came faster than answers");
    // The pieces of each answer come before it and add up to it.
    let pieces: String = events
        .iter()
        .take_while(|e| !matches!(e, LiveEvent::Answer { .. }))
        .map(|e| match e {
            LiveEvent::Piece { text, .. } => text.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(pieces, got[0].2);
    let c = live.counters();
    assert_eq!(c.frames_pushed, pushed);
    assert!(c.frames_dropped > 0);
    live.release();
}

#[test]
fn a_bad_frame_is_an_event_and_the_loop_goes_on() {
    let vlm = engine();
    let live = vlm.live(None).unwrap();
    // The bytes of a 10×10 RGBA frame, claimed to be 160×120: only noticed when converted.
    let bad = ImageInput::from_pixels_deferred(&[0u8; 400], PixelFormat::Rgba8888, W, H, 0, 0, 0).unwrap();
    assert!(bad.is_deferred());
    assert_eq!((bad.width(), bad.height()), (W, H));
    assert!(bad.rgb_bytes().is_empty());
    let bad_id = live.push_frame(bad, 1).unwrap();
    let events = events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::FrameError { .. }));
    match events.last() {
        Some(LiveEvent::FrameError { frame, error: SmolVlmError::InvalidImage { reason } }) => {
            assert_eq!(*frame, FrameInfo { id: bad_id, timestamp_ms: 1 });
            assert!(!reason.is_empty());
        }
        other => panic!("expected a FrameError, got {other:?}"),
    }
    let good_id = live.push_frame(deferred(&frame(0)), 2).unwrap();
    let events = events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { .. }));
    assert_eq!(answers(&events)[0].0.id, good_id);
    live.release();
}

#[test]
fn a_question_mid_stream_is_answered_with_it() {
    let vlm = engine();
    let live = vlm.live(Some(LiveConfig { max_tokens: 8, ..Default::default() })).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let push = pusher(live.clone(), Duration::from_millis(33), stop.clone());
    events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { .. }));
    assert!(matches!(live.ask("  ".into()), Err(SmolVlmError::InvalidArgument { .. })));
    live.ask("What colour is the bar?".into()).unwrap();
    let events = events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { question: Some(_), .. }));
    stop.store(true, Ordering::SeqCst);
    push.join().unwrap();
    let (_, question, text, _) = answers(&events).pop().unwrap();
    assert_eq!(question.as_deref(), Some("What colour is the bar?"));
    assert!(!text.is_empty());
    assert!(events.iter().any(|e| matches!(e, LiveEvent::Piece { question: Some(q), .. } if q == "What colour is the bar?")));
    live.release();
}

#[test]
fn an_unchanged_frame_is_not_captioned_again() {
    let vlm = engine();
    let live = vlm.live(Some(LiveConfig { max_tokens: 4, ..Default::default() })).unwrap();
    let still = frame(3);
    live.push_frame(deferred(&still), 0).unwrap();
    events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { .. }));
    let t = Instant::now();
    let mut later = Vec::new();
    for i in 1..=30 {
        live.push_frame(deferred(&still), i * 33).unwrap();
        if let Some(e) = live.next_event(Some(33)).unwrap() {
            later.push(e);
        }
    }
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(later.is_empty(), "no caption for the same picture: {later:?}");
    let moved = live.push_frame(deferred(&frame(80)), 9999).unwrap();
    let events = events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { .. }));
    let (info, _, _, stats) = answers(&events).pop().unwrap();
    assert_eq!(info.id, moved);
    assert!(stats.frames_skipped > 0, "{stats:?}");
    live.release();
}

#[test]
fn close_stops_the_loop_at_once_and_later_calls_fail() {
    let vlm = engine();
    let live = vlm.live(Some(LiveConfig { max_tokens: 100_000, change_threshold: 0.0, ..Default::default() })).unwrap();
    live.push_frame(deferred(&frame(0)), 0).unwrap();
    // Wait until an answer is being generated, with a reader blocked in `next_event`.
    events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Piece { .. }));
    let reader = {
        let live = live.clone();
        std::thread::spawn(move || loop {
            match live.next_event(None) {
                Ok(_) => continue,
                Err(e) => return e,
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    live.release();
    assert!(t.elapsed() < Duration::from_secs(1), "closed within a decode step: {:?}", t.elapsed());
    assert!(matches!(reader.join().unwrap(), SmolVlmError::Cancelled));
    assert!(live.is_released());
    assert!(matches!(live.next_event(Some(10)), Err(SmolVlmError::Cancelled)));
    assert!(matches!(live.push_frame(deferred(&frame(1)), 1), Err(SmolVlmError::InvalidArgument { .. })));
    assert!(matches!(live.ask("hi".into()), Err(SmolVlmError::InvalidArgument { .. })));
    assert!(matches!(live.pause(), Err(SmolVlmError::InvalidArgument { .. })));
    assert!(matches!(live.resume(), Err(SmolVlmError::InvalidArgument { .. })));
    assert_eq!(live.counters().frames_pushed, 1);
    live.release();
}

#[test]
fn live_config_out_of_range_and_released_model() {
    let vlm = engine();
    for bad in [
        LiveConfig { prompt: " ".into(), ..Default::default() },
        LiveConfig { max_tokens: 0, ..Default::default() },
        LiveConfig { change_threshold: 256.0, ..Default::default() },
        LiveConfig { max_tokens: -1, ..Default::default() },
        LiveConfig { min_interval_ms: -500, ..Default::default() },
        LiveConfig { history_seconds: -1, ..Default::default() },
    ] {
        assert!(matches!(vlm.live(Some(bad.clone())), Err(SmolVlmError::InvalidArgument { .. })), "{bad:?}");
    }
    // Negative numbers name their field (the API is signed for Java callers).
    let live = vlm.live(None).unwrap();
    match live.push_frame(deferred(&frame(0)), -1) {
        Err(SmolVlmError::InvalidArgument { reason }) => assert!(reason.contains("timestamp_ms"), "{reason}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match live.next_event(Some(-1)) {
        Err(SmolVlmError::InvalidArgument { reason }) => assert!(reason.contains("timeout_ms"), "{reason}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(live.counters().frames_pushed, 0, "the refused frame was not pushed");
    live.release();
    let text_only =
        SmolVlm::load(fixtures().join("gguf/tiny-smolvlm2-f16.gguf").to_string_lossy().into_owned(), None, None, None).unwrap();
    assert!(matches!(text_only.live(None), Err(SmolVlmError::InvalidArgument { .. })));
    vlm.release();
    assert!(matches!(vlm.live(None), Err(SmolVlmError::InvalidArgument { .. })));
}

#[test]
fn deferred_frames_convert_like_eager_ones() {
    let png = ImageInput::from_file(image("small.png")).unwrap();
    let (w, h) = (png.width(), png.height());
    let rgb = png.rgb_bytes();
    let eager = ImageInput::from_pixels(&rgb, PixelFormat::Rgb888, w, h, 0, 0, 90).unwrap();
    let lazy = ImageInput::from_pixels_deferred(&rgb, PixelFormat::Rgb888, w, h, 0, 0, 90).unwrap();
    assert!(!eager.is_deferred() && lazy.is_deferred());
    assert_eq!((lazy.width(), lazy.height()), (h, w), "rotated");
    assert_eq!(lazy.rgb_bytes(), eager.rgb_bytes());
    // Mirrored (after the rotation): eager and deferred alike, the deferred one staying deferred.
    let (em, lm) = (eager.mirrored(), lazy.mirrored());
    assert!(!em.is_deferred() && lm.is_deferred());
    assert_eq!((lm.width(), lm.height()), (h, w));
    assert_eq!(lm.rgb_bytes(), em.rgb_bytes());
    assert_ne!(em.rgb_bytes(), eager.rgb_bytes(), "small.png is not symmetric");
    let (rw, row) = (h as usize, em.rgb_bytes());
    let orig = eager.rgb_bytes();
    for y in [0, w as usize - 1] {
        for x in [0, 1, rw - 1] {
            let (m, o) = ((y * rw + x) * 3, (y * rw + rw - 1 - x) * 3);
            assert_eq!(row[m..m + 3], orig[o..o + 3], "({x}, {y})");
        }
    }
    assert_eq!(lm.mirrored().rgb_bytes(), lazy.rgb_bytes(), "mirroring twice is the original");
    let (y, uv) = (vec![200u8; 8 * 4], vec![128u8; 8 * 2]);
    let yuv = ImageInput::from_yuv420_deferred(&y, &uv[1..], &uv, 6, 4, 8, 8, 2, YuvColorRange::Full, 270).unwrap();
    assert_eq!((yuv.width(), yuv.height()), (4, 6));
    assert!(yuv.rgb_bytes().iter().all(|&b| b == 200));
    // Argument errors still come at once.
    assert!(matches!(
        ImageInput::from_pixels_deferred(&rgb, PixelFormat::Rgb888, w, h, 0, 0, 45),
        Err(SmolVlmError::InvalidArgument { .. })
    ));
    assert!(matches!(
        ImageInput::from_yuv420_deferred(&y, &uv, &uv, 6, 4, 8, 0, 2, YuvColorRange::Full, 0),
        Err(SmolVlmError::InvalidArgument { .. })
    ));
    // A chat converts a deferred frame when asked, and reports a bad one then.
    let vlm = engine();
    let chat = vlm.new_session(None, Some(GenerationConfig { max_tokens: 4, ..Default::default() })).unwrap();
    let bad = ImageInput::from_pixels_deferred(&rgb[..10], PixelFormat::Rgb888, w, h, 0, 0, 0).unwrap();
    assert!(matches!(chat.ask("What?".into(), vec![bad], None, vec![]), Err(SmolVlmError::InvalidImage { .. })));
    assert!(chat.transcript().is_empty());
    let stream = chat.ask("What?".into(), vec![lazy], None, vec![]).unwrap();
    while stream.next().unwrap().is_some() {}
    assert_eq!(stream.stats().unwrap().generated_tokens, 4);
}

#[test]
fn image_cache_option() {
    let ask = |vlm: &SmolVlm| {
        let chat = vlm.new_session(None, Some(GenerationConfig { max_tokens: 2, ..Default::default() })).unwrap();
        let img = ImageInput::from_file(image("wide.png")).unwrap();
        let stream = chat.ask("What?".into(), vec![img], None, vec![]).unwrap();
        while stream.next().unwrap().is_some() {}
        stream.stats().unwrap()
    };
    let cached = engine();
    assert_eq!(ask(&cached).cached_images, 0);
    let again = ask(&cached);
    assert_eq!((again.cached_images, again.vision_tiles), (1, 0), "a new chat reuses the encoding");
    let off = SmolVlm::load(model(), Some(LoadOptions { image_cache_mb: Some(0), ..Default::default() }), None, None).unwrap();
    ask(&off);
    let again = ask(&off);
    assert_eq!(again.cached_images, 0);
    assert!(again.vision_tiles > 0);
}

struct CancelAt(Arc<CancelSignal>, Mutex<Vec<LoadStage>>);

impl LoadProgressListener for CancelAt {
    fn on_progress(&self, stage: LoadStage, _fraction: f32) {
        self.1.lock().unwrap().push(stage);
        if stage == LoadStage::Vision {
            self.0.cancel();
        }
    }
}

#[test]
fn loading_is_cancellable() {
    let signal = CancelSignal::new();
    assert!(!signal.is_cancelled());
    let listener = Arc::new(CancelAt(signal.clone(), Mutex::new(Vec::new())));
    let got = SmolVlm::load(model(), None, Some(listener.clone()), Some(signal.clone()));
    assert!(matches!(got, Err(SmolVlmError::Cancelled)), "{:?}", got.err());
    assert!(signal.is_cancelled());
    let stages = listener.1.lock().unwrap().clone();
    assert!(!stages.contains(&LoadStage::Ready), "stopped early: {stages:?}");
    // A signal given before the load starts stops it at once.
    let t = Instant::now();
    assert!(matches!(SmolVlm::load(model(), None, None, Some(signal)), Err(SmolVlmError::Cancelled)));
    assert!(t.elapsed() < Duration::from_secs(1));
    // An unused signal changes nothing.
    assert!(SmolVlm::load(model(), None, None, Some(CancelSignal::new())).is_ok());
}

#[test]
fn a_model_with_its_own_thread_pool_runs_the_loop_in_it() {
    let opts = LoadOptions { threads: Some(2), ..Default::default() };
    let vlm = SmolVlm::load(model(), Some(opts), None, None).unwrap();
    let live = vlm.live(Some(LiveConfig { max_tokens: 4, ..Default::default() })).unwrap();
    let id = live.push_frame(deferred(&frame(0)), 0).unwrap();
    let events = events_until(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { .. }));
    assert_eq!(answers(&events)[0].0.id, id);
    // A chat on the same model still answers (on the pool's other thread) while the loop is open.
    let chat = vlm.new_session(None, Some(GenerationConfig { max_tokens: 2, ..Default::default() })).unwrap();
    let stream = chat.ask("Hi".into(), vec![], None, vec![]).unwrap();
    while stream.next().unwrap().is_some() {}
    live.release();
}
