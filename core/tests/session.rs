//! Sessions: follow-ups reuse the KV cache exactly, cancellation, and typed errors.

use smolvlm::{load_image, CancelToken, Engine, EngineOptions, Error, GenerationOptions, Message, Role, Session};
use smolvlm::{Backend, LoadStage, WeightFormat};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::load(&fixtures().join("models/tiny-smolvlm2"), &EngineOptions::default()).unwrap())
}

fn image() -> smolvlm::RgbImage {
    load_image(&fixtures().join("images/wide.png")).unwrap()
}

fn greedy(n: usize) -> GenerationOptions {
    GenerationOptions { max_tokens: n, ..Default::default() }
}

#[test]
fn follow_up_reuses_the_cache_and_matches_a_fresh_session() {
    let engine = engine();
    let cancel = CancelToken::new();
    let mut s = Session::new(engine.clone());
    let first = s.ask(Message::user("Describe the image.", vec![image()]), &greedy(6), &cancel, &mut |_| {}).unwrap();
    assert!(first.stats.vision_tiles > 1, "the wide image is split into tiles");
    assert!(first.stats.vision_encode_ms > 0.0);
    assert_eq!(first.stats.prefill_tokens, first.stats.prompt_tokens);

    let second = s.ask(Message::text(Role::User, "And its colours?"), &greedy(6), &cancel, &mut |_| {}).unwrap();
    assert_eq!(second.stats.vision_tiles, 0, "the image must not be encoded again");
    assert_eq!(second.stats.vision_encode_ms, 0.0);
    assert!(
        second.stats.prefill_tokens * 4 < second.stats.prompt_tokens,
        "only the new tokens are computed: {} of {}",
        second.stats.prefill_tokens,
        second.stats.prompt_tokens
    );
    assert_eq!(s.messages().len(), 4, "user, assistant, user, assistant");

    // The same transcript from scratch gives the same answer.
    let mut fresh = Session::new(engine);
    for m in &s.messages()[..3] {
        fresh.push(m.clone());
    }
    let again = fresh.generate(&greedy(6), &cancel, &mut |_| {}).unwrap();
    assert_eq!(again.token_ids, second.token_ids);
    assert_eq!((again.stats.vision_tiles, again.stats.cached_images), (0, 1), "the engine's cache had the image");
}

#[test]
fn cancel_stops_between_steps_and_before_vision() {
    let engine = engine();
    let mut s = Session::new(engine);
    s.push(Message::user("Describe the image.", vec![image()]));
    let cancel = CancelToken::new();
    {
        let mut reply = s.reply(&greedy(50), &cancel).unwrap();
        let mut pieces = 0;
        while pieces == 0 {
            pieces += reply.next_piece().unwrap().map_or(0, |_| 1);
        }
        let other = cancel.clone();
        std::thread::spawn(move || other.cancel()).join().unwrap();
        assert!(matches!(reply.next_piece(), Err(Error::Cancelled)));
    }
    assert!(matches!(s.reply(&greedy(5), &cancel), Err(Error::Cancelled)));
    // A fresh token works again on the same session.
    let ok = s.generate(&greedy(3), &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!(ok.token_ids.len(), 3);
}

#[test]
fn bad_requests_are_typed_errors() {
    let engine = engine();
    let cancel = CancelToken::new();
    let mut s = Session::new(engine.clone());
    assert!(matches!(s.generate(&greedy(3), &cancel, &mut |_| {}), Err(Error::InvalidArgument(_))));
    s.push(Message::text(Role::User, "   "));
    assert!(matches!(s.generate(&greedy(3), &cancel, &mut |_| {}), Err(Error::InvalidArgument(_))));
    s.reset();
    let long = "word ".repeat(engine.context_length());
    s.push(Message::text(Role::User, long));
    assert!(matches!(s.generate(&greedy(3), &cancel, &mut |_| {}), Err(Error::ContextOverflow { .. })));
    s.reset();
    s.push(Message::text(Role::User, "two <image> placeholders <image> without images"));
    assert!(matches!(s.generate(&greedy(3), &cancel, &mut |_| {}), Err(Error::InvalidArgument(_))));
    s.reset();
    s.push(Message::text(Role::User, "hi"));
    let bad = GenerationOptions { top_p: 2.0, ..greedy(3) };
    assert!(matches!(s.generate(&bad, &cancel, &mut |_| {}), Err(Error::InvalidArgument(_))));
}

#[test]
fn stop_strings_cut_the_answer() {
    let engine = engine();
    let mut s = Session::new(engine.clone());
    s.push(Message::text(Role::User, "Say something."));
    let full = s.generate(&greedy(12), &CancelToken::new(), &mut |_| {}).unwrap();
    // Stop on a piece of text from the middle of the greedy answer.
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 6, "answer too short: {:?}", full.text);
    let stop: String = chars[4..6].iter().collect();
    let cut_at = full.text.find(&stop).unwrap();
    let mut t = Session::new(engine);
    t.push(Message::text(Role::User, "Say something."));
    let opts = GenerationOptions { stop: vec![stop], ..greedy(12) };
    let mut streamed = String::new();
    let a = t.generate(&opts, &CancelToken::new(), &mut |p| streamed.push_str(p)).unwrap();
    assert_eq!(a.finish_reason, smolvlm::FinishReason::StopString);
    assert_eq!(a.text, full.text[..cut_at]);
    assert_eq!(streamed, a.text);
}

#[test]
fn context_length_caps_prompt_and_answer() {
    let dir = fixtures().join("models/tiny-smolvlm2");
    let max = engine().context_length();
    let cancel = CancelToken::new();
    let mut full = Session::new(engine());
    full.push(Message::text(Role::User, "Say something."));
    let prompt_tokens = full.generate(&greedy(1), &cancel, &mut |_| {}).unwrap().stats.prompt_tokens;

    let capped = |n: usize| Engine::load(&dir, &EngineOptions { context_length: Some(n), ..EngineOptions::default() });
    let engine = Arc::new(capped(prompt_tokens + 3).unwrap());
    assert_eq!(engine.context_length(), prompt_tokens + 3);
    let mut s = Session::new(engine.clone());
    s.push(Message::text(Role::User, "Say something."));
    let a = s.generate(&greedy(50), &cancel, &mut |_| {}).unwrap();
    assert_eq!(a.finish_reason, smolvlm::FinishReason::Length, "the answer stops where the context is full");
    assert!(a.stats.generated_tokens <= 3, "{:?}", a.stats);
    s.reset();
    s.push(Message::text(Role::User, "word ".repeat(prompt_tokens)));
    match s.generate(&greedy(3), &cancel, &mut |_| {}) {
        Err(Error::ContextOverflow { tokens, limit }) => assert!(limit == prompt_tokens + 3 && tokens > limit),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    assert!(matches!(capped(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(capped(max + 1), Err(Error::InvalidArgument(_))));
    assert_eq!(capped(max).unwrap().context_length(), max);
}

#[test]
fn load_reports_growing_progress_by_stage() {
    let mut seen = Vec::new();
    let dir = fixtures().join("models/tiny-smolvlm2");
    Engine::load_with_progress(&dir, &EngineOptions::default(), &CancelToken::new(), &mut |stage, f| seen.push((stage, f)))
        .unwrap();
    // Reading, 2 vision layers + connector, 2 decoder layers + head, Ready.
    let stages: Vec<LoadStage> = seen.iter().map(|s| s.0).collect();
    use LoadStage::*;
    assert_eq!(stages, [Reading, Vision, Vision, Vision, Text, Text, Text, Ready]);
    assert_eq!(seen.first().unwrap().1, 0.0);
    assert_eq!(seen.last().unwrap().1, 1.0);
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "strictly growing: {seen:?}");
}

#[test]
fn backends() {
    let dir = fixtures().join("models/tiny-smolvlm2");
    let load = |backend| Engine::load(&dir, &EngineOptions { backend, ..EngineOptions::default() });
    assert_eq!(load(Backend::Cpu).unwrap().backend(), Backend::Cpu);
    // Quantized weights have CPU kernels only: `Auto` keeps them on the CPU (also where Metal
    // exists) and `Metal` refuses them, rather than moving activations for every product.
    for weights in [WeightFormat::Q8_0, WeightFormat::Q4K] {
        let options = |backend| EngineOptions { backend, weights, ..EngineOptions::default() };
        assert_eq!(Engine::load(&dir, &options(Backend::Auto)).unwrap().backend(), Backend::Cpu, "{weights:?}");
        match Engine::load(&dir, &options(Backend::Metal)) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("quantized weights") && m.contains("CPU only"), "{m}"),
            other => panic!("{weights:?} on Metal: expected InvalidArgument, got {:?}", other.map(|e| e.backend())),
        }
    }
    if cfg!(feature = "metal") {
        return; // on an Apple machine Metal may exist; the checks below are for other builds
    }
    match load(Backend::Metal) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("Metal"), "{m}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(load(Backend::Auto).unwrap().backend(), Backend::Cpu, "auto falls back to the CPU");
}
