//! Videos through the exported API: `VideoInput` (all frames, or the chosen ones), `ask` with
//! videos, the frame indices and limits, and typed errors.

use smolvlm_ffi::*;
use std::path::PathBuf;
use std::sync::Arc;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn load(name: &str) -> Arc<SmolVlm> {
    SmolVlm::load(fixtures().join("models").join(name).to_string_lossy().into_owned(), None, None, None).unwrap()
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The video item of a fixture case as a `VideoInput`, the frame paths, and the question.
fn fixture_video(case: &str) -> (Vec<String>, Vec<f64>, f64, String) {
    let dir = fixtures().join("cases").join(case);
    let messages = json(dir.join("messages.json"));
    let content = messages[0]["content"].as_array().unwrap();
    let v = content.iter().find(|c| c["type"] == "video").unwrap();
    let frames =
        v["frames"].as_array().unwrap().iter().map(|f| dir.join(f.as_str().unwrap()).to_string_lossy().into_owned()).collect();
    let times = v["timestamps"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    let text = content.iter().find(|c| c["type"] == "text").unwrap()["text"].as_str().unwrap().to_string();
    (frames, times, v["duration"].as_f64().unwrap(), text)
}

fn answer(session: &ChatSession, text: &str, images: Vec<Arc<ImageInput>>, videos: Vec<Arc<VideoInput>>) -> String {
    let greedy = Some(GenerationConfig { max_tokens: 16, ..Default::default() });
    let stream = session.ask(text.into(), images, greedy, videos).unwrap();
    while stream.next().unwrap().is_some() {}
    stream.text()
}

#[test]
fn a_video_and_an_image_answer_like_the_reference() {
    let (frames, times, duration, text) = fixture_video("video_and_image");
    let frames = frames.into_iter().map(|f| ImageInput::from_file(f).unwrap()).collect();
    let video = VideoInput::new(frames, times, duration).unwrap();
    assert_eq!((video.frame_count(), video.duration()), (6, 3.0));
    let vlm = load("tiny-smolvlm2");
    let small = ImageInput::from_file(fixtures().join("images/small.png").to_string_lossy().into_owned()).unwrap();
    let session = vlm.new_session(None, None).unwrap();
    let want = json(fixtures().join("cases/video_and_image/case.json"));
    assert_eq!(answer(&session, &text, vec![small], vec![video]), want["greedy_text"].as_str().unwrap());
    let stats = session.stats().unwrap();
    assert_eq!(stats.vision_tiles, 3 + 13, "three frames, then 3x4 tiles and the global view");
}

#[test]
fn chosen_frames_answer_like_all_frames() {
    let (frames, times, duration, text) = fixture_video("video_max_frames");
    let vlm = load("tiny-smolvlm2");
    assert_eq!(vlm.info().video_frame_limit, 64);
    let indices = vlm.video_frame_indices(frames.len() as i32, duration).unwrap();
    assert_eq!((indices.len(), indices[0], *indices.last().unwrap()), (64, 0, 129));
    let chosen = VideoInput::chosen(
        indices.iter().map(|&i| ImageInput::from_file(frames[i as usize].clone()).unwrap()).collect(),
        indices.iter().map(|&i| times[i as usize]).collect(),
        duration,
    )
    .unwrap();
    let session = vlm.new_session(None, None).unwrap();
    let want = json(fixtures().join("cases/video_max_frames/case.json"));
    assert_eq!(answer(&session, &text, vec![], vec![chosen]), want["greedy_text"].as_str().unwrap());
}

#[test]
fn bad_videos_are_typed_errors() {
    let img = || ImageInput::from_file(fixtures().join("images/small.png").to_string_lossy().into_owned()).unwrap();
    let invalid = |r: Result<Arc<VideoInput>, SmolVlmError>| matches!(r, Err(SmolVlmError::InvalidArgument { .. }));
    assert!(invalid(VideoInput::new(vec![], vec![], 1.0)));
    assert!(invalid(VideoInput::new(vec![img()], vec![0.0, 1.0], 2.0)));
    assert!(invalid(VideoInput::new(vec![img(), img()], vec![1.0, 0.0], 2.0)));
    assert!(invalid(VideoInput::chosen(vec![img()], vec![0.0], f64::INFINITY)));
    let vlm = load("tiny-smolvlm2");
    assert!(matches!(vlm.video_frame_indices(0, 1.0), Err(SmolVlmError::InvalidArgument { .. })));
    assert!(matches!(vlm.video_frame_indices(-3, 1.0), Err(SmolVlmError::InvalidArgument { .. })));
    // An image-only model refuses videos when asked, and the question leaves no trace.
    let idefics = load("tiny-idefics3");
    assert_eq!(idefics.info().video_frame_limit, 0);
    let session = idefics.new_session(None, None).unwrap();
    let video = VideoInput::new(vec![img()], vec![0.0], 1.0).unwrap();
    let stream = session.ask("What happens?".into(), vec![], None, vec![video]).unwrap();
    assert!(matches!(stream.next(), Err(SmolVlmError::InvalidArgument { .. })));
    assert!(session.transcript().is_empty());
}
