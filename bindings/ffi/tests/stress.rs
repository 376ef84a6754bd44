//! Concurrency and lifetime stress through the exported API, bounded in time (issue 19): threads
//! share one model and a pool of chats and, at random, ask (with and without images), read part
//! of an answer, cancel, reset, release streams and chats while they generate, and open new ones.
//! Every error must be a typed one a caller can expect; afterwards no native object is left
//! (`live_objects`), and memory stays bounded.
//!
//! `SMOLVLM_STRESS_SECONDS` sets the duration (default 60).

use smolvlm_ffi::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
}

/// Errors a caller must expect from racing calls: a cancelled or released answer, a chat that is
/// busy or released.
fn expected(e: &SmolVlmError) -> bool {
    matches!(e, SmolVlmError::Cancelled | SmolVlmError::InvalidArgument { .. })
}

#[test]
fn threads_racing_asks_cancels_resets_and_releases() {
    let seconds: u64 = std::env::var("SMOLVLM_STRESS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let model = fixtures().join("models/tiny-smolvlm2").to_string_lossy().into_owned();
    let vlm = SmolVlm::load(model, None, None, None).unwrap();
    let image = ImageInput::from_file(fixtures().join("images/small.png").to_string_lossy().into_owned()).unwrap();
    let chats: Arc<Mutex<Vec<Arc<ChatSession>>>> = Arc::new(Mutex::new(Vec::new()));
    let streams: Arc<Mutex<Vec<Arc<TokenStream>>>> = Arc::new(Mutex::new(Vec::new()));
    let (answers, cancels, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let end = Instant::now() + Duration::from_secs(seconds);
    let warm_rss = Arc::new(AtomicU64::new(0));
    let started = Instant::now();

    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (vlm, image, chats, streams) = (vlm.clone(), image.clone(), chats.clone(), streams.clone());
            let (answers, cancels, errors, warm_rss) = (answers.clone(), cancels.clone(), errors.clone(), warm_rss.clone());
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15 ^ (t + 1));
                let check = |r: Result<(), SmolVlmError>| {
                    if let Err(e) = r {
                        assert!(expected(&e), "unexpected error: {e:?}");
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                };
                while Instant::now() < end {
                    if t == 0 && warm_rss.load(Ordering::Relaxed) == 0 && started.elapsed() > Duration::from_secs(seconds / 6) {
                        warm_rss.store(rss_kb(), Ordering::Relaxed);
                    }
                    let pick = |rng: &mut fastrand::Rng, v: &Mutex<Vec<Arc<ChatSession>>>| {
                        let v = v.lock().unwrap();
                        (!v.is_empty()).then(|| v[rng.usize(..v.len())].clone())
                    };
                    match rng.u64(..10) {
                        // Open a chat (at most 6 alive).
                        0 => {
                            let mut c = chats.lock().unwrap();
                            if c.len() < 6 {
                                c.push(vlm.new_session(Some("Be brief.".into()), None).unwrap());
                            }
                        }
                        // Ask, then read some, all or none of the answer.
                        1..=4 => {
                            let Some(chat) = pick(&mut rng, &chats) else { continue };
                            let images = if rng.u64(..3) == 0 { vec![image.clone()] } else { vec![] };
                            let options = GenerationConfig { max_tokens: 1 + rng.u64(..12) as i32, ..Default::default() };
                            match chat.ask("What is this?".into(), images, Some(options), vec![]) {
                                Ok(stream) => {
                                    let read = rng.u64(..4);
                                    let mut n = 0;
                                    let done = loop {
                                        if read != 3 && n >= read {
                                            break false;
                                        }
                                        match stream.next() {
                                            Ok(Some(_)) => n += 1,
                                            Ok(None) => break true,
                                            Err(e) => {
                                                check(Err(e));
                                                break true;
                                            }
                                        }
                                    };
                                    if done {
                                        answers.fetch_add(1, Ordering::Relaxed);
                                    } else {
                                        // Left streaming for another thread to cancel or release.
                                        streams.lock().unwrap().push(stream);
                                    }
                                }
                                Err(e) => check(Err(e)),
                            }
                        }
                        // Cancel or release an answer someone left streaming, maybe mid-read.
                        5 | 6 => {
                            let Some(stream) = streams.lock().unwrap().pop() else { continue };
                            match rng.u64(..3) {
                                0 => stream.cancel(),
                                1 => stream.release(),
                                _ => check(stream.next().map(|_| ())),
                            }
                            cancels.fetch_add(1, Ordering::Relaxed);
                        }
                        // Cancel or reset a chat, possibly while it answers.
                        7 | 8 => {
                            let Some(chat) = pick(&mut rng, &chats) else { continue };
                            if rng.u64(..2) == 0 {
                                chat.cancel();
                            } else {
                                chat.reset();
                            }
                        }
                        // Release a chat, possibly while it answers.
                        _ => {
                            let mut c = chats.lock().unwrap();
                            if !c.is_empty() {
                                let i = rng.usize(..c.len());
                                c.swap_remove(i).release();
                            }
                        }
                    }
                }
            });
        }
    });

    for s in streams.lock().unwrap().drain(..) {
        s.release();
    }
    for c in chats.lock().unwrap().drain(..) {
        c.release();
    }
    vlm.release();
    drop(image);
    // Answer threads finish within a decode step of being released.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left = live_objects();
    while left != (LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 }) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        left = live_objects();
    }
    let (warm, now) = (warm_rss.load(Ordering::Relaxed), rss_kb());
    eprintln!(
        "stress: {} s, {} answers, {} cancels/releases, {} typed errors; RSS {} MB after warm-up, {} MB at the end",
        seconds,
        answers.load(Ordering::Relaxed),
        cancels.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        warm / 1024,
        now / 1024
    );
    assert_eq!(left, LiveObjects { engines: 0, sessions: 0, streams: 0, captioners: 0 }, "native objects left");
    assert!(answers.load(Ordering::Relaxed) > 20, "the stress did some work");
    if warm > 0 {
        assert!(now < warm + 64 * 1024, "RSS grew from {warm} kB to {now} kB");
    }
}
