//! The fuzz targets' regression inputs (issue 19, `FUZZING.md`): every file under
//! `tests/fixtures/fuzz/<target>/` (inputs that once crashed a target, plus a few seeds) goes
//! through the same entry point as `cargo fuzz run <target>` (`smolvlm::fuzz_targets`), on the
//! stable toolchain and without sanitizers. Each must return within [`TIME_LIMIT`] without a
//! panic, even one the SDK catches itself (a panic hook counts them per thread, as libFuzzer's
//! hook aborts on them).
//!
//! It is also CI's fuzz smoke (a libFuzzer build takes CI longer than its budget, FUZZING.md):
//! a fixed number of seeded random mutations of each target's seed corpus (`fuzz/seeds.py`: the
//! fixtures, including the JPEG corpus, and these inputs) go through every target under the
//! same rules.

use smolvlm::fuzz_targets::TARGETS;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest one input may take here (a debug build with optimised dependencies); libFuzzer's
/// `-timeout` in tools/fuzz.sh is 10 s on an optimised, instrumented build.
const TIME_LIMIT: Duration = Duration::from_secs(60);

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fuzz").join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => vec![],
    };
    files.sort();
    files
}

/// Runs `entry` on `data` on a thread of its own: the number of panics it raised (caught or
/// not) and how long it took, or None when it is still running after [`TIME_LIMIT`].
fn run(entry: fn(&[u8]), data: Vec<u8>) -> Option<(usize, Duration)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let start = Instant::now();
        let unwound = std::panic::catch_unwind(|| entry(&data)).is_err();
        let panics = PANICS.with(Cell::get).max(unwound as usize);
        let _ = tx.send((panics, start.elapsed()));
    });
    rx.recv_timeout(TIME_LIMIT).ok()
}

/// Counts every panic per thread (once per process, before the default hook prints it).
fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            default_hook(info);
        }));
    });
}

#[test]
fn every_regression_input_returns_without_a_panic() {
    count_panics();
    let mut failures = vec![];
    let mut count = 0;
    for (target, entry) in TARGETS {
        for file in inputs(target) {
            let data = std::fs::read(&file).unwrap();
            count += 1;
            match run(entry, data) {
                Some((0, took)) => eprintln!("{target}: {} ok in {took:.2?}", file.display()),
                Some((n, _)) => failures.push(format!("{target}: {} panicked ({n} panics)", file.display())),
                None => failures.push(format!("{target}: {} still running after {TIME_LIMIT:?}", file.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {count} inputs failed:\n{}", failures.len(), failures.join("\n"));
    assert!(count > 0, "no regression inputs found under tests/fixtures/fuzz/");
}

#[test]
fn every_target_has_inputs() {
    for (target, _) in TARGETS {
        assert!(!inputs(target).is_empty(), "tests/fixtures/fuzz/{target}/ holds no input");
    }
}

/// Mutations per target in [`mutated_inputs_return_without_a_panic`]: 10 to 25 s each on the
/// development machine (the model-building targets cost the most per input), about 2.5 min in all.
const MUTATIONS: [(&str, usize); 8] = [
    ("image_decode", 20_000),
    ("camera_frame", 50_000),
    ("gguf", 800),
    ("safetensors", 6_000),
    ("configs", 20_000),
    ("chat_template", 4_000),
    ("messages", 60_000),
    ("tokenizer", 20_000),
];

/// One random edit of `data`, as a mutating fuzzer makes them: flipped bits, a byte set to a
/// boundary value, a cut, inserted or repeated bytes, or a splice with `other`.
fn mutate(rng: &mut fastrand::Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.usize(..4) {
        let at = rng.usize(..=d.len());
        match rng.u8(..6) {
            0 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] ^= 1 << rng.u8(..8);
            }
            1 if !d.is_empty() => {
                let i = at.min(d.len() - 1);
                d[i] = [0, 1, 0x7f, 0x80, 0xfe, 0xff][rng.usize(..6)];
            }
            2 => d.truncate(at),
            3 => {
                let n = rng.usize(1..=16);
                d.splice(at..at, std::iter::repeat_with(|| rng.u8(..)).take(n));
            }
            4 if !d.is_empty() => {
                let start = rng.usize(..d.len());
                let end = (start + rng.usize(1..=64)).min(d.len());
                let chunk = d[start..end].to_vec();
                d.splice(at..at, chunk);
            }
            _ if !other.is_empty() => {
                let from = rng.usize(..other.len());
                d.truncate(at);
                d.extend_from_slice(&other[from..]);
            }
            _ => {}
        }
    }
    d
}

/// The fuzz targets' seed corpora as `fuzz/seeds.py` writes them (standard-library Python:
/// the fixtures, cut-down models, the regression inputs), in a scratch folder.
fn seed_corpora() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smolvlm-fuzz-seeds-{}", std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds.py");
    let status = std::process::Command::new("python3").arg(&script).arg(&dir).stdout(std::process::Stdio::null()).status();
    assert!(status.as_ref().is_ok_and(|s| s.success()), "python3 {} failed: {status:?}", script.display());
    dir
}

#[test]
fn mutated_inputs_return_without_a_panic() {
    count_panics();
    let corpora = seed_corpora();
    let mut failures = vec![];
    for (target, entry) in TARGETS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpora.join(target)).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let n = MUTATIONS.iter().find(|(t, _)| *t == target).map_or(0, |(_, n)| *n);
        assert!(n > 0 && !seeds.is_empty(), "{target}: no mutations or no seeds");
        let mut rng = fastrand::Rng::with_seed(target.bytes().fold(19u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
        let start = Instant::now();
        for i in 0..n {
            let (a, b) = (rng.usize(..seeds.len()), rng.usize(..seeds.len()));
            let input = mutate(&mut rng, &seeds[a], &seeds[b]);
            match run(entry, input.clone()) {
                Some((0, _)) => {}
                outcome => {
                    let saved = std::env::temp_dir().join(format!("smolvlm-fuzz-smoke-{target}-{i}"));
                    let _ = std::fs::write(&saved, &input);
                    let what = if outcome.is_some() { "panicked" } else { "still running" };
                    failures.push(format!("{target}: mutation {i} {what} (input saved as {})", saved.display()));
                }
            }
        }
        eprintln!("{target}: {n} mutations of {} seeds in {:.1?}", seeds.len(), start.elapsed());
    }
    let _ = std::fs::remove_dir_all(&corpora);
    assert!(failures.is_empty(), "{} mutated inputs failed:\n{}", failures.len(), failures.join("\n"));
}
