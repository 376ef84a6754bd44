//! Memory before work starts: what the operating system says this process can still use, and
//! what a model will hold once loaded ([`MemoryEstimate`]), so that a model that does not fit is
//! refused with a typed error instead of being killed halfway through.

use crate::config::ModelConfig;
use crate::model::WeightFormat;
use candle_core::quantized::GgmlDType;

const MIB: u64 = 1 << 20;
/// The process without a model: code, the allocator's arenas, thread stacks, the image cache's
/// bookkeeping. Measured on Linux x86-64 (`smolvlm bench`'s `rss_before_load_mb` plus slack).
const BASELINE_BYTES: u64 = 24 * MIB;
/// The tokenizer in memory per byte of `tokenizer.json` (its maps hold each token several times).
const TOKENIZER_BYTES_PER_FILE_BYTE: u64 = 6;
/// Prompt tokens run through the decoder at once. A long prompt (a video's frames) runs in
/// chunks of this many (`Session::reply`), so that the attention scores and MLP activations of a
/// pass stay a few MB (a 2 500-token prompt at once: ~230 MB of scores on SmolVLM-256M) whatever
/// the prompt's length, and a cancel is honoured between chunks.
pub(crate) const PREFILL_CHUNK: usize = 512;

/// What a model will hold in memory, estimated from its configuration before loading it
/// ([`crate::Engine::estimate_memory`]). Every field is in bytes except `context_length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The weights, in the format they will be held in.
    pub weights: u64,
    /// One session's key/value cache filled to `context_length` tokens.
    pub kv_cache: u64,
    /// The largest transient working set: one vision tile through the encoder, or one prefill
    /// chunk through the decoder (its attention scores against the whole context included).
    pub activations: u64,
    /// The tokenizer and the process's own baseline.
    pub runtime: u64,
    /// The sum: the peak resident memory to expect.
    pub total: u64,
    /// The context length the estimate assumes.
    pub context_length: usize,
}

/// Bytes of a `rows`×`in_dim` matrix held as `format` decides for it (`WeightFormat::ggml`):
/// Q8_0 or Q4_K blocks with their scales, or dense (f16 for `F16`, f32 otherwise).
fn matrix_bytes(format: WeightFormat, rows: usize, in_dim: usize, embedding_or_head: bool) -> u64 {
    let n = (rows as u64).saturating_mul(in_dim as u64);
    match format.ggml(in_dim, embedding_or_head) {
        Some(GgmlDType::Q8_0) => n / 32 * 34,
        Some(GgmlDType::Q4K) => n / 256 * 144,
        Some(_) | None if format == WeightFormat::F16 => n * 2,
        _ => n * 4,
    }
}

/// Bytes of the model's weights held as `format`: every matrix as the loader stores it, plus
/// the vision embeddings (f32).
fn weights_bytes(cfg: &ModelConfig, format: WeightFormat) -> u64 {
    let t = &cfg.text;
    let (d, i, q, kv) =
        (t.hidden_size, t.intermediate_size, t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim);
    let layer = matrix_bytes(format, q, d, false)
        + 2 * matrix_bytes(format, kv, d, false)
        + matrix_bytes(format, d, q, false)
        + 2 * matrix_bytes(format, i, d, false)
        + matrix_bytes(format, d, i, false);
    let heads = if t.tie_word_embeddings { 1 } else { 2 };
    let mut total = (t.num_hidden_layers as u64).saturating_mul(layer) + heads * matrix_bytes(format, t.vocab_size, d, true);
    if let Some(v) = &cfg.vision {
        let (vd, vi) = (v.hidden_size, v.intermediate_size);
        let layer =
            4 * matrix_bytes(format, vd, vd, false) + matrix_bytes(format, vi, vd, false) + matrix_bytes(format, vd, vi, false);
        let side = (v.image_size / v.patch_size.max(1)) as u64;
        let embeddings = 4 * (side * side * vd as u64 + (vd * v.num_channels * v.patch_size * v.patch_size) as u64);
        total += (v.num_hidden_layers as u64).saturating_mul(layer) + embeddings;
        total += matrix_bytes(format, d, vd * cfg.scale_factor * cfg.scale_factor, false);
    }
    total
}

/// Bytes one token adds to a session's KV cache (f16 with quantized weights, f32 otherwise).
pub(crate) fn kv_bytes_per_token(cfg: &ModelConfig, quantized: bool) -> u64 {
    let t = &cfg.text;
    let element = if quantized { 2 } else { 4 };
    (2 * t.num_hidden_layers * t.num_key_value_heads * t.head_dim * element) as u64
}

/// The estimate for `cfg` held as `format` (resolved, not `Auto`) with a `context`-token cap;
/// `weights_file_bytes` replaces the weights' size for a GGUF model (its tensors are held as
/// stored), `tokenizer_file_bytes` is the size of `tokenizer.json` (or of the GGUF vocabulary).
pub(crate) fn estimate(
    cfg: &ModelConfig,
    format: WeightFormat,
    context: usize,
    weights_file_bytes: Option<u64>,
    tokenizer_file_bytes: u64,
) -> MemoryEstimate {
    let quantized = weights_file_bytes.is_some() || matches!(format, WeightFormat::Q8_0 | WeightFormat::Q4K);
    let weights = weights_file_bytes.unwrap_or_else(|| weights_bytes(cfg, format));
    let kv_cache = kv_bytes_per_token(cfg, quantized).saturating_mul(context as u64);
    let t = &cfg.text;
    let (d, i, ctx) = (t.hidden_size as u64, t.intermediate_size as u64, context as u64);
    let n_rep = (t.num_attention_heads / t.num_key_value_heads.max(1)).max(1) as u64;
    let chunk = (PREFILL_CHUNK as u64).min(ctx.max(1));
    // A chunk's hidden states, q/k/v/o, the MLP's three widths, one KV group's scores and the
    // logits of the last position, in f32.
    let prefill = 4 * (chunk * (6 * d + 3 * i) + n_rep * chunk * ctx + t.vocab_size as u64);
    let vision = cfg.vision.as_ref().map_or(0, |v| {
        let patches = ((v.image_size / v.patch_size.max(1)) as u64).pow(2);
        // Residual, norm, q/k/v, attention output and the MLP's two widths, in f32; scores are
        // computed in L2-sized blocks.
        4 * patches * (7 * v.hidden_size as u64 + 2 * v.intermediate_size as u64)
    });
    let activations = prefill.max(vision);
    let runtime = BASELINE_BYTES + TOKENIZER_BYTES_PER_FILE_BYTE * tokenizer_file_bytes;
    let total = weights.saturating_add(kv_cache).saturating_add(activations).saturating_add(runtime);
    MemoryEstimate { weights, kv_cache, activations, runtime, total, context_length: context }
}

/// Bytes this process can still allocate without being killed, as far as the OS says: the
/// smaller of the system's `MemAvailable` and the room left under the process's cgroup limit
/// (v2 `memory.max`, v1 `memory.limit_in_bytes`). `None` where unknown (not Linux or Android,
/// or nothing readable); on iOS the app reads `os_proc_available_memory` itself.
pub(crate) fn available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(|m| field_kb(m, "MemAvailable:")).map(|kb| kb * 1024);
    let group = cgroup_room();
    match (system, group) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn field_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// Limit minus usage of this process's cgroup, when it has a limit.
fn cgroup_room() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    // v2: a single "0::/path" line.
    if let Some(path) = cgroup.lines().find_map(|l| l.strip_prefix("0::")) {
        let dir = format!("/sys/fs/cgroup{}", path.trim_end_matches('/'));
        if let (Some(max), Some(cur)) = (read(&format!("{dir}/memory.max")), read(&format!("{dir}/memory.current"))) {
            return Some(max.saturating_sub(cur));
        }
    }
    // v1: the memory controller's limit; "no limit" reads as a huge number.
    let limit = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")?;
    let usage = read("/sys/fs/cgroup/memory/memory.usage_in_bytes")?;
    (limit < 1 << 60).then(|| limit.saturating_sub(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_fields() {
        let m = "MemTotal:       24000000 kB\nMemAvailable:   12345678 kB\n";
        assert_eq!(field_kb(m, "MemAvailable:"), Some(12_345_678));
        assert_eq!(field_kb(m, "Nope:"), None);
        if cfg!(target_os = "linux") {
            let a = available_bytes().expect("Linux reports available memory");
            assert!(a > 0);
        }
    }
}
