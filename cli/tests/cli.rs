//! The `smolvlm` binary's contract: JSON output against the reference fixtures, and clear
//! errors with a non-zero exit (never a panic) for bad input.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn model() -> PathBuf {
    fixtures().join("models/tiny-smolvlm2")
}

fn smolvlm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smolvlm")).args(args).output().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("smolvlm-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A copy of the fixture model that a test may break.
fn model_copy(name: &str) -> PathBuf {
    let d = temp_dir(name);
    for e in std::fs::read_dir(model()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, d.join(p.file_name().unwrap())).unwrap();
    }
    d
}

/// Asserts a clean failure: non-zero exit, one `error:` line naming `needle`, no panic.
fn assert_fails(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    assert!(err.contains(needle), "stderr {err:?} should mention {needle:?}");
}

#[test]
fn json_answers_match_the_reference() {
    let case_dir = fixtures().join("cases/two_images");
    let case: Value = serde_json::from_str(&std::fs::read_to_string(case_dir.join("case.json")).unwrap()).unwrap();
    let messages = case_dir.join("messages.json");
    let out = smolvlm(&[
        "ask",
        "--model",
        model().to_str().unwrap(),
        "--messages",
        messages.to_str().unwrap(),
        "--json",
        "--temperature",
        "0",
        "--max-tokens",
        "12",
        "--top-logprobs",
        "5",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: Vec<u64> = serde_json::from_value(case["greedy_token_ids"].clone()).unwrap();
    let got: Vec<u64> = serde_json::from_value(v["token_ids"].clone()).unwrap();
    assert_eq!(got, want[..12]);
    assert_eq!(v["prompt_token_count"].as_u64().unwrap() as usize, case["input_ids"].as_array().unwrap().len());
    let top = v["top_logprobs"].as_array().unwrap();
    assert_eq!(top.len(), 12);
    assert_eq!(top[0].as_array().unwrap().len(), 5);
    let d = (top[0][0]["logprob"].as_f64().unwrap() - case["top_logprobs"][0][0]["logprob"].as_f64().unwrap()).abs();
    assert!(d < 1e-3, "logprob off by {d}");
    for key in ["vision_encode_ms", "prefill_ms", "ttft_ms", "decode_tokens_per_s", "generated_tokens", "peak_rss_mb"] {
        assert!(v["stats"][key].is_number(), "stats.{key} missing: {}", v["stats"]);
    }
    assert!(v["stats"]["vision_encode_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn streams_plain_text_with_image_and_prompt_flags() {
    let image = fixtures().join("images/wide.png");
    let out = smolvlm(&[
        "ask",
        "--model",
        model().to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--system",
        "Be brief.",
        "--max-tokens",
        "5",
        "What is this?",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with('\n') && text.trim().chars().count() > 0, "{text:?}");
}

#[test]
fn missing_weight_is_a_clear_error() {
    let d = model_copy("missing-weight");
    let path = d.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    let victim = tensors.keys().find(|k| k.contains("text_model.norm")).unwrap().clone();
    tensors.remove(&victim);
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let out = smolvlm(&["ask", "--model", d.to_str().unwrap(), "hello"]);
    assert_fails(&out, "model.safetensors");
}

#[test]
fn wrong_shape_is_a_clear_error() {
    let d = model_copy("wrong-shape");
    let cfg_path = d.join("config.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let h = cfg["text_config"]["intermediate_size"].as_u64().unwrap();
    cfg["text_config"]["intermediate_size"] = Value::from(h + 8);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let out = smolvlm(&["ask", "--model", d.to_str().unwrap(), "hello"]);
    assert_fails(&out, "model.safetensors");
}

#[test]
fn corrupt_or_missing_files_are_named() {
    let d = model_copy("corrupt");
    std::fs::write(d.join("model.safetensors"), b"not safetensors").unwrap();
    assert_fails(&smolvlm(&["ask", "--model", d.to_str().unwrap(), "hello"]), "model.safetensors");
    std::fs::write(d.join("config.json"), b"{ truncated").unwrap();
    assert_fails(&smolvlm(&["ask", "--model", d.to_str().unwrap(), "hello"]), "config.json");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    std::fs::copy(model().join("config.json"), d.join("config.json")).unwrap();
    assert_fails(&smolvlm(&["ask", "--model", d.to_str().unwrap(), "hello"]), "tokenizer.json");
}

#[test]
fn undecodable_image_is_a_clear_error() {
    let d = temp_dir("bad-image");
    let img = d.join("broken.png");
    std::fs::write(&img, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    let out = smolvlm(&["ask", "--model", model().to_str().unwrap(), "--image", img.to_str().unwrap(), "hi"]);
    assert_fails(&out, "image");
    let out = smolvlm(&["ask", "--model", model().to_str().unwrap(), "--image", "/no/such/file.png", "hi"]);
    assert_fails(&out, "file.png");
}

#[test]
fn empty_and_too_long_prompts_are_rejected() {
    assert_fails(&smolvlm(&["ask", "--model", model().to_str().unwrap(), ""]), "nothing to answer");
    assert_fails(&smolvlm(&["ask", "--model", model().to_str().unwrap(), "   "]), "empty");
    let long = "lorem ipsum ".repeat(3000);
    assert_fails(&smolvlm(&["ask", "--model", model().to_str().unwrap(), &long]), "context length");
    let bad = smolvlm(&["ask", "--model", model().to_str().unwrap(), "--top-p", "0", "hi"]);
    assert_fails(&bad, "top_p");
}

#[test]
fn bench_live_reports_the_camera_loop() {
    let out = smolvlm(&["bench", "--live", "--model", model().to_str().unwrap(), "--live-seconds", "2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["answers", "frames_pushed", "frames_dropped", "decode_tokens_per_s", "peak_rss_mb"] {
        assert!(v[key].is_number(), "{key} missing: {v}");
    }
    for key in ["median_frame_to_first_token_ms", "p90_frame_to_first_token_ms"] {
        assert!(v[key].as_f64().is_some_and(|ms| ms > 0.0), "{key}: {v}");
    }
    let (answers, pushed) = (v["answers"].as_u64().unwrap(), v["frames_pushed"].as_u64().unwrap());
    assert!(answers > 0 && pushed >= 50 && answers <= pushed, "{v}");
    let bad = smolvlm(&["bench", "--live", "--model", model().to_str().unwrap(), "--live-fps", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// The video item of a fixture case as a `--video-frames` object with absolute frame paths.
fn frames_object(case: &str, dir: &Path) -> (PathBuf, Value) {
    let case_dir = fixtures().join("cases").join(case);
    let messages: Value = serde_json::from_str(&std::fs::read_to_string(case_dir.join("messages.json")).unwrap()).unwrap();
    let content = messages[0]["content"].as_array().unwrap();
    let mut video = content.iter().find(|c| c["type"] == "video").unwrap().clone();
    for f in video["frames"].as_array_mut().unwrap() {
        *f = Value::String(case_dir.join(f.as_str().unwrap()).to_string_lossy().into_owned());
    }
    let path = dir.join(format!("{case}.json"));
    std::fs::write(&path, video.to_string()).unwrap();
    let question = content.iter().find(|c| c["type"] == "text").unwrap()["text"].as_str().unwrap().to_string();
    (path, Value::String(question))
}

fn ask_json(model: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["ask", "--model", model.to_str().unwrap(), "--json", "--max-tokens", "16"];
    args.extend_from_slice(extra);
    let out = smolvlm(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn video_frames_answer_like_the_reference() {
    let dir = temp_dir("video-frames");
    let case: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases/video_trim/case.json")).unwrap()).unwrap();
    let (frames, question) = frames_object("video_trim", &dir);
    let v = ask_json(&model(), &["--video-frames", frames.to_str().unwrap(), question.as_str().unwrap()]);
    assert_eq!(v["token_ids"], case["greedy_token_ids"]);
    assert_eq!(v["prompt_token_count"].as_u64().unwrap() as usize, case["input_ids"].as_array().unwrap().len());
    assert_eq!(v["stats"]["vision_tiles"].as_u64(), Some(64), "one tile per chosen frame");
}

#[test]
fn bad_videos_are_clear_errors() {
    let dir = temp_dir("bad-videos");
    let m = model();
    let m = m.to_str().unwrap();
    let missing = dir.join("missing.json");
    std::fs::write(&missing, r#"{"frames": ["nope.png"], "timestamps": [0.0], "duration": 1.0}"#).unwrap();
    let out = smolvlm(&["ask", "--model", m, "--video-frames", missing.to_str().unwrap(), "hi"]);
    assert_fails(&out, "nope.png");
    assert_eq!(out.status.code(), Some(2));
    let uneven = dir.join("uneven.json");
    let png = fixtures().join("images/small.png");
    std::fs::write(&uneven, format!(r#"{{"frames": ["{}"], "timestamps": [0.0, 1.0], "duration": 2.0}}"#, png.display()))
        .unwrap();
    assert_fails(&smolvlm(&["ask", "--model", m, "--video-frames", uneven.to_str().unwrap(), "hi"]), "timestamps");
    // An image-only checkpoint refuses videos before any work.
    let (frames, _) = frames_object("video_trim", &dir);
    let idefics = fixtures().join("models/tiny-idefics3");
    let out = smolvlm(&["ask", "--model", idefics.to_str().unwrap(), "--video-frames", frames.to_str().unwrap(), "hi"]);
    assert_fails(&out, "takes no videos");
    assert_eq!(out.status.code(), Some(2));
    let out = smolvlm(&["ask", "--model", m, "--video", dir.join("none.mp4").to_str().unwrap(), "hi"]);
    assert_fails(&out, "no such video file");
    assert_eq!(out.status.code(), Some(2));
}

/// `--video` decodes with the ffmpeg programs (installed by `.ci/run`); the answer equals the one
/// for the same frames given as PNGs with `--video-frames`. Without ffmpeg, `--video` must say
/// what is missing and exit 1.
#[test]
fn video_files_decode_like_their_frames() {
    let dir = temp_dir("video-file");
    let clip = dir.join("clip.mkv");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=4", "-t", "20", "-c:v", "ffv1"])
        .arg(&clip)
        .status();
    let m = model();
    if made.is_err() {
        let out = smolvlm(&[
            "ask",
            "--model",
            m.to_str().unwrap(),
            "--video",
            fixtures().join("images/small.png").to_str().unwrap(),
            "hi",
        ]);
        assert_fails(&out, "ffprobe");
        assert_eq!(out.status.code(), Some(1));
        return;
    }
    assert!(made.unwrap().success());
    // The same frames as PNGs (lossless codec: identical pixels), every frame at i / 4 s.
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&clip)
        .args(["-fps_mode", "passthrough"])
        .arg(dir.join("f%03d.png"))
        .status()
        .unwrap();
    assert!(status.success());
    let frames: Vec<String> = (1..=80).map(|i| dir.join(format!("f{i:03}.png")).to_string_lossy().into_owned()).collect();
    assert!(Path::new(&frames[79]).exists());
    let timestamps: Vec<f64> = (0..80).map(|i| i as f64 / 4.0).collect();
    let obj = serde_json::json!({"frames": frames, "timestamps": timestamps, "duration": 20.0});
    std::fs::write(dir.join("frames.json"), obj.to_string()).unwrap();
    let a = ask_json(&m, &["--video", clip.to_str().unwrap(), "What happens?"]);
    let b = ask_json(&m, &["--video-frames", dir.join("frames.json").to_str().unwrap(), "What happens?"]);
    assert_eq!(a["token_ids"], b["token_ids"]);
    assert_eq!(a["prompt_token_count"], b["prompt_token_count"]);
    // 20 s at 1 fps: 20 frames read (a frame identical to an earlier one comes from the cache).
    assert_eq!(a["stats"]["vision_tiles"], b["stats"]["vision_tiles"]);
    assert!((15..=20).contains(&a["stats"]["vision_tiles"].as_u64().unwrap()), "{}", a["stats"]);
}
