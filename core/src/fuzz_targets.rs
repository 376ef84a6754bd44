//! Entry points shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and their regression
//! tests (`core/tests/fuzz_regressions.rs`), not API: hidden from the docs, free to change.
//!
//! Each entry takes arbitrary bytes, runs them through the SDK's real parsing path and ignores
//! the typed [`crate::Error`] it gets back. None may panic, hang or allocate out of proportion to
//! its input; the fuzzers (libFuzzer, with a panic hook that aborts) check exactly that. See
//! `FUZZING.md` at the repository root.
//!
//! Entries that need files write them into a scratch folder of their own (on `/dev/shm` where
//! it exists, else the temporary folder), one per thread, removed when the thread ends; the
//! checkpoint files they need come from `tests/fixtures` (a path fixed at build time).

use crate::chat::{Content, Message};
use crate::error::Result;
use crate::prompt::{ChatTemplate, MediaLayout};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The repository's `tests/fixtures` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("fixtures")
}

fn tiny_model() -> PathBuf {
    fixtures().join("models").join("tiny-smolvlm2")
}

/// Rows kept of the token embedding and `lm_head` in the `safetensors` target's checkpoint: the
/// fixture's 49 280-row matrices are 6 MB, which would make every valid input that large.
pub const FUZZ_VOCAB: usize = 64;

// -------------------------------------------------------------------------------------------
// Scratch folders.

/// This thread's scratch folder; removed when the thread ends.
struct Scratch {
    root: PathBuf,
    /// Folders already set up, by name.
    made: HashMap<&'static str, PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

thread_local! {
    static SCRATCH: RefCell<Option<Scratch>> = const { RefCell::new(None) };
}

/// Where scratch folders go: `/dev/shm` where it exists (no disk writes), else the temp folder.
fn scratch_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The folder `name` of this thread's scratch space, set up by `init` the first time.
fn scratch_dir(name: &'static str, init: impl FnOnce(&Path) -> std::io::Result<()>) -> Option<PathBuf> {
    static THREADS: AtomicUsize = AtomicUsize::new(0);
    SCRATCH
        .try_with(|s| {
            let mut s = s.borrow_mut();
            let s = s.get_or_insert_with(|| {
                let n = THREADS.fetch_add(1, Ordering::Relaxed);
                let root = scratch_base().join(format!("smolvlm-fuzz-{}-{n}", std::process::id()));
                Scratch { root, made: HashMap::new() }
            });
            if let Some(p) = s.made.get(name) {
                return Some(p.clone());
            }
            let dir = s.root.join(name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).ok()?;
            if let Err(e) = init(&dir) {
                // The fixture is broken or the disk is full: not something an input did.
                panic!("cannot set up the fuzz scratch folder {}: {e}", dir.display());
            }
            s.made.insert(name, dir.clone());
            Some(dir)
        })
        .ok()
        .flatten()
}

/// Links `name` of the fixture checkpoint into `dir` (a hard link, else a symbolic one, else a
/// copy): the big files are read, never written.
fn link_fixture(dir: &Path, name: &str) -> std::io::Result<()> {
    let src = tiny_model().join(name);
    let dst = dir.join(name);
    std::fs::hard_link(&src, &dst).or_else(|_| symlink(&src, &dst)).or_else(|_| std::fs::copy(&src, &dst).map(|_| ()))
}

#[cfg(unix)]
fn symlink(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(src.canonicalize()?, dst)
}

#[cfg(not(unix))]
fn symlink(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("no symbolic links"))
}

/// The small checkpoint files (configs, template, special tokens), copied.
const SMALL_FILES: [&str; 7] = [
    "config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
    "chat_template.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// A checkpoint folder: the fixture's small files copied except `skip`, its tokenizer (and,
/// with `weights`, its weights) linked.
fn checkpoint_dir(dir: &Path, skip: &[&str], weights: bool) -> std::io::Result<()> {
    for name in SMALL_FILES.iter().filter(|n| !skip.contains(n)) {
        std::fs::copy(tiny_model().join(name), dir.join(name))?;
    }
    link_fixture(dir, "tokenizer.json")?;
    if weights {
        link_fixture(dir, "model.safetensors")?;
    }
    Ok(())
}

/// With `SMOLVLM_FUZZ_DEBUG` set, prints what a step returned (`cargo fuzz run T INPUT` then
/// says which error an input gets); otherwise ignores it.
fn note<T>(what: &str, r: std::result::Result<T, impl std::fmt::Display>) {
    static DEBUG: once_cell::sync::Lazy<bool> = once_cell::sync::Lazy::new(|| std::env::var_os("SMOLVLM_FUZZ_DEBUG").is_some());
    if *DEBUG {
        match r {
            Ok(_) => eprintln!("{what}: ok"),
            Err(e) => eprintln!("{what}: {e}"),
        }
    }
}

/// Writes `bytes` to `path`; false when the write failed (then the input is skipped).
fn put(path: &Path, bytes: &[u8]) -> bool {
    std::fs::write(path, bytes).is_ok()
}

// -------------------------------------------------------------------------------------------
// 1. Images.

/// `decode_image`: our JPEG decoder, PNG, GIF, WebP and BMP.
pub fn image_decode(data: &[u8]) {
    note("decode_image", crate::decode_image(data));
}

// -------------------------------------------------------------------------------------------
// 2. Camera frames.

/// Reads the input byte by byte; zeros once it is used up.
struct Draw<'a> {
    data: &'a [u8],
}

impl Draw<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// A stride: mostly the tight one, sometimes padded, short or absurd (overflowing).
    fn stride(&mut self, tight: usize) -> usize {
        match self.u8() % 8 {
            0..=2 => tight,
            3 => tight.saturating_add((self.u8() % 16) as usize),
            4 => tight.saturating_sub((self.u8() % 4) as usize),
            5 => self.u16() as usize,
            6 => usize::MAX >> (self.u8() % 64),
            _ => (self.u8() % 8) as usize,
        }
    }

    /// A plane's bytes: about what `rows` rows of `row_stride` need, give or take a few, filled
    /// from the rest of the input.
    fn plane(&mut self, rows: usize, row_stride: usize, row_bytes: usize) -> Vec<u8> {
        let need = rows.saturating_sub(1).saturating_mul(row_stride).saturating_add(row_bytes).min(1 << 16);
        let delta = (self.u8() % 16) as isize - 8;
        let len = need.saturating_add_signed(delta).min(1 << 16);
        let fill = self.data;
        if fill.is_empty() {
            vec![0x80; len]
        } else {
            fill.iter().copied().cycle().take(len).collect()
        }
    }
}

/// `frame_to_rgb` on frames whose size (up to 64x64, zero included), strides, pixel strides,
/// format, rotation and range come from the input, consistent or not.
pub fn camera_frame(data: &[u8]) {
    use crate::{Frame, PackedFormat, Plane, Rotation, YuvRange};
    let mut d = Draw { data };
    let kind = d.u8() % 6;
    let width = (d.u8() % 65) as u32;
    let height = (d.u8() % 65) as u32;
    let rotation = [Rotation::R0, Rotation::R90, Rotation::R180, Rotation::R270][(d.u8() % 4) as usize];
    let (w, h) = (width as usize, height as usize);
    match kind {
        0..=2 => {
            let format = [PackedFormat::Rgba8888, PackedFormat::Bgra8888, PackedFormat::Rgb888][kind as usize];
            let bpp = format.bytes_per_pixel();
            let pixel_stride = d.stride(bpp);
            let row_stride = d.stride(w.saturating_mul(pixel_stride));
            let bytes = d.plane(h, row_stride, w.saturating_mul(pixel_stride));
            let frame = Frame::Packed { format, plane: Plane::new(&bytes, row_stride, pixel_stride) };
            note("frame_to_rgb", crate::frame_to_rgb(&frame, width, height, rotation));
        }
        3 => {
            let range = if d.u8() & 1 == 0 { YuvRange::Full } else { YuvRange::Limited };
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let ys = (d.stride(1), 0);
            let ys = (ys.0, d.stride(w.saturating_mul(ys.0)));
            let us = d.stride(1);
            let us = (us, d.stride(cw.saturating_mul(us)));
            let vs = d.stride(1);
            let vs = (vs, d.stride(cw.saturating_mul(vs)));
            let yb = d.plane(h, ys.1, w.saturating_mul(ys.0));
            let ub = d.plane(ch, us.1, cw.saturating_mul(us.0));
            let vb = d.plane(ch, vs.1, cw.saturating_mul(vs.0));
            let frame = Frame::Yuv420 {
                y: Plane::new(&yb, ys.1, ys.0),
                u: Plane::new(&ub, us.1, us.0),
                v: Plane::new(&vb, vs.1, vs.0),
                range,
            };
            note("frame_to_rgb", crate::frame_to_rgb(&frame, width, height, rotation));
        }
        _ => {
            // One NV21 or NV12 buffer, through the constructors an app calls.
            let row_stride = d.stride(w);
            let bytes = d.plane(h + h.div_ceil(2), row_stride, w);
            let frame = if kind == 4 {
                Frame::nv21(&bytes, width, height, row_stride)
            } else {
                Frame::nv12(&bytes, width, height, row_stride)
            };
            if let Ok(frame) = frame {
                // The size given to the conversion may differ from the constructor's.
                let (fw, fh) = match d.u8() % 4 {
                    0 => ((d.u8() % 65) as u32, (d.u8() % 65) as u32),
                    _ => (width, height),
                };
                note("frame_to_rgb", crate::frame_to_rgb(&frame, fw, fh, rotation));
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// 3. GGUF.

/// The bytes as a GGUF file: the header (`GgufFile::open`) and every tensor it lists, then as
/// a text model (`GgufModel::open`: configuration, tokenizer, chat template, special tokens)
/// built into the network; a `clip` file is also opened as the mmproj of the fixture's text
/// model and built.
pub fn gguf(data: &[u8]) {
    use crate::gguf::{GgufFile, GgufModel};
    use crate::model::{SmolVlmModel, WeightFormat};
    let Some(dir) = scratch_dir("gguf", |_| Ok(())) else { return };
    let path = dir.join("fuzz.gguf");
    if !put(&path, data) {
        return;
    }
    let _ = crate::is_gguf(&path);
    let mut clip = false;
    let file = GgufFile::open(&path);
    if let Err(e) = &file {
        note::<()>("GgufFile::open", Err(e));
    }
    if let Ok(f) = file {
        for name in crate::gguf::tensor_types(&f).keys() {
            let _ = f.tensor_dims(name);
            note("GgufFile::tensor", f.tensor(name));
        }
        clip = matches!(f.meta("general.architecture").and_then(|v| v.to_string().ok()), Some(a) if a == "clip");
    }
    let build = |m: &GgufModel| {
        note("GgufModel::tokenizer", m.tokenizer());
        if let Some(source) = m.chat_template() {
            if let Ok(t) = ChatTemplate::from_source(source.to_string(), m.special_tokens()) {
                note("render", t.render(&[Message::text(crate::Role::User, "hi")], true));
            }
        }
        let _ = m.eos_token_ids();
        let _ = m.special_tokens();
        let _ = m.preprocessor();
        note("from_gguf", SmolVlmModel::from_gguf(m.config(), m, WeightFormat::F32));
    };
    match GgufModel::open(&path, None) {
        Ok(m) => build(&m),
        Err(e) => note::<()>("GgufModel::open", Err(e)),
    }
    if clip {
        let Some(text) = scratch_dir("gguf-text", small_text_gguf) else { return };
        match GgufModel::open(&text.join("text.gguf"), Some(&path)) {
            Ok(m) => build(&m),
            Err(e) => note::<()>("GgufModel::open (mmproj)", Err(e)),
        }
    }
}

/// The special tokens of the `gguf` target's small text model, by id (`fuzz/seeds.py` too).
const SMALL_GGUF_SPECIALS: [(usize, &str); 4] =
    [(3, "<image>"), (4, "<end_of_utterance>"), (5, "<fake_token_around_image>"), (6, "<global-img>")];

/// Writes `text.gguf` into `dir`: the fixture's text GGUF with its vocabulary cut to
/// [`FUZZ_VOCAB`] tokens (the merges among them, the embedding and output rows), the text model
/// the `gguf` target pairs a `clip` input with: the whole fixture takes a second to build.
/// `fuzz/seeds.py` writes the same file as a seed.
fn small_text_gguf(dir: &Path) -> std::io::Result<()> {
    use candle_core::quantized::gguf_file::{self, Value as G};
    use candle_core::quantized::{GgmlDType, QTensor};
    fn io(e: candle_core::Error) -> std::io::Error {
        std::io::Error::other(e)
    }
    let mut f = std::fs::File::open(fixtures().join("gguf").join("tiny-smolvlm2-f16.gguf"))?;
    let content = gguf_file::Content::read(&mut f).map_err(io)?;
    let mut tokens: Vec<String> = match content.metadata.get("tokenizer.ggml.tokens") {
        Some(G::Array(a)) => a.iter().take(FUZZ_VOCAB).filter_map(|v| v.to_string().ok().cloned()).collect(),
        _ => return Err(std::io::Error::other("the fixture has no tokenizer.ggml.tokens")),
    };
    // The special tokens a SmolVLM needs take the places of four unused ones (ids 3 to 6).
    for (id, name) in SMALL_GGUF_SPECIALS {
        tokens[id] = name.to_string();
    }
    let kept: std::collections::HashSet<&str> = tokens.iter().map(String::as_str).collect();
    let mut meta: Vec<(String, G)> = vec![];
    for (k, v) in &content.metadata {
        let v = match (k.as_str(), v) {
            ("tokenizer.ggml.tokens", _) => G::Array(tokens.iter().cloned().map(G::String).collect()),
            ("tokenizer.ggml.token_type", G::Array(a)) => G::Array(a[..FUZZ_VOCAB].to_vec()),
            ("tokenizer.ggml.merges", G::Array(a)) => G::Array(
                a.iter()
                    .filter(|m| {
                        let m = m.to_string().map(String::as_str).unwrap_or("");
                        m.split(' ').all(|p| kept.contains(p)) && kept.contains(m.replace(' ', "").as_str())
                    })
                    .cloned()
                    .collect(),
            ),
            ("llama.vocab_size", _) => G::U32(FUZZ_VOCAB as u32),
            ("tokenizer.ggml.eos_token_id", _) => G::U32(4),
            _ => v.clone(),
        };
        meta.push((k.clone(), v));
    }
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    let mut tensors: Vec<(String, QTensor)> = vec![];
    for name in content.tensor_infos.keys() {
        let q = content.tensor(&mut f, name, &candle_core::Device::Cpu).map_err(io)?;
        let q = if name == "output.weight" || name == "token_embd.weight" {
            // A fresh tensor: `quantize` reads the whole storage, whatever the view.
            let t = q
                .dequantize(&candle_core::Device::Cpu)
                .and_then(|t| {
                    let cols = t.dim(1)?;
                    let rows = t.narrow(0, 0, FUZZ_VOCAB)?.flatten_all()?.to_vec1::<f32>()?;
                    candle_core::Tensor::from_vec(rows, (FUZZ_VOCAB, cols), &candle_core::Device::Cpu)
                })
                .map_err(io)?;
            QTensor::quantize(&t, GgmlDType::F16).map_err(io)?
        } else {
            q
        };
        tensors.push((name.clone(), q));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("text.gguf"))?);
    let meta: Vec<(&str, &G)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut out, &meta, &tensors).map_err(io)?;
    std::io::Write::flush(&mut out)
}

// -------------------------------------------------------------------------------------------
// 4. Safetensors.

/// The fixture's `config.json` with the vocabulary cut to [`FUZZ_VOCAB`] rows.
fn small_vocab_config(dir: &Path) -> std::io::Result<()> {
    let mut v: Value = serde_json::from_slice(&std::fs::read(tiny_model().join("config.json"))?)?;
    v["vocab_size"] = json!(FUZZ_VOCAB);
    v["text_config"]["vocab_size"] = json!(FUZZ_VOCAB);
    v["image_token_id"] = json!(FUZZ_VOCAB - 1);
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&v)?)
}

/// The fixture's tensors with the embedding and `lm_head` cut to [`FUZZ_VOCAB`] rows, split in
/// two shards with an index (`fuzz/seeds.py` writes the same index as a seed).
fn sharded_weights(dir: &Path) -> std::io::Result<()> {
    use safetensors::tensor::{serialize_to_file, SafeTensors, TensorView};
    let bytes = std::fs::read(tiny_model().join("model.safetensors"))?;
    let st = SafeTensors::deserialize(&bytes).map_err(std::io::Error::other)?;
    let mut names = st.names();
    names.sort();
    let mut shards: [Vec<(String, TensorView<'_>)>; 2] = [vec![], vec![]];
    let mut map = serde_json::Map::new();
    for (i, name) in names.into_iter().enumerate() {
        let t = st.tensor(name).map_err(std::io::Error::other)?;
        let t = if name.ends_with("embed_tokens.weight") || name == "lm_head.weight" {
            let shape = vec![FUZZ_VOCAB, t.shape()[1]];
            let len = FUZZ_VOCAB * t.shape()[1] * t.dtype().bitsize() / 8;
            TensorView::new(t.dtype(), shape, &t.data()[..len]).map_err(std::io::Error::other)?
        } else {
            t
        };
        let file = format!("model-0000{}-of-00002.safetensors", i % 2 + 1);
        map.insert(name.to_string(), json!(file));
        shards[i % 2].push((name.to_string(), t));
    }
    for (k, shard) in shards.into_iter().enumerate() {
        let file = dir.join(format!("model-0000{}-of-00002.safetensors", k + 1));
        serialize_to_file(shard, None, &file).map_err(std::io::Error::other)?;
    }
    let index = json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), serde_json::to_vec_pretty(&index)?)
}

/// Loads the weights of the checkpoint folder `dir` as `Engine::load` does (after the
/// tokenizer, which is the `tokenizer` target's), on the CPU.
fn load_weights(dir: &Path, format: crate::WeightFormat) -> Result<()> {
    let ckpt = crate::checkpoint::Checkpoint::open(dir)?;
    crate::model::SmolVlmModel::from_safetensors(&ckpt.config, &ckpt.weights, format, &candle_core::Device::Cpu)?;
    Ok(())
}

/// The bytes as `model.safetensors` of a checkpoint folder (the fixture's other files, its
/// vocabulary cut to [`FUZZ_VOCAB`]), loaded; when they look like JSON, also as
/// `model.safetensors.index.json` over two valid shards. The weight format (f32, f16, Q8_0,
/// Q4_K) follows the input's length.
pub fn safetensors(data: &[u8]) {
    use crate::WeightFormat;
    let format = [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8_0, WeightFormat::Q4K][data.len() % 4];
    let single = scratch_dir("safetensors", |d| {
        checkpoint_dir(d, &["config.json"], false)?;
        small_vocab_config(d)
    });
    if let Some(dir) = single {
        if put(&dir.join("model.safetensors"), data) {
            note("load_weights", load_weights(&dir, format));
        }
    }
    if data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let sharded = scratch_dir("safetensors-index", |d| {
            checkpoint_dir(d, &["config.json"], false)?;
            small_vocab_config(d)?;
            sharded_weights(d)
        });
        if let Some(dir) = sharded {
            let index = dir.join("model.safetensors.index.json");
            let original = std::fs::read(&index).unwrap_or_default();
            if put(&index, data) {
                note("load_weights (index)", load_weights(&dir, format));
            }
            let _ = put(&index, &original);
        }
    }
}

// -------------------------------------------------------------------------------------------
// 5. Configuration files.

/// The files the `configs` target replaces, by the input's first byte (modulo the count).
pub const CONFIG_FILES: [&str; 8] = [
    "config.json",
    "preprocessor_config.json",
    "processor_config.json",
    "generation_config.json",
    // processor_config.json again, with no preprocessor_config.json: the settings come from it.
    "processor_config.json",
    "chat_template.json",
    "tokenizer_config.json",
    // With no model.safetensors, the shard index is read.
    "model.safetensors.index.json",
];

/// The first byte picks a file of [`CONFIG_FILES`]; the rest is written as that file in a
/// checkpoint folder holding the fixture's other files, which is then read by the config
/// loaders (`ModelConfig::load`, `PreprocessorConfig::load`, `GenerationConfig::load`), the
/// checkpoint check (`Checkpoint::open`, which also reads the shard index) and the chat template
/// loader (rendering a fixed conversation). No weights are loaded.
pub fn configs(data: &[u8]) {
    use crate::config::{GenerationConfig, ModelConfig, PreprocessorConfig};
    const NAMES: [&str; 8] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"];
    let Some((&pick, rest)) = data.split_first() else { return };
    let k = pick as usize % CONFIG_FILES.len();
    let file = CONFIG_FILES[k];
    let Some(dir) = scratch_dir(NAMES[k], |d| {
        let mut skip = vec![file];
        if k == 4 {
            skip.push("preprocessor_config.json");
        }
        checkpoint_dir(d, &skip, k != 7)?;
        if k == 7 {
            // The shards the seed index names (never loaded here).
            for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
                link_fixture(d, "model.safetensors")?;
                std::fs::rename(d.join("model.safetensors"), d.join(shard))?;
            }
        }
        Ok(())
    }) else {
        return;
    };
    if !put(&dir.join(file), rest) {
        return;
    }
    note("ModelConfig::load", ModelConfig::load(&dir.join("config.json")));
    note("PreprocessorConfig::load", PreprocessorConfig::load(&dir));
    note("GenerationConfig::load", GenerationConfig::load(&dir.join("generation_config.json")));
    note("Checkpoint::open", crate::checkpoint::Checkpoint::open(&dir));
    if let Ok(t) = ChatTemplate::load(&dir) {
        note("render", t.render(&[Message::text(crate::Role::User, "Hello")], true));
    }
}

// -------------------------------------------------------------------------------------------
// 6. Chat templates.

/// A folder with images for messages to name: `a.png` (the fixture's small PNG) and `b.jpg`
/// (a JPEG with EXIF rotation).
fn media_dir() -> Option<PathBuf> {
    scratch_dir("media", |d| {
        std::fs::copy(fixtures().join("images").join("small.png"), d.join("a.png"))?;
        std::fs::copy(fixtures().join("images").join("exif_rot6.jpg"), d.join("b.jpg"))?;
        Ok(())
    })
}

/// The input up to its first NUL byte is a chat template; the rest, messages in the Hugging
/// Face chat JSON (images resolve in a folder holding `a.png` and `b.jpg`; a default
/// conversation when it is not valid). The template is compiled with
/// `ChatTemplate::from_source` and rendered (the generation prompt asked when the input's length
/// is even), then its `<image>`/`<video>` placeholders are expanded for the messages' media.
pub fn chat_template(data: &[u8]) {
    let (source, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let source = String::from_utf8_lossy(source).into_owned();
    let messages = media_dir()
        .and_then(|base| serde_json::from_slice::<Value>(rest).ok().and_then(|v| crate::parse_messages(&v, &base).ok()))
        .unwrap_or_else(|| {
            vec![Message::text(crate::Role::System, "Be brief."), Message::user("What is in this image?", vec![])]
        });
    let specials = json!({"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"});
    let template = match ChatTemplate::from_source(source, specials) {
        Ok(t) => t,
        Err(e) => return note::<()>("from_source", Err(e)),
    };
    let text = match template.render(&messages, data.len().is_multiple_of(2)) {
        Ok(t) => t,
        Err(e) => return note::<()>("render", Err(e)),
    };
    let mut media = vec![];
    for (k, c) in messages.iter().flat_map(|m| &m.content).enumerate() {
        match c {
            Content::Image(_) => media.push(MediaLayout::Image { rows: k % 3, cols: k % 4 }),
            Content::Video(v) => media.push(MediaLayout::Video {
                timestamps: v.timestamps().to_vec(),
                duration: v.duration(),
                stated_frames: v.frames().len(),
            }),
            Content::Text(_) => {}
        }
    }
    note("expand_media", crate::prompt::expand_media(&text, &media, 4));
}

// -------------------------------------------------------------------------------------------
// 7. Messages.

/// The bytes as a messages file (`load_messages`, whose images resolve in a folder holding
/// `a.png` and `b.jpg`), and, when they are JSON, as a video object (`parse_video`).
pub fn messages(data: &[u8]) {
    let Some(base) = media_dir() else { return };
    let path = base.join("messages.json");
    if !put(&path, data) {
        return;
    }
    note("load_messages", crate::load_messages(&path));
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        note("parse_messages", crate::parse_messages(&v, &base));
        note("parse_video", crate::parse_video(&v, &base));
    }
}

// -------------------------------------------------------------------------------------------
// 8. Tokenizer.

static TOKENIZER: once_cell::sync::Lazy<tokenizers::Tokenizer> = once_cell::sync::Lazy::new(|| {
    crate::checkpoint::load_tokenizer(&tiny_model().join("tokenizer.json")).expect("the fixture tokenizer loads")
});

/// The fixture checkpoint's tokenizer (loaded once): the first byte's bits pick special-token
/// handling; the rest is encoded as text (invalid UTF-8 replaced) and decoded as token ids (four
/// bytes each, little-endian; brought into the vocabulary or a little past it when bit 2 is set),
/// and the encoding is decoded back.
pub fn tokenizer(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (add_special, skip_special, in_vocab) = (flags & 1 != 0, flags & 2 != 0, flags & 4 != 0);
    let tok = &*TOKENIZER;
    let text = String::from_utf8_lossy(rest);
    if let Ok(enc) = tok.encode(text.as_ref(), add_special) {
        let _ = tok.decode(enc.get_ids(), skip_special);
    }
    // Once: `get_vocab_size(true)` copies the whole vocabulary.
    static VOCAB: once_cell::sync::Lazy<u32> = once_cell::sync::Lazy::new(|| TOKENIZER.get_vocab_size(true) as u32);
    let vocab = *VOCAB + 8;
    let ids: Vec<u32> = rest
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .map(|id| if in_vocab { id % vocab } else { id })
        .collect();
    let _ = tok.decode(&ids, skip_special);
    for id in ids.iter().take(16) {
        let _ = tok.id_to_token(*id);
    }
}

/// A fuzz target's entry point.
pub type Entry = fn(&[u8]);

/// Every target: its name and entry.
pub const TARGETS: [(&str, Entry); 8] = [
    ("image_decode", image_decode),
    ("camera_frame", camera_frame),
    ("gguf", gguf),
    ("safetensors", safetensors),
    ("configs", configs),
    ("chat_template", chat_template),
    ("messages", messages),
    ("tokenizer", tokenizer),
];
