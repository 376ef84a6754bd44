//! Golden tests of the image preprocessing against transformers 5.23 + Pillow.
//!
//! The fixtures come from `tools/make_preprocess_fixtures.py` (see its docstring); every case
//! compares a SHA-256 of our output with the reference's, so a single differing byte fails.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use smolvlm::config::PreprocessorConfig;
use smolvlm::processor::preprocess::image_grid;
use smolvlm::processor::{load_image, preprocess, resize_lanczos, RgbImage};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/preprocess")
}

fn cases() -> Value {
    let p = fixtures().join("cases.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("cases.json")
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn load(file: &str) -> RgbImage {
    load_image(&fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn config(c: &Value) -> PreprocessorConfig {
    let triple = |k: &str| -> [f32; 3] {
        let a: Vec<f64> = serde_json::from_value(c[k].clone()).unwrap();
        // numpy: np.array(list_of_python_floats, dtype=float32)
        [a[0] as f32, a[1] as f32, a[2] as f32]
    };
    PreprocessorConfig {
        longest_edge: c["size"]["longest_edge"].as_u64().unwrap() as u32,
        max_image_size: c["max_image_size"]["longest_edge"].as_u64().unwrap() as u32,
        do_image_splitting: c["do_image_splitting"].as_bool().unwrap(),
        do_resize: c["do_resize"].as_bool().unwrap(),
        do_rescale: c["do_rescale"].as_bool().unwrap(),
        rescale_factor: c["rescale_factor"].as_f64().unwrap(),
        do_normalize: c["do_normalize"].as_bool().unwrap(),
        image_mean: triple("image_mean"),
        image_std: triple("image_std"),
        video_sampling: None,
    }
}

#[test]
fn decode_matches_transformers_load_image() {
    let all = cases();
    let mut failures = Vec::new();
    for c in all["decode"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let img = load(file);
        let dims = (img.width as u64, img.height as u64);
        if dims != (u(c, "width"), u(c, "height")) || hex(&img.data) != c["sha256"].as_str().unwrap() {
            failures.push(format!("{file} ({}): got {}x{}", c["pillow_mode"], dims.0, dims.1));
        }
    }
    assert!(failures.is_empty(), "decode mismatches:\n{}", failures.join("\n"));
}

/// JPEG: decoded exactly as Pillow's libjpeg-turbo does for every layout in the fixtures
/// (4:4:4 / 4:2:2 / 4:2:0 / 4:4:0 / 4:1:1 / 3x1 / mixed factors, odd sizes, progressive with and
/// without refinement scans, restart markers, non-interleaved scans, grey, Adobe RGB, CMYK, YCCK,
/// corrupt data); files Pillow refuses are errors.
#[test]
fn jpeg_decode_matches_pillow() {
    let all = cases();
    let mut failures = Vec::new();
    for c in all["jpeg"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let got = load_image(&fixtures().join(file));
        if let Some(err) = c.get("error") {
            match got {
                Err(smolvlm::Error::InvalidImage(_)) => {}
                Err(e) => failures.push(format!("{file}: Pillow fails ({err}), we fail differently: {e}")),
                Ok(img) => failures.push(format!("{file}: Pillow fails ({err}), we decode {}x{}", img.width, img.height)),
            }
            continue;
        }
        match got {
            Ok(img) => {
                let dims = (img.width as u64, img.height as u64);
                if dims != (u(c, "width"), u(c, "height")) || hex(&img.data) != c["sha256"].as_str().unwrap() {
                    failures.push(format!("{file} ({}): got {}x{}", c["pillow_mode"], dims.0, dims.1));
                }
            }
            Err(e) => failures.push(format!("{file}: {e}")),
        }
    }
    assert!(failures.is_empty(), "JPEG decode mismatches:\n{}", failures.join("\n"));
}

#[test]
fn lanczos_matches_pillow() {
    let all = cases();
    let mut failures = Vec::new();
    let mut sources = std::collections::HashMap::new();
    for c in all["resize"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let src = sources.entry(file.to_string()).or_insert_with(|| load(file));
        let crop: Vec<u32> = serde_json::from_value(c["crop"].clone()).unwrap();
        let (x0, y0, cw, chh) = (crop[0] as usize, crop[1] as usize, crop[2] as usize, crop[3] as usize);
        let mut data = Vec::with_capacity(cw * chh * 3);
        for y in y0..y0 + chh {
            let row = (y * src.width as usize + x0) * 3;
            data.extend_from_slice(&src.data[row..row + cw * 3]);
        }
        let img = RgbImage::new(cw as u32, chh as u32, data).unwrap();
        let (w, h) = (u(c, "width") as u32, u(c, "height") as u32);
        let out = resize_lanczos(&img, w, h);
        assert_eq!((out.width, out.height), (w, h));
        if hex(&out.data) != c["sha256"].as_str().unwrap() {
            failures.push(format!("{file} crop {crop:?} -> {w}x{h}"));
        }
    }
    assert!(failures.is_empty(), "LANCZOS mismatches:\n{}", failures.join("\n"));
}

#[test]
fn preprocess_matches_transformers() {
    let all = cases();
    let mut failures = Vec::new();
    for c in all["preprocess"].as_array().unwrap() {
        let file = c["file"].as_str().unwrap();
        let cname = c["config"].as_str().unwrap();
        let cfg = config(&all["configs"][cname]);
        let img = load(file);
        let p = preprocess(&img, &cfg).unwrap_or_else(|e| panic!("{file} / {cname}: {e}"));
        let shape: Vec<usize> = serde_json::from_value(c["shape"].clone()).unwrap();
        let what = format!("{file} / {cname}");
        let grid = (p.rows as u64, p.cols as u64, p.frames as u64);
        assert_eq!(grid, (u(c, "rows"), u(c, "cols"), u(c, "frames")), "{what}");
        assert_eq!(image_grid(img.width, img.height, &cfg), (p.rows, p.cols), "{what}: image_grid");
        assert_eq!(vec![p.frames, 3, p.tile_size, p.tile_size], shape, "{what}");
        assert_eq!(p.pixel_values.len(), shape.iter().product::<usize>(), "{what}");
        let bytes: Vec<u8> = p.pixel_values.iter().flat_map(|v| v.to_le_bytes()).collect();
        if hex(&bytes) != c["sha256"].as_str().unwrap() {
            failures.push(what);
        }
    }
    assert!(failures.is_empty(), "pixel_values mismatches:\n{}", failures.join("\n"));
}

#[test]
fn fixture_set_is_complete() {
    // Guards against an accidentally truncated cases.json making the tests above vacuous.
    let all = cases();
    assert!(all["decode"].as_array().unwrap().len() >= 40);
    assert!(all["jpeg"].as_array().unwrap().len() >= 30);
    assert!(all["resize"].as_array().unwrap().len() >= 30);
    let pre = all["preprocess"].as_array().unwrap();
    assert!(pre.len() >= 20);
    for cfg in ["256m", "2b", "256m_nosplit", "2b_nosplit"] {
        assert!(pre.iter().any(|c| c["config"] == cfg), "no case for {cfg}");
    }
}

#[test]
fn truncated_and_corrupt_files_are_errors() {
    use smolvlm::processor::decode_image;
    use smolvlm::Error;
    // As with Pillow (no LOAD_TRUNCATED_IMAGES): a file cut anywhere before its image data ends is
    // an error. Only PNG (IEND) and GIF (trailer) tolerate a missing tail, in Pillow too.
    let files = [
        ("images/photo_640x480.png", true),
        ("images/g_trns.gif", true),
        ("images/lossy.webp", false),
        ("images/j420.jpg", false),
        ("images/jprogressive.jpg", false),
        ("images/rgb.bmp", false),
    ];
    for (file, tail_optional) in files {
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        assert!(decode_image(&bytes).is_ok(), "{file}");
        let mut cuts = vec![1, 8, 30, bytes.len() / 2, bytes.len() * 9 / 10];
        if !tail_optional {
            cuts.push(bytes.len() - 1);
        }
        for cut in cuts {
            match std::panic::catch_unwind(|| decode_image(&bytes[..cut])) {
                Err(_) => panic!("{file} cut at {cut}: panicked"),
                Ok(Err(Error::InvalidImage(_))) => {}
                Ok(other) => panic!("{file} cut at {cut}: expected InvalidImage, got {other:?}"),
            }
        }
        // Flipped bytes in the middle: an error or some image, but never a panic.
        let mut corrupt = bytes.clone();
        for i in (bytes.len() / 3..bytes.len() / 3 + 64).step_by(3) {
            corrupt[i] ^= 0x5a;
        }
        let r = std::panic::catch_unwind(|| decode_image(&corrupt));
        assert!(r.is_ok(), "{file} corrupted: panicked");
    }
}

#[test]
fn oversized_images_are_rejected_before_decoding() {
    use smolvlm::processor::decode_image;
    use smolvlm::Error;
    // PNG header claiming 100000 x 100000 pixels (a decompression bomb's header) with a tiny IDAT.
    fn png(w: u32, h: u32) -> Vec<u8> {
        fn chunk(t: &[u8], d: &[u8]) -> Vec<u8> {
            let mut v = (d.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(t);
            v.extend_from_slice(d);
            // crc32 over type + data
            let mut crc = 0xffff_ffffu32;
            for &b in t.iter().chain(d) {
                crc ^= b as u32;
                for _ in 0..8 {
                    crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
                }
            }
            v.extend_from_slice(&(!crc).to_be_bytes());
            v
        }
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&h.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
        v.extend(chunk(b"IHDR", &ihdr));
        v.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
        v.extend(chunk(b"IEND", &[]));
        v
    }
    for (w, h) in [(100_000, 100_000), (8193, 16), (16, 8193), (8192, 8192)] {
        match decode_image(&png(w, h)) {
            Err(Error::InvalidImage(m)) => assert!(m.contains("exceeds"), "{w}x{h}: {m}"),
            other => panic!("{w}x{h}: {other:?}"),
        }
    }
    // GIF whose logical screen is 65535 x 65535.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0]);
    gif.extend_from_slice(&[0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
    assert!(matches!(decode_image(&gif), Err(Error::InvalidImage(_))));
    // A zero-size image is an error too.
    assert!(matches!(decode_image(&png(0, 5)), Err(Error::InvalidImage(_))));
}

/// Rough cost of `preprocess` (run with `cargo test --release --test preprocess -- --ignored
/// --nocapture`): a 640x480 photo at SmolVLM-256M settings (-> 2048x1536, 12 tiles + global).
#[test]
#[ignore]
fn preprocess_timing() {
    use std::time::Instant;
    let all = cases();
    for (file, cname) in
        [("images/photo_640x480.png", "256m"), ("images/photo_640x480.png", "2b"), ("images/screen_1080x2400.png", "256m")]
    {
        let cfg = config(&all["configs"][cname]);
        let t = Instant::now();
        let img = load(file);
        let decode = t.elapsed();
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let p = preprocess(&img, &cfg).unwrap();
            times.push(t.elapsed());
            std::hint::black_box(p);
        }
        times.sort();
        eprintln!(
            "{file} / {cname}: decode {:.1} ms, preprocess min {:.1} ms, median {:.1} ms",
            decode.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[5].as_secs_f64() * 1e3
        );
    }
}
