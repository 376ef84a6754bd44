//! The camera loop (`LiveSession`), the engine's image-encoding cache and cancellable loading,
//! on the tiny fixture model.

use smolvlm::{
    load_image, CancelToken, Engine, EngineOptions, Error, FrameConverter, GenerationOptions, LiveEvent, LiveOptions,
    LiveSession, Message, RgbImage, Session,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-smolvlm2")
}

fn engine_with(options: EngineOptions) -> Arc<Engine> {
    Arc::new(Engine::load(&model_dir(), &options).unwrap())
}

/// A 160×120 frame whose pattern moves with `n` (so that no frame looks unchanged).
fn moving(n: u64) -> RgbImage {
    let (w, h) = (160u32, 120u32);
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let v = ((x as u64 + n * 7) % 160 * 255 / 160) as u8;
            data.extend_from_slice(&[v, (y * 2) as u8, 255 - v]);
        }
    }
    RgbImage { width: w, height: h, data }
}

fn frame(img: RgbImage) -> FrameConverter {
    Box::new(move || Ok(img))
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

fn live_options() -> LiveOptions {
    LiveOptions { max_tokens: 8, ..LiveOptions::default() }
}

/// Collects events until `until` says stop or `limit` passes.
fn collect(live: &LiveSession, limit: Duration, mut until: impl FnMut(&LiveEvent) -> bool) -> Vec<LiveEvent> {
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    while Instant::now() < end {
        if let Some(e) = live.next_event(Some(Duration::from_millis(50))).unwrap() {
            let stop = until(&e);
            out.push(e);
            if stop {
                break;
            }
        }
    }
    out
}

#[test]
fn frames_at_30_fps_for_20_s_queue_nothing_and_answers_follow_the_newest_frame() {
    // The default 48 tokens an answer: longer than a frame's 33 ms even on the tiny model.
    let live = Arc::new(LiveSession::start(engine_with(EngineOptions::default()), LiveOptions::default()).unwrap());
    let latest = Arc::new(AtomicU64::new(0));
    // For each frame taken: (its id, the newest id pushed when it was converted).
    let taken = Arc::new(Mutex::new(Vec::new()));
    let pusher = {
        let (live, latest, taken) = (live.clone(), latest.clone(), taken.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut n = 0u64;
            let mut rss = (0, 0);
            while start.elapsed() < Duration::from_secs(20) {
                n += 1;
                let img = moving(n);
                let (latest2, taken2) = (latest.clone(), taken.clone());
                // Frame ids count from 1 in push order, so frame n gets id n.
                let convert: FrameConverter = Box::new(move || {
                    taken2.lock().unwrap().push((n, latest2.load(Ordering::SeqCst)));
                    Ok(img)
                });
                latest.store(n, Ordering::SeqCst);
                let t = Instant::now();
                assert_eq!(live.push_frame(n * 33, convert), n);
                assert!(t.elapsed() < Duration::from_millis(20), "a push waited {:?}", t.elapsed());
                if rss.0 == 0 && start.elapsed() > Duration::from_secs(3) {
                    rss.0 = rss_kb();
                }
                std::thread::sleep(Duration::from_secs_f64(1.0 / 30.0).saturating_sub(t.elapsed()));
            }
            rss.1 = rss_kb();
            (n, rss)
        })
    };
    let mut answers = Vec::new();
    let end = Instant::now() + Duration::from_secs(21);
    while Instant::now() < end {
        if let Some(LiveEvent::Answer { frame, stats, question: None, .. }) =
            live.next_event(Some(Duration::from_millis(100))).unwrap()
        {
            answers.push((frame, stats));
        }
    }
    let (pushed, (rss_warm, rss_end)) = pusher.join().unwrap();
    assert!(answers.len() >= 3, "{} answers", answers.len());
    assert!(answers.windows(2).all(|w| w[1].0.id > w[0].0.id), "frame ids strictly increase");
    for (id, newest) in taken.lock().unwrap().iter() {
        assert_eq!(id, newest, "frame {id} was taken when {newest} was the newest");
    }
    let counters = live.counters();
    assert_eq!(counters.frames_pushed, pushed);
    let dropped: u64 = answers.iter().map(|a| a.1.frames_dropped).sum();
    let skipped: u64 = answers.iter().map(|a| a.1.frames_skipped).sum();
    assert!(dropped > 0, "frames came faster than answers, so some were dropped");
    // Nothing queues: every frame was answered, dropped or skipped (but the last few, still
    // waiting or in progress when the pushing stopped).
    let accounted = answers.len() as u64 + dropped + skipped;
    assert!(accounted + 3 >= pushed && accounted <= pushed, "{accounted} accounted for, {pushed} pushed");
    assert!(answers.iter().all(|a| a.1.frame_to_first_token_ms > 0.0 && a.1.vision_ms >= 0.0));
    let growth = rss_end as i64 - rss_warm as i64;
    println!(
        "pushed {pushed}, answered {}, dropped {dropped}; RSS {rss_warm} kB after warm-up, {rss_end} kB at the end",
        answers.len()
    );
    assert!(growth < 5 * 1024, "RSS grew {growth} kB after warm-up");
}

#[test]
fn unchanged_frames_are_skipped_and_questions_are_answered_mid_stream() {
    let live = LiveSession::start(engine_with(EngineOptions::default()), live_options()).unwrap();
    let still = moving(1);
    live.push_frame(0, frame(still.clone()));
    let first = collect(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { .. }));
    assert!(matches!(first.last(), Some(LiveEvent::Answer { question: None, .. })));
    // The same picture for 2 s: no new caption.
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(2) {
        n += 1;
        live.push_frame(n, frame(still.clone()));
        std::thread::sleep(Duration::from_millis(33));
        while let Some(e) = live.next_event(Some(Duration::ZERO)).unwrap() {
            assert!(!matches!(e, LiveEvent::Answer { .. }), "an unchanged frame was captioned again: {e:?}");
        }
    }
    // A question is answered about the newest frame, pieces first.
    live.ask("What colour is it?");
    live.push_frame(999, frame(still.clone()));
    let events = collect(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { question: Some(_), .. }));
    match events.last() {
        Some(LiveEvent::Answer { question: Some(q), stats, .. }) => {
            assert_eq!(q, "What colour is it?");
            assert_eq!(stats.vision_ms, 0.0, "the same picture: its encoding came from the cache");
        }
        other => panic!("no answer to the question: {other:?}"),
    }
    assert!(events.iter().any(|e| matches!(e, LiveEvent::Piece { question: Some(_), .. })));
}

#[test]
fn a_bad_frame_is_an_event_and_the_loop_goes_on() {
    let live = LiveSession::start(engine_with(EngineOptions::default()), live_options()).unwrap();
    live.push_frame(1, Box::new(|| Err(Error::InvalidImage("the planes do not match the size".into()))));
    let events = collect(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::FrameError { .. }));
    assert!(matches!(events.last(), Some(LiveEvent::FrameError { frame, error: Error::InvalidImage(_) }) if frame.id == 1));
    live.push_frame(2, frame(moving(2)));
    let events = collect(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::Answer { .. }));
    assert!(matches!(events.last(), Some(LiveEvent::Answer { frame, .. }) if frame.id == 2));
}

#[test]
fn close_stops_the_loop_within_a_decode_step() {
    let options = LiveOptions { max_tokens: 4000, change_threshold: 0.0, ..LiveOptions::default() };
    let live = LiveSession::start(engine_with(EngineOptions::default()), options).unwrap();
    live.push_frame(1, frame(moving(1)));
    // Wait until it is decoding (the tiny model does not stop by itself within 4000 tokens).
    let pieces = collect(&live, Duration::from_secs(20), |e| matches!(e, LiveEvent::Piece { .. }));
    assert!(matches!(pieces.last(), Some(LiveEvent::Piece { .. })), "{pieces:?}");
    let t = Instant::now();
    live.close();
    let took = t.elapsed();
    assert!(took < Duration::from_millis(250), "close took {took:?}");
    // Unread events drain, then the stream says Cancelled.
    loop {
        match live.next_event(Some(Duration::from_secs(1))) {
            Ok(Some(_)) => continue,
            Err(Error::Cancelled) => break,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_cached_encoding_gives_the_same_logits_in_zero_vision_ms() {
    let img = load_image(&model_dir().join("../../images/wide.png")).unwrap();
    let opts = GenerationOptions { max_tokens: 5, top_logprobs: 5, ..GenerationOptions::default() };
    let ask = |engine: &Arc<Engine>| {
        let mut s = Session::new(engine.clone());
        s.ask(Message::user("Describe the image.", vec![img.clone()]), &opts, &CancelToken::new(), &mut |_| {}).unwrap()
    };
    let cached = engine_with(EngineOptions::default());
    let first = ask(&cached);
    assert!(first.stats.vision_tiles > 1 && first.stats.vision_encode_ms > 0.0 && first.stats.cached_images == 0);
    let hit = ask(&cached);
    assert_eq!((hit.stats.vision_tiles, hit.stats.vision_encode_ms, hit.stats.cached_images), (0, 0.0, 1));
    let fresh = ask(&engine_with(EngineOptions { image_cache_bytes: Some(0), ..EngineOptions::default() }));
    assert!(fresh.stats.vision_tiles > 1);
    assert_eq!(hit.token_ids, fresh.token_ids);
    assert_eq!(hit.top_logprobs, fresh.top_logprobs, "identical logits, to the last bit");
}

#[test]
fn loading_is_cancellable() {
    let cancel = CancelToken::new();
    let mut steps = 0;
    let r = Engine::load_with_progress(&model_dir(), &EngineOptions::default(), &cancel, &mut |_, _| {
        steps += 1;
        if steps == 2 {
            cancel.cancel();
        }
    });
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert_eq!(steps, 2, "nothing is reported after the cancel");
    let already = CancelToken::new();
    already.cancel();
    assert!(matches!(
        Engine::load_with_progress(&model_dir(), &EngineOptions::default(), &already, &mut |_, _| {}),
        Err(Error::Cancelled)
    ));
}

#[test]
fn questions_about_the_last_seconds_reuse_frame_encodings() {
    let options = LiveOptions { history_seconds: 8, ..live_options() };
    let live = LiveSession::start(engine_with(EngineOptions::default()), options).unwrap();
    // Nothing kept yet: a typed error event.
    live.ask_recent("What happened?", 5.0);
    let events = collect(&live, Duration::from_secs(10), |e| matches!(e, LiveEvent::FrameError { .. }));
    assert!(matches!(events.last(), Some(LiveEvent::FrameError { error: Error::InvalidArgument(_), .. })), "{events:?}");
    // Captions paused: frames every 500 ms for 10 s; one per second is kept, the newest 8.
    live.pause();
    let converted = Arc::new(AtomicU64::new(0));
    for i in 0..=20u64 {
        let (img, count) = (moving(i), converted.clone());
        live.push_frame(
            i * 500,
            Box::new(move || {
                count.fetch_add(1, Ordering::SeqCst);
                Ok(img)
            }),
        );
    }
    let answer = |q: &str| {
        live.ask_recent(q, 5.0);
        let events = collect(&live, Duration::from_secs(20), |e| matches!(e, LiveEvent::Answer { .. }));
        match events.last() {
            Some(LiveEvent::Answer { question: Some(asked), frame, stats, text, .. }) => {
                assert_eq!(asked, q);
                assert_eq!(frame.timestamp_ms, 10_000, "named after the newest kept frame");
                (stats.vision_ms, text.clone())
            }
            other => panic!("no answer: {other:?}"),
        }
    };
    let (first_ms, _) = answer("What happened in the last seconds?");
    assert!(first_ms > 0.0);
    // The last 5 s are 6 kept frames (5 s to 10 s), each converted once.
    assert_eq!(converted.load(Ordering::SeqCst), 6);
    let (again_ms, _) = answer("And what moved?");
    assert_eq!(again_ms, 0.0, "every frame's encoding came from the cache");
    assert_eq!(converted.load(Ordering::SeqCst), 6, "no frame converted twice");
}
