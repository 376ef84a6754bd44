//! The fuzz targets' regression inputs (issue 19, `FUZZING.md`): every file under
//! `tests/fixtures/fuzz/<target>/` (inputs that once crashed a target, plus a few seeds) goes
//! through the same entry point as `cargo fuzz run <target>` (`smolvlm::fuzz_targets`), on the
//! stable toolchain and without sanitizers. Each must return within [`TIME_LIMIT`] without a
//! panic, even one the SDK catches itself (a panic hook counts them per thread, as libFuzzer's
//! hook aborts on them).

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

#[test]
fn every_regression_input_returns_without_a_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.with(|p| p.set(p.get() + 1));
        default_hook(info);
    }));
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
