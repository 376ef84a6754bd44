//! Rust tests of the exported API, exactly as Kotlin and Swift see it (minus the marshalling).

use smolvlm_ffi::*;
use std::path::PathBuf;
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

fn case(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("cases").join(name).join("case.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn greedy(n: i32) -> Option<GenerationConfig> {
    Some(GenerationConfig { max_tokens: n, ..Default::default() })
}

fn collect(stream: &TokenStream) -> Result<Vec<String>, SmolVlmError> {
    let mut pieces = Vec::new();
    while let Some(p) = stream.next()? {
        pieces.push(p);
    }
    Ok(pieces)
}

/// The fixture conversation `split_wide` gives transformers' greedy text through the FFI.
#[test]
fn same_greedy_text_as_the_reference() {
    let c = case("split_wide");
    let vlm = engine();
    let session = vlm.new_session(None, None).unwrap();
    let img = ImageInput::from_file(image("wide.png")).unwrap();
    let n = c["greedy_token_ids"].as_array().unwrap().len() as i32;
    let stream = session.ask("Can you describe this image?".into(), vec![img], greedy(n), vec![]).unwrap();
    let pieces = collect(&stream).unwrap();
    assert!(pieces.len() > 1, "streamed in several pieces");
    assert_eq!(pieces.concat(), c["greedy_text"].as_str().unwrap());
    assert_eq!(stream.text(), pieces.concat());
    let stats = stream.stats().unwrap();
    assert_eq!(stats.generated_tokens, n as i64);
    assert_eq!(stats.finish_reason, FinishReason::Length);
    assert_eq!(stats.vision_tiles, 13, "3x4 tiles plus the global view");
    assert_eq!(session.stats(), Some(stats));
    assert!(stream.next().unwrap().is_none(), "stays finished");
}

#[test]
fn follow_up_reuses_the_encoded_image() {
    let vlm = engine();
    let session = vlm.new_session(Some("You are a concise assistant.".into()), greedy(4)).unwrap();
    let img = ImageInput::from_file(image("tall.png")).unwrap();
    let first = session.ask("What do you see?".into(), vec![img], None, vec![]).unwrap();
    collect(&first).unwrap();
    let s1 = first.stats().unwrap();
    assert!(s1.vision_tiles > 0 && s1.vision_encode_ms > 0.0);
    let second = session.ask("And how many shapes are there?".into(), vec![], None, vec![]).unwrap();
    collect(&second).unwrap();
    let s2 = second.stats().unwrap();
    assert_eq!(s2.vision_tiles, 0);
    assert_eq!(s2.vision_encode_ms, 0.0);
    assert!(s2.prefill_tokens < s2.prompt_tokens / 4, "only the new turn is computed: {s2:?}");
    let t = session.transcript();
    let roles: Vec<ChatRole> = t.iter().map(|m| m.role).collect();
    assert_eq!(roles, [ChatRole::System, ChatRole::User, ChatRole::Assistant, ChatRole::User, ChatRole::Assistant]);
    assert_eq!(t[1].image_count, 1);
    assert_eq!(t[3].text, "And how many shapes are there?");
    session.reset();
    assert!(session.transcript().is_empty());
    let third = session.ask("Hi".into(), vec![], None, vec![]).unwrap();
    collect(&third).unwrap();
    assert_eq!(session.transcript()[0].role, ChatRole::System, "system prompt survives reset");
}

#[test]
fn camera_frames_match_the_decoded_file() {
    let png = ImageInput::from_file(image("small.png")).unwrap();
    let (w, h) = (png.width(), png.height());
    let rgb = png.rgb_bytes();
    // RGBA with 8 bytes of row padding, rotated 90° counter-clockwise in memory: the frame needs
    // a 90° clockwise rotation to be upright again.
    let (fw, fh) = (h, w);
    let stride = fw as usize * 4 + 8;
    let mut rgba = vec![0u8; stride * fh as usize];
    for y in 0..fh as usize {
        for x in 0..fw as usize {
            // Frame pixel (x, y) shows upright pixel (w-1-y, x).
            let (ux, uy) = (w as usize - 1 - y, x);
            let s = (uy * w as usize + ux) * 3;
            rgba[y * stride + x * 4..][..4].copy_from_slice(&[rgb[s], rgb[s + 1], rgb[s + 2], 255]);
        }
    }
    let frame = ImageInput::from_pixels(&rgba, PixelFormat::Rgba8888, fw, fh, stride as i32, 0, 90).unwrap();
    assert_eq!((frame.width(), frame.height()), (w, h));
    assert_eq!(frame.rgb_bytes(), rgb);

    let vlm = engine();
    let ask = |img: Arc<ImageInput>| {
        let s = vlm.new_session(None, greedy(8)).unwrap();
        collect(&s.ask("What is in the picture?".into(), vec![img], None, vec![]).unwrap()).unwrap().concat()
    };
    assert_eq!(ask(frame), ask(png));
}

#[test]
fn nv21_and_yuv420_frames() {
    // A flat mid-grey NV21 frame with row padding and chroma at 128 is grey in RGB.
    let (w, h, stride) = (6i32, 4i32, 8usize);
    let mut nv21 = vec![128u8; stride * h as usize * 3 / 2];
    nv21[0] = 255; // top-left luma: white
    let img = ImageInput::from_pixels(&nv21, PixelFormat::Nv21, w, h, stride as i32, 0, 180).unwrap();
    assert_eq!((img.width(), img.height()), (w, h));
    let px = img.rgb_bytes();
    assert_eq!(&px[..3], &[128, 128, 128]);
    assert_eq!(&px[px.len() - 3..], &[255, 255, 255], "rotated 180°: top-left went to bottom-right");
    // Three planes, U/V interleaved (pixel stride 2), 90° rotation swaps the sides.
    let y = vec![200u8; 8 * 4];
    let uv = vec![128u8; 8 * 2];
    let img = ImageInput::from_yuv420(&y, &uv[1..], &uv, 6, 4, 8, 8, 2, YuvColorRange::Full, 90).unwrap();
    assert_eq!((img.width(), img.height()), (4, 6));
    assert!(img.rgb_bytes().iter().all(|&v| v == 200));
    let img = ImageInput::from_yuv420(&y, &uv[1..], &uv, 6, 4, 8, 8, 2, YuvColorRange::Limited, 0).unwrap();
    assert!(img.rgb_bytes().iter().all(|&v| v == 214), "(200-16)*255/219 = 214.2");
}

#[test]
fn every_error_variant() {
    assert!(matches!(SmolVlm::load("/nonexistent/model".into(), None, None, None), Err(SmolVlmError::ModelMissing { .. })));
    // A folder with a broken config.json is invalid, not missing.
    let dir = std::env::temp_dir().join(format!("smolvlm-ffi-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(model()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let err = SmolVlm::load(dir.to_string_lossy().into(), None, None, None).err().unwrap();
    assert!(matches!(err, SmolVlmError::ModelInvalid { .. }), "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(matches!(ImageInput::from_encoded(b"not an image"), Err(SmolVlmError::InvalidImage { .. })));
    assert!(matches!(ImageInput::from_file(image("missing.png")), Err(SmolVlmError::InvalidImage { .. })));
    assert!(matches!(
        ImageInput::from_pixels(&[0u8; 10], PixelFormat::Rgba8888, 4, 4, 0, 0, 0),
        Err(SmolVlmError::InvalidImage { .. })
    ));
    assert!(matches!(
        ImageInput::from_pixels(&[0u8; 64], PixelFormat::Rgba8888, 4, 4, 0, 0, 45),
        Err(SmolVlmError::InvalidArgument { .. })
    ));

    let vlm = engine();
    let session = vlm.new_session(None, None).unwrap();
    let bad = GenerationConfig { max_tokens: 0, ..Default::default() };
    assert!(matches!(session.ask("hi".into(), vec![], Some(bad), vec![]), Err(SmolVlmError::InvalidArgument { .. })));
    let limit = vlm.info().context_length;
    let long = "word ".repeat(limit as usize + 10);
    let stream = session.ask(long, vec![], None, vec![]).unwrap();
    match stream.next() {
        Err(SmolVlmError::ContextOverflow { tokens, limit: l, .. }) => assert!(tokens > l && l == limit),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    assert!(session.transcript().is_empty(), "a failed question is undone");
    let stream = session.ask("hi".into(), vec![], None, vec![]).unwrap();
    stream.cancel();
    assert!(matches!(stream.next(), Err(SmolVlmError::Cancelled)));
    vlm.release();
    assert!(matches!(vlm.new_session(None, None), Err(SmolVlmError::InvalidArgument { .. })));
}

#[test]
fn a_panic_is_caught_by_uniffi() {
    // The exported function panics; uniffi's scaffolding catches it (panic = "unwind") and
    // reports a Rust panic to the caller instead of aborting. Here we check the unwinding part.
    let r = std::panic::catch_unwind(|| debug_panic("boom".into()));
    // (`debug_panic` never returns; the `Result` only makes Swift treat the call as throwing.)
    assert!(r.is_err());
}

#[test]
fn cancel_from_another_thread_stops_within_a_step() {
    let vlm = engine();
    let session = vlm.new_session(None, Some(GenerationConfig { max_tokens: 10_000, ..Default::default() })).unwrap();
    let img = ImageInput::from_file(image("wide.png")).unwrap();
    let stream = session.ask("Describe it at length.".into(), vec![img], None, vec![]).unwrap();
    assert!(stream.next().unwrap().is_some());
    let pulled = Arc::new(Mutex::new(0usize));
    let (st, p) = (stream.clone(), pulled.clone());
    let reader = std::thread::spawn(move || loop {
        match st.next() {
            Ok(Some(_)) => *p.lock().unwrap() += 1,
            other => return other,
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    session.cancel();
    let res = reader.join().unwrap();
    assert!(matches!(res, Err(SmolVlmError::Cancelled)), "{res:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "stopped within a step: {:?}", t.elapsed());
    assert!(*pulled.lock().unwrap() > 0);
    // The session is usable again and the cancelled question was undone.
    assert!(session.transcript().is_empty());
    let again = session.ask("Hi".into(), vec![], greedy(2), vec![]).unwrap();
    collect(&again).unwrap();
}

#[test]
fn one_answer_at_a_time_and_close_releases_it() {
    let vlm = engine();
    let session = vlm.new_session(None, greedy(50)).unwrap();
    let s1 = session.ask("Hello".into(), vec![], None, vec![]).unwrap();
    assert!(s1.next().unwrap().is_some());
    assert!(session.is_busy());
    assert!(matches!(session.ask("Again".into(), vec![], None, vec![]), Err(SmolVlmError::InvalidArgument { .. })));
    s1.release();
    assert!(!session.is_busy());
    assert!(matches!(s1.next(), Ok(None)));
    let s2 = session.ask("Again".into(), vec![], greedy(2), vec![]).unwrap();
    collect(&s2).unwrap();
    // Dropping a stream (what a garbage collector does) also releases the session.
    let s3 = session.ask("More".into(), vec![], None, vec![]).unwrap();
    assert!(s3.next().unwrap().is_some());
    drop(s3);
    let t = Instant::now();
    while session.is_busy() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!session.is_busy());
}

#[test]
fn concurrent_sessions_on_one_engine() {
    let vlm = engine();
    let want = {
        let s = vlm.new_session(None, greedy(6)).unwrap();
        collect(&s.ask("Tell me a story.".into(), vec![], None, vec![]).unwrap()).unwrap().concat()
    };
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let vlm = vlm.clone();
            std::thread::spawn(move || {
                let s = vlm.new_session(None, greedy(6)).unwrap();
                collect(&s.ask("Tell me a story.".into(), vec![], None, vec![]).unwrap()).unwrap().concat()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), want);
    }
}

/// Records what a load reports.
struct Rec(Mutex<Vec<(LoadStage, f32)>>);

impl LoadProgressListener for Rec {
    fn on_progress(&self, stage: LoadStage, fraction: f32) {
        self.0.lock().unwrap().push((stage, fraction));
    }
}

fn load_with(options: LoadOptions) -> Result<Arc<SmolVlm>, SmolVlmError> {
    SmolVlm::load(model(), Some(options), None, None)
}

/// Asserts an `InvalidArgument` whose reason names `field`.
#[track_caller]
fn assert_names<T>(r: Result<T, SmolVlmError>, field: &str) {
    match r.err() {
        Some(SmolVlmError::InvalidArgument { reason }) => assert!(reason.contains(field), "{field}: {reason}"),
        other => panic!("{field}: expected InvalidArgument, got {other:?} (None: it succeeded)"),
    }
}

/// The API's integers are signed (for Java): a negative count or size is an `InvalidArgument`
/// naming the field, never a panic or a wrapped-around huge value.
#[test]
fn negative_numbers_are_invalid_arguments() {
    let px = [0u8; 64];
    assert_names(ImageInput::from_pixels(&px, PixelFormat::Rgba8888, -4, 4, 0, 0, 0), "width");
    assert_names(ImageInput::from_pixels(&px, PixelFormat::Rgba8888, 4, -4, 0, 0, 0), "height");
    assert_names(ImageInput::from_pixels(&px, PixelFormat::Rgba8888, 4, 4, -16, 0, 0), "row_stride");
    assert_names(ImageInput::from_pixels_deferred(&px, PixelFormat::Rgba8888, 4, 4, 0, -4, 0), "pixel_stride");
    assert_names(ImageInput::from_pixels_deferred(&px, PixelFormat::Rgba8888, i32::MIN, 4, 0, 0, 0), "width");
    let plane = [128u8; 16];
    let yuv = |w: i32, y_row: i32, uv_pixel: i32| {
        ImageInput::from_yuv420(&plane, &plane, &plane, w, 2, y_row, 4, uv_pixel, YuvColorRange::Full, 0)
    };
    assert_names(yuv(-2, 4, 1), "width");
    assert_names(yuv(2, -4, 1), "y_row_stride");
    assert_names(yuv(2, 4, -1), "uv_pixel_stride");
    assert_names(ImageInput::from_yuv420_deferred(&plane, &plane, &plane, 2, -2, 4, 4, 1, YuvColorRange::Full, 0), "height");
    assert_names(
        ImageInput::from_yuv420_deferred(&plane, &plane, &plane, 2, 2, 4, -4, 1, YuvColorRange::Full, 0),
        "uv_row_stride",
    );

    assert_names(load_with(LoadOptions { threads: Some(-1), ..Default::default() }), "threads");
    assert_names(load_with(LoadOptions { longest_edge: Some(-64), ..Default::default() }), "longest_edge");
    assert_names(load_with(LoadOptions { context_length: Some(-1), ..Default::default() }), "context_length");
    assert_names(load_with(LoadOptions { image_cache_mb: Some(-1), ..Default::default() }), "image_cache_mb");

    let vlm = engine();
    let config = |max_tokens, top_k| Some(GenerationConfig { max_tokens, top_k, ..Default::default() });
    assert_names(vlm.new_session(None, config(-1, 0)), "max_tokens");
    let session = vlm.new_session(None, None).unwrap();
    assert_names(session.ask("hi".into(), vec![], config(8, -5), vec![]), "top_k");
    // A seed is 64 bits, not a count: a negative one samples like any other, reproducibly.
    let sampled = |seed| {
        let options = GenerationConfig { max_tokens: 6, temperature: 1.0, seed, ..Default::default() };
        let fresh = vlm.new_session(None, Some(options)).unwrap();
        collect(&fresh.ask("Tell me a story.".into(), vec![], None, vec![]).unwrap()).unwrap().concat()
    };
    assert_eq!(sampled(-7), sampled(-7));
}

#[test]
fn load_options_and_progress() {
    let rec = Arc::new(Rec(Mutex::new(Vec::new())));
    let opts = LoadOptions { image_splitting: Some(false), longest_edge: Some(64), threads: Some(1), ..Default::default() };
    let vlm = SmolVlm::load(model(), Some(opts), Some(rec.clone()), None).unwrap();
    let seen = rec.0.lock().unwrap().clone();
    // Reading, then per layer: 2 vision layers + connector, 2 decoder layers + head, then Ready.
    let stages: Vec<LoadStage> = seen.iter().map(|s| s.0).collect();
    use LoadStage::*;
    assert_eq!(stages, [Reading, Vision, Vision, Vision, Text, Text, Text, Ready]);
    assert_eq!(seen[0].1, 0.0);
    assert_eq!(seen.last().unwrap().1, 1.0);
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1), "fractions grow: {seen:?}");
    assert!(!vlm.info().image_splitting);
    assert_eq!(vlm.info().longest_edge, 64);
    let s = vlm.new_session(None, greedy(2)).unwrap();
    let img = ImageInput::from_file(image("wide.png")).unwrap();
    let stream = s.ask("What?".into(), vec![img], None, vec![]).unwrap();
    collect(&stream).unwrap();
    assert_eq!(stream.stats().unwrap().vision_tiles, 1, "no splitting: one tile");
    assert!(matches!(
        load_with(LoadOptions { threads: Some(0), ..Default::default() }),
        Err(SmolVlmError::InvalidArgument { .. })
    ));
}

#[test]
fn quantized_precisions_load_and_answer() {
    let c = case("split_wide");
    let n = c["greedy_token_ids"].as_array().unwrap().len() as i32;
    let ask = |vlm: &SmolVlm| {
        let s = vlm.new_session(None, greedy(n)).unwrap();
        let img = ImageInput::from_file(image("wide.png")).unwrap();
        let stream = s.ask("Can you describe this image?".into(), vec![img], None, vec![]).unwrap();
        (collect(&stream).unwrap().concat(), stream.stats().unwrap())
    };
    let f16 = load_with(LoadOptions { precision: Some(WeightPrecision::F16), ..Default::default() }).unwrap();
    assert_eq!(f16.info().precision, WeightPrecision::F16);
    let (text, stats) = ask(&f16);
    assert_eq!(text, c["greedy_text"].as_str().unwrap(), "f16 keeps the reference's greedy answer here");
    assert_eq!(stats.vision_tiles, 13);
    let q8 = load_with(LoadOptions { precision: Some(WeightPrecision::Q8), ..Default::default() }).unwrap();
    assert_eq!(q8.info().precision, WeightPrecision::Q8);
    let (text, stats) = ask(&q8);
    assert!(!text.is_empty());
    assert_eq!((stats.generated_tokens, stats.finish_reason), (n as i64, FinishReason::Length));
    // Auto keeps a model this small (well under 100M parameters) in f32.
    let auto = load_with(LoadOptions { precision: Some(WeightPrecision::Auto), ..Default::default() }).unwrap();
    assert_eq!(auto.info().precision, WeightPrecision::F32);
    assert_eq!(engine().info().precision, WeightPrecision::F32, "the default");
}

#[test]
fn context_length_caps_the_session() {
    let max = engine().info().context_length;
    let vlm = load_with(LoadOptions { context_length: Some(64), ..Default::default() }).unwrap();
    assert_eq!(vlm.info().context_length, 64);
    let session = vlm.new_session(None, None).unwrap();
    let stream = session.ask("word ".repeat(80), vec![], None, vec![]).unwrap();
    match stream.next() {
        Err(SmolVlmError::ContextOverflow { tokens, limit, .. }) => assert!(limit == 64 && tokens > 64, "{tokens} {limit}"),
        other => panic!("expected ContextOverflow, got {other:?}"),
    }
    // A short question still fits, and the answer stops where the context is full.
    let stream = session.ask("Hi".into(), vec![], greedy(1000), vec![]).unwrap();
    collect(&stream).unwrap();
    let stats = stream.stats().unwrap();
    assert_eq!(stats.finish_reason, FinishReason::Length);
    assert_eq!(stats.prompt_tokens + stats.generated_tokens, 64, "{stats:?}");
    for bad in [0, max as i32 + 1] {
        let r = load_with(LoadOptions { context_length: Some(bad), ..Default::default() });
        assert!(matches!(r, Err(SmolVlmError::InvalidArgument { .. })), "{bad}: {:?}", r.err());
    }
}

#[test]
fn backends() {
    assert_eq!(engine().info().backend, Backend::Cpu, "the default");
    let auto = load_with(LoadOptions { backend: Some(Backend::Auto), ..Default::default() }).unwrap();
    if cfg!(target_vendor = "apple") {
        return; // Metal may exist here; the checks below are for builds without it
    }
    assert_eq!(auto.info().backend, Backend::Cpu, "auto falls back to the CPU");
    match load_with(LoadOptions { backend: Some(Backend::Metal), ..Default::default() }) {
        Err(SmolVlmError::InvalidArgument { reason }) => assert!(reason.contains("Metal"), "{reason}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|v| v.info())),
    }
}

#[test]
fn gguf_pair_and_text_only_gguf() {
    let gguf = |name: &str| fixtures().join("gguf").join(name).to_string_lossy().into_owned();
    let mmproj = Some(gguf("mmproj-tiny-smolvlm2-f16.gguf"));
    let rec = Arc::new(Rec(Mutex::new(Vec::new())));
    let pair = SmolVlm::load(
        gguf("tiny-smolvlm2-f16.gguf"),
        Some(LoadOptions { mmproj, ..Default::default() }),
        Some(rec.clone()),
        None,
    )
    .unwrap();
    assert!(pair.info().has_vision);
    assert_eq!(rec.0.lock().unwrap().last().cloned(), Some((LoadStage::Ready, 1.0)));
    let s = pair.new_session(None, greedy(4)).unwrap();
    let img = ImageInput::from_file(image("wide.png")).unwrap();
    let stream = s.ask("What is in the picture?".into(), vec![img], None, vec![]).unwrap();
    assert!(!collect(&stream).unwrap().concat().is_empty());
    assert!(stream.stats().unwrap().vision_tiles > 0);

    let text_only = SmolVlm::load(gguf("tiny-smolvlm2-f16.gguf"), None, None, None).unwrap();
    assert!(!text_only.info().has_vision);
    let s = text_only.new_session(None, greedy(2)).unwrap();
    let img = ImageInput::from_file(image("wide.png")).unwrap();
    assert!(matches!(s.ask("What?".into(), vec![img], None, vec![]).unwrap().next(), Err(SmolVlmError::InvalidArgument { .. })));
    let missing = LoadOptions { mmproj: Some(gguf("missing.gguf")), ..Default::default() };
    assert!(matches!(
        SmolVlm::load(gguf("tiny-smolvlm2-f16.gguf"), Some(missing), None, None),
        Err(SmolVlmError::ModelMissing { .. })
    ));
}

#[test]
fn fast_preset_needs_fewer_tiles() {
    let tiles = |preset| {
        let vlm = load_with(LoadOptions { preset: Some(preset), ..Default::default() }).unwrap();
        let s = vlm.new_session(None, greedy(1)).unwrap();
        let stream = s.ask("What?".into(), vec![ImageInput::from_file(image("wide.png")).unwrap()], None, vec![]).unwrap();
        collect(&stream).unwrap();
        stream.stats().unwrap().vision_tiles
    };
    assert_eq!(tiles(ImagePreset::Exact), 13);
    // 100x70 px with 32 px tiles: exact upscales to 128 px (3x4 tiles), fast caps it at 64 px.
    assert_eq!(tiles(ImagePreset::Fast), 5, "2x2 tiles plus the global view");
}
