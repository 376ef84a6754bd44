//! `smolvlm`: ask a SmolVLM model about images and videos from the command line.

mod bench;
mod download;
mod live_bench;
mod video;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use smolvlm::{
    load_image, load_messages, CancelToken, Content, DownloadError, Engine, EngineOptions, Error, GenerationOptions, Message,
    Role, Session, Video,
};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const DEFAULT_MODEL: &str = "HuggingFaceTB/SmolVLM-256M-Instruct";

#[derive(Parser)]
#[command(name = "smolvlm", version, about = "Private, offline visual question answering with SmolVLM")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a question about zero or more images and videos (or answer a whole conversation).
    Ask(AskArgs),
    /// Measure load time, vision encode, prefill, decode speed and peak memory of a model.
    Bench(bench::BenchArgs),
    /// Download a model from the Hugging Face hub ($HF_ENDPOINT) and print its folder.
    Download(download::DownloadArgs),
}

#[derive(Args)]
struct AskArgs {
    /// A model folder in the Hugging Face layout, a llama.cpp GGUF file (or a folder holding a
    /// GGUF pair), or a hub repo id `org/name[@REV]`, downloaded into the Hugging Face cache
    /// unless it is there already.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// With a GGUF --model: the llama.cpp mmproj GGUF with the vision encoder (without it the
    /// model is text-only).
    #[arg(long, value_name = "FILE")]
    mmproj: Option<PathBuf>,
    /// Weight storage: none (f32, exact), f16, q8_0, q4k, or auto (f32 below 100M parameters,
    /// q8_0 up to 1.5B, q4k above). Quantized GGUF tensors are used as stored.
    #[arg(long, default_value = "auto", value_name = "none|f16|q8_0|q4k|auto")]
    quantize: String,
    /// An image to ask about (repeat for several); they come before the prompt.
    #[arg(long = "image", value_name = "PATH")]
    images: Vec<PathBuf>,
    /// A video file to ask about (repeat for several; before the images), decoded with the
    /// ffmpeg and ffprobe programs; only the frames the question reads are kept (SmolVLM2).
    #[arg(long = "video", value_name = "FILE")]
    videos: Vec<PathBuf>,
    /// A video as decoded frames: a JSON object `{"frames": ["f0.png", …], "timestamps": [0.0,
    /// …], "duration": 12.5}` (paths relative to the file), appended like --video.
    #[arg(long = "video-frames", value_name = "FILE.json")]
    video_frames: Vec<PathBuf>,
    /// A system prompt.
    #[arg(long)]
    system: Option<String>,
    /// A conversation in the Hugging Face chat JSON format; the model answers as the assistant.
    #[arg(long, value_name = "FILE")]
    messages: Option<PathBuf>,
    /// The question (appended as a user message after --messages, if both are given).
    prompt: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample among the K most likely tokens only (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Penalty for repeating tokens (1 = none).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop before this text (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    stop: Vec<String>,
    /// Do not split images into tiles (one global view per image: fewer tokens, less detail).
    #[arg(long)]
    no_split: bool,
    /// Longest image side after the first resize (default: the checkpoint's).
    #[arg(long, value_name = "PX")]
    longest_edge: Option<u32>,
    /// Image sizing: exact (transformers' processor, the default) or fast (for camera frames: no
    /// upscaling, at most 2x2 tiles plus the global view).
    #[arg(long, default_value = "exact", value_name = "exact|fast")]
    preset: String,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
    /// With --json, report the K most likely tokens at every step.
    #[arg(long, default_value_t = 0, value_name = "K")]
    top_logprobs: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ask(args) => ask(args),
        Command::Bench(args) => bench::bench(args),
        Command::Download(args) => download::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                Error::InvalidArgument(_) | Error::InvalidImage(_) | Error::ContextOverflow { .. } => 2,
                Error::ModelFile { .. } | Error::ModelUnavailable(_) => 3,
                Error::Download(
                    DownloadError::NotFound { .. }
                    | DownloadError::Unauthorized { .. }
                    | DownloadError::Forbidden { .. }
                    | DownloadError::Integrity { .. }
                    | DownloadError::Offline { .. },
                ) => 3,
                _ => 1,
            })
        }
    }
}

/// The conversation from --messages, --system and the question with its images and decoded
/// frames (videos first, then images, then the text); --video files are added to that question
/// once the model is loaded.
fn conversation(args: &AskArgs, videos: Vec<Video>) -> smolvlm::Result<Vec<Message>> {
    let mut messages = match &args.messages {
        Some(path) => load_messages(path)?,
        None => Vec::new(),
    };
    if let Some(system) = &args.system {
        if messages.first().map(|m| m.role) != Some(Role::System) {
            messages.insert(0, Message::text(Role::System, system.clone()));
        }
    }
    let images = args.images.iter().map(|p| load_image(p)).collect::<smolvlm::Result<Vec<_>>>()?;
    let prompt = args.prompt.clone().unwrap_or_default();
    if !prompt.is_empty() || !images.is_empty() || !videos.is_empty() || !args.videos.is_empty() {
        let mut m = Message::user(prompt, images);
        m.content.splice(0..0, videos.into_iter().map(|v| Content::Video(Arc::new(v))));
        messages.push(m);
    }
    if !messages.iter().any(|m| m.role == Role::User) {
        return Err(Error::InvalidArgument("nothing to answer: give a PROMPT, --image, --video or --messages".into()));
    }
    Ok(messages)
}

fn ask(args: AskArgs) -> smolvlm::Result<()> {
    let frames = args.video_frames.iter().map(|p| video::frames_file(p)).collect::<smolvlm::Result<Vec<_>>>()?;
    let mut messages = conversation(&args, frames)?;
    let options = GenerationOptions {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
        stop: args.stop.clone(),
        top_logprobs: args.top_logprobs,
    };
    options.validate()?;
    let weights = smolvlm::WeightFormat::parse(&args.quantize).ok_or_else(|| {
        Error::InvalidArgument(format!("unknown --quantize {:?}: use none, f16, q8_0, q4k or auto", args.quantize))
    })?;
    let dir = download::model_path(&args.model)?;
    let preset = smolvlm::ImagePreset::parse(&args.preset)
        .ok_or_else(|| Error::InvalidArgument(format!("unknown --preset {:?}: use exact or fast", args.preset)))?;
    let engine_options = EngineOptions {
        image_splitting: args.no_split.then_some(false),
        longest_edge: args.longest_edge,
        preset,
        weights,
        mmproj: args.mmproj.clone(),
        ..EngineOptions::default()
    };
    let engine = Arc::new(Engine::load(&dir, &engine_options)?);
    if !args.videos.is_empty() {
        let decoded = args.videos.iter().map(|p| video::decode(p, &engine)).collect::<smolvlm::Result<Vec<_>>>()?;
        if let Some(question) = messages.last_mut() {
            question.content.splice(0..0, decoded.into_iter().map(|v| Content::Video(Arc::new(v))));
        }
    }
    let mut session = Session::new(engine);
    for m in messages {
        session.push(m);
    }
    let cancel = CancelToken::new();
    let mut stdout = std::io::stdout().lock();
    let answer = if args.json {
        session.generate(&options, &cancel, &mut |_| {})?
    } else {
        let a = session.generate(&options, &cancel, &mut |piece| {
            let _ = stdout.write_all(piece.as_bytes());
            let _ = stdout.flush();
        })?;
        let _ = writeln!(stdout);
        a
    };
    if args.json {
        let s = &answer.stats;
        let mut out = json!({
            "text": answer.text,
            "token_ids": answer.token_ids,
            "prompt_token_count": s.prompt_tokens,
            "finish_reason": format!("{:?}", answer.finish_reason),
            "stats": {
                "vision_encode_ms": s.vision_encode_ms,
                "prefill_ms": s.prefill_ms,
                "ttft_ms": s.ttft_ms,
                "decode_tokens_per_s": s.decode_tokens_per_s,
                "generated_tokens": s.generated_tokens,
                "prompt_tokens": s.prompt_tokens,
                "vision_tiles": s.vision_tiles,
                "peak_rss_mb": peak_rss_mb(),
            }
        });
        if args.top_logprobs > 0 {
            out["top_logprobs"] = Value::Array(
                answer
                    .top_logprobs
                    .iter()
                    .map(|step| step.iter().map(|t| json!({"id": t.id, "logprob": t.logprob})).collect())
                    .collect(),
            );
        }
        let _ = writeln!(stdout, "{out}");
    }
    Ok(())
}

/// Peak resident memory of this process in MiB (Linux and Android; `null` elsewhere).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
