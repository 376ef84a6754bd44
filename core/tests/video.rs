//! Video preprocessing against transformers' SmolVLM video processor (fixtures written by
//! `tools/make_fixtures.py`): the frames chosen from a video, and each frame's pixels after the
//! two torchvision LANCZOS resizes and the normalisation, bit for bit.

use serde_json::Value;
use smolvlm::config::{PreprocessorConfig, VideoSampling};
use smolvlm::processor::video::{frame_pixels, frame_size, sample_indices, source_fps};
use smolvlm::{load_image, CancelToken, Content, Engine, EngineOptions, Message, Role, Video};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn preprocess_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/preprocess")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn frame_choice_matches_sample_frames() {
    let records = json(&preprocess_dir().join("video_sampling.json"));
    let records = records.as_array().unwrap();
    assert!(records.len() >= 30);
    for r in records {
        let total = r["total_num_frames"].as_u64().unwrap() as usize;
        let duration = r["duration"].as_f64().unwrap();
        let sampling = VideoSampling {
            fps: r["target_fps"].as_f64().unwrap(),
            max_frames: r["max_frames"].as_u64().unwrap() as usize,
            longest_edge: 128,
        };
        // The frame rate as the SDK derives it from frames and duration, and as given.
        let derived = source_fps(total, duration);
        let given = r["fps"].as_f64().unwrap();
        assert!((derived - given).abs() < 1e-5, "{r}: derived fps {derived}");
        let want: Vec<usize> = serde_json::from_value(r["indices"].clone()).unwrap();
        let got = sample_indices(total, derived, duration, &sampling, sampling.max_frames);
        assert_eq!(got, want, "{r}");
    }
}

#[test]
fn frame_pixels_are_bit_exact() {
    let spec = json(&preprocess_dir().join("video_resize.json"));
    let m = spec["max_image_size"].as_u64().unwrap() as u32;
    let edge = spec["size_longest_edge"].as_u64().unwrap() as u32;
    let cfg = PreprocessorConfig {
        longest_edge: edge,
        max_image_size: m,
        do_image_splitting: true,
        do_resize: true,
        do_rescale: true,
        rescale_factor: spec["rescale_factor"].as_f64().unwrap(),
        do_normalize: true,
        image_mean: [0.5; 3],
        image_std: [0.5; 3],
        video_sampling: None,
    };
    let frames = spec["frames"].as_array().unwrap();
    assert!(frames.len() >= 10);
    for f in frames {
        let img = load_image(&preprocess_dir().join(f["png"].as_str().unwrap())).unwrap();
        let (w, h) = frame_size(img.width, img.height, edge);
        let hw: Vec<u32> = serde_json::from_value(f["first_resize_hw"].clone()).unwrap();
        assert_eq!([h, w], [hw[0], hw[1]], "{}: first resize", f["png"]);
        let bytes = std::fs::read(preprocess_dir().join(f["output"]["file"].as_str().unwrap())).unwrap();
        let want: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let mut got = vec![0f32; 3 * (m * m) as usize];
        frame_pixels(&img, &cfg, edge, &mut got).unwrap();
        let diff = got.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(diff, None, "{}: first differing value", f["png"]);
    }
}

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-smolvlm2")
}

fn clip(n: usize, fps: f64) -> Video {
    let frames = (0..n)
        .map(|i| {
            let data = (0..16 * 12 * 3).map(|k| ((k * 7 + i * 13) % 256) as u8).collect();
            Arc::new(smolvlm::RgbImage::new(16, 12, data).unwrap())
        })
        .collect();
    Video::new(frames, (0..n).map(|i| i as f64 / fps).collect(), n as f64 / fps).unwrap()
}

#[test]
fn frame_limit_and_typed_errors() {
    let engine = Engine::load(&tiny(), &EngineOptions::default()).unwrap();
    // The tiny checkpoint allows 64 frames and a 2048-token window holds them.
    assert_eq!(engine.video_frame_limit(), 64);
    // A small window lowers the default limit: (1024 - 512) / (4 + 12) = 32 frames.
    let small = Engine::load(&tiny(), &EngineOptions { context_length: Some(1024), ..Default::default() }).unwrap();
    assert_eq!(small.video_frame_limit(), 32);
    assert_eq!(small.video_frames(&clip(200, 2.0)).unwrap().len(), 32);
    // An explicit limit wins; one that does not fit is a typed context overflow, before any encoding.
    let forced = Arc::new(
        Engine::load(&tiny(), &EngineOptions { context_length: Some(1024), max_video_frames: Some(200), ..Default::default() })
            .unwrap(),
    );
    let mut session = smolvlm::Session::new(forced);
    session
        .push(Message { role: Role::User, content: vec![Content::Video(Arc::new(clip(200, 2.0))), Content::Text("?".into())] });
    let err = session.generate(&Default::default(), &CancelToken::new(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, smolvlm::Error::ContextOverflow { .. }), "{err:?}");
    // A limit of no frames is refused at load.
    let zero = Engine::load(&tiny(), &EngineOptions { max_video_frames: Some(0), ..Default::default() });
    assert!(matches!(zero, Err(smolvlm::Error::InvalidArgument(_))));
    // Bad videos are typed errors.
    assert!(Video::new(Vec::new(), Vec::new(), 1.0).is_err());
    assert!(Video::new(clip(2, 1.0).frames().to_vec(), vec![0.0], 2.0).is_err());
    assert!(Video::new(clip(2, 1.0).frames().to_vec(), vec![1.0, 0.0], 2.0).is_err());
    assert!(Video::new(clip(2, 1.0).frames().to_vec(), vec![0.0, 1.0], f64::NAN).is_err());
}

#[test]
fn chosen_frames_read_like_the_whole_video() {
    // Decoding only the frames a question reads gives the same prompt as giving them all.
    let engine = Engine::load(&tiny(), &EngineOptions::default()).unwrap();
    let all = clip(130, 2.0);
    let indices = engine.video_frame_indices(130, 65.0).unwrap();
    assert_eq!(indices, engine.video_frames(&all).unwrap());
    let frames = indices.iter().map(|&i| all.frames()[i].clone()).collect();
    let chosen = Video::chosen(frames, indices.iter().map(|&i| all.timestamps()[i]).collect(), 65.0).unwrap();
    let ask = |v: Video| Message { role: Role::User, content: vec![Content::Video(Arc::new(v)), Content::Text("?".into())] };
    assert_eq!(engine.prompt(&[ask(all.clone())]).unwrap(), engine.prompt(&[ask(chosen)]).unwrap());
    // More chosen frames than fit is a typed error.
    let too_many = Video::chosen(all.frames().to_vec(), all.timestamps().to_vec(), 65.0).unwrap();
    assert!(matches!(engine.prompt(&[ask(too_many)]), Err(smolvlm::Error::InvalidArgument(_))));
    assert!(engine.video_frame_indices(0, 1.0).is_err());
    assert!(engine.video_frame_indices(3, 0.0).is_err());
}

#[test]
fn too_many_images_are_refused_before_any_work() {
    let engine = Engine::load(&tiny(), &EngineOptions::default()).unwrap();
    let img = Arc::new(smolvlm::RgbImage::new(2, 2, vec![0; 12]).unwrap());
    let ask = |n: usize| {
        let mut content: Vec<Content> = (0..n).map(|_| Content::Image(img.clone())).collect();
        content.push(Content::Text("?".into()));
        engine.prompt(&[Message { role: Role::User, content }])
    };
    assert!(ask(smolvlm::MAX_MEDIA_PER_CONVERSATION).is_ok());
    assert!(matches!(ask(smolvlm::MAX_MEDIA_PER_CONVERSATION + 1), Err(smolvlm::Error::InvalidArgument(_))));
}

#[test]
fn image_only_checkpoints_refuse_videos() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models/tiny-idefics3");
    let engine = Engine::load(&dir, &EngineOptions::default()).unwrap();
    assert_eq!(engine.video_frame_limit(), 0);
    let msg = Message { role: Role::User, content: vec![Content::Video(Arc::new(clip(3, 1.0))), Content::Text("?".into())] };
    assert!(matches!(engine.prompt(&[msg]), Err(smolvlm::Error::InvalidArgument(_))));
    let chosen = Video::chosen(clip(3, 1.0).frames().to_vec(), vec![0.0, 1.0, 2.0], 3.0).unwrap();
    assert!(matches!(engine.video_frames(&chosen), Err(smolvlm::Error::InvalidArgument(ref s)) if s.contains("no videos")));
}

#[test]
fn follow_ups_reuse_frame_encodings() {
    let engine = Arc::new(Engine::load(&tiny(), &EngineOptions::default()).unwrap());
    let video = Arc::new(clip(8, 2.0)); // 4 s at 2 fps: 4 frames chosen
    let opts = smolvlm::GenerationOptions { max_tokens: 3, ..Default::default() };
    let mut first = smolvlm::Session::new(engine.clone());
    first.push(Message { role: Role::User, content: vec![Content::Video(video.clone()), Content::Text("What happens?".into())] });
    let a = first.generate(&opts, &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!((a.stats.vision_tiles, a.stats.cached_images), (4, 0));
    // The same video in a new conversation: every frame comes from the engine's cache.
    let mut second = smolvlm::Session::new(engine);
    second.push(Message { role: Role::User, content: vec![Content::Video(video), Content::Text("And now?".into())] });
    let b = second.generate(&opts, &CancelToken::new(), &mut |_| {}).unwrap();
    assert_eq!((b.stats.vision_tiles, b.stats.cached_images), (0, 4));
}
