//! llama.cpp GGUF files: a Llama text model (`general.architecture = llama`, e.g. SmolLM2 or the
//! text half of a SmolVLM conversion) and, optionally, the `mmproj` file with the SigLIP vision
//! encoder and the idefics3 projector (`general.architecture = clip`,
//! `clip.projector_type = idefics3`), as `convert_hf_to_gguf.py` (`--mmproj`) writes them.
//!
//! Hyper-parameters come from the metadata, the tokenizer (byte-level BPE,
//! `tokenizer.ggml.model = gpt2`) and the chat template from `tokenizer.*`. Tensors are mapped
//! back to the Hugging Face names the model code uses. llama.cpp's converter permutes the rows of
//! the Q and K projections of Llama models for its interleaved RoPE; [`GgufModel::qtensor`]
//! undoes that permutation (on whole rows, so quantized tensors are restored bit for bit), and the
//! model keeps transformers' rotate-half RoPE.

use crate::config::{ModelConfig, ModelFamily, PreprocessorConfig, TextConfig, VideoSampling, VisionConfig, MAX_IMAGE_SIDE};
use crate::error::{Error, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::Device;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

/// Most tensors a GGUF file may list: 65 536. Published models list a few hundred to ~2 000 (one
/// per weight matrix, experts merged); each entry becomes a map entry and a shape in memory, so
/// the cap bounds the tensor directory whatever count the header claims.
pub const MAX_GGUF_TENSORS: u64 = 1 << 16;

/// Most metadata values a GGUF file may hold, every element of every array counted: 2^22
/// (~4.2 million). The largest vocabularies (~262k tokens) fill three or four arrays of that
/// length. candle keeps each value in 32 bytes whatever it takes on disk (a one-byte `u8`
/// element too), so without the cap a file of N bytes could make 32·N bytes of metadata; with it
/// the parsed values stay under ~128 MiB plus the strings' own bytes.
pub const MAX_GGUF_METADATA_VALUES: u64 = 1 << 22;

/// Deepest nesting of arrays in the metadata: 8 arrays within one another (an array of arrays
/// is 2). Published files nest none (llama.cpp's reader refuses nested arrays); the bound keeps
/// the header check's recursion shallow.
pub const MAX_GGUF_ARRAY_DEPTH: usize = 8;

/// Bytes read from a GGUF file at a time while its header is parsed (64 KiB): the parser reads
/// the header value by value, and a vocabulary is ~10^5 small strings.
const GGUF_READ_BUFFER: usize = 1 << 16;

/// Whether `path` looks like a GGUF file (by its first four bytes, else its extension).
pub fn is_gguf(path: &Path) -> bool {
    use std::io::Read;
    if !path.is_file() {
        return false;
    }
    let mut magic = [0u8; 4];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)) {
        Ok(()) => &magic == b"GGUF",
        Err(_) => path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gguf")),
    }
}

/// In a folder without `config.json`: its one GGUF text model and its `mmproj-*.gguf` vision
/// part, if it has exactly one of each (or one text model and no mmproj).
pub(crate) fn pair_in_folder(dir: &Path) -> Option<(PathBuf, Option<PathBuf>)> {
    if !dir.is_dir() || dir.join("config.json").exists() {
        return None;
    }
    let (mut text, mut mmproj) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".gguf") {
            if name.starts_with("mmproj") { &mut mmproj } else { &mut text }.push(entry.path());
        }
    }
    match (text.len(), mmproj.len()) {
        (1, 0 | 1) => Some((text.remove(0), mmproj.pop())),
        _ => None,
    }
}

/// One parsed GGUF file: its header (metadata and tensor directory); tensor data is read on demand.
pub struct GgufFile {
    path: PathBuf,
    content: Content,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile").field("path", &self.path).finish_non_exhaustive()
    }
}

impl GgufFile {
    /// Reads the header of `path`; a missing, truncated or corrupt file is [`Error::ModelFile`].
    pub fn open(path: &Path) -> Result<Self> {
        // Not a device or a pipe: opening a pipe blocks, and a device has no length to check.
        if !std::fs::metadata(path).map_err(|e| Error::file(path, e))?.is_file() {
            return Err(Error::file(path, "not a regular file"));
        }
        let f = std::fs::File::open(path).map_err(|e| Error::file(path, e))?;
        let len = f.metadata().map_err(|e| Error::file(path, e))?.len();
        let mut r = PosReader { inner: BufReader::with_capacity(GGUF_READ_BUFFER, &f), pos: 0 };
        // First this crate's own pass over the header: counts and sizes against the file and
        // the limits above, and `general.alignment` (which candle divides by).
        check_header(&mut r, len).map_err(|reason| Error::file(path, format!("not a valid GGUF file: {reason}")))?;
        r.rewind().map_err(|e| Error::file(path, e))?;
        // candle's parser bounds-checks every count too; the unwind guard is a last line of
        // defence so a hostile file can never take the process down.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut r)));
        let content = match parsed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(Error::file(path, format!("not a valid GGUF file: {e}"))),
            Err(_) => return Err(Error::file(path, "not a valid GGUF file (parser failure)")),
        };
        check_tensor_table(&content, len).map_err(|reason| Error::file(path, reason))?;
        Ok(Self { path: path.to_path_buf(), content })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn string(&self, key: &str) -> Option<&str> {
        self.meta(key).and_then(|v| v.to_string().ok()).map(String::as_str)
    }

    fn uint(&self, key: &str) -> Option<u64> {
        let v = self.meta(key)?;
        v.to_u64()
            .ok()
            .or_else(|| v.to_u32().ok().map(u64::from))
            .or_else(|| v.to_i32().ok().and_then(|x| u64::try_from(x).ok()))
            .or_else(|| v.to_i64().ok().and_then(|x| u64::try_from(x).ok()))
            .or_else(|| v.to_u16().ok().map(u64::from))
            .or_else(|| v.to_u8().ok().map(u64::from))
    }

    fn float(&self, key: &str) -> Option<f64> {
        let v = self.meta(key)?;
        v.to_f32().ok().map(f64::from).or_else(|| v.to_f64().ok())
    }

    fn req_uint(&self, key: &str) -> Result<usize> {
        self.uint(key).map(|x| x as usize).ok_or_else(|| self.err(format!("missing or non-integer metadata {key}")))
    }

    fn err(&self, reason: impl std::fmt::Display) -> Error {
        Error::file(&self.path, reason)
    }

    /// Whether the file holds tensor `name` (llama.cpp name).
    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// Shape of tensor `name` (candle order: outermost first).
    pub fn tensor_dims(&self, name: &str) -> Option<&[usize]> {
        self.content.tensor_infos.get(name).map(|t| t.shape.dims())
    }

    /// Reads tensor `name` (llama.cpp name) as stored.
    pub fn tensor(&self, name: &str) -> candle_core::Result<QTensor> {
        let mut f = std::fs::File::open(&self.path)?;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.content.tensor(&mut f, name, &Device::Cpu)));
        match read {
            Ok(r) => r.map_err(|e| candle_core::Error::Msg(format!("tensor {name}: {e}"))),
            Err(_) => candle_core::bail!("tensor {name}: unreadable"),
        }
    }
}

/// A pass over the header of a GGUF file (of `len` bytes) before candle parses it: the magic and
/// version, the tensor count (at most [`MAX_GGUF_TENSORS`]), every metadata entry's size against
/// the bytes left (no value is kept), at most [`MAX_GGUF_METADATA_VALUES`] values nested at most
/// [`MAX_GGUF_ARRAY_DEPTH`] deep, and a `general.alignment` that is a power of two (candle
/// divides by it). Only the metadata is walked; candle checks the tensor table.
fn check_header<R: Read + Seek>(r: &mut R, len: u64) -> std::result::Result<(), String> {
    let mut s = HeaderScan { r, pos: 0, len, wide: true, values_left: MAX_GGUF_METADATA_VALUES };
    let magic = s.u32("the magic")?;
    if magic != 0x4655_4747 && magic != 0x4747_5546 {
        return Err(format!("unknown magic {magic:#010x}"));
    }
    s.wide = match s.u32("the version")? {
        1 => false,
        2 | 3 => true,
        v => return Err(format!("GGUF version {v} is not supported (1 to 3)")),
    };
    let tensors = s.length("the tensor count")?;
    if tensors > MAX_GGUF_TENSORS {
        return Err(format!("{tensors} tensors, more than the {MAX_GGUF_TENSORS} this SDK accepts"));
    }
    let entries = s.length("the metadata count")?;
    if entries > s.values_left {
        return Err(format!("{entries} metadata entries, more than the {MAX_GGUF_METADATA_VALUES} values this SDK accepts"));
    }
    const ALIGNMENT: &[u8] = b"general.alignment";
    for _ in 0..entries {
        let key_len = s.length("a metadata key's length")?;
        let is_alignment = key_len == ALIGNMENT.len() as u64 && {
            let mut key = [0u8; ALIGNMENT.len()];
            s.read(&mut key, "a metadata key")?;
            key == ALIGNMENT
        };
        if key_len != ALIGNMENT.len() as u64 {
            s.skip(key_len, "a metadata key")?;
        }
        let ty = s.u32("a metadata value's type")?;
        // The integer types candle takes the alignment from (others leave it at 32).
        let alignment = match ty {
            0 | 1 if is_alignment => {
                let b = s.u8("general.alignment")?;
                Some(if ty == 0 { b as i64 } else { b as i8 as i64 })
            }
            2 | 3 if is_alignment => {
                let mut b = [0u8; 2];
                s.read(&mut b, "general.alignment")?;
                Some(if ty == 2 { u16::from_le_bytes(b) as i64 } else { i16::from_le_bytes(b) as i64 })
            }
            4 | 5 if is_alignment => {
                let b = s.u32("general.alignment")?;
                Some(if ty == 4 { b as i64 } else { b as i32 as i64 })
            }
            _ => {
                s.value(ty, 0)?;
                None
            }
        };
        match alignment {
            Some(a) if matches!(ty, 1 | 3 | 5) && a < 0 => {} // negative: candle keeps 32
            Some(a) if a <= 0 || (a as u64).count_ones() != 1 => {
                return Err(format!("general.alignment {a} is not a power of two"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A buffered reader that keeps its own position, so that `stream_position` (which candle's
/// parser calls for every string and array) costs no system call.
struct PosReader<R> {
    inner: BufReader<R>,
    pos: u64,
}

impl<R: Read> Read for PosReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for PosReader<R> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = self.inner.seek(to)?;
        Ok(self.pos)
    }

    fn stream_position(&mut self) -> std::io::Result<u64> {
        Ok(self.pos)
    }

    fn seek_relative(&mut self, offset: i64) -> std::io::Result<()> {
        // Within the buffer when it can be (BufReader's own seek_relative keeps the buffer).
        self.inner.seek_relative(offset)?;
        self.pos = self.pos.checked_add_signed(offset).ok_or_else(|| std::io::Error::other("seek before the start"))?;
        Ok(())
    }
}

/// The reading position of [`check_header`] in a file of `len` bytes.
struct HeaderScan<'a, R> {
    r: &'a mut R,
    pos: u64,
    len: u64,
    /// Lengths and counts are u64 (GGUF v2, v3), not u32 (v1).
    wide: bool,
    values_left: u64,
}

impl<R: Read + Seek> HeaderScan<'_, R> {
    /// Fails unless `n` more bytes lie in the file.
    fn need(&self, n: u64, what: &str) -> std::result::Result<(), String> {
        let left = self.len - self.pos;
        if n > left {
            return Err(format!("truncated: {what} needs {n} bytes at offset {}, the file has {left} left", self.pos));
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], what: &str) -> std::result::Result<(), String> {
        self.need(buf.len() as u64, what)?;
        self.r.read_exact(buf).map_err(|e| format!("{what}: {e}"))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn skip(&mut self, n: u64, what: &str) -> std::result::Result<(), String> {
        self.need(n, what)?;
        // `need` bounds `n` by the file's length, which fits an i64.
        self.r.seek_relative(n as i64).map_err(|e| format!("{what}: {e}"))?;
        self.pos += n;
        Ok(())
    }

    fn u8(&mut self, what: &str) -> std::result::Result<u8, String> {
        let mut b = [0u8; 1];
        self.read(&mut b, what)?;
        Ok(b[0])
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let mut b = [0u8; 4];
        self.read(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    /// A length or count: u64, or u32 in GGUF v1.
    fn length(&mut self, what: &str) -> std::result::Result<u64, String> {
        if !self.wide {
            return self.u32(what).map(u64::from);
        }
        let mut b = [0u8; 8];
        self.read(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Counts `n` values against [`MAX_GGUF_METADATA_VALUES`].
    fn count(&mut self, n: u64) -> std::result::Result<(), String> {
        self.values_left = self
            .values_left
            .checked_sub(n)
            .ok_or_else(|| format!("the metadata holds more than the {MAX_GGUF_METADATA_VALUES} values this SDK accepts"))?;
        Ok(())
    }

    /// Skips one value of type `ty`, checking its size against the file.
    fn value(&mut self, ty: u32, depth: usize) -> std::result::Result<(), String> {
        self.count(1)?;
        if let Some(size) = gguf_value_size(ty) {
            return self.skip(size, "a metadata value");
        }
        match ty {
            8 => {
                let n = self.length("a string's length")?;
                self.skip(n, "a string")
            }
            9 => {
                if depth >= MAX_GGUF_ARRAY_DEPTH {
                    return Err(format!("arrays nested more than {MAX_GGUF_ARRAY_DEPTH} deep (arrays within arrays)"));
                }
                let element = self.u32("an array's element type")?;
                let n = self.length("an array's length")?;
                match gguf_value_size(element) {
                    Some(size) => {
                        self.count(n)?;
                        self.skip(n.saturating_mul(size), "an array")
                    }
                    None if element == 8 || element == 9 => {
                        // Bounded before the loop: each element counts one value.
                        if n > self.values_left {
                            self.count(n)?;
                        }
                        (0..n).try_for_each(|_| self.value(element, depth + 1))
                    }
                    None => Err(format!("unknown metadata value type {element}")),
                }
            }
            _ => Err(format!("unknown metadata value type {ty}")),
        }
    }
}

/// Bytes of one GGUF metadata value of a fixed-size type, None for strings, arrays and unknown types.
fn gguf_value_size(ty: u32) -> Option<u64> {
    match ty {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// Checks every entry of the tensor table before any tensor is read: the element count and the
/// byte size in checked arithmetic (candle's own element count wraps, and a wrapped size would
/// reach the allocators of the quantized storage), whole blocks along the innermost dimension,
/// and the bytes within the file. A failure names the tensor.
fn check_tensor_table(content: &Content, file_len: u64) -> std::result::Result<(), String> {
    for (name, info) in &content.tensor_infos {
        let dims = info.shape.dims();
        let dtype = info.ggml_dtype;
        // An empty tensor is never a weight, and candle cannot read one (it builds a typed slice
        // from an empty buffer's unaligned pointer).
        if dims.contains(&0) {
            return Err(format!("tensor {name}: {dims:?} has no elements"));
        }
        let elems = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format!("tensor {name}: the element count of {dims:?} overflows"))?;
        let block = dtype.block_size();
        // (whole blocks along the rows make whole blocks in all; a scalar is one element)
        if !dims.last().map_or(1, |&w| w).is_multiple_of(block) {
            return Err(format!("tensor {name}: {dtype:?} {dims:?} is not made of whole blocks of {block}"));
        }
        let bytes = (elems / block)
            .checked_mul(dtype.type_size())
            .and_then(|b| u64::try_from(b).ok())
            .ok_or_else(|| format!("tensor {name}: the byte size of {dtype:?} {dims:?} overflows"))?;
        let end = content.tensor_data_offset.checked_add(info.offset).and_then(|start| start.checked_add(bytes));
        if end.is_none_or(|end| end > file_len) {
            return Err(format!(
                "tensor {name}: {dtype:?} {dims:?} needs {bytes} bytes at offset {}, beyond the file's {file_len} bytes",
                info.offset
            ));
        }
    }
    Ok(())
}

/// Which file a Hugging Face tensor name lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Text,
    Vision,
}

/// A Llama text GGUF plus, optionally, its `mmproj` vision GGUF.
#[derive(Debug)]
pub struct GgufModel {
    text: GgufFile,
    mmproj: Option<GgufFile>,
    config: ModelConfig,
}

impl GgufModel {
    /// Opens the text file and, when given, the `mmproj` file, and reads the configuration.
    pub fn open(text: &Path, mmproj: Option<&Path>) -> Result<Self> {
        let text = GgufFile::open(text)?;
        let mmproj = mmproj.map(GgufFile::open).transpose()?;
        let config = model_config(&text, mmproj.as_ref())?;
        Ok(Self { text, mmproj, config })
    }

    /// The model configuration from the metadata (vision only with an `mmproj` file).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The text file.
    pub fn text_file(&self) -> &GgufFile {
        &self.text
    }

    /// The `mmproj` file, if any.
    pub fn mmproj_file(&self) -> Option<&GgufFile> {
        self.mmproj.as_ref()
    }

    /// Whether the Hugging Face-named tensor is present.
    pub fn contains(&self, hf_name: &str) -> bool {
        match map_name(hf_name) {
            Some((Part::Text, n)) => self.text.has_tensor(&n),
            Some((Part::Vision, n)) => self.mmproj.as_ref().is_some_and(|m| m.has_tensor(&n)),
            None => false,
        }
    }

    /// The shape (candle order) of the Hugging Face-named tensor, if present: checked before a
    /// tensor is read, so a mis-shaped one is refused without reading or widening its bytes.
    pub fn dims(&self, hf_name: &str) -> Option<&[usize]> {
        match map_name(hf_name)? {
            (Part::Text, n) => self.text.tensor_dims(&n),
            (Part::Vision, n) => self.mmproj.as_ref()?.tensor_dims(&n),
        }
    }

    /// The tensor with Hugging Face name `hf_name`, as stored (Q/K rows un-permuted).
    pub fn qtensor(&self, hf_name: &str) -> candle_core::Result<QTensor> {
        let Some((part, name)) = map_name(hf_name) else { candle_core::bail!("no GGUF tensor corresponds to {hf_name}") };
        let file = match part {
            Part::Text => &self.text,
            Part::Vision => match &self.mmproj {
                Some(m) => m,
                None => candle_core::bail!("{hf_name} needs the mmproj file"),
            },
        };
        if !file.has_tensor(&name) {
            candle_core::bail!("tensor {name} (for {hf_name}) is missing")
        }
        let q = file.tensor(&name)?;
        let t = &self.config.text;
        let heads = if name.ends_with(".attn_q.weight") && part == Part::Text {
            Some(t.num_attention_heads)
        } else if name.ends_with(".attn_k.weight") && part == Part::Text {
            Some(t.num_key_value_heads)
        } else {
            None
        };
        match heads {
            Some(h) => unpermute_rows(&q, h),
            None => Ok(q),
        }
    }

    /// The byte-level BPE tokenizer described by the text file's `tokenizer.ggml.*` metadata.
    pub fn tokenizer(&self) -> Result<Tokenizer> {
        build_tokenizer(&self.text)
    }

    /// `tokenizer.chat_template`, if present.
    pub fn chat_template(&self) -> Option<&str> {
        self.text.string("tokenizer.chat_template")
    }

    /// The token ids that end a turn: `tokenizer.ggml.eos_token_id` and `eot_token_id`.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        let mut out = vec![];
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            if let Some(id) = self.text.uint(key) {
                if !out.contains(&(id as u32)) {
                    out.push(id as u32);
                }
            }
        }
        out
    }

    /// The special-token strings the chat template may use (`bos_token`, `eos_token`, …).
    pub fn special_tokens(&self) -> serde_json::Value {
        let tokens = self.text.meta("tokenizer.ggml.tokens").and_then(|v| v.to_vec().ok());
        let mut out = serde_json::json!({});
        for (key, meta) in [
            ("bos_token", "tokenizer.ggml.bos_token_id"),
            ("eos_token", "tokenizer.ggml.eos_token_id"),
            ("pad_token", "tokenizer.ggml.padding_token_id"),
            ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ] {
            let s = self.text.uint(meta).and_then(|id| tokens.and_then(|t| t.get(id as usize))).and_then(|v| v.to_string().ok());
            if let Some(s) = s {
                out[key] = serde_json::Value::String(s.clone());
            }
        }
        out
    }

    /// Image preprocessing settings from the mmproj metadata (HF processor defaults for the
    /// rest: tiling on, LANCZOS, rescale 1/255), or None for a text-only model.
    pub fn preprocessor(&self) -> Option<PreprocessorConfig> {
        let m = self.mmproj.as_ref()?;
        let v = self.config.vision.as_ref()?;
        let triple = |key: &str| -> [f32; 3] {
            let xs: Vec<f32> = m
                .meta(key)
                .and_then(|v| v.to_vec().ok())
                .map(|a| a.iter().filter_map(|x| x.to_f32().ok()).collect())
                .unwrap_or_default();
            match xs.as_slice() {
                [a, b, c] => [*a, *b, *c],
                _ => [0.5; 3],
            }
        };
        let size = v.image_size as u32;
        let longest_edge = m.uint("clip.vision.preproc_image_size").map_or(size * 4, |x| x as u32);
        // GGUF files carry no video settings: SmolVLM2 checkpoints all publish 1 fps, 64 frames.
        let video_sampling =
            (self.config.family == ModelFamily::SmolVlm).then_some(VideoSampling { fps: 1.0, max_frames: 64, longest_edge });
        Some(PreprocessorConfig {
            longest_edge,
            max_image_size: size,
            do_image_splitting: true,
            do_resize: true,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: triple("clip.vision.image_mean"),
            image_std: triple("clip.vision.image_std"),
            video_sampling,
        })
    }
}

/// Hugging Face name (as the model code asks for it) -> (file, llama.cpp name).
fn map_name(hf: &str) -> Option<(Part, String)> {
    if let Some(rest) = hf.strip_prefix("model.text_model.") {
        return text_name(rest).map(|n| (Part::Text, n));
    }
    if hf == "lm_head.weight" {
        return Some((Part::Text, "output.weight".into()));
    }
    if let Some(rest) = hf.strip_prefix("model.vision_model.") {
        return vision_name(rest).map(|n| (Part::Vision, n));
    }
    if let Some(rest) = hf.strip_prefix("model.connector.modality_projection.proj.") {
        return Some((Part::Vision, format!("mm.model.fc.{rest}")));
    }
    None
}

fn text_name(rest: &str) -> Option<String> {
    match rest {
        "embed_tokens.weight" => return Some("token_embd.weight".into()),
        "norm.weight" => return Some("output_norm.weight".into()),
        _ => {}
    }
    let rest = rest.strip_prefix("layers.")?;
    let (layer, tail) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = tail.rsplit_once('.')?;
    let name = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{name}.{suffix}"))
}

fn vision_name(rest: &str) -> Option<String> {
    let (module, suffix) = rest.rsplit_once('.')?;
    let name = match module {
        "embeddings.patch_embedding" => "v.patch_embd".to_string(),
        "embeddings.position_embedding" => "v.position_embd".to_string(),
        "post_layernorm" => "v.post_ln".to_string(),
        _ => {
            let rest = module.strip_prefix("encoder.layers.")?;
            let (layer, m) = rest.split_once('.')?;
            let layer: usize = layer.parse().ok()?;
            let n = match m {
                "self_attn.q_proj" => "attn_q",
                "self_attn.k_proj" => "attn_k",
                "self_attn.v_proj" => "attn_v",
                "self_attn.out_proj" => "attn_out",
                "layer_norm1" => "ln1",
                "layer_norm2" => "ln2",
                "mlp.fc1" => "ffn_up",
                "mlp.fc2" => "ffn_down",
                _ => return None,
            };
            format!("v.blk.{layer}.{n}")
        }
    };
    Some(format!("{name}.{suffix}"))
}

/// Undoes llama.cpp's `permute(w, n_head)` of a `[n_head·hd, in]` weight: GGUF row
/// `h·hd + 2i + j` holds Hugging Face row `h·hd + j·hd/2 + i`. Works on the stored bytes, so any
/// block type is restored exactly.
fn unpermute_rows(q: &QTensor, heads: usize) -> candle_core::Result<QTensor> {
    let (rows, cols) = q.shape().dims2()?;
    if heads == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        candle_core::bail!("cannot un-permute a [{rows}, {cols}] projection for {heads} heads")
    }
    let dtype = q.dtype();
    let data = q.data()?;
    if cols % dtype.block_size() != 0 || data.len() != rows * cols / dtype.block_size() * dtype.type_size() {
        candle_core::bail!("unexpected storage size for a [{rows}, {cols}] {dtype:?} tensor")
    }
    let row_bytes = data.len() / rows;
    let hd = rows / heads;
    let half = hd / 2;
    let mut out = vec![0u8; data.len()];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                let src = h * hd + 2 * i + j;
                let dst = h * hd + j * half + i;
                out[dst * row_bytes..(dst + 1) * row_bytes].copy_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    let storage = QStorage::from_data(Cow::Owned(out), &Device::Cpu, dtype)?;
    QTensor::new(storage, (rows, cols))
}

fn model_config(text: &GgufFile, mmproj: Option<&GgufFile>) -> Result<ModelConfig> {
    let arch = text.string("general.architecture").ok_or_else(|| text.err("missing general.architecture"))?;
    if arch != "llama" {
        return Err(text.err(format!("architecture {arch:?} is not supported (llama)")));
    }
    let k = |s: &str| format!("{arch}.{s}");
    if let Some(kind) = text.string(&k("rope.scaling.type")) {
        if kind != "none" {
            return Err(text.err(format!("RoPE scaling {kind:?} is not supported")));
        }
    }
    let hidden_size = text.req_uint(&k("embedding_length"))?;
    let heads = text.req_uint(&k("attention.head_count"))?;
    let kv_heads = text.uint(&k("attention.head_count_kv")).map_or(heads, |x| x as usize);
    let head_dim = text
        .uint(&k("attention.key_length"))
        .or_else(|| text.uint(&k("rope.dimension_count")))
        .map_or(hidden_size.checked_div(heads).unwrap_or(0), |x| x as usize);
    let vocab_size = match text.tensor_dims("token_embd.weight") {
        Some([v, d]) if *d == hidden_size => *v,
        Some(dims) => {
            return Err(text.err(format!(
                "tensor token_embd.weight has shape {dims:?}, expected [vocabulary, {hidden_size}] ({arch}.embedding_length)"
            )))
        }
        None => return Err(text.err("tensor token_embd.weight is missing")),
    };
    let textcfg = TextConfig {
        vocab_size,
        hidden_size,
        intermediate_size: text.req_uint(&k("feed_forward_length"))?,
        num_hidden_layers: text.req_uint(&k("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        rms_norm_eps: text.float(&k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
        rope_theta: text.float(&k("rope.freq_base")).unwrap_or(10000.0),
        max_position_embeddings: text.uint(&k("context_length")).map_or(2048, |x| x as usize),
        tie_word_embeddings: !text.has_tensor("output.weight"),
    };
    let tokens: Vec<&str> = text
        .meta("tokenizer.ggml.tokens")
        .and_then(|v| v.to_vec().ok())
        .map(|a| a.iter().filter_map(|t| t.to_string().ok().map(String::as_str)).collect())
        .unwrap_or_default();
    if !tokens.is_empty() && tokens.len() != vocab_size {
        return Err(text.err(format!(
            "tensor token_embd.weight has {vocab_size} rows but tokenizer.ggml.tokens holds {} tokens",
            tokens.len()
        )));
    }
    let (vision, scale_factor, image_token_id, family) = match mmproj {
        None => (None, 1, u32::MAX, ModelFamily::Llama),
        Some(m) => {
            let has = m.meta("clip.has_vision_encoder").and_then(|v| v.to_bool().ok()).unwrap_or(false);
            let proj = m.string("clip.projector_type").unwrap_or("");
            if !has || proj != "idefics3" {
                return Err(m.err(format!(
                    "not an idefics3 vision projector (clip.has_vision_encoder = {has}, clip.projector_type = {proj:?})"
                )));
            }
            let v = VisionConfig {
                hidden_size: m.req_uint("clip.vision.embedding_length")?,
                intermediate_size: m.req_uint("clip.vision.feed_forward_length")?,
                num_hidden_layers: m.req_uint("clip.vision.block_count")?,
                num_attention_heads: m.req_uint("clip.vision.attention.head_count")?,
                num_channels: 3,
                image_size: m.req_uint("clip.vision.image_size")?,
                patch_size: m.req_uint("clip.vision.patch_size")?,
                layer_norm_eps: m.float("clip.vision.attention.layer_norm_epsilon").unwrap_or(1e-6),
            };
            let r = m.uint("clip.vision.projector.scale_factor").map_or(2, |x| x as usize);
            // What the preprocessor sizes images by (see `preprocessor`), bounded as a
            // checkpoint's `size.longest_edge` is.
            if let Some(edge) = m.uint("clip.vision.preproc_image_size") {
                if edge == 0 || edge > MAX_IMAGE_SIDE as u64 {
                    return Err(m.err(format!(
                        "clip.vision.preproc_image_size {edge} is outside 1..={MAX_IMAGE_SIDE}, what this SDK accepts"
                    )));
                }
            }
            for key in ["clip.vision.image_mean", "clip.vision.image_std"] {
                let xs: Vec<f32> = m
                    .meta(key)
                    .and_then(|v| v.to_vec().ok())
                    .map(|a| a.iter().filter_map(|x| x.to_f32().ok()).collect())
                    .unwrap_or_default();
                // (`preprocessor` uses three values, else its defaults)
                if xs.len() == 3 && (xs.iter().any(|x| !x.is_finite()) || (key.ends_with("std") && xs.contains(&0.0))) {
                    return Err(m.err(format!("{key} {xs:?}: values must be finite (and a standard deviation non-zero)")));
                }
            }
            let image = tokens
                .iter()
                .position(|t| *t == "<image>")
                .ok_or_else(|| text.err("the vocabulary has no <image> token (is this the text half of a SmolVLM?)"))?;
            if let Some(pd) = m.uint("clip.vision.projection_dim") {
                if pd as usize != hidden_size {
                    return Err(
                        m.err(format!("projection_dim {pd} differs from the text model's embedding_length {hidden_size}"))
                    );
                }
            }
            (Some(v), r, image as u32, ModelFamily::SmolVlm)
        }
    };
    let cfg = ModelConfig { family, image_token_id, scale_factor, vision, text: textcfg };
    cfg.validate().map_err(|reason| match mmproj {
        Some(m) if reason.contains("vision") || reason.contains("scale_factor") || reason.contains("patches") => m.err(reason),
        _ => text.err(reason),
    })?;
    Ok(cfg)
}

fn build_tokenizer(f: &GgufFile) -> Result<Tokenizer> {
    let model = f.string("tokenizer.ggml.model").unwrap_or("");
    if model != "gpt2" {
        return Err(f.err(format!("tokenizer.ggml.model {model:?} is not supported (gpt2 byte-level BPE)")));
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        let a = f.meta(key).and_then(|v| v.to_vec().ok()).ok_or_else(|| f.err(format!("missing {key}")))?;
        a.iter().map(|v| v.to_string().cloned().map_err(|_| f.err(format!("{key} holds a non-string")))).collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = f
        .meta("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
        .map(|a| a.iter().map(|x| x.to_i32().map(i64::from).unwrap_or(1)).collect())
        .unwrap_or_default();
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect::<Option<_>>()
        .ok_or_else(|| f.err("a tokenizer.ggml.merges entry has no space"))?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| f.err(format!("cannot build the BPE tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    // llama.cpp's pre-tokenizer names: "smollm" (and other SmolLM-derived vocabularies) split
    // digits one by one before the GPT-2 regex, as their tokenizer.json does.
    let pre: PreTokenizerWrapper = match f.string("tokenizer.ggml.pre").unwrap_or("default") {
        "smollm" | "starcoder" | "refact" | "codeshell" => PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(byte_level),
        ])),
        "default" | "gpt-2" | "gpt2" => PreTokenizerWrapper::ByteLevel(byte_level),
        other => return Err(f.err(format!("tokenizer.ggml.pre {other:?} is not supported (smollm, gpt-2)"))),
    };
    tok.with_pre_tokenizer(Some(pre));
    tok.with_decoder(Some(ByteLevel::default()));
    // Control (3) tokens are special; user-defined (4) ones are added as whole tokens.
    let mut specials = vec![];
    let mut added = vec![];
    for (i, t) in tokens.iter().enumerate() {
        match types.get(i) {
            Some(3) => specials.push(AddedToken::from(t.clone(), true).normalized(false)),
            Some(4) => added.push(AddedToken::from(t.clone(), false).normalized(false)),
            _ => {}
        }
    }
    tok.add_special_tokens(&specials);
    tok.add_tokens(&added);
    Ok(tok)
}

/// Reads the tensor-name -> shape/type directory (for tools and tests).
pub fn tensor_types(f: &GgufFile) -> HashMap<String, GgmlDType> {
    f.content.tensor_infos.iter().map(|(k, v)| (k.clone(), v.ggml_dtype)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_names() {
        assert_eq!(
            map_name("model.text_model.layers.3.self_attn.q_proj.weight"),
            Some((Part::Text, "blk.3.attn_q.weight".into()))
        );
        assert_eq!(map_name("model.text_model.embed_tokens.weight"), Some((Part::Text, "token_embd.weight".into())));
        assert_eq!(map_name("lm_head.weight"), Some((Part::Text, "output.weight".into())));
        assert_eq!(
            map_name("model.vision_model.encoder.layers.1.mlp.fc2.bias"),
            Some((Part::Vision, "v.blk.1.ffn_down.bias".into()))
        );
        assert_eq!(
            map_name("model.connector.modality_projection.proj.weight"),
            Some((Part::Vision, "mm.model.fc.weight".into()))
        );
        assert_eq!(map_name("model.text_model.layers.x.mlp.up_proj.weight"), None);
        assert_eq!(map_name("something.else"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(h, 2, hd/2, in).swapaxes(1, 2).reshape(...)
        let (heads, hd, cols) = (3usize, 8usize, 32usize);
        let rows = heads * hd;
        let hf: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
        let mut permuted = vec![0f32; rows * cols];
        for h in 0..heads {
            for j in 0..2 {
                for i in 0..hd / 2 {
                    let src = h * hd + j * hd / 2 + i;
                    let dst = h * hd + 2 * i + j;
                    permuted[dst * cols..(dst + 1) * cols].copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        let t = candle_core::Tensor::from_vec(permuted, (rows, cols), &Device::Cpu).unwrap();
        for dt in [GgmlDType::F32, GgmlDType::Q8_0] {
            let q = QTensor::quantize(&t, dt).unwrap();
            let back = unpermute_rows(&q, heads).unwrap().dequantize(&Device::Cpu).unwrap();
            let want = QTensor::quantize(&candle_core::Tensor::from_vec(hf.clone(), (rows, cols), &Device::Cpu).unwrap(), dt)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap();
            let d: f32 = (back - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert_eq!(d, 0.0, "{dt:?}");
        }
        let q = QTensor::quantize(&t, GgmlDType::F32).unwrap();
        assert!(unpermute_rows(&q, 5).is_err());
    }

    #[test]
    fn garbage_is_a_model_file_error() {
        let dir = std::env::temp_dir().join(format!("smolvlm-gguf-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.gguf");
        std::fs::write(&p, b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
        let e = GgufFile::open(&p).unwrap_err();
        assert!(matches!(&e, Error::ModelFile { path, .. } if path == &p), "{e}");
        std::fs::write(&p, b"not a gguf at all").unwrap();
        assert!(matches!(GgufFile::open(&p), Err(Error::ModelFile { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }
}
