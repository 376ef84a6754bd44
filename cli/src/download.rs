//! `smolvlm download`, and the hub side of `--model REPO`: the core's downloader with a
//! progress bar on the terminal (hidden when stderr is not one).

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use smolvlm::{CancelToken, DownloadRequest, Error};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct DownloadArgs {
    /// The hub repo, `org/name`, optionally `@REVISION` (a branch, tag or commit).
    #[arg(value_name = "REPO[@REV]")]
    repo: String,
    /// Download into this plain folder instead of the Hugging Face cache
    /// ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    /// Fetch this file of the repo (repeatable); by default what the engine needs: configs,
    /// tokenizer, chat template and weights (or a GGUF repo's Q8_0 model and mmproj).
    #[arg(long = "file", value_name = "NAME")]
    files: Vec<String>,
    /// Access token for gated or private repos (default: $HF_TOKEN).
    #[arg(long)]
    token: Option<String>,
}

/// Downloads and prints the model folder as the last line of stdout.
pub fn run(args: DownloadArgs) -> smolvlm::Result<()> {
    let mut request = request(&args.repo);
    if let Some(dir) = args.to {
        request = request.to_folder(dir);
    }
    request.files = args.files;
    request.token = args.token;
    let dir = fetch(&request)?;
    println!("{}", dir.display());
    Ok(())
}

/// A `--model` argument as a path: an existing file or folder as is; otherwise a hub repo id,
/// found in the Hugging Face cache or downloaded into it.
pub fn model_path(spec: &str) -> smolvlm::Result<PathBuf> {
    let path = Path::new(spec);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let looks_like_repo = spec.matches('/').count() == 1 && !spec.starts_with('.') && !spec.starts_with('/');
    if !looks_like_repo {
        return Err(Error::ModelUnavailable(format!("{spec} is not a model folder, a GGUF file or a hub repo id (org/name)")));
    }
    fetch(&request(spec))
}

/// `org/name[@rev]` as a request into the hub cache.
fn request(spec: &str) -> DownloadRequest {
    let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let mut request = DownloadRequest::new(repo);
    request.revision = revision.to_string();
    request
}

fn fetch(request: &DownloadRequest) -> smolvlm::Result<PathBuf> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let r = smolvlm::download(request, &CancelToken::new(), &mut |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(p.file.clone());
    });
    bar.finish_and_clear();
    r
}
