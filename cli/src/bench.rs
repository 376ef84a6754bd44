//! `smolvlm bench`: load time, vision encode, prefill, time to first token, decode speed and
//! peak memory of one model, measured through the public API (`Engine`, `Session`).
//!
//! With `--video N`, the question is about a video of N chosen frames (synthetic, moving, of
//! the `--image` size or 640×360), one 512 px tile each on SmolVLM2: vision ms per frame,
//! prefill speed over the whole prompt, time to first token and peak memory.
//!
//! One warm-up answer (same prompt and image, 2 tokens), then the measured answer in a fresh
//! session: `vision_encode_ms_per_tile` = preprocessing + encoder time / tiles, prefill over the
//! whole prompt (image tokens included), and decode over `--decode-tokens` tokens. An end of turn
//! does not end the decode measurement: the conversation continues ("Continue.") and only the
//! decode steps (each a one-token forward pass against the growing KV cache) are timed. Peak RSS
//! is reported for loading and for inference separately (the high-water mark is reset after
//! loading) and overall.

use clap::Args;
use serde_json::{json, Value};
use smolvlm::{
    load_image, CancelToken, Content, Engine, EngineOptions, Error, GenerationOptions, Message, RgbImage, Role, Session, Video,
    WeightFormat,
};
use smolvlm::{set_num_threads, ImagePreset};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Args)]
pub struct BenchArgs {
    /// A model folder in the Hugging Face layout, a GGUF file, or a hub repo id (downloaded into
    /// the Hugging Face cache unless it is there).
    #[arg(long)]
    model: String,
    /// The vision half of a GGUF pair (llama.cpp's `mmproj` file).
    #[arg(long, value_name = "PATH")]
    mmproj: Option<PathBuf>,
    /// An image to encode; without it the prompt is text only.
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Weight storage: none (f32), f16, q8_0, q4k or auto (see `smolvlm ask --help`).
    #[arg(long, default_value = "none", value_name = "none|f16|q8_0|q4k|auto")]
    quantize: String,
    /// CPU threads (process-wide; default: the performance cores, see `performance_cores`).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Do not split images into tiles (one global frame per image).
    #[arg(long)]
    no_split: bool,
    /// Image sizing: exact (transformers' processor) or fast (no upscaling, ≤ 2×2+1 tiles).
    #[arg(long, default_value = "exact", value_name = "exact|fast")]
    preset: String,
    /// The question.
    #[arg(long, default_value = "Describe this image in detail.")]
    prompt: String,
    /// Decode steps to time.
    #[arg(long, default_value_t = 64, value_name = "N")]
    decode_tokens: usize,
    /// Skip the warm-up answer.
    #[arg(long)]
    no_warmup: bool,
    /// Measure the camera loop instead: synthetic 640x480 frames pushed into a live session
    /// (live defaults) at --live-fps for --live-seconds; reports answers, frames dropped,
    /// frame-to-first-token latency (median, p90), decode speed and peak memory.
    #[arg(long)]
    live: bool,
    /// With --live: seconds of frames.
    #[arg(long, default_value_t = 60.0, value_name = "S")]
    live_seconds: f64,
    /// With --live: frames per second.
    #[arg(long, default_value_t = 30.0, value_name = "R")]
    live_fps: f64,
    /// Most tokens a session holds (default: the model's maximum, lowered to what fits).
    #[arg(long, value_name = "N")]
    context_length: Option<usize>,
    /// Ask about a video of N frames instead of an image (each frame one tile; SmolVLM2).
    #[arg(long, value_name = "N")]
    video: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `n` frames of a scene that moves (a bright square crossing a gradient), `w`×`h`, one per
/// second, as a video whose frames are all read.
fn synthetic_video(n: usize, w: u32, h: u32) -> smolvlm::Result<Video> {
    let frames = (0..n)
        .map(|f| {
            let mut data = Vec::with_capacity((w * h * 3) as usize);
            let x0 = (f as u32 * w / n.max(1) as u32) as i64;
            for y in 0..h {
                for x in 0..w {
                    let inside = (x as i64 - x0).abs() < (w / 10) as i64 && (y as i64 - (h / 2) as i64).abs() < (h / 10) as i64;
                    let px =
                        if inside { [250, 250, 240] } else { [(x * 255 / w) as u8, (y * 255 / h) as u8, (f * 7 % 256) as u8] };
                    data.extend_from_slice(&px);
                }
            }
            RgbImage::new(w, h, data).map(std::sync::Arc::new)
        })
        .collect::<smolvlm::Result<Vec<_>>>()?;
    Video::chosen(frames, (0..n).map(|i| i as f64).collect(), n as f64)
}

pub fn bench(args: BenchArgs) -> smolvlm::Result<()> {
    let threads = args.threads.unwrap_or_else(smolvlm::performance_cores);
    set_num_threads(threads)?;
    let weights = WeightFormat::parse(&args.quantize).ok_or_else(|| {
        Error::InvalidArgument(format!("unknown --quantize {:?}: use none, f16, q8_0, q4k or auto", args.quantize))
    })?;
    let preset = ImagePreset::parse(&args.preset)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown --preset {:?}: use exact or fast", args.preset)))?;
    if args.decode_tokens == 0 {
        return Err(Error::InvalidArgument("--decode-tokens must be at least 1".into()));
    }
    let image = args.image.as_deref().map(load_image).transpose()?;
    let video = match args.video {
        Some(0) => return Err(Error::InvalidArgument("--video needs at least 1 frame".into())),
        Some(n) => {
            let (w, h) = image.as_ref().map_or((640, 360), |i| (i.width, i.height));
            Some(std::sync::Arc::new(synthetic_video(n, w, h)?))
        }
        None => None,
    };
    let dir = crate::download::model_path(&args.model)?;
    let options = EngineOptions {
        image_splitting: args.no_split.then_some(false),
        preset,
        weights,
        mmproj: args.mmproj.clone(),
        // The measured answer repeats the warm-up's image: without this it would come from the
        // image cache, and the encoder would not be measured. (The live loop keeps the cache.)
        image_cache_bytes: (!args.live).then_some(0),
        max_video_frames: args.video,
        context_length: args.context_length,
        ..EngineOptions::default()
    };

    let estimate = Engine::estimate_memory(&dir, &options)?;
    let rss_before_load = rss_mb("VmRSS:");
    let t = Instant::now();
    let engine = Arc::new(Engine::load(&dir, &options)?);
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let rss_after_load = rss_mb("VmRSS:");
    let peak_load = rss_mb("VmHWM:");
    // Restart the high-water mark (Linux: "5" > /proc/self/clear_refs) so the peak of inference
    // is seen apart from the peak of loading.
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();

    if args.live {
        let mut out = crate::live_bench::run(engine, args.live_seconds, args.live_fps)?;
        out["model"] = json!(args.model);
        out["quantize"] = json!(args.quantize);
        out["threads"] = json!(threads);
        out["load_ms"] = json!(round(load_ms));
        out["peak_rss_mb"] = json!(peak_load.into_iter().chain(rss_mb("VmHWM:")).reduce(f64::max).map(round));
        return print(out, args.json);
    }
    let message = || match (&video, &image) {
        (Some(v), _) => {
            Message { role: Role::User, content: vec![Content::Video(v.clone()), Content::Text(args.prompt.clone())] }
        }
        (None, Some(img)) => Message::user(args.prompt.clone(), vec![img.clone()]),
        (None, None) => Message::text(Role::User, args.prompt.clone()),
    };
    let cancel = CancelToken::new();
    if !args.no_warmup {
        let mut s = Session::new(engine.clone());
        let warm = GenerationOptions { max_tokens: 2, ..GenerationOptions::default() };
        // A video warms up on its first frame alone (the same kernels, one tile).
        let warm_message = match &video {
            Some(v) => Message::user(args.prompt.clone(), vec![RgbImage::clone(&v.frames()[0])]),
            None => message(),
        };
        s.ask(warm_message, &warm, &cancel, &mut |_| {})?;
    }

    // The measured answer.
    let mut session = Session::new(engine.clone());
    let mut gen = GenerationOptions { max_tokens: args.decode_tokens + 1, ..GenerationOptions::default() };
    let first = session.ask(message(), &gen, &cancel, &mut |_| {})?;
    let st = first.stats.clone();
    let mut decode_steps = st.generated_tokens.saturating_sub(1);
    let mut decode_s = rate_time(decode_steps, st.decode_tokens_per_s);
    let mut continuations = 0;
    while decode_steps < args.decode_tokens && continuations < 16 {
        // The model ended its turn early: keep decoding in the same conversation.
        continuations += 1;
        gen.max_tokens = args.decode_tokens - decode_steps + 1;
        let more = session.ask(Message::text(Role::User, "Continue."), &gen, &cancel, &mut |_| {})?;
        let steps = more.stats.generated_tokens.saturating_sub(1);
        decode_steps += steps;
        decode_s += rate_time(steps, more.stats.decode_tokens_per_s);
        if more.stats.generated_tokens == 0 {
            break;
        }
    }
    let peak_inference = rss_mb("VmHWM:");
    let per_tile = if st.vision_tiles > 0 { Some(st.vision_encode_ms / st.vision_tiles as f64) } else { None };
    let prefill_tps = if st.prefill_ms > 0.0 { st.prefill_tokens as f64 / (st.prefill_ms / 1000.0) } else { 0.0 };
    let decode_tps = if decode_s > 0.0 { decode_steps as f64 / decode_s } else { 0.0 };
    let out = json!({
        "model": args.model,
        "mmproj": args.mmproj.as_deref().map(Path::display).map(|d| d.to_string()),
        "image": args.image.as_deref().map(Path::display).map(|d| d.to_string()),
        "image_size": image.as_ref().map(|i| format!("{}x{}", i.width, i.height)),
        "video_frames": args.video,
        "quantize": args.quantize,
        "preset": args.preset,
        "split": !args.no_split,
        "threads": threads,
        "quantized_kernels": smolvlm::quantized_kernels(),
        "load_ms": round(load_ms),
        "vision_tiles": st.vision_tiles,
        "vision_encode_ms": round(st.vision_encode_ms),
        "vision_encode_ms_per_tile": per_tile.map(round),
        "vision_encode_ms_per_frame": args.video.and(per_tile).map(round),
        "prompt_tokens": st.prompt_tokens,
        "prefill_ms": round(st.prefill_ms),
        "prefill_tokens_per_s": round(prefill_tps),
        "ttft_ms": round(st.ttft_ms),
        "decode_tokens": decode_steps,
        "decode_tokens_per_s": round(decode_tps),
        "decode_continuations": continuations,
        "rss_before_load_mb": rss_before_load.map(round),
        "rss_after_load_mb": rss_after_load.map(round),
        "peak_rss_load_mb": peak_load.map(round),
        "peak_rss_inference_mb": if hwm_reset { peak_inference.map(round) } else { None },
        "peak_rss_mb": peak_load.into_iter().chain(peak_inference).reduce(f64::max).map(round),
        "context_length": engine.context_length(),
        "estimated_memory_mb": round(estimate.total as f64 / (1 << 20) as f64),
        "estimated_weights_mb": round(estimate.weights as f64 / (1 << 20) as f64),
        "estimated_kv_cache_mb": round(estimate.kv_cache as f64 / (1 << 20) as f64),
    });
    print(out, args.json)
}

/// One JSON object, or one `key  value` line per field.
fn print(out: Value, as_json: bool) -> smolvlm::Result<()> {
    if as_json {
        println!("{out}");
    } else if let Value::Object(map) = out {
        for (k, v) in map {
            println!("{k:>30}  {v}");
        }
    }
    Ok(())
}

/// Seconds spent on `steps` tokens at `rate` tokens/s.
fn rate_time(steps: usize, rate: f64) -> f64 {
    if steps > 0 && rate > 0.0 {
        steps as f64 / rate
    } else {
        0.0
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A memory figure of this process from /proc/self/status in MiB (Linux and Android only).
fn rss_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
