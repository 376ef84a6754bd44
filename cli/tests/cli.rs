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
