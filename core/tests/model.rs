//! The network against transformers' f32 reference outputs (tests/fixtures, made by
//! tools/make_fixtures.py): prefill logits within 1e-4, identical greedy ids, top-5 logprobs
//! within 1e-4; plus cache reuse (chunked prefill, truncate and re-forward) against the same.
//!
//! `SMOLVLM_FIXTURES` overrides the fixture folder (default `../tests/fixtures`).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde_json::Value;
use smolvlm::config::ModelConfig;
use smolvlm::model::{KvCache, SmolVlmModel};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const TOL: f32 = 1e-4;

fn fixtures_root() -> PathBuf {
    match std::env::var_os("SMOLVLM_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures"),
    }
}

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{}", path.display());
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn shape_of(v: &Value) -> Vec<usize> {
    v["shape"].as_array().expect("shape").iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// Loads a checkpoint folder (single file or shards) in f32.
fn load_model(dir: &Path) -> SmolVlmModel {
    let cfg = ModelConfig::load(&dir.join("config.json")).expect("config.json");
    let single = dir.join("model.safetensors");
    let files: Vec<PathBuf> = if single.exists() {
        vec![single]
    } else {
        let index: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
        let mut names: Vec<String> =
            index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap().to_string()).collect();
        names.sort();
        names.dedup();
        names.into_iter().map(|n| dir.join(n)).collect()
    };
    // SAFETY: the fixture files are not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &Device::Cpu) }.unwrap();
    SmolVlmModel::new(&cfg, vb).expect("model")
}

struct Case {
    name: String,
    model: String,
    input_ids: Vec<u32>,
    pixels: Option<Tensor>,
    prefill_logits: Vec<f32>,
    greedy: Vec<u32>,
    /// Per generated token: (id, logprob) of the reference's top candidates.
    top: Vec<Vec<(u32, f32)>>,
}

fn load_case(dir: &Path) -> Case {
    let j: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).unwrap()).unwrap();
    let ids = |v: &Value| -> Vec<u32> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect() };
    let pixels = match &j["pixel_values"] {
        Value::Null => None,
        pv => {
            let shape = shape_of(pv);
            let data = read_f32(&dir.join(pv["file"].as_str().unwrap()));
            Some(Tensor::from_vec(data, shape, &Device::Cpu).unwrap())
        }
    };
    let pl = &j["prefill_logits"];
    let prefill_logits = read_f32(&dir.join(pl["file"].as_str().unwrap()));
    assert_eq!(prefill_logits.len(), shape_of(pl).iter().product::<usize>());
    let top = match &j["top_logprobs"] {
        Value::Array(steps) => steps
            .iter()
            .map(|s| match s {
                // [{"id", "logprob"}, ...]
                Value::Array(xs) => {
                    xs.iter().map(|x| (x["id"].as_u64().unwrap() as u32, x["logprob"].as_f64().unwrap() as f32)).collect()
                }
                // {"ids": [...], "logprobs": [...]}
                Value::Object(_) => ids(&s["ids"])
                    .into_iter()
                    .zip(s["logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
                    .collect(),
                other => panic!("unexpected top_logprobs entry {other}"),
            })
            .collect(),
        _ => vec![],
    };
    Case {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        model: j["model"].as_str().unwrap().to_string(),
        input_ids: ids(&j["input_ids"]),
        pixels,
        prefill_logits,
        greedy: ids(&j["greedy_token_ids"]),
        top,
    }
}

fn cases() -> Vec<Case> {
    let dir = fixtures_root().join("cases");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        eprintln!("no fixture cases at {} — skipping", dir.display());
        return vec![];
    };
    let mut dirs: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).filter(|p| p.join("case.json").exists()).collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "{} holds no case folders", dir.display());
    dirs.iter().map(|d| load_case(d)).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn argmax(x: &[f32]) -> u32 {
    // first maximum, as torch.argmax
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

fn log_softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m;
    x.iter().map(|&v| (v as f64 - lse) as f32).collect()
}

/// Image features of all tiles, encoded one tile at a time as the engine does: `[k, hidden]`.
fn encode(model: &SmolVlmModel, pixels: &Tensor) -> Tensor {
    let n = pixels.dims()[0];
    let feats: Vec<Tensor> = (0..n).map(|i| model.encode_images(&pixels.narrow(0, i, 1).unwrap()).unwrap()).collect();
    let f = Tensor::cat(&feats, 0).unwrap();
    let (a, b, d) = f.dims3().unwrap();
    f.reshape((a * b, d)).unwrap()
}

/// The feature rows used by `ids[..]` given that `before` image tokens came earlier.
fn feats_for(feats: Option<&Tensor>, ids: &[u32], before: usize, image_token: u32) -> Option<Tensor> {
    let k = ids.iter().filter(|&&i| i == image_token).count();
    match feats {
        Some(f) if k > 0 => Some(f.narrow(0, before, k).unwrap()),
        _ => None,
    }
}

#[test]
fn matches_transformers_reference() {
    let cases = cases();
    let mut models: HashMap<String, SmolVlmModel> = HashMap::new();
    for case in &cases {
        let model =
            models.entry(case.model.clone()).or_insert_with(|| load_model(&fixtures_root().join("models").join(&case.model)));
        let image_token = model.config().image_token_id;

        let t0 = Instant::now();
        let feats = case.pixels.as_ref().map(|p| encode(model, p));
        let t_enc = t0.elapsed();

        let mut cache = model.new_cache();
        let t0 = Instant::now();
        let logits: Vec<f32> = model.forward(&case.input_ids, feats.as_ref(), &mut cache).unwrap().to_vec1().unwrap();
        let t_prefill = t0.elapsed();
        assert_eq!(cache.len(), case.input_ids.len());
        let err = max_abs_diff(&logits, &case.prefill_logits);
        assert!(err <= TOL, "{}: prefill max |logit diff| {err:e}", case.name);

        // Greedy decoding, one token per forward.
        let mut logits = logits;
        let mut top_err = 0f32;
        let mut step_logit_logs = vec![];
        let t0 = Instant::now();
        for (step, &want) in case.greedy.iter().enumerate() {
            let got = argmax(&logits);
            assert_eq!(got, want, "{}: greedy step {step}", case.name);
            if let Some(top) = case.top.get(step) {
                let lp = log_softmax(&logits);
                for &(id, ref_lp) in top {
                    top_err = top_err.max((lp[id as usize] - ref_lp).abs());
                }
            }
            step_logit_logs.push(logits.clone());
            if step + 1 < case.greedy.len() {
                logits = model.forward(&[want], None, &mut cache).unwrap().to_vec1().unwrap();
            }
        }
        let t_decode = t0.elapsed();
        assert!(top_err <= TOL, "{}: top logprob max diff {top_err:e}", case.name);

        // Chunked prefill: the prompt in two pieces (split inside the image tokens when there are any).
        let ids = &case.input_ids;
        let split = ids.iter().position(|&i| i == image_token).map_or(ids.len() / 2, |p| p + 3).clamp(1, ids.len() - 1);
        let mut c2 = model.new_cache();
        let (a, b) = ids.split_at(split);
        let fa = feats_for(feats.as_ref(), a, 0, image_token);
        let na = a.iter().filter(|&&i| i == image_token).count();
        model.forward(a, fa.as_ref(), &mut c2).unwrap();
        let fb = feats_for(feats.as_ref(), b, na, image_token);
        let chunked: Vec<f32> = model.forward(b, fb.as_ref(), &mut c2).unwrap().to_vec1().unwrap();
        let chunk_err = max_abs_diff(&chunked, &case.prefill_logits);
        assert!(chunk_err <= TOL, "{}: chunked prefill max diff {chunk_err:e}", case.name);

        // Follow-up reuse: truncate the decoded cache back into the prompt, re-forward the tail
        // plus the generated tokens as one chunk; the last logits equal the last decode step's.
        let mut follow_err = 0f32;
        if case.greedy.len() >= 2 {
            let keep = ids.len() - 1;
            cache.truncate(keep);
            assert_eq!(cache.len(), keep);
            let n_gen = case.greedy.len() - 1; // tokens that were fed back
            let mut tail = vec![ids[keep]];
            tail.extend_from_slice(&case.greedy[..n_gen]);
            let f = feats_for(
                feats.as_ref(),
                &tail,
                feats.as_ref().map_or(0, |f| f.dims()[0]) - usize::from(ids[keep] == image_token),
                image_token,
            );
            let re: Vec<f32> = model.forward(&tail, f.as_ref(), &mut cache).unwrap().to_vec1().unwrap();
            follow_err = max_abs_diff(&re, &step_logit_logs[n_gen]);
            assert!(follow_err <= TOL, "{}: truncate + chunk max diff {follow_err:e}", case.name);
            assert_eq!(cache.len(), ids.len() + n_gen);
        }

        let tiles = case.pixels.as_ref().map_or(0, |p| p.dims()[0]);
        eprintln!(
            "{}: prefill max|Δlogit| {err:.2e}, top-logprob max|Δ| {top_err:.2e}, chunked {chunk_err:.2e}, \
             follow-up {follow_err:.2e}; {} prompt tokens, {} tiles: encode {:.1} ms/tile, prefill {:.1} ms, \
             decode {:.2} ms/token",
            case.name,
            ids.len(),
            tiles,
            t_enc.as_secs_f64() * 1e3 / tiles.max(1) as f64,
            t_prefill.as_secs_f64() * 1e3,
            t_decode.as_secs_f64() * 1e3 / case.greedy.len().saturating_sub(1).max(1) as f64,
        );
    }
}

#[test]
fn rejects_mismatched_image_features() {
    let Some(case) = cases().into_iter().find(|c| c.pixels.is_some()) else { return };
    let model = load_model(&fixtures_root().join("models").join(&case.model));
    let feats = encode(&model, case.pixels.as_ref().unwrap());
    let mut cache = model.new_cache();
    // One row short.
    let short = feats.narrow(0, 0, feats.dims()[0] - 1).unwrap();
    let e = model.forward(&case.input_ids, Some(&short), &mut cache).unwrap_err();
    assert!(matches!(e, smolvlm::Error::InvalidArgument(_)), "{e}");
    // No features at all.
    let e = model.forward(&case.input_ids, None, &mut cache).unwrap_err();
    assert!(matches!(e, smolvlm::Error::InvalidArgument(_)), "{e}");
    assert!(cache.is_empty(), "a failed forward must leave the cache unchanged");
    // Out-of-vocabulary id and empty input.
    let vocab = model.config().text.vocab_size as u32;
    assert!(matches!(model.forward(&[vocab], None, &mut cache), Err(smolvlm::Error::InvalidArgument(_))));
    assert!(matches!(model.forward(&[], None, &mut cache), Err(smolvlm::Error::InvalidArgument(_))));
    // Wrong tile size.
    let m = model.config().vision().unwrap().image_size;
    let bad = Tensor::zeros((1, 3, m + 1, m), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(model.encode_images(&bad), Err(smolvlm::Error::InvalidArgument(_))));
    // clear() empties.
    model.forward(&[1, 2, 3], None, &mut cache).unwrap();
    assert_eq!(cache.len(), 3);
    cache.clear();
    assert!(cache.is_empty());
    let _: &KvCache = &cache;
}

/// Timing of a randomly initialised SmolVLM-256M-shaped model (no files needed):
/// `cargo test --release -p smolvlm --test model -- --ignored --nocapture bench_256m_shape`.
#[test]
#[ignore]
fn bench_256m_shape() {
    let cfg_json = serde_json::json!({
        "model_type": "smolvlm", "image_token_id": 49190, "scale_factor": 4,
        "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
            "num_attention_heads": 12, "image_size": 512, "patch_size": 16, "layer_norm_eps": 1e-6},
        "text_config": {"vocab_size": 49280, "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
            "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position_embeddings": 8192,
            "tie_word_embeddings": false}
    });
    let dir = std::env::temp_dir().join(format!("smolvlm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), cfg_json.to_string()).unwrap();
    let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
    std::fs::remove_dir_all(&dir).ok();

    // Random weights: a VarMap records every tensor the model asks for; then rebuild from
    // random tensors of the same shapes.
    let varmap = candle_nn::VarMap::new();
    SmolVlmModel::new(&cfg, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), (Tensor::randn(0f32, 0.02, v.shape(), &Device::Cpu).unwrap() + 1e-3).unwrap()))
        .collect();
    let model = SmolVlmModel::new(&cfg, VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)).unwrap();
    let m = cfg.vision().unwrap().image_size;
    let px = Tensor::randn(0f32, 1.0, (1, 3, m, m), &Device::Cpu).unwrap();
    model.encode_images(&px).unwrap(); // warm-up
    let t0 = Instant::now();
    let reps = 3;
    let mut feats = vec![];
    for _ in 0..reps {
        feats.push(model.encode_images(&px).unwrap());
    }
    let enc = t0.elapsed().as_secs_f64() * 1e3 / reps as f64;
    let s = cfg.image_seq_len();
    let f = feats[0].reshape((s, cfg.text.hidden_size)).unwrap();
    let mut ids: Vec<u32> = vec![1, 2, 3];
    ids.extend(std::iter::repeat_n(cfg.image_token_id, s));
    ids.extend([4, 5, 6, 7, 8]);
    let mut cache = model.new_cache();
    let t0 = Instant::now();
    let mut logits = model.forward(&ids, Some(&f), &mut cache).unwrap();
    let prefill = t0.elapsed().as_secs_f64() * 1e3;
    let steps = 32;
    let t0 = Instant::now();
    for _ in 0..steps {
        let next = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
        logits = model.forward(&[next], None, &mut cache).unwrap();
    }
    let dec = t0.elapsed().as_secs_f64() * 1e3 / steps as f64;
    eprintln!(
        "256M-shaped, f32, {} threads: encode_images {enc:.0} ms/tile, prefill of {} tokens {prefill:.0} ms, \
         decode {dec:.1} ms/token",
        candle_core::utils::get_num_threads(),
        ids.len()
    );
}

/// Prefill logits of `case` (images encoded tile by tile), as raw f32 values.
fn prefill(model: &SmolVlmModel, case: &Case) -> Vec<f32> {
    let feats = case.pixels.as_ref().map(|p| encode(model, p));
    let mut cache = model.new_cache();
    model.forward(&case.input_ids, feats.as_ref(), &mut cache).unwrap().to_vec1().unwrap()
}

/// A folder holding the fixture model `name` with its weights split over two shards and a
/// `model.safetensors.index.json`, plus the shard paths.
fn sharded_copy(name: &str, tag: &str) -> (PathBuf, Vec<PathBuf>) {
    let src = fixtures_root().join("models").join(name);
    let dir = std::env::temp_dir().join(format!("smolvlm-shards-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "model.safetensors" {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let shard_names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];
    let mut shards: [HashMap<String, Tensor>; 2] = Default::default();
    let mut weight_map = serde_json::Map::new();
    for (i, n) in names.into_iter().enumerate() {
        shards[i % 2].insert(n.clone(), tensors[n].clone());
        weight_map.insert(n.clone(), Value::from(shard_names[i % 2]));
    }
    for (shard, file) in shards.iter().zip(shard_names) {
        candle_core::safetensors::save(shard, dir.join(file)).unwrap();
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let paths = shard_names.iter().map(|f| dir.join(f)).collect();
    (dir, paths)
}

/// Reading the files tensor by tensor (what the engine does) gives bit for bit the model of the
/// memory-mapped VarBuilder, in every weight format, from one file or from shards.
#[test]
fn files_read_tensor_by_tensor_match_the_varbuilder_exactly() {
    use smolvlm::WeightFormat;
    let cases = cases();
    let mut seen = std::collections::HashSet::new();
    for case in cases.iter().filter(|c| c.pixels.is_some()) {
        if !seen.insert(case.model.clone()) {
            continue;
        }
        let dir = fixtures_root().join("models").join(&case.model);
        let cfg = ModelConfig::load(&dir.join("config.json")).unwrap();
        let (shard_dir, shards) = sharded_copy(&case.model, "exact");
        for format in [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8_0, WeightFormat::Q4K] {
            // SAFETY: the fixture files are not modified while mapped.
            let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &Device::Cpu) }
                .unwrap();
            let want = prefill(&SmolVlmModel::with_format(&cfg, vb, format).unwrap(), case);
            let single = [dir.join("model.safetensors")];
            let got = prefill(&SmolVlmModel::from_safetensors(&cfg, &single, format, &Device::Cpu).unwrap(), case);
            assert!(want == got, "{} {format:?}: one file differs (max {:e})", case.name, max_abs_diff(&want, &got));
            let got = prefill(&SmolVlmModel::from_safetensors(&cfg, &shards, format, &Device::Cpu).unwrap(), case);
            assert!(want == got, "{} {format:?}: shards differ (max {:e})", case.name, max_abs_diff(&want, &got));
        }
        std::fs::remove_dir_all(&shard_dir).ok();
    }
}

/// A sharded folder loads through the engine like the single file; a broken shard is named, and
/// a tensor missing from every shard names the index.
#[test]
fn sharded_checkpoints_load_and_name_the_file_at_fault() {
    use smolvlm::{CancelToken, Engine, EngineOptions, Error, GenerationOptions, Message, Session};
    use std::sync::Arc;
    let name = "tiny-smolvlm2";
    let answer = |dir: &Path| {
        let engine = Arc::new(Engine::load(dir, &EngineOptions::default()).unwrap());
        let mut s = Session::new(engine);
        let opts = GenerationOptions { max_tokens: 6, ..GenerationOptions::default() };
        s.ask(Message::user("What is this?", vec![]), &opts, &CancelToken::new(), &mut |_| {}).unwrap().token_ids
    };
    let (dir, shards) = sharded_copy(name, "engine");
    assert_eq!(answer(&dir), answer(&fixtures_root().join("models").join(name)));

    // A truncated second shard: its header promises more data than the file holds.
    let bytes = std::fs::read(&shards[1]).unwrap();
    std::fs::write(&shards[1], &bytes[..bytes.len() - 1]).unwrap();
    match Engine::load(&dir, &EngineOptions::default()) {
        Err(Error::ModelFile { path, .. }) => assert_eq!(path, shards[1]),
        other => panic!("expected ModelFile naming the shard, got {:?}", other.map(|_| ())),
    }
    // Not safetensors at all.
    std::fs::write(&shards[1], b"not safetensors").unwrap();
    match Engine::load(&dir, &EngineOptions::default()) {
        Err(Error::ModelFile { path, .. }) => assert_eq!(path, shards[1]),
        other => panic!("expected ModelFile naming the shard, got {:?}", other.map(|_| ())),
    }
    // Both shards valid again, but a norm weight removed from the one holding it.
    std::fs::write(&shards[1], &bytes).unwrap();
    let holder = shards
        .iter()
        .find(|s| candle_core::safetensors::load(s, &Device::Cpu).unwrap().keys().any(|k| k.contains("text_model.norm")));
    let holder = holder.unwrap();
    let mut tensors = candle_core::safetensors::load(holder, &Device::Cpu).unwrap();
    let victim = tensors.keys().find(|k| k.contains("text_model.norm")).unwrap().clone();
    tensors.remove(&victim);
    candle_core::safetensors::save(&tensors, holder).unwrap();
    match Engine::load(&dir, &EngineOptions::default()) {
        Err(Error::ModelFile { path, reason }) => {
            assert_eq!(path, dir.join("model.safetensors.index.json"));
            assert!(reason.contains(&victim), "{reason}");
        }
        other => panic!("expected ModelFile naming the index, got {:?}", other.map(|_| ())),
    }
    std::fs::remove_dir_all(&dir).ok();
}
