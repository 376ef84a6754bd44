//! What a download is asked to do, and what it reports while it runs.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// Where a download puts the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The Hugging Face cache layout, shared with Python's `huggingface_hub`:
    /// `models--org--name/blobs/<etag>`, `snapshots/<commit>/<file>` linking to the blobs, and
    /// `refs/<revision>`. `None`: [`hub_cache_dir`].
    HubCache(Option<PathBuf>),
    /// A plain folder that holds the files under their own names, without links (Android's
    /// `filesDir`, iOS's Application Support). Partial files and bookkeeping go in its
    /// `.cache/huggingface/download/`, as `huggingface_hub` does for a `local_dir`.
    Folder(PathBuf),
}

/// What to download, from where, to where.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// The hub repo, `org/name`.
    pub repo_id: String,
    /// A branch, tag or commit hash (default `main`).
    pub revision: String,
    /// Where the files go (default: the hub cache).
    pub destination: Destination,
    /// The files to fetch; empty (the default) means what the engine needs: the configs,
    /// tokenizer files and chat template, and the safetensors weights (one file, or the shards
    /// that the index names). For a repo of GGUF files, the Q8_0 text model and its mmproj.
    pub files: Vec<String>,
    /// An access token for gated or private repos (`None`: `$HF_TOKEN`, else the token file
    /// that `huggingface-cli login` saved, if any).
    pub token: Option<String>,
    /// The hub's address (`None`: `$HF_ENDPOINT`, else `https://huggingface.co`).
    pub endpoint: Option<String>,
    /// Bytes that must stay free on the destination's disk after the download; it refuses to
    /// start otherwise (default 0).
    pub keep_free_bytes: u64,
}

impl DownloadRequest {
    /// A request for the `main` revision of `repo_id` into the hub cache, with the defaults.
    pub fn new(repo_id: impl Into<String>) -> Self {
        DownloadRequest {
            repo_id: repo_id.into(),
            revision: "main".into(),
            destination: Destination::HubCache(None),
            files: Vec::new(),
            token: None,
            endpoint: None,
            keep_free_bytes: 0,
        }
    }

    /// The same request, into the hub cache at `dir`.
    pub fn to_hub_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.destination = Destination::HubCache(Some(dir.into()));
        self
    }

    /// The same request, into the plain folder `dir`.
    pub fn to_folder(mut self, dir: impl Into<PathBuf>) -> Self {
        self.destination = Destination::Folder(dir.into());
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidArgument(what.to_string()));
        let mut parts = self.repo_id.split('/');
        let ok_part = |p: Option<&str>| {
            p.is_some_and(|p| {
                !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })
        };
        if !(ok_part(parts.next()) && ok_part(parts.next()) && parts.next().is_none()) {
            return bad(&format!("{:?} is not a hub repo id (org/name)", self.repo_id));
        }
        if self.revision.is_empty() || self.revision.split('/').any(|p| p.is_empty() || p == "..") || self.revision.contains('\\')
        {
            return bad(&format!("{:?} is not a revision", self.revision));
        }
        if let Some(f) = self.files.iter().find(|f| !safe_file_name(f)) {
            return bad(&format!("{f:?} is not a file name in a repo"));
        }
        Ok(())
    }
}

/// Where a download stands, reported at most 10 times a second; no number ever goes down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes of the whole download done (files found in place count as done).
    pub bytes_done: u64,
    /// Bytes of the whole download.
    pub bytes_total: u64,
    /// The file being downloaded.
    pub file: String,
    /// Bytes of that file done.
    pub file_bytes_done: u64,
    /// Bytes of that file.
    pub file_bytes_total: u64,
    /// Files complete.
    pub files_done: u32,
    /// Files in the download.
    pub files_total: u32,
}

/// A file at the top of a repo (the engine reads no subfolder): no path separator, not `.` or
/// `..`.
pub(super) fn safe_file_name(f: &str) -> bool {
    !f.is_empty() && f != "." && f != ".." && !f.contains('/') && !f.contains('\\')
}
