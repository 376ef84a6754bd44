//! Where downloaded files go: the Hugging Face cache layout that Python's `huggingface_hub`
//! writes, or a plain folder; the partial files, locks and bookkeeping of each; free space.

use super::request::{Destination, DownloadRequest};
use crate::error::{DownloadError, Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The Hugging Face hub cache folder, as `huggingface_hub` finds it: `$HF_HUB_CACHE`, else
/// `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
/// `None` where none of these is set (on a phone: pass a folder instead).
pub fn hub_cache_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("HF_HUB_CACHE")
        .or_else(|| var("HF_HOME").map(|h| h.join("hub")))
        .or_else(|| var("XDG_CACHE_HOME").map(|c| c.join("huggingface").join("hub")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("huggingface").join("hub")))
}

pub(super) fn storage(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Download(DownloadError::Storage { path: path.to_path_buf(), reason: e.to_string() })
}

/// A destination resolved to folders, for one repo.
pub(super) enum Layout {
    /// `<cache>/models--org--name/` and the cache's `.locks/models--org--name/`.
    Cache { repo: PathBuf, locks: PathBuf },
    /// The folder itself and its `.cache/huggingface/download/` bookkeeping.
    Folder { dir: PathBuf, meta: PathBuf },
}

/// Where one file's bytes go while and after they are downloaded.
pub(super) struct FilePaths {
    /// Partial bytes, continued by the next attempt.
    pub incomplete: PathBuf,
    /// Where the verified file is renamed to.
    pub complete: PathBuf,
    /// Held while the file is downloaded, so that two processes never write it at once.
    pub lock: PathBuf,
}

impl Layout {
    pub(super) fn new(request: &DownloadRequest) -> Result<Self> {
        Ok(match &request.destination {
            Destination::HubCache(dir) => {
                let cache = match dir {
                    Some(d) => d.clone(),
                    None => hub_cache_dir().ok_or_else(|| {
                        Error::InvalidArgument("no Hugging Face cache folder (HF_HOME and HOME are unset): pass a folder".into())
                    })?,
                };
                let name = format!("models--{}", request.repo_id.replace('/', "--"));
                Layout::Cache { repo: cache.join(&name), locks: cache.join(".locks").join(name) }
            }
            Destination::Folder(dir) => {
                Layout::Folder { dir: dir.clone(), meta: dir.join(".cache").join("huggingface").join("download") }
            }
        })
    }

    /// The folder that existing files are checked in for free space (the nearest one that exists).
    pub(super) fn root(&self) -> &Path {
        match self {
            Layout::Cache { repo, .. } => repo,
            Layout::Folder { dir, .. } => dir,
        }
    }

    /// The model folder a caller loads: the snapshot of `commit`, or the plain folder.
    pub(super) fn model_dir(&self, commit: &str) -> PathBuf {
        match self {
            Layout::Cache { repo, .. } => repo.join("snapshots").join(commit),
            Layout::Folder { dir, .. } => dir.clone(),
        }
    }

    /// The commit that `revision` pointed at when it was last downloaded (a commit hash stands
    /// for itself).
    pub(super) fn local_commit(&self, revision: &str) -> Option<String> {
        let read = |p: PathBuf| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        match self {
            Layout::Cache { repo, .. } => {
                read(repo.join("refs").join(revision)).or_else(|| is_commit(revision).then(|| revision.into()))
            }
            Layout::Folder { meta, .. } => read(meta.join(".revision")),
        }
    }

    /// Whether `file` is present and complete for `commit`.
    pub(super) fn has_file(&self, commit: &str, file: &str) -> bool {
        match self {
            Layout::Cache { .. } => self.model_dir(commit).join(file).is_file(),
            Layout::Folder { dir, meta } => {
                dir.join(file).is_file()
                    && std::fs::read_to_string(meta.join(format!("{file}.metadata")))
                        .is_ok_and(|m| m.lines().next() == Some(commit))
            }
        }
    }

    /// Whether `file` is present and complete with this `etag` (whatever the commit).
    pub(super) fn has_blob(&self, file: &str, etag: &str) -> bool {
        match self {
            Layout::Cache { repo, .. } => repo.join("blobs").join(etag).is_file(),
            Layout::Folder { dir, meta } => {
                dir.join(file).is_file()
                    && std::fs::read_to_string(meta.join(format!("{file}.metadata")))
                        .is_ok_and(|m| m.lines().nth(1) == Some(etag))
            }
        }
    }

    pub(super) fn file_paths(&self, file: &str, etag: &str) -> FilePaths {
        match self {
            Layout::Cache { repo, locks } => FilePaths {
                incomplete: repo.join("blobs").join(format!("{etag}.incomplete")),
                complete: repo.join("blobs").join(etag),
                lock: locks.join(format!("{etag}.lock")),
            },
            Layout::Folder { dir, meta } => FilePaths {
                incomplete: meta.join(format!("{file}.{etag}.incomplete")),
                complete: dir.join(file),
                lock: meta.join(format!("{file}.lock")),
            },
        }
    }

    /// Creates the folders a download writes into.
    pub(super) fn create(&self, commit: &str) -> Result<()> {
        let dirs: Vec<PathBuf> = match self {
            Layout::Cache { repo, locks } => vec![repo.join("blobs"), repo.join("refs"), self.model_dir(commit), locks.clone()],
            Layout::Folder { dir, meta } => vec![dir.clone(), meta.clone()],
        };
        for d in dirs {
            std::fs::create_dir_all(&d).map_err(|e| storage(&d, e))?;
        }
        Ok(())
    }

    /// Makes a verified file visible under its name for `commit`: in the cache a relative link
    /// `snapshots/<commit>/<file>` → `../../blobs/<etag>`; in a folder, the bookkeeping that
    /// says which commit and ETag the file is (the file itself was renamed into place).
    pub(super) fn publish(&self, commit: &str, file: &str, etag: &str) -> Result<()> {
        match self {
            Layout::Cache { repo, .. } => {
                let link = self.model_dir(commit).join(file);
                if link.is_file() {
                    return Ok(());
                }
                let target = Path::new("..").join("..").join("blobs").join(etag);
                let tmp = link.with_file_name(format!(".{file}.{}.link", unique()));
                let _ = std::fs::remove_file(&tmp);
                make_link(&target, &repo.join("blobs").join(etag), &tmp).map_err(|e| storage(&tmp, e))?;
                std::fs::rename(&tmp, &link).map_err(|e| storage(&link, e))
            }
            Layout::Folder { meta, .. } => {
                let stamp =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
                write_atomic(&meta.join(format!("{file}.metadata")), format!("{commit}\n{etag}\n{stamp}\n").as_bytes())
            }
        }
    }

    /// Records that `revision` now points at `commit`.
    pub(super) fn set_ref(&self, revision: &str, commit: &str) -> Result<()> {
        match self {
            Layout::Cache { repo, .. } if revision != commit => {
                write_atomic(&repo.join("refs").join(revision), commit.as_bytes())
            }
            Layout::Cache { .. } => Ok(()),
            Layout::Folder { meta, .. } => write_atomic(&meta.join(".revision"), commit.as_bytes()),
        }
    }

    /// Deletes the partial files of `file` left by earlier ETags (a folder names them by ETag;
    /// in the cache they are blobs that no other file can use either, but another file of the
    /// same repo may be downloading its own, so they are left).
    pub(super) fn remove_stale_partials(&self, file: &str, etag: &str) {
        if let Layout::Folder { meta, .. } = self {
            let keep = format!("{file}.{etag}.incomplete");
            let Ok(entries) = std::fs::read_dir(meta) else { return };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name != keep && name.starts_with(&format!("{file}.")) && name.ends_with(".incomplete") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// A name part no other writer (process or thread) uses at the same time.
fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

/// A 40-hex-digit commit hash.
pub(super) fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(unix)]
fn make_link(target: &Path, _blob: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Without Unix links (Windows without developer mode) the snapshot holds a copy, as
/// `huggingface_hub` does there.
#[cfg(not(unix))]
fn make_link(_target: &Path, blob: &Path, link: &Path) -> std::io::Result<()> {
    std::fs::copy(blob, link).map(|_| ())
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename: readers see the old
/// contents or the new, never a part.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", unique()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| storage(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| storage(path, e))?;
    sync_dir(path);
    Ok(())
}

/// Flushes a folder's entry for `path` (the rename) to disk, where the platform allows it.
pub(super) fn sync_dir(path: &Path) {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Bytes free for this process on the file system holding `path` (or its nearest existing
/// parent); `None` where it cannot be told.
pub(super) fn free_space(path: &Path) -> Option<u64> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    statvfs_free(p)
}

#[cfg(unix)]
fn statvfs_free(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable storage for one statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn statvfs_free(_path: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_paths_follow_huggingface_hub() {
        let req = DownloadRequest::new("Org/Model").to_hub_cache("/c");
        let l = Layout::new(&req).unwrap();
        let p = l.file_paths("model.safetensors", "abc");
        assert_eq!(p.complete, Path::new("/c/models--Org--Model/blobs/abc"));
        assert_eq!(p.incomplete, Path::new("/c/models--Org--Model/blobs/abc.incomplete"));
        assert_eq!(p.lock, Path::new("/c/.locks/models--Org--Model/abc.lock"));
        assert_eq!(l.model_dir("c0ffee"), Path::new("/c/models--Org--Model/snapshots/c0ffee"));
    }

    #[test]
    fn folder_paths_follow_local_dir_downloads() {
        let req = DownloadRequest::new("Org/Model").to_folder("/f");
        let l = Layout::new(&req).unwrap();
        let p = l.file_paths("config.json", "e1");
        assert_eq!(p.complete, Path::new("/f/config.json"));
        assert_eq!(p.incomplete, Path::new("/f/.cache/huggingface/download/config.json.e1.incomplete"));
        assert_eq!(l.model_dir("c0ffee"), Path::new("/f"));
    }

    #[test]
    fn free_space_is_found_through_missing_folders() {
        let free = free_space(&std::env::temp_dir().join("no/such/folder/yet"));
        assert!(free.is_some_and(|b| b > 0), "{free:?}");
    }
}
