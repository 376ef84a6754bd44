//! Differential check of the JPEG decoder against Pillow (issue 19) on a random corpus from
//! `tools/make_jpeg_corpus.py`: baseline and progressive, restart intervals, 4:4:4 / 4:2:2 /
//! 4:2:0 and other layouts, grey, CMYK and YCCK, Huffman and arithmetic coding (`jpegtran
//! -arithmetic`), every EXIF orientation, cut and bit-flipped files. Each file decodes to exactly Pillow's RGB bytes (after `exif_transpose`), or fails with
//! `InvalidImage` where Pillow fails, or where Pillow decodes an image larger than our limits
//! (`MAX_SIDE`, `MAX_PIXELS`: a flipped bit in a header can declare 16 000 px).
//!
//! The committed corpus is `tests/fixtures/jpeg/`; `SMOLVLM_JPEG_CORPUS=DIR` checks another one
//! (a bigger run: see the script's docstring).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};
use smolvlm::processor::image::{MAX_PIXELS, MAX_SIDE};
use smolvlm::processor::load_image;
use smolvlm::Error;

fn corpus() -> PathBuf {
    match std::env::var_os("SMOLVLM_JPEG_CORPUS").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/jpeg"),
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The corpus's feature a file counts toward in the summary.
fn kind(e: &Value) -> String {
    let mut k = format!("{} {}", e["encoder"].as_str().unwrap_or("?"), e["mode"].as_str().unwrap_or("?"));
    if let Some(s) = e["sampling"].as_str() {
        k += &format!(" {s}");
    }
    if e["progressive"].as_bool() == Some(true) {
        k += " progressive";
    }
    k
}

#[test]
fn jpeg_decoder_matches_pillow_on_the_corpus() {
    let dir = corpus();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("manifest.json")).unwrap_or_else(|e| panic!("{}: {e}", dir.display())),
    )
    .expect("manifest.json");
    let files = manifest["files"].as_array().expect("files");
    let mut failures = Vec::new();
    // kind -> (decoded equal, refused by both)
    let mut summary: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut over_limits = 0;
    for e in files {
        let file = e["file"].as_str().unwrap();
        let what = format!("{file} ({}, orientation {}, damage {})", kind(e), e["orientation"], e["damage"]);
        let got = load_image(&dir.join(file));
        let row = summary.entry(kind(e)).or_default();
        match (e.get("error"), got) {
            (Some(_), Err(Error::InvalidImage(_))) => row.1 += 1,
            (Some(err), Err(other)) => failures.push(format!("{what}: Pillow: {err}; we fail differently: {other}")),
            (Some(err), Ok(img)) => failures.push(format!("{what}: Pillow: {err}; we decode {}x{}", img.width, img.height)),
            (None, Err(err)) => {
                let (w, h) = (e["width"].as_u64().unwrap(), e["height"].as_u64().unwrap());
                if (w.max(h) > MAX_SIDE as u64 || w * h > MAX_PIXELS) && matches!(err, Error::InvalidImage(_)) {
                    over_limits += 1;
                } else {
                    failures.push(format!("{what}: Pillow decodes it; we fail: {err}"));
                }
            }
            (None, Ok(img)) => {
                let want = (e["width"].as_u64().unwrap(), e["height"].as_u64().unwrap());
                if (img.width as u64, img.height as u64) != want {
                    failures.push(format!("{what}: {}x{}, Pillow {}x{}", img.width, img.height, want.0, want.1));
                } else if hex(&img.data) != e["sha256"].as_str().unwrap() {
                    failures.push(format!("{what}: pixels differ from Pillow's"));
                } else {
                    row.0 += 1;
                }
            }
        }
    }
    println!("{} files from {}:", files.len(), dir.display());
    println!("{:<36} {:>8} {:>8}", "kind", "equal", "refused");
    for (k, (ok, refused)) in &summary {
        println!("{k:<36} {ok:>8} {refused:>8}");
    }
    println!("decoded by Pillow, refused by our size limits: {over_limits}");
    assert!(failures.is_empty(), "{} of {} files differ from Pillow:\n{}", failures.len(), files.len(), failures.join("\n"));
}

/// Guards against a cut-down corpus making the check above vacuous: every feature the issue
/// names is there, decoded and (for damage) refused.
#[test]
fn corpus_covers_every_feature() {
    let dir = corpus();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert!(files.len() >= 300, "{} files", files.len());
    let decoded = |f: &dyn Fn(&Value) -> bool| files.iter().filter(|e| e.get("error").is_none() && f(e)).count();
    let s = |e: &Value, k: &str| e[k].as_str().unwrap_or("").to_string();
    for sampling in ["444", "422", "420"] {
        assert!(decoded(&|e| s(e, "sampling") == sampling && e["progressive"] == true) > 0, "{sampling} progressive");
        assert!(decoded(&|e| s(e, "sampling") == sampling && e["progressive"] == false) > 0, "{sampling} baseline");
    }
    for mode in ["L", "CMYK", "YCCK"] {
        assert!(decoded(&|e| s(e, "mode") == mode) > 0, "{mode}");
    }
    assert!(decoded(&|e| !e["restart"].is_null()) > 10, "restart intervals");
    let arith = |e: &Value| s(e, "encoder") == "jpegtran-arith";
    assert!(decoded(&|e| arith(e) && e["progressive"] == false) > 5, "arithmetic-coded baseline (SOF9)");
    assert!(decoded(&|e| arith(e) && e["progressive"] == true) > 5, "arithmetic-coded progressive (SOF10)");
    assert!(decoded(&|e| arith(e) && !e["restart"].is_null()) > 0, "arithmetic-coded with restart intervals");
    assert!(decoded(&|e| arith(e) && !e["damage"].is_null()) > 0, "damaged arithmetic-coded files Pillow decodes");
    for o in 1..=8 {
        assert!(decoded(&|e| e["orientation"] == o) > 0, "orientation {o}");
    }
    let damaged = |word: &str, refused: bool| {
        files.iter().filter(|e| s(e, "damage").contains(word) && e.get("error").is_some() == refused).count()
    };
    assert!(damaged("cut", true) > 10, "cut files Pillow refuses");
    assert!(damaged("EOI", false) > 5, "cut files closed with EOI that Pillow decodes");
    assert!(damaged("flipped", false) > 5, "bit-flipped files Pillow decodes");
}
