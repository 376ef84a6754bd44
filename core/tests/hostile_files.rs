//! Hostile model files (issue 19): truncated and bit-flipped weights, hand-crafted GGUF headers
//! and malformed JSON files must never crash, panic, hang or allocate memory out of proportion
//! to the input: every bad input is a typed error ([`Error::ModelFile`] naming the file, or
//! [`Error::InvalidArgument`]).
//!
//! Every load runs under `catch_unwind`, and a panic hook counts panics on the loading thread, so
//! a panic the SDK catches itself counts too. A counting allocator measures the bytes each load
//! holds at its peak (on the loading thread). Bit flips are seeded (a fixed xorshift), so a
//! failure names a case that reproduces. The fixture files are copied into a temporary folder
//! once per test; a bit flip is written in place and undone after the load.

use smolvlm::{Engine, EngineOptions, Error, Message, Role};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Instruments: a counting allocator (per thread) and a panic counter.

struct Counting;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static THREAD_PANICS: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(n: usize) {
    let _ = TRACK.try_with(|t| {
        if t.get() {
            let live = LIVE.with(|l| {
                let v = l.get().saturating_add(n);
                l.set(v);
                v
            });
            PEAK.with(|p| p.set(p.get().max(live)));
        }
    });
}

fn note_free(n: usize) {
    let _ = TRACK.try_with(|t| {
        if t.get() {
            LIVE.with(|l| l.set(l.get().saturating_sub(n)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note_free(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note_free(layout.size());
            note_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn install_panic_counter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            let _ = THREAD_PANICS.try_with(|c| c.set(c.get() + 1));
            previous(info)
        }));
    });
}

/// What one load did.
enum Outcome {
    Loaded,
    Failed(Error),
    /// A panic, caught here or (counted by the hook) inside the SDK.
    Panicked(String),
}

struct Run {
    outcome: Outcome,
    elapsed: Duration,
    /// Peak bytes held on the loading thread during the load, above what it held before.
    peak: usize,
}

fn run(load: impl FnOnce() -> smolvlm::Result<Engine>) -> Run {
    install_panic_counter();
    let panics_before = THREAD_PANICS.with(Cell::get);
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACK.with(|t| t.set(true));
    let start = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(load));
    let elapsed = start.elapsed();
    TRACK.with(|t| t.set(false));
    let peak = PEAK.with(Cell::get);
    let inner_panics = THREAD_PANICS.with(Cell::get) - panics_before;
    let outcome = match result {
        Err(p) => Outcome::Panicked(
            p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default(),
        ),
        Ok(_) if inner_panics > 0 => Outcome::Panicked(format!("{inner_panics} panic(s) caught inside the SDK")),
        Ok(Ok(_engine)) => Outcome::Loaded,
        Ok(Err(e)) => Outcome::Failed(e),
    };
    Run { outcome, elapsed, peak }
}

/// Tallies of a batch of cases, and the cases that broke the promise.
struct Tally {
    cases: usize,
    loaded: usize,
    errors: usize,
    failures: Vec<String>,
    started: Instant,
}

impl Default for Tally {
    fn default() -> Self {
        Tally { cases: 0, loaded: 0, errors: 0, failures: vec![], started: Instant::now() }
    }
}

impl Tally {
    fn fail(&mut self, case: &str, why: impl std::fmt::Display) {
        self.failures.push(format!("{case}: {why}"));
    }

    /// Records `run`: a panic is always a failure; an error must be typed (and, with
    /// `must_name`, a `ModelFile` naming that file); success is allowed only with `may_load`.
    fn check(&mut self, case: &str, run: &Run, must_name: Option<&Path>, may_load: bool) {
        self.cases += 1;
        match &run.outcome {
            Outcome::Panicked(msg) => self.fail(case, format!("PANIC {msg}")),
            Outcome::Loaded => {
                self.loaded += 1;
                if !may_load {
                    self.fail(case, "loaded, but the input is broken");
                }
            }
            Outcome::Failed(e) => {
                self.errors += 1;
                match (e, must_name) {
                    (Error::ModelFile { path, .. }, Some(want)) if path != want => {
                        self.fail(case, format!("error names {} instead of {}: {e}", path.display(), want.display()))
                    }
                    (Error::ModelFile { .. }, _) => {}
                    (Error::InvalidArgument(_), None) => {}
                    // Refused up front by the memory estimate: typed, and nothing was allocated.
                    (Error::InsufficientMemory { .. }, _) => {}
                    (other, _) => self.fail(case, format!("untyped or wrong error variant: {other:?}")),
                }
            }
        }
    }

    fn assert_clean(&self, what: &str) {
        eprintln!(
            "{what}: {} cases, {} loaded, {} typed errors, {} failures, {:.1} s",
            self.cases,
            self.loaded,
            self.errors,
            self.failures.len(),
            self.started.elapsed().as_secs_f64()
        );
        assert!(self.failures.is_empty(), "{what}: {} broken promises:\n{}", self.failures.len(), self.failures.join("\n"));
    }
}

/// Bytes a load of a tiny hand-made file may hold beyond the file itself: buffers, maps, the
/// message; and, where RUST_BACKTRACE or RUST_LIB_BACKTRACE turns them on, the backtrace that
/// candle's errors capture and resolve (its symbol tables are loaded on first use).
fn allowance() -> usize {
    let on = |k: &str| std::env::var(k).is_ok_and(|v| v != "0");
    if on("RUST_LIB_BACKTRACE") || (on("RUST_BACKTRACE") && std::env::var("RUST_LIB_BACKTRACE").is_err()) {
        16 << 20
    } else {
        1 << 20
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("smolvlm-hostile-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the tiny safetensors checkpoint.
fn checkpoint_copy(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let src = fixtures().join("models/tiny-smolvlm2");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// Copies of the two GGUF fixtures: (folder, text file, mmproj file).
fn gguf_copy(tag: &str) -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new(tag);
    let text = dir.path().join("tiny-smolvlm2-f16.gguf");
    let mmproj = dir.path().join("mmproj-tiny-smolvlm2-f16.gguf");
    std::fs::copy(fixtures().join("gguf/tiny-smolvlm2-f16.gguf"), &text).unwrap();
    std::fs::copy(fixtures().join("gguf/mmproj-tiny-smolvlm2-f16.gguf"), &mmproj).unwrap();
    (dir, text, mmproj)
}

fn load_dir(dir: &Path) -> smolvlm::Result<Engine> {
    Engine::load(dir, &EngineOptions::default())
}

fn load_gguf(text: &Path, mmproj: &Path) -> smolvlm::Result<Engine> {
    Engine::load(text, &EngineOptions { mmproj: Some(mmproj.to_path_buf()), ..Default::default() })
}

/// Flips bit `bit` of byte `at` of `path` in place (a second call undoes it).
fn flip(path: &Path, at: u64, bit: u32) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 1 << bit;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Safetensors.

/// The header length, and the data offsets of the first tensor (within the data section).
fn safetensors_layout(bytes: &[u8]) -> (u64, (u64, u64)) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n as usize]).unwrap();
    let first = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| (v["data_offsets"][0].as_u64().unwrap(), v["data_offsets"][1].as_u64().unwrap()))
        .min()
        .unwrap();
    (n, first)
}

#[test]
fn truncated_safetensors_are_model_file_errors() {
    let dir = checkpoint_copy("st-trunc");
    let path = dir.path().join("model.safetensors");
    let good = std::fs::read(&path).unwrap();
    let (n, (s0, e0)) = safetensors_layout(&good);
    let data = 8 + n;
    let cuts: Vec<(&str, u64)> = vec![
        ("0 bytes", 0),
        ("inside the header length", 5),
        ("right after the header length", 8),
        ("inside the JSON header", 8 + n / 2),
        ("one byte before the header's end", data - 1),
        ("right after the header", data),
        ("inside the first tensor", data + s0 + (e0 - s0) / 2),
        ("one byte short of the end", good.len() as u64 - 1),
    ];
    let mut tally = Tally::default();
    for (what, len) in cuts {
        std::fs::write(&path, &good[..len as usize]).unwrap();
        let r = run(|| load_dir(dir.path()));
        tally.check(&format!("model.safetensors cut at {len} ({what})"), &r, Some(&path), false);
    }
    // Longer than its header says: also broken.
    std::fs::write(&path, [good.as_slice(), &[0u8; 7]].concat()).unwrap();
    let r = run(|| load_dir(dir.path()));
    tally.check("model.safetensors with 7 bytes appended", &r, Some(&path), false);
    std::fs::write(&path, &good).unwrap();
    let r = run(|| load_dir(dir.path()));
    assert!(matches!(r.outcome, Outcome::Loaded), "the intact copy must load");
    tally.assert_clean("truncated safetensors");
}

/// A word-level `tokenizer.json` with the fixture's `<image>` id and nothing else: it loads in
/// microseconds where the fixture's 2 MB BPE takes tens of milliseconds, for the many loads that
/// only test the weights file.
fn small_tokenizer(dir: &Path) {
    let t = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "<image>": 49190}, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_vec(&t).unwrap()).unwrap();
}

#[test]
fn bit_flipped_safetensors_headers_never_panic() {
    let dir = checkpoint_copy("st-flip");
    small_tokenizer(dir.path());
    assert!(matches!(run(|| load_dir(dir.path())).outcome, Outcome::Loaded), "the intact copy must load");
    let path = dir.path().join("model.safetensors");
    let good = std::fs::read(&path).unwrap();
    let (n, _) = safetensors_layout(&good);
    let mut rng = fastrand::Rng::with_seed(0x5afe_7e45_0123_4567);
    let mut tally = Tally::default();
    for trial in 0..200 {
        // One in five in the 8-byte length, the rest in the JSON header.
        let at = if trial % 5 == 0 { rng.u64(..8) } else { 8 + rng.u64(..n) };
        let bit = rng.u64(..8) as u32;
        flip(&path, at, bit);
        let r = run(|| load_dir(dir.path()));
        flip(&path, at, bit);
        tally.check(&format!("model.safetensors byte {at} bit {bit}"), &r, Some(&path), true);
    }
    tally.assert_clean("bit-flipped safetensors");
}

/// A safetensors file with `header` as its JSON header and `data` as its data section.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    [&(header.len() as u64).to_le_bytes()[..], header.as_bytes(), data].concat()
}

#[test]
fn crafted_safetensors_headers_are_quick_typed_errors() {
    let dir = checkpoint_copy("st-craft");
    let path = dir.path().join("model.safetensors");
    let big = 1u64 << 61;
    // Eight U8 tensors of 2^61 - 1 bytes each: offsets that sum to just below 2^64.
    let mut huge = String::from("{");
    for i in 0..8u64 {
        let (s, e) = (i * (big - 1), (i + 1) * (big - 1));
        huge += &format!("\"t{i}\":{{\"dtype\":\"U8\",\"shape\":[{}],\"data_offsets\":[{s},{e}]}},", big - 1);
    }
    huge.pop();
    huge.push('}');
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("header length 2^63", [&(1u64 << 63).to_le_bytes()[..], b"{}"].concat()),
        ("header length u64::MAX", [&u64::MAX.to_le_bytes()[..], b"{}"].concat()),
        ("data offsets summing to 2^64 - 8", safetensors_bytes(&huge, &[])),
        (
            "shape product overflows",
            safetensors_bytes(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,0]}}"#, &[]),
        ),
        (
            "offsets past the data",
            safetensors_bytes(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1000000000000]}}"#, &[0; 8]),
        ),
        ("end before start", safetensors_bytes(r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, &[0; 8])),
        ("unknown dtype", safetensors_bytes(r#"{"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}"#, &[0; 8])),
        ("10 000 nested arrays", safetensors_bytes(&deep, &[])),
        ("not UTF-8", safetensors_bytes("{\"\u{ff}\":1}", &[]).iter().map(|&b| if b == 0xc3 { 0xff } else { b }).collect()),
        ("empty header, stray data", safetensors_bytes("{}", &[1, 2, 3])),
        ("empty file of tensors", safetensors_bytes("{}", &[])),
    ];
    let mut tally = Tally::default();
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let r = run(|| load_dir(dir.path()));
        tally.check(what, &r, Some(&path), false);
        if r.elapsed > Duration::from_secs(1) {
            tally.fail(what, format!("took {:?}", r.elapsed));
        }
    }
    tally.assert_clean("crafted safetensors headers");
}

// ---------------------------------------------------------------------------------------------
// GGUF.

/// Where the parts of a GGUF (v2/v3) file lie.
#[derive(Debug)]
struct GgufLayout {
    /// (key, start, end) of every metadata entry.
    kvs: Vec<(String, u64, u64)>,
    table: (u64, u64),
    data: u64,
    len: u64,
}

fn gguf_layout(b: &[u8]) -> GgufLayout {
    fn u32_at(b: &[u8], p: &mut usize) -> u32 {
        let v = u32::from_le_bytes(b[*p..*p + 4].try_into().unwrap());
        *p += 4;
        v
    }
    fn u64_at(b: &[u8], p: &mut usize) -> u64 {
        let v = u64::from_le_bytes(b[*p..*p + 8].try_into().unwrap());
        *p += 8;
        v
    }
    fn string(b: &[u8], p: &mut usize) -> String {
        let n = u64_at(b, p) as usize;
        let s = String::from_utf8_lossy(&b[*p..*p + n]).into_owned();
        *p += n;
        s
    }
    fn value(b: &[u8], p: &mut usize, t: u32) {
        match t {
            0 | 1 | 7 => *p += 1,
            2 | 3 => *p += 2,
            4..=6 => *p += 4,
            10..=12 => *p += 8,
            8 => {
                string(b, p);
            }
            9 => {
                let et = u32_at(b, p);
                for _ in 0..u64_at(b, p) {
                    value(b, p, et);
                }
            }
            _ => panic!("value type {t}"),
        }
    }
    let mut p = 8;
    let n_tensors = u64_at(b, &mut p);
    let n_kv = u64_at(b, &mut p);
    let mut kvs = vec![];
    for _ in 0..n_kv {
        let start = p as u64;
        let key = string(b, &mut p);
        let t = u32_at(b, &mut p);
        value(b, &mut p, t);
        kvs.push((key, start, p as u64));
    }
    let table_start = p as u64;
    for _ in 0..n_tensors {
        string(b, &mut p);
        let n = u32_at(b, &mut p) as usize;
        p += 8 * n + 4 + 8;
    }
    let table_end = p as u64;
    GgufLayout { kvs, table: (table_start, table_end), data: table_end.div_ceil(32) * 32, len: b.len() as u64 }
}

impl GgufLayout {
    fn kv(&self, key: &str) -> (u64, u64) {
        self.kvs.iter().find(|(k, _, _)| k == key).map(|&(_, s, e)| (s, e)).unwrap()
    }

    /// Truncation points: every part of the file.
    fn cuts(&self) -> Vec<(String, u64)> {
        let (s0, e0) = (self.kvs[0].1, self.kvs[0].2);
        let (sl, el) = (self.kvs.last().unwrap().1, self.kvs.last().unwrap().2);
        let mut cuts = vec![
            ("empty".to_string(), 0),
            ("inside the magic".into(), 2),
            ("inside the version".into(), 6),
            ("inside the tensor count".into(), 12),
            ("inside the metadata count".into(), 20),
            ("right after the counts".into(), 24),
            ("inside the first key's length".into(), s0 + 3),
            ("inside the first key".into(), s0 + 10),
            ("inside the first value".into(), e0 - 2),
            ("inside the last metadata entry".into(), (sl + el) / 2),
            ("right after the metadata".into(), self.table.0),
            ("inside the tensor table".into(), (self.table.0 + self.table.1) / 2),
            ("one byte short of the tensor table".into(), self.table.1 - 1),
            ("right after the tensor table".into(), self.table.1),
            ("at the tensor data".into(), self.data),
            ("inside the tensor data".into(), self.data + (self.len - self.data) / 2),
            ("one byte short".into(), self.len - 1),
        ];
        if self.data > self.table.1 + 1 {
            cuts.push(("inside the alignment padding".into(), self.table.1 + 1));
        }
        cuts
    }
}

#[test]
fn truncated_gguf_files_are_model_file_errors() {
    let (dir, text, mmproj) = gguf_copy("gguf-trunc");
    let mut tally = Tally::default();
    for path in [&text, &mmproj] {
        let good = std::fs::read(path).unwrap();
        let layout = gguf_layout(&good);
        let mut cuts = layout.cuts();
        if path == &text {
            let (s, e) = layout.kv("tokenizer.ggml.tokens");
            cuts.push(("inside the token array".into(), (s + e) / 2));
            let (s, e) = layout.kv("tokenizer.ggml.merges");
            cuts.push(("inside the merges".into(), (s + e) / 2));
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (what, len) in cuts {
            std::fs::write(path, &good[..len as usize]).unwrap();
            let r = run(|| load_gguf(&text, &mmproj));
            tally.check(&format!("{name} cut at {len} ({what})"), &r, Some(path), false);
        }
        std::fs::write(path, &good).unwrap();
    }
    let r = run(|| load_gguf(&text, &mmproj));
    assert!(matches!(r.outcome, Outcome::Loaded), "the intact copies must load");
    drop(dir);
    tally.assert_clean("truncated GGUF");
}

#[test]
fn bit_flipped_gguf_headers_never_panic() {
    let (_dir, text, mmproj) = gguf_copy("gguf-flip");
    let text_layout = gguf_layout(&std::fs::read(&text).unwrap());
    let mm_layout = gguf_layout(&std::fs::read(&mmproj).unwrap());
    let chat = text_layout.kv("tokenizer.chat_template");
    // (file, region start, region end, trials): the text file's header and first metadata
    // (4 KiB: counts, hyper-parameters, the start of the vocabulary), its last metadata and
    // tensor table, and the whole header and tensor table of the mmproj file.
    let regions = [(&text, 0, 4096, 100), (&text, chat.0, text_layout.data, 80), (&mmproj, 0, mm_layout.data, 120)];
    let mut rng = fastrand::Rng::with_seed(0x6767_7566_dead_beef);
    let mut tally = Tally::default();
    for (path, start, end, trials) in regions {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for _ in 0..trials {
            let at = start + rng.u64(..end - start);
            let bit = rng.u64(..8) as u32;
            flip(path, at, bit);
            let r = run(|| load_gguf(&text, &mmproj));
            flip(path, at, bit);
            // Some flips stay valid (a vocabulary string, an unused metadata value).
            tally.check(&format!("{name} byte {at} bit {bit}"), &r, None, true);
            if let Outcome::Failed(Error::ModelFile { path: p, .. }) = &r.outcome {
                if p != &text && p != &mmproj {
                    tally.fail(&format!("{name} byte {at} bit {bit}"), format!("error names {}", p.display()));
                }
            }
        }
    }
    tally.assert_clean("bit-flipped GGUF");
}

/// A hand-made GGUF v3 file.
#[derive(Default)]
struct Gguf(Vec<u8>);

impl Gguf {
    fn header(tensors: u64, kvs: u64) -> Self {
        let mut g = Gguf(b"GGUF".to_vec());
        g.u32(3).u64(tensors).u64(kvs);
        g
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// A metadata entry `key` = string `v`.
    fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.str(key).u32(8).str(v)
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    /// A tensor-table entry (dims innermost first, as stored).
    fn tensor(&mut self, name: &str, dims: &[u64], dtype: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(dtype).u64(offset)
    }
    fn pad(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
}

#[test]
fn crafted_gguf_headers_are_quick_typed_errors() {
    let dir = TempDir::new("gguf-craft");
    let path = dir.path().join("crafted.gguf");
    let big = 1u64 << 62;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("only the magic", b"GGUF".to_vec()),
        ("version 0", Gguf::header(0, 0).bytes().iter().enumerate().map(|(i, &b)| if i == 4 { 0 } else { b }).collect()),
        ("version 4", {
            let mut g = Gguf(b"GGUF".to_vec());
            g.u32(4).u64(0).u64(0);
            g.bytes()
        }),
        ("tensor count 2^62", Gguf::header(big, 0).pad(64).bytes()),
        ("metadata count 2^62", Gguf::header(0, big).pad(64).bytes()),
        ("tensor and metadata counts u64::MAX", Gguf::header(u64::MAX, u64::MAX).pad(64).bytes()),
        ("key length 2^62", Gguf::header(0, 1).u64(big).pad(64).bytes()),
        ("string value length 2^62", Gguf::header(0, 1).str("general.name").u32(8).u64(big).pad(64).bytes()),
        ("array length 2^62", Gguf::header(0, 1).str("a").u32(9).u32(0).u64(big).pad(64).bytes()),
        ("array of strings, length 2^62", Gguf::header(0, 1).str("a").u32(9).u32(8).u64(big).pad(64).bytes()),
        ("array of 1000 arrays, file of 4 KB", Gguf::header(0, 1).str("a").u32(9).u32(9).u64(1000).pad(4096).bytes()),
        ("unknown value type", Gguf::header(0, 1).str("a").u32(99).pad(64).bytes()),
        ("bool value 7", Gguf::header(0, 1).str("a").u32(7).0.iter().copied().chain([7u8]).collect()),
        ("general.alignment = 0", Gguf::header(0, 1).kv_u32("general.alignment", 0).pad(64).bytes()),
        ("general.alignment = u32::MAX", {
            let mut g = Gguf::header(1, 1);
            g.kv_u32("general.alignment", u32::MAX).tensor("t", &[4], 0, 0).pad(64);
            g.bytes()
        }),
        ("n_dims = 1000", Gguf::header(1, 0).str("t").u32(1000).pad(8 * 1000 + 64).bytes()),
        (
            "dims whose product overflows u64",
            Gguf::header(1, 0).tensor("t", &[1 << 32, 1 << 32, 1 << 32, 1 << 32], 0, 0).pad(64).bytes(),
        ),
        ("byte size overflows u64", Gguf::header(1, 0).tensor("t", &[1 << 62, 8], 0, 0).pad(64).bytes()),
        ("tensor offset beyond the file", Gguf::header(1, 0).tensor("t", &[4], 0, 1 << 40).pad(64).bytes()),
        ("tensor offset u64::MAX", Gguf::header(1, 0).tensor("t", &[4], 0, u64::MAX).pad(64).bytes()),
        ("tensor of 2^40 f32 in a tiny file", Gguf::header(1, 0).tensor("t", &[1 << 40], 0, 0).pad(64).bytes()),
        ("unknown tensor type", Gguf::header(1, 0).tensor("t", &[4], 999, 0).pad(64).bytes()),
        ("Q4_0 row not made of whole blocks", Gguf::header(1, 0).tensor("t", &[33], 2, 0).pad(1024).bytes()),
        ("no metadata at all", Gguf::header(0, 0).pad(64).bytes()),
        ("architecture only", Gguf::header(0, 1).kv_str("general.architecture", "llama").pad(64).bytes()),
    ];
    // Arrays nested 10 000 deep (the parser's depth limit must stop it, not the stack).
    let mut nested = Gguf::header(0, 1);
    nested.str("a");
    nested.u32(9);
    for _ in 0..10_000 {
        nested.u32(9).u64(1);
    }
    nested.u32(0).u64(0);
    cases.push(("arrays nested 10 000 deep", nested.bytes()));
    // A plausible llama header with absurd hyper-parameters and no tensors.
    let mut absurd = Gguf::header(1, 7);
    absurd
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.embedding_length", u32::MAX)
        .kv_u32("llama.attention.head_count", 1)
        .kv_u32("llama.feed_forward_length", u32::MAX)
        .kv_u32("llama.block_count", u32::MAX)
        .kv_u32("llama.context_length", u32::MAX)
        .kv_u32("llama.attention.key_length", u32::MAX - 1)
        // (no rows: an empty tensor passes the table check, so the hyper-parameters are read)
        .tensor("token_embd.weight", &[u32::MAX as u64, 0], 0, 0)
        .pad(64);
    cases.push(("absurd llama hyper-parameters", absurd.bytes()));
    let mut tally = Tally::default();
    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let r = run(|| Engine::load(&path, &EngineOptions::default()));
        tally.check(what, &r, Some(&path), false);
        if r.elapsed > Duration::from_secs(1) {
            tally.fail(what, format!("took {:?}", r.elapsed));
        }
        if r.peak > bytes.len() + allowance() {
            tally.fail(what, format!("held {} bytes for a {}-byte file", r.peak, bytes.len()));
        }
    }
    tally.assert_clean("crafted GGUF headers");
}

/// The real fixture pair with one 4-byte metadata value replaced (a u32 hyper-parameter, or the
/// last f32 of the image mean or deviation): absurd values must be refused, naming the file,
/// before anything of their size is made.
#[test]
fn absurd_gguf_hyper_parameters_are_typed_errors() {
    let (_dir, text, mmproj) = gguf_copy("gguf-absurd");
    let text_layout = gguf_layout(&std::fs::read(&text).unwrap());
    let mm_layout = gguf_layout(&std::fs::read(&mmproj).unwrap());
    let mut tally = Tally::default();
    let cases: &[(&Path, &GgufLayout, &str, &[u32])] = &[
        (&text, &text_layout, "llama.block_count", &[u32::MAX, 1 << 20]),
        (&text, &text_layout, "llama.context_length", &[u32::MAX, 0]),
        (&text, &text_layout, "llama.embedding_length", &[u32::MAX, 0, 31]),
        (&text, &text_layout, "llama.feed_forward_length", &[u32::MAX, 0]),
        (&text, &text_layout, "llama.attention.head_count", &[u32::MAX, 0, 3]),
        (&text, &text_layout, "llama.attention.head_count_kv", &[u32::MAX, 0, 3]),
        (&text, &text_layout, "llama.attention.key_length", &[u32::MAX, 0, 15]),
        (&text, &text_layout, "tokenizer.ggml.eos_token_id", &[u32::MAX]),
        (&mmproj, &mm_layout, "clip.vision.image_size", &[u32::MAX, 0, 1 << 20]),
        (&mmproj, &mm_layout, "clip.vision.patch_size", &[u32::MAX, 0, 1]),
        (&mmproj, &mm_layout, "clip.vision.embedding_length", &[u32::MAX, 0]),
        (&mmproj, &mm_layout, "clip.vision.feed_forward_length", &[u32::MAX, 0]),
        (&mmproj, &mm_layout, "clip.vision.block_count", &[u32::MAX, 1 << 20]),
        (&mmproj, &mm_layout, "clip.vision.attention.head_count", &[u32::MAX, 0, 3]),
        (&mmproj, &mm_layout, "clip.vision.projector.scale_factor", &[u32::MAX, 0, 3]),
        (&mmproj, &mm_layout, "clip.vision.preproc_image_size", &[u32::MAX, 0, 1 << 20]),
        (&mmproj, &mm_layout, "clip.vision.projection_dim", &[u32::MAX, 0]),
        // The last of three f32 values: 0.0, +inf, NaN.
        (&mmproj, &mm_layout, "clip.vision.image_std", &[0, 0x7f80_0000, 0x7fc0_0000]),
        (&mmproj, &mm_layout, "clip.vision.image_mean", &[0x7f80_0000, 0x7fc0_0000]),
    ];
    for &(path, layout, key, values) in cases {
        let good = std::fs::read(path).unwrap();
        let (_, end) = layout.kv(key);
        for &v in values {
            let mut bytes = good.clone();
            bytes[end as usize - 4..end as usize].copy_from_slice(&v.to_le_bytes());
            std::fs::write(path, &bytes).unwrap();
            let r = run(|| load_gguf(&text, &mmproj));
            let case = format!("{key} = {v}");
            // A wrong but harmless value (an end-of-turn id outside the vocabulary) may load.
            tally.check(&case, &r, Some(path), key == "tokenizer.ggml.eos_token_id");
            if r.elapsed > Duration::from_secs(2) {
                tally.fail(&case, format!("took {:?}", r.elapsed));
            }
        }
        std::fs::write(path, &good).unwrap();
    }
    tally.assert_clean("absurd GGUF hyper-parameters");
}

// ---------------------------------------------------------------------------------------------
// JSON files of a checkpoint folder.

/// A checkpoint copy whose `file` is replaced by `contents`, loaded.
fn with_file(dir: &TempDir, file: &str, contents: &[u8]) -> Run {
    let path = dir.path().join(file);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, contents).unwrap();
    let r = run(|| load_dir(dir.path()));
    std::fs::write(&path, good).unwrap();
    r
}

/// `config.json` with `edit` applied to its JSON.
fn edited_config(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("models/tiny-smolvlm2/config.json")).unwrap()).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn edited_preprocessor(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("models/tiny-smolvlm2/preprocessor_config.json")).unwrap())
            .unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// Named file contents: (what, bytes).
type Cases = Vec<(String, Vec<u8>)>;

/// Garbage every JSON file must refuse: (what, contents).
fn garbage(original: &[u8]) -> Cases {
    let json = original.trim_ascii_end();
    vec![
        ("empty".into(), vec![]),
        ("truncated".into(), json[..json.len() / 2].to_vec()),
        ("one byte short".into(), json[..json.len() - 1].to_vec()),
        ("not JSON".into(), b"this is not JSON \x00\xff".to_vec()),
        ("not UTF-8".into(), [b"{\"a\": \"".as_slice(), &[0xff, 0xfe], b"\"}"].concat()),
        ("an array".into(), b"[1, 2, 3]".to_vec()),
        ("null".into(), b"null".to_vec()),
        ("10 000 nested arrays".into(), format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        ("10 000 nested objects".into(), format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes()),
    ]
}

#[test]
fn malformed_config_json_is_a_typed_error() {
    let dir = checkpoint_copy("config");
    let config = dir.path().join("config.json");
    let original = std::fs::read(&config).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = garbage(&original);
    // 50 MB of whitespace: read (proportional to the file), then refused.
    cases.push(("50 MB of whitespace".into(), vec![b' '; 50 << 20]));
    let text = |k: &'static str, v: serde_json::Value| edited_config(move |c| c["text_config"][k] = v);
    let vision = |k: &'static str, v: serde_json::Value| edited_config(move |c| c["vision_config"][k] = v);
    use serde_json::json;
    let big = 1u64 << 40;
    for (what, bytes) in [
        ("num_hidden_layers \"x\"", text("num_hidden_layers", json!("x"))),
        ("num_hidden_layers -1", text("num_hidden_layers", json!(-1))),
        ("num_hidden_layers 1e30", text("num_hidden_layers", json!(1e30))),
        ("num_hidden_layers 2^40", text("num_hidden_layers", json!(big))),
        ("num_hidden_layers u64::MAX", text("num_hidden_layers", json!(u64::MAX))),
        ("hidden_size 2^40", text("hidden_size", json!(big))),
        ("hidden_size u64::MAX", text("hidden_size", json!(u64::MAX))),
        ("hidden_size 0", text("hidden_size", json!(0))),
        ("intermediate_size 2^40", text("intermediate_size", json!(big))),
        ("vocab_size 2^40", text("vocab_size", json!(big))),
        ("num_attention_heads 2^40", text("num_attention_heads", json!(big))),
        ("num_key_value_heads 0", text("num_key_value_heads", json!(0))),
        ("head_dim 2^40", text("head_dim", json!(big))),
        ("max_position_embeddings 2^60", text("max_position_embeddings", json!(1u64 << 60))),
        ("rope_theta \"x\"", text("rope_theta", json!("x"))),
        ("rope_theta -1", text("rope_theta", json!(-1.0))),
        ("rms_norm_eps -1", text("rms_norm_eps", json!(-1.0))),
        ("text_config a string", edited_config(|c| c["text_config"] = json!("x"))),
        ("vision hidden_size 2^40", vision("hidden_size", json!(big))),
        ("vision hidden_size -3", vision("hidden_size", json!(-3))),
        ("vision intermediate_size 2^40", vision("intermediate_size", json!(big))),
        ("vision num_hidden_layers 2^40", vision("num_hidden_layers", json!(big))),
        ("vision image_size 2^40", vision("image_size", json!(big))),
        (
            "vision image_size 2^40, patch_size 1",
            edited_config(|c| {
                c["vision_config"]["image_size"] = json!(big);
                c["vision_config"]["patch_size"] = json!(1);
            }),
        ),
        ("vision patch_size 0", vision("patch_size", json!(0))),
        ("vision patch_size 1e30", vision("patch_size", json!(1e30))),
        ("vision num_attention_heads 0", vision("num_attention_heads", json!(0))),
        ("scale_factor 2^40", edited_config(|c| c["scale_factor"] = json!(big))),
        ("scale_factor 0", edited_config(|c| c["scale_factor"] = json!(0))),
        ("image_token_id 2^32 + its value", edited_config(|c| c["image_token_id"] = json!((1u64 << 32) + 49190))),
        ("image_token_id -1", edited_config(|c| c["image_token_id"] = json!(-1))),
        ("model_type 7", edited_config(|c| c["model_type"] = json!(7))),
        ("no vision_config", edited_config(|c| c.as_object_mut().unwrap().remove("vision_config").map(drop).unwrap())),
    ] {
        cases.push((what.to_string(), bytes));
    }
    let mut tally = Tally::default();
    for (what, bytes) in cases {
        let r = with_file(&dir, "config.json", &bytes);
        let case = format!("config.json {what}");
        tally.check(&case, &r, Some(&config), false);
        if bytes.len() < 1 << 20 && r.elapsed > Duration::from_secs(1) {
            tally.fail(&case, format!("took {:?}", r.elapsed));
        }
        // Refused before anything of an absurd size is made: what is held is the file and its
        // parsed JSON.
        if r.peak > 8 * bytes.len() + allowance() {
            tally.fail(&case, format!("held {} bytes for a {}-byte file", r.peak, bytes.len()));
        }
    }
    tally.assert_clean("config.json");
}

#[test]
fn malformed_preprocessor_tokenizer_and_other_json_files_are_typed_errors() {
    let dir = checkpoint_copy("json");
    use serde_json::json;
    let mut tally = Tally::default();
    let big = 1u64 << 40;
    let mut files: Vec<(&str, Cases)> = vec![];
    for file in [
        "preprocessor_config.json",
        "tokenizer.json",
        "chat_template.json",
        "processor_config.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        files.push((file, garbage(&std::fs::read(dir.path().join(file)).unwrap())));
    }
    let pre = |k: &'static str, v: serde_json::Value| edited_preprocessor(move |c| c[k] = v);
    files.push((
        "preprocessor_config.json",
        vec![
            ("size.longest_edge 2^40", pre("size", json!({"longest_edge": big}))),
            ("size.longest_edge 2^32 + 128", pre("size", json!({"longest_edge": (1u64 << 32) + 128}))),
            ("size.longest_edge 10^6", pre("size", json!({"longest_edge": 1_000_000}))),
            ("size.longest_edge \"x\"", pre("size", json!({"longest_edge": "x"}))),
            ("max_image_size.longest_edge 2^32 + 32", pre("max_image_size", json!({"longest_edge": (1u64 << 32) + 32}))),
            ("image_mean of 2", pre("image_mean", json!([0.5, 0.5]))),
            ("image_std [0, 0, 0]", pre("image_std", json!([0.0, 0.0, 0.0]))),
            ("image_std strings", pre("image_std", json!(["a", "b", "c"]))),
            ("video_sampling.fps -1", pre("video_sampling", json!({"fps": -1, "max_frames": 64}))),
            ("video_sampling.max_frames \"x\"", pre("video_sampling", json!({"fps": 1, "max_frames": "x"}))),
        ]
        .into_iter()
        .map(|(w, b)| (w.to_string(), b))
        .collect(),
    ));
    files.push((
        "tokenizer.json",
        vec![
            ("an empty object".to_string(), b"{}".to_vec()),
            ("a model of the wrong type".to_string(), br#"{"model": {"type": "BPE", "vocab": 7}}"#.to_vec()),
        ],
    ));
    files.push((
        "chat_template.json",
        vec![
            ("no chat_template".to_string(), b"{}".to_vec()),
            ("chat_template a number".to_string(), br#"{"chat_template": 7}"#.to_vec()),
            ("unclosed block".to_string(), br#"{"chat_template": "{% for m in messages %}"}"#.to_vec()),
            ("syntax error".to_string(), br#"{"chat_template": "{{ ) }}"}"#.to_vec()),
            ("10 000 nested ifs".to_string(), {
                let t = format!("{}x{}", "{% if true %}".repeat(10_000), "{% endif %}".repeat(10_000));
                serde_json::to_vec(&json!({ "chat_template": t })).unwrap()
            }),
        ],
    ));
    files.push((
        "processor_config.json",
        vec![("image_seq_len 2^40".to_string(), serde_json::to_vec(&json!({"image_seq_len": big})).unwrap())],
    ));
    files.push((
        "generation_config.json",
        vec![
            ("eos_token_id \"x\"".to_string(), br#"{"eos_token_id": "x"}"#.to_vec()),
            ("eos_token_id 2^40".to_string(), serde_json::to_vec(&json!({"eos_token_id": [big]})).unwrap()),
        ],
    ));
    // Files a checkpoint may lack (processor_config.json, generation_config.json) may also be
    // garbage only as an error; tokenizer_config.json is optional, but a present one is read.
    for (file, cases) in files {
        let path = dir.path().join(file);
        for (what, bytes) in cases {
            let r = with_file(&dir, file, &bytes);
            let case = format!("{file} {what}");
            // A present but empty or garbage file is an error naming it.
            tally.check(&case, &r, Some(&path), false);
            if r.elapsed > Duration::from_secs(2) {
                tally.fail(&case, format!("took {:?}", r.elapsed));
            }
        }
    }
    tally.assert_clean("other JSON files");
}

/// A chat template that runs away only when rendered: loading compiles it; rendering stops at
/// minijinja's own limits (ranges of more than 100 000 items, recursion depth) with a typed
/// error. (Templates whose output is merely huge, e.g. nested loops, are not bounded: minijinja's
/// `fuel` feature is off; see the report of issue 19.)
#[test]
fn runaway_chat_templates_fail_when_rendered() {
    let dir = checkpoint_copy("template");
    let path = dir.path().join("chat_template.json");
    let mut tally = Tally::default();
    for (what, template) in [
        ("range(10**9)", "{% for i in range(10**9) %}x{% endfor %}"),
        ("recursive macro", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"),
        ("string repeated 10^12 times", "{{ 'x' * 1000000000000 }}"),
        ("raise_exception", "{{ raise_exception('no') }}"),
    ] {
        std::fs::write(&path, serde_json::to_vec(&serde_json::json!({ "chat_template": template })).unwrap()).unwrap();
        let engine = Arc::new(load_dir(dir.path()).unwrap_or_else(|e| panic!("{what}: {e}")));
        let start = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.prompt(&[Message::text(Role::User, "hi")])));
        let case = format!("chat template {what}");
        tally.cases += 1;
        match r {
            Err(_) => tally.fail(&case, "PANIC"),
            Ok(Ok((text, _))) => tally.fail(&case, format!("rendered {} bytes", text.len())),
            Ok(Err(Error::InvalidArgument(_))) => tally.errors += 1,
            Ok(Err(e)) => tally.fail(&case, format!("wrong error variant: {e:?}")),
        }
        if start.elapsed() > Duration::from_secs(2) {
            tally.fail(&case, format!("took {:?}", start.elapsed()));
        }
    }
    tally.assert_clean("runaway chat templates");
}

// ---------------------------------------------------------------------------------------------
// Each limit, at its value (accepted by the check) and one past it (refused, naming the limit).

/// The reason of a `ModelFile` error, or why there is none.
fn reason(r: &Run) -> String {
    match &r.outcome {
        Outcome::Failed(Error::ModelFile { reason, .. }) => reason.clone(),
        Outcome::Failed(e) => format!("not a model-file error: {e}"),
        Outcome::Loaded => "loaded".into(),
        Outcome::Panicked(m) => format!("PANIC {m}"),
    }
}

#[test]
fn config_limits_hold_at_their_values() {
    use smolvlm::config::{MAX_CONTEXT, MAX_IMAGE_SIDE, MAX_LAYERS, MAX_VOCAB, MAX_WIDTH};
    let dir = checkpoint_copy("config-limits");
    small_tokenizer(dir.path());
    let config = dir.path().join("config.json");
    let pre = dir.path().join("preprocessor_config.json");
    let text = |k: &'static str, v: usize| edited_config(move |c| c["text_config"][k] = v.into());
    let vision = |k: &'static str, v: usize| edited_config(move |c| c["vision_config"][k] = v.into());
    let mut tally = Tally::default();
    for (what, at_limit, past_limit) in [
        ("hidden_size", text("hidden_size", MAX_WIDTH), text("hidden_size", MAX_WIDTH + 1)),
        ("intermediate_size", text("intermediate_size", MAX_WIDTH), text("intermediate_size", MAX_WIDTH + 1)),
        ("head_dim", text("head_dim", MAX_WIDTH), text("head_dim", MAX_WIDTH + 2)),
        ("num_hidden_layers", text("num_hidden_layers", MAX_LAYERS), text("num_hidden_layers", MAX_LAYERS + 1)),
        ("vocab_size", text("vocab_size", MAX_VOCAB), text("vocab_size", MAX_VOCAB + 1)),
        ("vision hidden_size", vision("hidden_size", MAX_WIDTH), vision("hidden_size", MAX_WIDTH + 2)),
        ("vision num_hidden_layers", vision("num_hidden_layers", MAX_LAYERS), vision("num_hidden_layers", MAX_LAYERS + 1)),
    ] {
        // At the limit the configuration passes and the weights file is what disagrees.
        let r = with_file(&dir, "config.json", &at_limit);
        tally.check(&format!("{what} at its limit"), &r, Some(&dir.path().join("model.safetensors")), false);
        let r = with_file(&dir, "config.json", &past_limit);
        tally.check(&format!("{what} past its limit"), &r, Some(&config), false);
        if !reason(&r).contains("the most this SDK accepts") {
            tally.fail(what, format!("past the limit, not refused by it: {}", reason(&r)));
        }
    }
    // The context is not checked against the weights: at the limit the configuration passes
    // (the model loads, or the memory estimate refuses a context that long), past it not.
    let r = with_file(&dir, "config.json", &text("max_position_embeddings", MAX_CONTEXT));
    tally.check("max_position_embeddings at its limit", &r, None, true);
    if reason(&r).contains("the most this SDK accepts") {
        tally.fail("max_position_embeddings at its limit", reason(&r));
    }
    let r = with_file(&dir, "config.json", &text("max_position_embeddings", MAX_CONTEXT + 1));
    tally.check("max_position_embeddings past its limit", &r, Some(&config), false);
    if !reason(&r).contains("the most this SDK accepts") {
        tally.fail("max_position_embeddings past its limit", reason(&r));
    }
    // Image sides: the preprocessor's longest edge loads at the limit, not past it.
    let edge = |v: usize| edited_preprocessor(move |c| c["size"] = serde_json::json!({ "longest_edge": v }));
    let r = with_file(&dir, "preprocessor_config.json", &edge(MAX_IMAGE_SIDE));
    tally.check("size.longest_edge at its limit", &r, None, true);
    if !matches!(r.outcome, Outcome::Loaded) {
        tally.fail("size.longest_edge at its limit", reason(&r));
    }
    let r = with_file(&dir, "preprocessor_config.json", &edge(MAX_IMAGE_SIDE + 1));
    tally.check("size.longest_edge past its limit", &r, Some(&pre), false);
    let r = with_file(&dir, "config.json", &vision("image_size", MAX_IMAGE_SIDE + 8));
    tally.check("vision image_size past its limit", &r, Some(&config), false);
    tally.assert_clean("config limits");
}

#[test]
fn file_size_limits_and_special_files() {
    use smolvlm::config::MAX_JSON_BYTES;
    let dir = checkpoint_copy("sizes");
    let mut tally = Tally::default();
    let sparse = |file: &str, len: u64| -> Run {
        let path = dir.path().join(file);
        let good = std::fs::read(&path).unwrap();
        std::fs::File::create(&path).unwrap().set_len(len).unwrap();
        let r = run(|| load_dir(dir.path()));
        std::fs::write(&path, good).unwrap();
        r
    };
    // At the limit a JSON file is read (and refused as JSON: it is all zero bytes); past it, it
    // is refused unread.
    let config = dir.path().join("config.json");
    let r = sparse("config.json", MAX_JSON_BYTES);
    tally.check("config.json of MAX_JSON_BYTES zeros", &r, Some(&config), false);
    if !reason(&r).contains("malformed JSON") {
        tally.fail("config.json at the limit", reason(&r));
    }
    let r = sparse("config.json", MAX_JSON_BYTES + 1);
    tally.check("config.json past MAX_JSON_BYTES", &r, Some(&config), false);
    if !reason(&r).contains("larger than") || r.peak > allowance() {
        tally.fail("config.json past the limit", format!("{} (held {} bytes)", reason(&r), r.peak));
    }
    // `checkpoint::MAX_TOKENIZER_BYTES` (256 MiB; the module is private).
    let tokenizer = dir.path().join("tokenizer.json");
    let r = sparse("tokenizer.json", (256 << 20) + 1);
    tally.check("tokenizer.json past 256 MiB", &r, Some(&tokenizer), false);
    if !reason(&r).contains("larger than") || r.peak > allowance() {
        tally.fail("tokenizer.json past the limit", format!("{} (held {} bytes)", reason(&r), r.peak));
    }
    // Not regular files: a folder, and (on Unix) a device and a pipe, whose reads would never
    // end or never start.
    for file in ["config.json", "preprocessor_config.json", "tokenizer.json", "chat_template.json", "model.safetensors"] {
        let path = dir.path().join(file);
        let good = std::fs::read(&path).unwrap();
        type Make = Box<dyn Fn(&Path)>;
        let mut specials: Vec<(&str, Make)> = vec![("a folder", Box::new(|p| std::fs::create_dir(p).unwrap()))];
        #[cfg(unix)]
        {
            specials.push(("/dev/zero", Box::new(|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap())));
            specials.push((
                "a pipe",
                Box::new(|p| {
                    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
                }),
            ));
        }
        for (what, make) in specials {
            std::fs::remove_file(&path).unwrap();
            make(&path);
            let r = run(|| load_dir(dir.path()));
            let case = format!("{file} is {what}");
            tally.check(&case, &r, Some(&path), false);
            if r.elapsed > Duration::from_secs(2) {
                tally.fail(&case, format!("took {:?}", r.elapsed));
            }
            let _ = std::fs::remove_dir(&path);
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, &good).unwrap();
        }
    }
    // Shards: only plain file names of the folder.
    let index = dir.path().join("model.safetensors.index.json");
    std::fs::rename(dir.path().join("model.safetensors"), dir.path().join("model-00001-of-00001.safetensors")).unwrap();
    for shard in ["../model-00001-of-00001.safetensors", "/etc/passwd", "sub/model.safetensors", ".", ""] {
        let v = serde_json::json!({ "weight_map": { "lm_head.weight": shard } });
        std::fs::write(&index, serde_json::to_vec(&v).unwrap()).unwrap();
        let r = run(|| load_dir(dir.path()));
        tally.check(&format!("shard named {shard:?}"), &r, Some(&index), false);
    }
    tally.assert_clean("file sizes and special files");
}

#[test]
fn gguf_limits_hold_at_their_values() {
    use smolvlm::gguf::{MAX_GGUF_ARRAY_DEPTH, MAX_GGUF_METADATA_VALUES, MAX_GGUF_TENSORS};
    let dir = TempDir::new("gguf-limits");
    let path = dir.path().join("limits.gguf");
    let mut tally = Tally::default();
    // (what, file, refused by the limit?)
    let mut cases: Vec<(String, Vec<u8>, bool)> = vec![];
    // Tensors: a count past the limit is refused from the header (the file is big enough for
    // the count's minimal entries, so only the limit stops it).
    let n = MAX_GGUF_TENSORS + 1;
    cases.push((format!("{n} tensors"), Gguf::header(n, 0).pad(n as usize * 32).bytes(), true));
    // Metadata values: a u8 array takes one byte per element on disk.
    let u8_array = |elements: u64| {
        let mut g = Gguf::header(0, 1);
        g.str("a").u32(9).u32(0).u64(elements).pad(elements as usize);
        g.bytes()
    };
    cases.push(("an array at the value limit".into(), u8_array(MAX_GGUF_METADATA_VALUES - 1), false));
    cases.push(("an array past the value limit".into(), u8_array(MAX_GGUF_METADATA_VALUES), true));
    // Nesting: `depth` arrays of one array around an empty u8 array (`depth + 1` arrays in all).
    let nested = |depth: usize| {
        let mut g = Gguf::header(0, 1);
        g.str("a").u32(9);
        for _ in 0..depth {
            g.u32(9).u64(1);
        }
        g.u32(0).u64(0);
        g.bytes()
    };
    cases.push(("arrays nested at the depth limit".into(), nested(MAX_GGUF_ARRAY_DEPTH - 1), false));
    cases.push(("arrays nested past the depth limit".into(), nested(MAX_GGUF_ARRAY_DEPTH), true));
    // Alignment: a power of two, or refused (candle divides by it).
    for (a, refused) in [(0u32, true), (3, true), (u32::MAX, true), (1, false), (64, false)] {
        cases.push((
            format!("general.alignment {a}"),
            Gguf::header(0, 1).kv_u32("general.alignment", a).pad(64).bytes(),
            refused,
        ));
    }
    for (what, bytes, refused) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let r = run(|| Engine::load(&path, &EngineOptions::default()));
        tally.check(&what, &r, Some(&path), false);
        // Accepted by the limit, such a file still has no model in it.
        let by_limit = ["more than", "nested", "power of two"].iter().any(|k| reason(&r).contains(k));
        if by_limit != refused {
            tally.fail(&what, format!("refused by the limit: {by_limit}, expected {refused}: {}", reason(&r)));
        }
        if refused && r.peak > allowance() {
            tally.fail(&what, format!("held {} bytes before refusing", r.peak));
        }
        if r.elapsed > Duration::from_secs(1) {
            tally.fail(&what, format!("took {:?}", r.elapsed));
        }
    }
    tally.assert_clean("GGUF limits");
}
