//! llama.cpp GGUF interop: the tiny SmolVLM2 fixture converted by llama.cpp's own
//! `convert_hf_to_gguf.py` (text f16 + `--mmproj` f16; see tools/make_gguf_fixtures.sh) must give
//! the same prompt ids, logits (within 1e-4, weights widened to f32) and greedy answers as the
//! safetensors checkpoint and transformers; a text-only GGUF must refuse images; corrupt files
//! must be typed errors naming the file.

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use smolvlm::config::ModelConfig;
use smolvlm::gguf::GgufModel;
use smolvlm::model::SmolVlmModel;
use smolvlm::{load_messages, CancelToken, Engine, EngineOptions, Error, GenerationOptions, Message, Session, WeightFormat};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn text_gguf() -> PathBuf {
    fixtures().join("gguf/tiny-smolvlm2-f16.gguf")
}

fn mmproj_gguf() -> PathBuf {
    fixtures().join("gguf/mmproj-tiny-smolvlm2-f16.gguf")
}

fn cases() -> Vec<(PathBuf, Value)> {
    let mut out: Vec<_> = std::fs::read_dir(fixtures().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.json").exists())
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p.join("case.json")).unwrap()).unwrap();
            (p, v)
        })
        .filter(|(_, v)| v["model"] == "tiny-smolvlm2")
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 8, "expected the tiny-smolvlm2 fixture cases, found {}", out.len());
    out
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn gguf_engine(case: &Value, mmproj: bool) -> Arc<Engine> {
    let options = EngineOptions {
        image_splitting: case["do_image_splitting"].as_bool(),
        weights: WeightFormat::F32,
        mmproj: mmproj.then(mmproj_gguf),
        ..EngineOptions::default()
    };
    Arc::new(Engine::load(&text_gguf(), &options).unwrap())
}

fn greedy(engine: &Arc<Engine>, msgs: Vec<Message>, n: usize) -> Vec<u32> {
    let mut s = Session::new(engine.clone());
    for m in msgs {
        s.push(m);
    }
    let opts = GenerationOptions { max_tokens: n, ..GenerationOptions::default() };
    s.generate(&opts, &CancelToken::new(), &mut |_| {}).unwrap().token_ids
}

/// Prefill logits of a case through the model API (pixel values and ids from the fixture).
fn prefill(model: &SmolVlmModel, dir: &Path, case: &Value) -> Vec<f32> {
    let ids: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
    let feats = match &case["pixel_values"] {
        Value::Null => None,
        pv => {
            let shape: Vec<usize> = serde_json::from_value(pv["shape"].clone()).unwrap();
            let px = Tensor::from_vec(read_f32(&dir.join(pv["file"].as_str().unwrap())), shape.clone(), &Device::Cpu).unwrap();
            let f: Vec<Tensor> =
                (0..shape[0]).map(|i| model.encode_images(&px.narrow(0, i, 1).unwrap()).unwrap().squeeze(0).unwrap()).collect();
            Some(Tensor::cat(&f, 0).unwrap())
        }
    };
    let mut cache = model.new_cache();
    model.forward(&ids, feats.as_ref(), &mut cache).unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

#[test]
fn gguf_pair_matches_safetensors_and_transformers() {
    let gg = GgufModel::open(&text_gguf(), Some(&mmproj_gguf())).unwrap();
    let gg_model = SmolVlmModel::from_gguf(gg.config(), &gg, WeightFormat::F32).unwrap();
    let st_dir = fixtures().join("models/tiny-smolvlm2");
    let st_cfg = ModelConfig::load(&st_dir.join("config.json")).unwrap();
    // SAFETY: the fixture is not modified while mapped.
    let vb =
        unsafe { candle_nn::VarBuilder::from_mmaped_safetensors(&[st_dir.join("model.safetensors")], DType::F32, &Device::Cpu) }
            .unwrap();
    let st_model = SmolVlmModel::new(&st_cfg, vb).unwrap();
    let mut worst = 0f32;
    for (dir, case) in cases() {
        let msgs = load_messages(&dir.join(case["messages"].as_str().unwrap())).unwrap();
        let engine = gguf_engine(&case, true);
        assert!(engine.has_vision());
        // Tokenizer from the GGUF metadata, image settings from the mmproj metadata.
        let (text, ids) = engine.prompt(&msgs).unwrap();
        assert_eq!(text, case["prompt"].as_str().unwrap(), "{}: prompt", dir.display());
        let want: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        assert_eq!(ids, want, "{}: prompt ids", dir.display());
        // Prefill logits against transformers' and against the safetensors model.
        let n = case["greedy_token_ids"].as_array().unwrap().len();
        let logits = prefill(&gg_model, &dir, &case);
        let reference = read_f32(&dir.join(case["prefill_logits"]["file"].as_str().unwrap()));
        let err = max_diff(&logits, &reference);
        let err_st = max_diff(&logits, &prefill(&st_model, &dir, &case));
        eprintln!("{}: GGUF vs transformers {err:.2e}, GGUF vs safetensors {err_st:.2e}", dir.display());
        assert!(err <= 1e-4, "{}: GGUF prefill logits differ from transformers by {err:e}", dir.display());
        assert!(err_st <= 1e-4, "{}: GGUF prefill logits differ from safetensors by {err_st:e}", dir.display());
        let got = greedy(&engine, msgs, n);
        let want_greedy: Vec<u32> = serde_json::from_value(case["greedy_token_ids"].clone()).unwrap();
        let eos = engine.eos_token_ids();
        let want_trimmed: Vec<u32> = want_greedy.iter().copied().take_while(|t| !eos.contains(t)).collect();
        assert_eq!(got, want_trimmed, "{}: greedy ids", dir.display());
        worst = worst.max(err);
    }
    eprintln!("worst GGUF prefill error vs transformers: {worst:.2e}");
}

#[test]
fn a_folder_holding_a_gguf_pair_loads_as_that_pair() {
    let dir = std::env::temp_dir().join(format!("smolvlm-gguf-pair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(text_gguf(), dir.join("tiny-Q8_0.gguf")).unwrap();
    let text_only = Engine::load(&dir, &EngineOptions::default()).unwrap();
    assert!(!text_only.has_vision());
    std::fs::copy(mmproj_gguf(), dir.join("mmproj-tiny-Q8_0.gguf")).unwrap();
    let pair = Engine::load(&dir, &EngineOptions::default()).unwrap();
    assert!(pair.has_vision());
    std::fs::copy(text_gguf(), dir.join("other.gguf")).unwrap();
    assert!(Engine::load(&dir, &EngineOptions::default()).is_err(), "two text models: which one?");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn text_only_gguf_answers_text_and_refuses_images() {
    let (dir, case) = cases().into_iter().find(|(d, _)| d.ends_with("text_only")).expect("text_only case");
    let engine = gguf_engine(&case, false);
    assert!(!engine.has_vision());
    assert!(engine.config().vision.is_none());
    let msgs = load_messages(&dir.join(case["messages"].as_str().unwrap())).unwrap();
    let (_, ids) = engine.prompt(&msgs).unwrap();
    let want: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).unwrap();
    assert_eq!(ids, want);
    let got = greedy(&engine, msgs, 8);
    let want_greedy: Vec<u32> = serde_json::from_value(case["greedy_token_ids"].clone()).unwrap();
    assert_eq!(got[..], want_greedy[..got.len()]);
    // An image is a clear InvalidArgument.
    let img = smolvlm::load_image(&fixtures().join("images/small.png")).unwrap();
    let mut s = Session::new(engine.clone());
    s.push(Message::user("What is this?", vec![img]));
    match s.reply(&GenerationOptions::default(), &CancelToken::new()) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("text-only"), "{m}"),
        Err(e) => panic!("expected InvalidArgument, got {e}"),
        Ok(_) => panic!("a text-only model accepted an image"),
    }
}

#[test]
fn quantizing_a_gguf_at_load_works() {
    let (dir, case) = cases().into_iter().find(|(d, _)| d.ends_with("split_wide")).unwrap();
    let options = EngineOptions {
        image_splitting: case["do_image_splitting"].as_bool(),
        weights: WeightFormat::Q8_0,
        mmproj: Some(mmproj_gguf()),
        ..EngineOptions::default()
    };
    let engine = Arc::new(Engine::load(&text_gguf(), &options).unwrap());
    assert_eq!(engine.weight_format(), WeightFormat::Q8_0);
    let msgs = load_messages(&dir.join(case["messages"].as_str().unwrap())).unwrap();
    assert!(!greedy(&engine, msgs, 4).is_empty());
    let gg = GgufModel::open(&text_gguf(), Some(&mmproj_gguf())).unwrap();
    let model = SmolVlmModel::from_gguf(gg.config(), &gg, WeightFormat::Q8_0).unwrap();
    let reference = read_f32(&dir.join(case["prefill_logits"]["file"].as_str().unwrap()));
    let err = max_diff(&prefill(&model, &dir, &case), &reference);
    // Logits reach ~50 on the fixtures; the safetensors Q8_0 path errs by ~1 (tests/quant.rs).
    assert!(err > 0.0 && err < 2.0, "Q8_0 from GGUF: max logit error {err}");
}

#[test]
fn corrupt_or_mismatched_gguf_is_a_model_file_error() {
    let tmp = std::env::temp_dir().join(format!("smolvlm-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let bytes = std::fs::read(text_gguf()).unwrap();
    let opts = EngineOptions::default();
    // Truncated inside the tensor data, inside the metadata, and random bytes after the magic.
    for (name, data) in [
        ("truncated-data.gguf", bytes[..bytes.len() - 1000].to_vec()),
        ("truncated-meta.gguf", bytes[..5000].to_vec()),
        ("garbage.gguf", [b"GGUF".as_slice(), &[0xffu8; 64]].concat()),
    ] {
        let p = tmp.join(name);
        std::fs::write(&p, data).unwrap();
        match Engine::load(&p, &opts) {
            Err(Error::ModelFile { path, .. }) => assert_eq!(path, p, "{name}"),
            Err(e) => panic!("{name}: expected ModelFile, got {e}"),
            Ok(_) => panic!("{name}: a corrupt GGUF loaded"),
        }
    }
    // The text file given as mmproj: not an idefics3 projector.
    let o = EngineOptions { mmproj: Some(text_gguf()), ..EngineOptions::default() };
    match Engine::load(&text_gguf(), &o) {
        Err(Error::ModelFile { path, reason }) => assert!(path == text_gguf() && reason.contains("projector"), "{reason}"),
        other => panic!("expected ModelFile, got {:?}", other.map(|_| ())),
    }
    // --mmproj with a folder model is an argument error.
    let o = EngineOptions { mmproj: Some(mmproj_gguf()), ..EngineOptions::default() };
    assert!(matches!(Engine::load(&fixtures().join("models/tiny-smolvlm2"), &o), Err(Error::InvalidArgument(_))));
    std::fs::remove_dir_all(&tmp).ok();
}

/// The tiny text GGUF with `token_embd.weight`'s entry in the tensor table rewritten to `dims`
/// (GGUF order: innermost first) and GGML type `dtype`; the tensor data is left as it is.
fn with_crafted_embedding(dir: &Path, name: &str, dims: [u64; 2], dtype: u32) -> PathBuf {
    let mut bytes = std::fs::read(text_gguf()).unwrap();
    let entry = [&17u64.to_le_bytes()[..], b"token_embd.weight", &2u32.to_le_bytes()].concat();
    let at = bytes.windows(entry.len()).position(|w| w == entry).expect("the tensor table names token_embd.weight") + entry.len();
    bytes[at..at + 8].copy_from_slice(&dims[0].to_le_bytes());
    bytes[at + 8..at + 16].copy_from_slice(&dims[1].to_le_bytes());
    bytes[at + 16..at + 20].copy_from_slice(&dtype.to_le_bytes());
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A tensor table that lies is refused when the file is opened, before any tensor is read or
/// any storage sized, with a model-file error naming the tensor: dims whose Q8_0 byte size wraps
/// (`(2^63 + 1) · 34` bytes is 34 modulo 2^64, so unchecked arithmetic would read one row and
/// build a matrix of 2^63 rows over it), bytes beyond the end of the file, partial blocks, and an
/// embedding whose width is not the model's hidden size.
#[test]
fn crafted_tensor_tables_are_refused_when_opened() {
    let tmp = std::env::temp_dir().join(format!("smolvlm-gguf-crafted-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    const F16: u32 = 1;
    const Q8_0: u32 = 8;
    for (name, dims, dtype, why) in [
        ("wrapping.gguf", [32, (1 << 63) + 1], Q8_0, "overflows"),
        ("beyond-end.gguf", [32, 1 << 40], F16, "beyond the file"),
        ("partial-block.gguf", [33, 49280], Q8_0, "whole blocks"),
        ("transposed.gguf", [49280, 32], F16, "embedding_length"),
    ] {
        let path = with_crafted_embedding(&tmp, name, dims, dtype);
        match GgufModel::open(&path, None) {
            Err(Error::ModelFile { path: p, reason }) => {
                assert_eq!(p, path, "{name}");
                assert!(reason.contains("token_embd.weight") && reason.contains(why), "{name}: {reason}");
            }
            Err(e) => panic!("{name}: expected a model-file error, got {e}"),
            Ok(_) => panic!("{name}: the crafted tensor table was accepted"),
        }
        match Engine::load(&path, &EngineOptions { weights: WeightFormat::Q8_0, ..EngineOptions::default() }) {
            Err(Error::ModelFile { path: p, .. }) => assert_eq!(p, path, "{name}"),
            other => panic!("{name}: expected a model-file error, got {:?}", other.map(|_| ())),
        }
    }
    // The same rewrite with the true dims and type loads: the helper itself is sound.
    let same = with_crafted_embedding(&tmp, "unchanged.gguf", [32, 49280], F16);
    assert!(GgufModel::open(&same, None).is_ok());
    std::fs::remove_dir_all(&tmp).ok();
}
