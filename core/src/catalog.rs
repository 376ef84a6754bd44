//! The known SmolVLM checkpoints, for an app's model picker: each with its hub repo, the files
//! to fetch, its size on the hub, the precision to run it at on a phone and about how much
//! memory it then needs.
//!
//! Two kinds of repo are listed. `HuggingFaceTB/…` repos hold the checkpoint as transformers
//! saved it (safetensors weights, configs, tokenizer); the SmolVLM (v1) ones store bf16 weights,
//! the SmolVLM2 ones f32, so the SmolVLM2 downloads are twice as large for the same model.
//! `ggml-org/…-GGUF` repos hold llama.cpp's conversion: a text model and an `mmproj` file (the
//! vision encoder and connector); the catalog names the Q8_0 pair, whose quantized tensors the
//! engine uses as stored.
//!
//! Where the numbers come from:
//! - Parameters are counted from each checkpoint's configuration (SigLIP encoder, pixel-shuffle
//!   connector, SmolLM2 decoder with an untied `lm_head`); they agree with the sizes of the
//!   published files (bf16 and f32 safetensors, Q8_0 GGUF) and with the hub's own parameter
//!   counts where one is shown.
//! - Download sizes come from the hub's file listings (safetensors repos: the "Files and
//!   versions" pages, which round to three significant digits) or from the exact byte counts
//!   that the hub reports for the GGUF files, as public app manifests quote them. Each entry
//!   cites its source; [`CatalogEntry::size_confirmed`] says whether a published figure stands
//!   behind the number.
//! - Memory is this SDK's measured peak (SmolVLM-256M at Q8_0 with one 512×512 image, exact
//!   preset: 380 MiB, `BENCHMARKS.md`), and for the larger models the weights at the recommended
//!   precision plus the KV cache and working buffers, scaled from the 256M and 500M
//!   measurements. The model cards' "GPU RAM" figures (transformers on a GPU in bf16) are quoted
//!   beside the entries for comparison only.

use crate::model::WeightFormat;

/// How a checkpoint's weights are stored on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// A transformers checkpoint: `config.json`, the tokenizer and processor files, and the
    /// weights in `model.safetensors` (or shards named by `model.safetensors.index.json`).
    /// The engine quantizes the weights to the chosen precision while loading them.
    Safetensors,
    /// llama.cpp's pair of GGUF files: the text model (decoder, tokenizer and chat template in
    /// its metadata) and the `mmproj` file (vision encoder and connector). Quantized tensors
    /// are used as stored.
    GgufPair,
}

/// One known checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CatalogEntry {
    /// The name to show, e.g. `SmolVLM-256M-Instruct`.
    pub name: &'static str,
    /// The hub repo, `org/name`, e.g. `HuggingFaceTB/SmolVLM-256M-Instruct`.
    pub repo_id: &'static str,
    /// How the weights are stored.
    pub format: CheckpointFormat,
    /// The files to fetch. For [`CheckpointFormat::GgufPair`]: the text model, then the
    /// `mmproj` file. For [`CheckpointFormat::Safetensors`]: empty, as the downloader picks the
    /// configs, the tokenizer files and the weights itself.
    pub files: &'static [&'static str],
    /// Parameters of the whole model: vision encoder, connector and language model.
    pub parameters: u64,
    /// Bytes the download fetches: the weights plus the configuration and tokenizer files.
    pub download_bytes: u64,
    /// True when [`download_bytes`](Self::download_bytes) comes from a published figure (the
    /// hub's file listing, or the byte counts it reports as quoted elsewhere); false when it
    /// was computed from the parameter count.
    pub size_confirmed: bool,
    /// The in-memory precision recommended on a phone (for `EngineOptions::weights`). For a
    /// GGUF pair it is the precision the file stores its quantized tensors in.
    pub precision: WeightFormat,
    /// Approximate peak memory, in bytes, while answering about one 512×512 image at
    /// [`precision`](Self::precision) with the exact preset (17 frames) and the default reply
    /// length.
    pub memory_bytes: u64,
    /// A SmolVLM2 checkpoint, trained on video as well: it can answer about a clip given as a
    /// sequence of frames.
    pub video: bool,
}

/// One mebibyte (the unit of this SDK's memory measurements).
const MIB: u64 = 1 << 20;

// Memory (see the module documentation):
// - 256M: measured. `BENCHMARKS.md`, SmolVLM-256M q8_0, one 512×512 image, exact preset (17 frames,
//   1141-token prompt), f16 KV cache: peak RSS 380 MiB (RSS after loading 322–335 MiB; the weights
//   are 258 MiB of Q8_0 blocks + 6 MiB f32). SmolVLM2-256M has the same shapes, and the GGUF Q8_0
//   pair holds the same blocks (its two files are 266 MiB), so all four 256M entries share it.
//   Model card for comparison: "under 1GB of GPU RAM" (transformers, bf16).
const MEMORY_256M: u64 = 380 * MIB;
// - 500M: measured at q8_0 with one 512×512 frame (fast preset, 81-token prompt): RSS after loading
//   560 MiB, peak 612 MiB (`BENCHMARKS.md`, session 6). The exact preset added 21 MiB on 256M (KV
//   cache and prefill buffers for 1141 tokens); 500M's per-token state is ~1.75× larger (KV 40 KiB
//   vs 22.5 KiB a position, hidden 960 vs 576): 612 + 37 ≈ 650 MiB. Model card: 1.23 GB GPU RAM.
const MEMORY_500M: u64 = 650 * MIB;
// - 2.2B at Q4K (safetensors): weights 1634 MiB (decoder matrices Q4_K; embedding and lm_head Q8_0;
//   vision q/k/v/o and fc1 Q8_0 as 1152 is not a multiple of 256; fc2 f16 as 4304 is not a multiple
//   of 32; connector Q8_0), + ~45 MiB runtime (500M: RSS after loading minus its weights), + f16 KV
//   cache for 1377 image tokens + prompt + 256 reply tokens (~1656 positions × 192 KiB = 310 MiB),
//   + ~80 MiB prefill buffers (256M's ~15 MiB scaled by the 8192/1536 MLP width) ≈ 2070 MiB.
//   Computed, not measured. SmolVLM blog for comparison: 5.02 GB GPU RAM (bf16).
const MEMORY_2B_Q4K: u64 = 2_100 * MIB;
// - 2.2B GGUF Q8_0 pair: the same with the weights as stored: the two files are 2404 MiB (text
//   Q8_0, mmproj Q8_0 with fc2 in f16), + 45 + 310 + 80 ≈ 2840 MiB. Computed, not measured.
const MEMORY_2B_GGUF_Q8: u64 = 2_850 * MIB;

static CATALOG: [CatalogEntry; 12] = [
    // Parameters: vision 86,433,024 (SigLIP base, 768 wide, 12 layers, 16 px patches, 512 px) +
    // connector 7,077,888 (12288 → 576) + decoder 162,974,016 (576 wide, 30 layers, 9/3 heads, vocab
    // 49280, untied lm_head) = 256,484,928. The hub shows "256M params" for a bf16 copy
    // (mlx-community/SmolVLM-256M-Instruct-bf16), and 2 bytes each = 512.97 MB matches the listed 513 MB.
    // Size: https://huggingface.co/HuggingFaceTB/SmolVLM-256M-Instruct/tree/d8d478d90140dcab688a321dfe123fbd2dfcbc34
    // model.safetensors 513 MB, tokenizer.json 3.55 MB, the other json files ~38 kB.
    CatalogEntry {
        name: "SmolVLM-256M-Instruct",
        repo_id: "HuggingFaceTB/SmolVLM-256M-Instruct",
        format: CheckpointFormat::Safetensors,
        files: &[],
        parameters: 256_484_928,
        download_bytes: 513_000_000 + 3_550_000 + 38_000,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_256M,
        video: false,
    },
    // Sizes: the hub's byte counts for
    // https://huggingface.co/ggml-org/SmolVLM-256M-Instruct-GGUF/resolve/main/SmolVLM-256M-Instruct-Q8_0.gguf (175,054,528)
    // and …/mmproj-SmolVLM-256M-Instruct-Q8_0.gguf (103,769,856), as quoted by
    // github.com/mwiest/voclet app/src/main/java/com/github/mwiest/voclet/data/ai/local/AiModel.kt
    // ("as the HuggingFace API reports it") and, identically, by other app manifests.
    CatalogEntry {
        name: "SmolVLM-256M-Instruct (GGUF Q8_0)",
        repo_id: "ggml-org/SmolVLM-256M-Instruct-GGUF",
        format: CheckpointFormat::GgufPair,
        files: &["SmolVLM-256M-Instruct-Q8_0.gguf", "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf"],
        parameters: 256_484_928,
        download_bytes: 175_054_528 + 103_769_856,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_256M,
        video: false,
    },
    // Same shapes as SmolVLM-256M-Instruct; stored in f32 (1.026 GB, listed as 1.03 GB).
    // Size: https://huggingface.co/HuggingFaceTB/SmolVLM2-256M-Video-Instruct/tree/main
    // model.safetensors 1.03 GB, tokenizer.json 3.55 MB, the other json files ~35 kB.
    CatalogEntry {
        name: "SmolVLM2-256M-Video-Instruct",
        repo_id: "HuggingFaceTB/SmolVLM2-256M-Video-Instruct",
        format: CheckpointFormat::Safetensors,
        files: &[],
        parameters: 256_484_928,
        download_bytes: 1_030_000_000 + 3_550_000 + 35_000,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_256M,
        video: true,
    },
    // Sizes: the hub's byte counts for
    // https://huggingface.co/ggml-org/SmolVLM2-256M-Video-Instruct-GGUF/resolve/main/SmolVLM2-256M-Video-Instruct-Q8_0.gguf
    // (175,056,352) and …/mmproj-SmolVLM2-256M-Video-Instruct-Q8_0.gguf (103,771,680), as quoted by
    // several app manifests on GitHub, one of them a download task that checks each file's length
    // against them. (One other manifest quotes 175,056,256 / 103,771,616; the majority is used.)
    CatalogEntry {
        name: "SmolVLM2-256M-Video-Instruct (GGUF Q8_0)",
        repo_id: "ggml-org/SmolVLM2-256M-Video-Instruct-GGUF",
        format: CheckpointFormat::GgufPair,
        files: &["SmolVLM2-256M-Video-Instruct-Q8_0.gguf", "mmproj-SmolVLM2-256M-Video-Instruct-Q8_0.gguf"],
        parameters: 256_484_928,
        download_bytes: 175_056_352 + 103_771_680,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_256M,
        video: true,
    },
    // Parameters: vision 86,433,024 + connector 11,796,480 (12288 → 960) + decoder 409,252,800
    // (960 wide, 32 layers, 15/5 heads, vocab 49280, untied lm_head; an app manifest lists the same
    // 409,252,800 parameters for the GGUF text model) = 507,482,304; bf16 = 1.015 GB, listed as 1.02 GB.
    // Size: https://huggingface.co/HuggingFaceTB/SmolVLM-500M-Instruct/tree/cb498dae8482269f2b1361f26b0f1f866d725eba
    // model.safetensors 1.02 GB, tokenizer.json 3.55 MB, the other json files ~38 kB.
    CatalogEntry {
        name: "SmolVLM-500M-Instruct",
        repo_id: "HuggingFaceTB/SmolVLM-500M-Instruct",
        format: CheckpointFormat::Safetensors,
        files: &[],
        parameters: 507_482_304,
        download_bytes: 1_020_000_000 + 3_550_000 + 38_000,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_500M,
        video: false,
    },
    // Sizes: the hub's byte counts (X-Linked-Size) at commit 72e986006ef53e37cdd3f6d4241c90b0f01df376:
    // https://huggingface.co/ggml-org/SmolVLM-500M-Instruct-GGUF/resolve/72e986006ef53e37cdd3f6d4241c90b0f01df376/SmolVLM-500M-Instruct-Q8_0.gguf
    // (436,806,912, sha256 9d4612de…) and …/mmproj-SmolVLM-500M-Instruct-Q8_0.gguf (108,783,360,
    // sha256 d1eb8b6b…), as quoted by several app manifests pinned to that commit.
    CatalogEntry {
        name: "SmolVLM-500M-Instruct (GGUF Q8_0)",
        repo_id: "ggml-org/SmolVLM-500M-Instruct-GGUF",
        format: CheckpointFormat::GgufPair,
        files: &["SmolVLM-500M-Instruct-Q8_0.gguf", "mmproj-SmolVLM-500M-Instruct-Q8_0.gguf"],
        parameters: 507_482_304,
        download_bytes: 436_806_912 + 108_783_360,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_500M,
        video: false,
    },
    // Same shapes as SmolVLM-500M-Instruct; stored in f32 (2.030 GB, listed as 2.03 GB).
    // Size: https://huggingface.co/HuggingFaceTB/SmolVLM2-500M-Video-Instruct/tree/main
    // model.safetensors 2.03 GB, tokenizer.json 3.55 MB, the other json files ~35 kB.
    CatalogEntry {
        name: "SmolVLM2-500M-Video-Instruct",
        repo_id: "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
        format: CheckpointFormat::Safetensors,
        files: &[],
        parameters: 507_482_304,
        download_bytes: 2_030_000_000 + 3_550_000 + 35_000,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_500M,
        video: true,
    },
    // Sizes: the hub's byte counts at commit ccd7aae53bcb1997355c2f094959e72b3642ce17:
    // https://huggingface.co/ggml-org/SmolVLM2-500M-Video-Instruct-GGUF/resolve/ccd7aae53bcb1997355c2f094959e72b3642ce17/SmolVLM2-500M-Video-Instruct-Q8_0.gguf
    // (436,808,704, sha256 6f67b803…) and …/mmproj-SmolVLM2-500M-Video-Instruct-Q8_0.gguf
    // (108,785,184, sha256 921dc7e2…), as quoted identically by many app manifests.
    CatalogEntry {
        name: "SmolVLM2-500M-Video-Instruct (GGUF Q8_0)",
        repo_id: "ggml-org/SmolVLM2-500M-Video-Instruct-GGUF",
        format: CheckpointFormat::GgufPair,
        files: &["SmolVLM2-500M-Video-Instruct-Q8_0.gguf", "mmproj-SmolVLM2-500M-Video-Instruct-Q8_0.gguf"],
        parameters: 507_482_304,
        download_bytes: 436_808_704 + 108_785_184,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_500M,
        video: true,
    },
    // Parameters: vision 412,987,248 (SigLIP so400m: 1152 wide, 4304 MLP, 27 layers, 14 px patches,
    // 384 px) + connector 21,233,664 (10368 → 2048) + decoder 1,812,051,968 (2048 wide, 24 layers,
    // 32/32 heads, vocab 49155, untied lm_head) = 2,246,272,880. The hub shows "2.25B params" for a
    // bf16 copy (mlx-community/SmolVLM-Instruct-bf16); bf16 = 4.493 GB, listed as 4.49 GB.
    // Size: https://huggingface.co/HuggingFaceTB/SmolVLM-Instruct/tree/f1140e54238a784c7433428d1e5a3c71f52a95f9
    // model.safetensors 4.49 GB, tokenizer.json 3.52 MB, the other json files ~14 kB.
    CatalogEntry {
        name: "SmolVLM-Instruct (2.2B)",
        repo_id: "HuggingFaceTB/SmolVLM-Instruct",
        format: CheckpointFormat::Safetensors,
        files: &[],
        parameters: 2_246_272_880,
        download_bytes: 4_490_000_000 + 3_520_000 + 14_000,
        size_confirmed: true,
        precision: WeightFormat::Q4K,
        memory_bytes: MEMORY_2B_Q4K,
        video: false,
    },
    // Sizes: the hub's byte counts for
    // https://huggingface.co/ggml-org/SmolVLM-Instruct-GGUF/resolve/main/SmolVLM-Instruct-Q8_0.gguf (1,927,383,680)
    // and, at commit e75618fdae83145c487f1b4d8115bb02a5b58ecc, …/mmproj-SmolVLM-Instruct-Q8_0.gguf
    // (592,521,344, sha256 86b84aa7…), as quoted by app manifests on GitHub.
    // (This repo's default for llama.cpp's `-hf` is SmolVLM-Instruct-Q4_K_M.gguf, 1,112,242,368 bytes.)
    CatalogEntry {
        name: "SmolVLM-Instruct (2.2B, GGUF Q8_0)",
        repo_id: "ggml-org/SmolVLM-Instruct-GGUF",
        format: CheckpointFormat::GgufPair,
        files: &["SmolVLM-Instruct-Q8_0.gguf", "mmproj-SmolVLM-Instruct-Q8_0.gguf"],
        parameters: 2_246_272_880,
        download_bytes: 1_927_383_680 + 592_521_344,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_2B_GGUF_Q8,
        video: false,
    },
    // Parameters: as SmolVLM-Instruct with vocab 49280: decoder 1,812,563,968, total 2,246,784,880;
    // f32 = 8.987 GB, listed as 4.96 + 4.03 GB.
    // Size: https://huggingface.co/HuggingFaceTB/SmolVLM2-2.2B-Instruct/tree/f33043dfd06a48b696c3df850553ebe18a56c816
    // (the same shards at refs/pr/10): model-00001-of-00002.safetensors 4.96 GB,
    // model-00002-of-00002.safetensors 4.03 GB, model.safetensors.index.json 63.9 kB,
    // tokenizer.json 3.55 MB, the other json files ~34 kB.
    CatalogEntry {
        name: "SmolVLM2-2.2B-Instruct",
        repo_id: "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
        format: CheckpointFormat::Safetensors,
        files: &[],
        parameters: 2_246_784_880,
        download_bytes: 4_960_000_000 + 4_030_000_000 + 64_000 + 3_550_000 + 34_000,
        size_confirmed: true,
        precision: WeightFormat::Q4K,
        memory_bytes: MEMORY_2B_Q4K,
        video: true,
    },
    // Sizes: the hub's byte counts for
    // https://huggingface.co/ggml-org/SmolVLM2-2.2B-Instruct-GGUF/resolve/main/SmolVLM2-2.2B-Instruct-Q8_0.gguf
    // (1,927,933,984) and …/mmproj-SmolVLM2-2.2B-Instruct-Q8_0.gguf (592,523,200), as quoted by
    // github.com/mwiest/voclet app/src/main/java/com/github/mwiest/voclet/data/ai/local/AiModel.kt
    // and, identically, by other app manifests.
    // (This repo's default for llama.cpp's `-hf` is SmolVLM2-2.2B-Instruct-Q4_K_M.gguf, 1,112,602,656 bytes.)
    CatalogEntry {
        name: "SmolVLM2-2.2B-Instruct (GGUF Q8_0)",
        repo_id: "ggml-org/SmolVLM2-2.2B-Instruct-GGUF",
        format: CheckpointFormat::GgufPair,
        files: &["SmolVLM2-2.2B-Instruct-Q8_0.gguf", "mmproj-SmolVLM2-2.2B-Instruct-Q8_0.gguf"],
        parameters: 2_246_784_880,
        download_bytes: 1_927_933_984 + 592_523_200,
        size_confirmed: true,
        precision: WeightFormat::Q8_0,
        memory_bytes: MEMORY_2B_GGUF_Q8,
        video: true,
    },
];

/// All known checkpoints, smallest first (by parameters; a model's safetensors repo comes
/// before its GGUF pair, SmolVLM before SmolVLM2).
pub fn catalog() -> &'static [CatalogEntry] {
    &CATALOG
}

/// The entry for a repo id (case-insensitive), if known.
pub fn find_in_catalog(repo_id: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.repo_id.eq_ignore_ascii_case(repo_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const GIB: u64 = 1 << 30;

    /// Bytes per parameter of the weights as a safetensors repo stores them: bf16 for SmolVLM,
    /// f32 for SmolVLM2 (the hub listings: 513 MB vs 1.03 GB for the same 256M model).
    fn stored_bytes_per_parameter(e: &CatalogEntry) -> f64 {
        if e.video {
            4.0
        } else {
            2.0
        }
    }

    /// Bytes per parameter of a matrix held at `format` (block formats with their scales).
    fn held_bytes_per_parameter(format: WeightFormat) -> f64 {
        match format {
            WeightFormat::F32 => 4.0,
            WeightFormat::F16 => 2.0,
            WeightFormat::Q8_0 => 34.0 / 32.0,
            WeightFormat::Q4K => 144.0 / 256.0,
            WeightFormat::Auto => panic!("a catalog precision must be concrete"),
        }
    }

    #[test]
    fn repo_ids_and_names_are_unique() {
        let mut ids = HashSet::new();
        let mut names = HashSet::new();
        for e in catalog() {
            assert!(ids.insert(e.repo_id.to_ascii_lowercase()), "repo id {} twice", e.repo_id);
            assert!(names.insert(e.name), "name {} twice", e.name);
        }
        assert_eq!(catalog().len(), 12);
    }

    #[test]
    fn repo_ids_are_org_slash_name() {
        for e in catalog() {
            let parts: Vec<&str> = e.repo_id.split('/').collect();
            assert_eq!(parts.len(), 2, "{}", e.repo_id);
            assert!(parts.iter().all(|p| !p.is_empty() && !p.contains(char::is_whitespace)), "{}", e.repo_id);
            match e.format {
                CheckpointFormat::Safetensors => assert_eq!(parts[0], "HuggingFaceTB", "{}", e.repo_id),
                CheckpointFormat::GgufPair => {
                    assert_eq!(parts[0], "ggml-org", "{}", e.repo_id);
                    assert!(parts[1].ends_with("-GGUF"), "{}", e.repo_id);
                }
            }
        }
    }

    #[test]
    fn files_match_the_format() {
        for e in catalog() {
            match e.format {
                CheckpointFormat::Safetensors => assert!(e.files.is_empty(), "{}: {:?}", e.repo_id, e.files),
                CheckpointFormat::GgufPair => {
                    assert_eq!(e.files.len(), 2, "{}: {:?}", e.repo_id, e.files);
                    assert!(e.files.iter().all(|f| f.ends_with(".gguf") && !f.contains('/')), "{:?}", e.files);
                    assert!(!e.files[0].to_ascii_lowercase().starts_with("mmproj"), "text model first: {:?}", e.files);
                    assert!(e.files[1].starts_with("mmproj-"), "mmproj second: {:?}", e.files);
                    // llama.cpp's naming: `<model>-<quant>.gguf` and `mmproj-<model>-<quant>.gguf`,
                    // where <model> is the repo name without `-GGUF`.
                    let model = e.repo_id.split('/').nth(1).unwrap().trim_end_matches("-GGUF");
                    assert_eq!(e.files[0], format!("{model}-Q8_0.gguf"), "{}", e.repo_id);
                    assert_eq!(e.files[1], format!("mmproj-{model}-Q8_0.gguf"), "{}", e.repo_id);
                }
            }
        }
    }

    #[test]
    fn sorted_smallest_first_within_each_format_and_overall() {
        for w in catalog().windows(2) {
            assert!(w[0].parameters <= w[1].parameters, "{} before {}", w[0].repo_id, w[1].repo_id);
        }
        for format in [CheckpointFormat::Safetensors, CheckpointFormat::GgufPair] {
            let of: Vec<&CatalogEntry> = catalog().iter().filter(|e| e.format == format).collect();
            assert_eq!(of.len(), 6, "{format:?}");
            for w in of.windows(2) {
                assert!(w[0].parameters <= w[1].parameters, "{} before {}", w[0].repo_id, w[1].repo_id);
                if w[0].parameters == w[1].parameters {
                    // SmolVLM before SmolVLM2 for the same shapes.
                    assert!(!w[0].video || w[1].video, "{} before {}", w[0].repo_id, w[1].repo_id);
                }
            }
        }
    }

    #[test]
    fn every_gguf_pair_converts_a_listed_checkpoint() {
        for g in catalog().iter().filter(|e| e.format == CheckpointFormat::GgufPair) {
            let model = g.repo_id.split('/').nth(1).unwrap().trim_end_matches("-GGUF");
            let source = find_in_catalog(&format!("HuggingFaceTB/{model}"))
                .unwrap_or_else(|| panic!("{} converts no listed checkpoint", g.repo_id));
            assert_eq!(source.format, CheckpointFormat::Safetensors);
            assert_eq!(source.parameters, g.parameters, "{}", g.repo_id);
            assert_eq!(source.video, g.video, "{}", g.repo_id);
        }
    }

    #[test]
    fn find_is_case_insensitive_and_exact() {
        let e = find_in_catalog("huggingfacetb/smolvlm-256m-instruct").expect("found");
        assert_eq!(e.repo_id, "HuggingFaceTB/SmolVLM-256M-Instruct");
        let e = find_in_catalog("GGML-ORG/SMOLVLM2-2.2B-INSTRUCT-GGUF").expect("found");
        assert_eq!(e.format, CheckpointFormat::GgufPair);
        for e in catalog() {
            assert_eq!(find_in_catalog(e.repo_id), Some(e));
        }
        for unknown in ["", "HuggingFaceTB", "HuggingFaceTB/SmolVLM-256M", "HuggingFaceTB/SmolVLM-256M-Instruct/", "x/y"] {
            assert_eq!(find_in_catalog(unknown), None, "{unknown:?}");
        }
        assert_eq!(find_in_catalog(" HuggingFaceTB/SmolVLM-256M-Instruct"), None);
    }

    /// A typo in a size (a digit dropped or doubled, bf16 taken for f32) moves it far outside
    /// these bands; the hub listings' rounding and the json files stay well inside them.
    #[test]
    fn download_sizes_fit_the_stored_precision() {
        for e in catalog() {
            let per_param = e.download_bytes as f64 / e.parameters as f64;
            match e.format {
                CheckpointFormat::Safetensors => {
                    let expected = e.parameters as f64 * stored_bytes_per_parameter(e);
                    let off = (e.download_bytes as f64 - expected).abs() / expected;
                    assert!(off < 0.02, "{}: {} bytes, {expected} expected ({:.2} %)", e.repo_id, e.download_bytes, off * 100.0);
                }
                // Q8_0 is 34 bytes per 32 weights; norms, position embeddings and (2.2B) the
                // SigLIP fc2 matrices (4304 columns, not whole Q8_0 blocks) stay f32/f16.
                CheckpointFormat::GgufPair => {
                    assert!((1.06..1.15).contains(&per_param), "{}: {per_param:.3} bytes per parameter", e.repo_id)
                }
            }
        }
    }

    #[test]
    fn precision_is_what_the_engine_would_pick() {
        for e in catalog() {
            match e.format {
                CheckpointFormat::Safetensors => {
                    assert_eq!(e.precision, WeightFormat::Auto.resolve(e.parameters as usize), "{}", e.repo_id)
                }
                // Quantized GGUF tensors are used as stored: the pair's precision is its quant.
                CheckpointFormat::GgufPair => {
                    assert!(e.files[0].ends_with("-Q8_0.gguf"), "{:?}", e.files);
                    assert_eq!(e.precision, WeightFormat::Q8_0, "{}", e.repo_id);
                }
            }
        }
    }

    #[test]
    fn memory_covers_the_weights_and_grows_with_the_model() {
        for e in catalog() {
            let weights = e.parameters as f64 * held_bytes_per_parameter(e.precision);
            let memory = e.memory_bytes as f64;
            assert!(memory > weights * 1.05, "{}: {memory} bytes for {weights} of weights", e.repo_id);
            assert!(memory < weights * 2.0 + GIB as f64, "{}: {memory} bytes for {weights} of weights", e.repo_id);
            assert!(e.memory_bytes < 4 * GIB, "{}: too much for a phone", e.repo_id);
        }
        for w in catalog().windows(2) {
            if w[0].parameters < w[1].parameters && w[0].precision == w[1].precision {
                assert!(w[0].memory_bytes < w[1].memory_bytes, "{} vs {}", w[0].repo_id, w[1].repo_id);
            }
        }
        // The measured point: SmolVLM-256M at Q8_0 stays under the 450 MB target.
        let small = find_in_catalog("HuggingFaceTB/SmolVLM-256M-Instruct").unwrap();
        assert!(small.memory_bytes <= 450 * MIB);
    }

    #[test]
    fn video_means_smolvlm2() {
        for e in catalog() {
            assert_eq!(e.video, e.repo_id.contains("SmolVLM2-"), "{}", e.repo_id);
            assert_eq!(e.video, e.name.starts_with("SmolVLM2-"), "{}", e.name);
        }
    }
}
