//! Downloading a checkpoint from the Hugging Face hub (the `download` feature): only the files
//! the engine needs, resumable, verified, cancellable, with progress.
//!
//! ```no_run
//! # fn main() -> smolvlm::Result<()> {
//! use smolvlm::{download, CancelToken, DownloadRequest};
//! let request = DownloadRequest::new("HuggingFaceTB/SmolVLM-256M-Instruct");
//! let dir = download(&request, &CancelToken::new(), &mut |p| eprint!("\r{} / {} bytes", p.bytes_done, p.bytes_total))?;
//! # let _ = dir; Ok(()) }
//! ```

mod hub_api;
mod layout;
mod progress;
mod request;
mod transfer;

pub use layout::hub_cache_dir;
pub use request::{Destination, DownloadProgress, DownloadRequest};

use crate::engine::CancelToken;
use crate::error::{DownloadError, Error, Result};
use hub_api::{FileMeta, Hub};
use layout::Layout;
use progress::Progress;
use request::safe_file_name;
use std::path::PathBuf;

/// Files every safetensors checkpoint needs.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json"];
/// Files read when the repo has them.
const OPTIONAL: &[&str] = &[
    "tokenizer_config.json",
    "special_tokens_map.json",
    "preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "chat_template.jinja",
    "generation_config.json",
];
const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";

/// Downloads the files of `request` and returns the model folder, ready for
/// [`Engine::load`](crate::Engine::load).
///
/// - Files already complete at the destination are not fetched again; when all are, the only
///   request is the revision's listing (none with `HF_HUB_OFFLINE` set, or when the hub cannot
///   be reached and the revision was downloaded before).
/// - Partial files are continued with HTTP ranges, here after a dropped connection and on the
///   next call after a failure or a cancel.
/// - Every file's size, and the SHA-256 of LFS files, are checked before the file gets its
///   final name.
/// - `progress` is called on this thread; `cancel` stops the download within a second, from any
///   thread, with [`Error::Cancelled`].
///
/// Errors are [`Error::Download`] (not found, 401, 403, integrity, free space, offline,
/// network, storage), [`Error::InvalidArgument`] for a malformed request, and
/// [`Error::Cancelled`].
pub fn download(request: &DownloadRequest, cancel: &CancelToken, progress: &mut dyn FnMut(&DownloadProgress)) -> Result<PathBuf> {
    request.validate()?;
    let layout = Layout::new(request)?;
    let copy = local_model(request, &layout);
    if offline() {
        return copy.ok_or_else(|| {
            Error::Download(DownloadError::Offline {
                repo: request.repo_id.clone(),
                revision: request.revision.clone(),
                path: layout.root().to_path_buf(),
            })
        });
    }
    let endpoint = request
        .endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|e| !e.is_empty()))
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string();
    let token = request.token.clone().or_else(saved_token).map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let hub = Hub::new(endpoint, &request.repo_id, &request.revision, token, cancel);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        // Cancel watcher: a read blocked on a stalled server only returns when its connection
        // is shut down.
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                if cancel.is_cancelled() {
                    hub.interrupt();
                }
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
        });
        // Stops the watcher however `fetch_all` ends, a panic (say, in `progress`) included.
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        let r = {
            let _done = Done(&done);
            fetch_all(request, &layout, &hub, copy.is_some(), progress)
        };
        match r {
            Err(Error::Download(DownloadError::Network(reason))) => match copy {
                Some(dir) => {
                    log::warn!("the hub cannot be reached ({reason}); using the copy downloaded before");
                    Ok(dir)
                }
                None => Err(Error::Download(DownloadError::Network(reason))),
            },
            r => r,
        }
    })
}

/// The token `huggingface_hub` would use: `$HF_TOKEN`, else the file `huggingface-cli login`
/// writes (`$HF_TOKEN_PATH`, else `$HF_HOME/token`, else `~/.cache/huggingface/token`).
fn saved_token() -> Option<String> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(t) = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
        return Some(t);
    }
    let file = var("HF_TOKEN_PATH")
        .or_else(|| var("HF_HOME").map(|h| h.join("token")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("token")))?;
    std::fs::read_to_string(file).ok()
}

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

fn fetch_all(
    request: &DownloadRequest,
    layout: &Layout,
    hub: &Hub,
    have_copy: bool,
    sink: &mut dyn FnMut(&DownloadProgress),
) -> Result<PathBuf> {
    let listing = hub.listing(have_copy)?;
    let commit = listing.commit.clone();
    let names = select_files(request, &listing.files)?;
    let dir = layout.model_dir(&commit);
    // Everything in place already: no further request.
    if let Some(all) = complete_set(layout, &commit, &names) {
        let bytes = all.iter().filter_map(|f| std::fs::metadata(dir.join(f)).ok()).map(|m| m.len()).sum();
        let mut p = Progress::new(sink, all.len() as u32, bytes);
        p.finish();
        layout.set_ref(&request.revision, &commit)?;
        return Ok(dir);
    }
    layout.create(&commit)?;
    let mut metas = names.iter().map(|n| hub.head(n)).collect::<Result<Vec<_>>>()?;
    // A sharded checkpoint: the index names the shards.
    if let Some(i) = names.iter().position(|n| n == INDEX) {
        let meta = metas.remove(i);
        let mut quiet = |_: &DownloadProgress| {};
        place(layout, hub, &meta, &commit, &mut Progress::new(&mut quiet, 1, meta.size))?;
        for shard in shards(&dir.join(INDEX), &listing.files)? {
            metas.push(hub.head(&shard)?);
        }
        metas.push(meta);
    }
    let total: u64 = metas.iter().map(|m| m.size).sum();
    check_space(request, layout, &metas)?;
    let mut p = Progress::new(sink, metas.len() as u32, total);
    for meta in &metas {
        p.start_file(&meta.name, meta.size);
        place(layout, hub, meta, &commit, &mut p)?;
    }
    layout.set_ref(&request.revision, &commit)?;
    p.finish();
    Ok(dir)
}

/// Downloads one file (unless its blob is there) and publishes it under the commit.
fn place(layout: &Layout, hub: &Hub, meta: &FileMeta, commit: &str, p: &mut Progress) -> Result<()> {
    if meta.commit != commit {
        log::warn!("{}: the hub moved from {commit} to {} during the download", meta.name, meta.commit);
    }
    if layout.has_blob(&meta.name, &meta.etag) {
        p.file_done(meta.size);
    } else {
        layout.remove_stale_partials(&meta.name, &meta.etag);
        transfer::fetch(hub, meta, &layout.file_paths(&meta.name, &meta.etag), p)?;
    }
    layout.publish(commit, &meta.name, &meta.etag)
}

/// The files the engine needs from a repo holding `files` (or the ones asked for).
fn select_files(request: &DownloadRequest, files: &[String]) -> Result<Vec<String>> {
    let has = |f: &str| files.iter().any(|x| x == f);
    let missing = |f: &str| Error::Download(DownloadError::NotFound { repo: request.repo_id.clone(), file: Some(f.to_string()) });
    if !request.files.is_empty() {
        if let Some(f) = request.files.iter().find(|f| !has(f)) {
            return Err(missing(f));
        }
        return Ok(request.files.clone());
    }
    if !has("config.json") {
        if let Some(pair) = gguf_pair(files) {
            return Ok(pair);
        }
    }
    let mut out = Vec::new();
    for f in REQUIRED {
        if !has(f) {
            return Err(missing(f));
        }
        out.push(f.to_string());
    }
    out.extend(OPTIONAL.iter().filter(|f| has(f)).map(|f| f.to_string()));
    if has(SINGLE) {
        out.push(SINGLE.into());
    } else if has(INDEX) {
        out.push(INDEX.into());
    } else {
        return Err(missing(SINGLE));
    }
    Ok(out)
}

/// In a repo of GGUF files (llama.cpp's layout): the text model and the `mmproj` file, Q8_0
/// where there is one, else f16, else the first.
fn gguf_pair(files: &[String]) -> Option<Vec<String>> {
    let gguf: Vec<&String> = files.iter().filter(|f| f.ends_with(".gguf") && safe_file_name(f)).collect();
    let pick = |mmproj: bool| {
        let c: Vec<&&String> = gguf.iter().filter(|f| f.to_ascii_lowercase().starts_with("mmproj") == mmproj).collect();
        let by = |tag: &str| c.iter().find(|f| f.to_ascii_lowercase().contains(tag)).map(|f| f.to_string());
        by("q8_0").or_else(|| by("f16")).or_else(|| c.first().map(|f| f.to_string()))
    };
    let text = pick(false)?;
    Some(match pick(true) {
        Some(m) => vec![text, m],
        None => vec![text],
    })
}

/// The shard names that a safetensors index maps its tensors to.
fn shards(index: &std::path::Path, files: &[String]) -> Result<Vec<String>> {
    let v = crate::config::read_json(index)?;
    let mut names: Vec<String> = v
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.values().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(Error::file(index, "the index names no shard"));
    }
    if let Some(bad) = names.iter().find(|n| !safe_file_name(n) || !files.contains(n)) {
        return Err(Error::file(index, format!("the index names a shard that is not a file of the repo: {bad:?}")));
    }
    Ok(names)
}

/// All files of `names` present for `commit` (with the shards of an index), or `None`.
fn complete_set(layout: &Layout, commit: &str, names: &[String]) -> Option<Vec<String>> {
    let mut all = names.to_vec();
    if names.iter().any(|n| n == INDEX) {
        all.extend(shards(&layout.model_dir(commit).join(INDEX), &[]).ok().unwrap_or_else(|| vec![INDEX.into()]));
    }
    all.iter().all(|f| layout.has_file(commit, f)).then_some(all)
}

/// The model folder as downloaded before, for offline use: the revision's commit, with the
/// needed files complete.
fn local_model(request: &DownloadRequest, layout: &Layout) -> Option<PathBuf> {
    let commit = layout.local_commit(&request.revision)?;
    let dir = layout.model_dir(&commit);
    let present: Vec<String> =
        std::fs::read_dir(&dir).ok()?.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let names = select_files(request, &present).ok()?;
    complete_set(layout, &commit, &names).map(|_| dir)
}

/// Fails with [`DownloadError::InsufficientSpace`] unless the bytes still to fetch, plus
/// [`DownloadRequest::keep_free_bytes`], fit on the destination's disk.
fn check_space(request: &DownloadRequest, layout: &Layout, metas: &[FileMeta]) -> Result<()> {
    let mut needed = request.keep_free_bytes;
    for m in metas.iter().filter(|m| !layout.has_blob(&m.name, &m.etag)) {
        let partial = std::fs::metadata(layout.file_paths(&m.name, &m.etag).incomplete).map(|md| md.len()).unwrap_or(0);
        needed = needed.saturating_add(m.size.saturating_sub(partial));
    }
    match layout::free_space(layout.root()) {
        Some(available) if available < needed => {
            Err(Error::Download(DownloadError::InsufficientSpace { path: layout.root().to_path_buf(), needed, available }))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn picks_only_what_the_engine_needs() {
        let repo = names(&[
            "config.json",
            "tokenizer.json",
            "chat_template.json",
            "model.safetensors",
            "onnx/model.onnx",
            "README.md",
            ".gitattributes",
        ]);
        let req = DownloadRequest::new("a/b");
        assert_eq!(
            select_files(&req, &repo).unwrap(),
            names(&["config.json", "tokenizer.json", "chat_template.json", "model.safetensors"])
        );
        let sharded =
            names(&["config.json", "tokenizer.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors"]);
        assert_eq!(select_files(&req, &sharded).unwrap().last().unwrap(), INDEX);
        let no_tok = names(&["config.json", "model.safetensors"]);
        assert!(matches!(
            select_files(&req, &no_tok),
            Err(Error::Download(DownloadError::NotFound { file: Some(f), .. })) if f == "tokenizer.json"
        ));
    }

    #[test]
    fn picks_the_q8_gguf_pair() {
        let repo = names(&[
            "SmolVLM-256M-Instruct-f16.gguf",
            "SmolVLM-256M-Instruct-Q8_0.gguf",
            "mmproj-SmolVLM-256M-Instruct-f16.gguf",
            "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf",
            "README.md",
        ]);
        assert_eq!(
            select_files(&DownloadRequest::new("a/b"), &repo).unwrap(),
            names(&["SmolVLM-256M-Instruct-Q8_0.gguf", "mmproj-SmolVLM-256M-Instruct-Q8_0.gguf"])
        );
    }

    #[test]
    fn requests_are_validated() {
        for bad in ["a", "a/b/c", "../b", "a/..", "a b/c", ""] {
            assert!(DownloadRequest::new(bad).validate().is_err(), "{bad}");
        }
        let mut r = DownloadRequest::new("HuggingFaceTB/SmolVLM-256M-Instruct");
        assert!(r.validate().is_ok());
        r.files = names(&["../../etc/passwd"]);
        assert!(r.validate().is_err());
        r.files = names(&["onnx/model.onnx"]);
        assert!(r.validate().is_err());
        r.files = names(&["tokenizer.json"]);
        assert!(r.validate().is_ok());
    }
}
