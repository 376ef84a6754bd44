//! End-to-end comparison with transformers: every case under `tests/fixtures/cases` (written by
//! `tools/make_fixtures.py`) is run through the public API and must reproduce the reference
//! pixel values bit for bit, the prompt ids exactly and the greedy answer token for token. Video
//! cases also pin the frames chosen from each video.

use serde_json::Value;
use smolvlm::processor::preprocess::preprocess;
use smolvlm::processor::video::frame_pixels;
use smolvlm::{load_messages, CancelToken, Content, Engine, EngineOptions, GenerationOptions, Message, Session};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn cases() -> Vec<(PathBuf, Value)> {
    let mut out: Vec<_> = std::fs::read_dir(fixtures().join("cases"))
        .expect("fixture cases")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p.join("case.json")).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 8, "expected the full fixture set, found {} cases", out.len());
    out
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn engine_for(case: &Value) -> Arc<Engine> {
    let dir = fixtures().join("models").join(case["model"].as_str().unwrap());
    let split = case["do_image_splitting"].as_bool();
    Arc::new(
        Engine::load(&dir, &EngineOptions { image_splitting: split, longest_edge: None, ..EngineOptions::default() }).unwrap(),
    )
}

fn messages(dir: &Path, case: &Value) -> Vec<Message> {
    load_messages(&dir.join(case["messages"].as_str().unwrap())).unwrap()
}

#[test]
fn prompts_match_transformers() {
    for (dir, case) in cases() {
        let engine = engine_for(&case);
        let (text, ids) = engine.prompt(&messages(&dir, &case)).unwrap();
        assert_eq!(text, case["prompt"].as_str().unwrap(), "{}: prompt text", dir.display());
        let want: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        assert_eq!(ids, want, "{}: input ids", dir.display());
    }
}

#[test]
fn pixel_values_are_bit_exact() {
    for (dir, case) in cases() {
        let engine = engine_for(&case);
        let msgs = messages(&dir, &case);
        let cfg = engine.preprocessor();
        let m = cfg.max_image_size as usize;
        // Tiles of every image and chosen video frame, in prompt order.
        let mut pixels = Vec::new();
        let mut grids = Vec::new();
        let mut chosen = Vec::new();
        for c in msgs.iter().flat_map(|m| &m.content) {
            match c {
                Content::Image(img) => {
                    let p = preprocess(img, cfg).unwrap();
                    grids.push(vec![p.rows, p.cols]);
                    pixels.extend(p.pixel_values);
                }
                Content::Video(video) => {
                    let indices = engine.video_frames(video).unwrap();
                    for &i in &indices {
                        let mut tile = vec![0f32; 3 * m * m];
                        let edge = cfg.video_sampling.unwrap().longest_edge;
                        frame_pixels(&video.frames()[i], cfg, edge, &mut tile).unwrap();
                        pixels.extend(tile);
                    }
                    chosen.push(indices);
                }
                Content::Text(_) => {}
            }
        }
        let want_grids: Vec<Vec<usize>> = serde_json::from_value(case["image_rows_cols"].clone()).unwrap();
        assert_eq!(grids, want_grids, "{}: tile grids", dir.display());
        let want_chosen: Vec<Vec<usize>> = case["videos"]
            .as_array()
            .map(|vs| vs.iter().map(|v| serde_json::from_value(v["sampled_indices"].clone()).unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(chosen, want_chosen, "{}: frames chosen from each video", dir.display());
        let want = match case["pixel_values"]["file"].as_str() {
            Some(f) => read_f32(&dir.join(f)),
            None => Vec::new(),
        };
        assert_eq!(pixels.len(), want.len(), "{}: pixel count", dir.display());
        let diff = pixels.iter().zip(&want).position(|(a, b)| a.to_bits() != b.to_bits());
        assert_eq!(diff, None, "{}: first differing pixel value", dir.display());
    }
}

#[test]
fn greedy_answers_match_transformers() {
    for (dir, case) in cases() {
        let engine = engine_for(&case);
        let mut session = Session::new(engine);
        for m in messages(&dir, &case) {
            session.push(m);
        }
        let want: Vec<u32> = serde_json::from_value(case["greedy_token_ids"].clone()).unwrap();
        let opts = GenerationOptions { max_tokens: want.len(), top_logprobs: 5, ..Default::default() };
        let mut streamed = String::new();
        let answer = session.generate(&opts, &CancelToken::new(), &mut |p| streamed.push_str(p)).unwrap();
        assert!(want.len() >= 12, "{}: reference too short", dir.display());
        assert_eq!(answer.token_ids, want, "{}: greedy ids", dir.display());
        assert_eq!(answer.text, case["greedy_text"].as_str().unwrap(), "{}: text", dir.display());
        assert_eq!(streamed, answer.text, "{}: streamed pieces add up to the text", dir.display());
        let want_top = case["top_logprobs"].as_array().unwrap();
        for (step, (got, exp)) in answer.top_logprobs.iter().zip(want_top).enumerate() {
            let exp = exp.as_array().unwrap();
            assert_eq!(got.len(), exp.len());
            for (g, e) in got.iter().zip(exp) {
                assert_eq!(g.id as u64, e["id"].as_u64().unwrap(), "{}: step {step} top ids", dir.display());
                let d = (g.logprob as f64 - e["logprob"].as_f64().unwrap()).abs();
                assert!(d <= 1e-4, "{}: step {step} logprob off by {d}", dir.display());
            }
        }
    }
}
