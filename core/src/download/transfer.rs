//! One file's bytes: continued from its partial file with an HTTP range, hashed as they arrive,
//! checked against the hub's size and SHA-256, synced, then renamed to its final name. A lock
//! keeps two processes (or threads) from writing the same file.

use super::hub_api::{transient, Attempt, Failure, FileMeta, Hub};
use super::layout::{storage, sync_dir, FilePaths};
use super::progress::Progress;
use crate::error::{DownloadError, Error, Result};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

/// Bytes per block handed from the reading thread to the writing one.
const BLOCK: usize = 1 << 20;
/// Blocks queued for each of the hasher and the writer; with the ones being read, hashed and
/// written, a download holds at most `BLOCK * (2 * BLOCKS_IN_FLIGHT + 3)` bytes of them.
const BLOCKS_IN_FLIGHT: usize = 4;

/// Holds `path`'s lock (released when dropped); waits for another holder, cancellably.
pub(super) struct FileLock {
    _file: File,
}

impl FileLock {
    pub(super) fn acquire(path: &std::path::Path, hub: &Hub) -> Result<Self> {
        let f = OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| storage(path, e))?;
        let mut waited = false;
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(FileLock { _file: f }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if !waited {
                        log::info!("waiting for another download of the same file ({})", path.display());
                        waited = true;
                    }
                    if hub.cancelled() {
                        return Err(Error::Cancelled);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(storage(path, e)),
            }
        }
    }
}

/// Downloads `meta` into `paths.complete` (unless it is already there), reporting bytes to
/// `progress`. The partial file is kept on failure and cancel, for the next call to continue;
/// it is deleted when its bytes fail the integrity check.
pub(super) fn fetch(hub: &Hub, meta: &FileMeta, paths: &FilePaths, progress: &mut Progress) -> Result<()> {
    let _lock = FileLock::acquire(&paths.lock, hub)?;
    if paths.complete.is_file() {
        progress.file_done(meta.size);
        return Ok(());
    }
    let mut part = Partial::open(&paths.incomplete, meta)?;
    progress.file_bytes(part.len);
    hub.retry(&format!("downloading {}", meta.name), |hub| {
        let before = part.len;
        let r = receive(hub, meta, &mut part, progress);
        let progressed = part.len > before;
        r.map_err(|f| (f, progressed))
    })?;
    part.finish(meta, paths)?;
    progress.file_done(meta.size);
    Ok(())
}

/// One attempt: a GET from the partial file's length to the end.
fn receive(hub: &Hub, meta: &FileMeta, part: &mut Partial, progress: &mut Progress) -> Attempt<()> {
    if part.len == meta.size {
        return Ok(());
    }
    let resp = hub.get(&meta.url, part.len, &meta.name)?;
    match resp.status().as_u16() {
        206 => {
            let start = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes ")?.split('-').next()?.parse::<u64>().ok());
            if start != Some(part.len) {
                log::warn!("{}: the server sent a range from {start:?}, not {}: starting over", meta.name, part.len);
                part.restart()?;
                progress.file_bytes(0);
                return Err(transient("a range other than the one asked for".into()));
            }
        }
        200 if part.len > 0 => {
            log::info!("{}: the server ignored the range: starting over from byte 0", meta.name);
            part.restart()?;
            progress.file_bytes(0);
        }
        200 => {}
        416 => {
            // The partial file is as long as the server's file, or longer: start over.
            part.restart()?;
            progress.file_bytes(0);
            return Err(transient("range not satisfiable".into()));
        }
        s => return Err(transient(format!("unexpected HTTP {s}"))),
    }
    let mut body = resp.into_body();
    stream(hub, meta, &mut body.as_reader(), part, progress)
}

/// Streams a response body onto the end of `part` through three threads, each on its own
/// block at a time: this one reads the socket, a second hashes, a third writes. When the
/// connection drops or the download is cancelled, every byte received is hashed and written.
fn stream(hub: &Hub, meta: &FileMeta, reader: &mut dyn Read, part: &mut Partial, progress: &mut Progress) -> Attempt<()> {
    let (to_hash, hash_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BLOCKS_IN_FLIGHT);
    let (to_write, write_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BLOCKS_IN_FLIGHT);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let start = part.len;
    let mut hash = part.hash.take();
    let result = std::thread::scope(|s| {
        let hash = &mut hash;
        s.spawn(move || {
            for block in hash_rx {
                if let Some(h) = hash.as_mut() {
                    h.update(&block);
                }
                if to_write.send(block).is_err() {
                    break;
                }
            }
        });
        let writer = s.spawn(|| -> Attempt<()> {
            for block in write_rx {
                part.append(&block)?;
                let _ = empty_tx.send(block);
            }
            Ok(())
        });
        let read = read_blocks(hub, meta, reader, start, progress, &to_hash, &empty_rx);
        drop(to_hash);
        let written =
            writer.join().unwrap_or_else(|_| Err(Failure::Fatal(Error::Internal("the download's writer panicked".into()))));
        written.and(read)
    });
    part.hash = hash;
    result
}

fn read_blocks(
    hub: &Hub,
    meta: &FileMeta,
    reader: &mut dyn Read,
    mut len: u64,
    progress: &mut Progress,
    full: &std::sync::mpsc::SyncSender<Vec<u8>>,
    empty: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> Attempt<()> {
    loop {
        let mut block = empty.try_recv().unwrap_or_else(|_| vec![0u8; BLOCK]);
        block.resize(BLOCK, 0);
        let mut filled = 0;
        let mut end: Option<std::io::Error> = None;
        let mut eof = false;
        while filled < BLOCK {
            if hub.cancelled() {
                break;
            }
            match reader.read(&mut block[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    filled += n;
                    progress.file_bytes(len + filled as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    end = Some(e);
                    break;
                }
            }
        }
        block.truncate(filled);
        len += filled as u64;
        if len > meta.size {
            return Err(Failure::Fatal(integrity(
                meta,
                format!("the server sent more than the {} bytes the hub states", meta.size),
            )));
        }
        if !block.is_empty() && full.send(block).is_err() {
            return Ok(()); // the writer failed: its error is reported
        }
        if hub.cancelled() {
            return Err(Failure::Fatal(Error::Cancelled));
        }
        if let Some(e) = end {
            return Err(transient(format!("the connection dropped after {len} of {} bytes: {e}", meta.size)));
        }
        if eof {
            return if len < meta.size {
                Err(transient(format!("the response ended after {len} of {} bytes", meta.size)))
            } else {
                Ok(())
            };
        }
    }
}

fn integrity(meta: &FileMeta, reason: String) -> Error {
    Error::Download(DownloadError::Integrity { file: meta.name.clone(), reason })
}

/// A partial file opened for appending, with the hash of the bytes it holds.
struct Partial {
    path: std::path::PathBuf,
    file: File,
    len: u64,
    hash: Option<Sha256>,
    /// Where the bytes not yet handed to [`write_back`] start.
    flushed: u64,
}

impl Partial {
    /// Opens (or creates) the partial file and hashes what it already holds.
    fn open(path: &std::path::Path, meta: &FileMeta) -> Result<Self> {
        let io = |e| storage(path, e);
        let mut file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path).map_err(io)?;
        let mut hash = meta.sha256.as_ref().map(|_| Sha256::new());
        let mut len = 0u64;
        if let Some(h) = hash.as_mut() {
            let mut buf = vec![0u8; BLOCK];
            loop {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                len += n as u64;
            }
        } else {
            len = file.seek(SeekFrom::End(0)).map_err(io)?;
        }
        if len > meta.size {
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            hash = meta.sha256.as_ref().map(|_| Sha256::new());
            len = 0;
        }
        if len > 0 {
            log::info!("{}: continuing from byte {len} of {}", meta.name, meta.size);
        }
        Ok(Partial { path: path.to_path_buf(), file, len, hash, flushed: len })
    }

    /// Writes bytes that the caller has hashed.
    fn append(&mut self, bytes: &[u8]) -> Attempt<()> {
        self.file.write_all(bytes).map_err(|e| Failure::Fatal(write_error(&self.path, e)))?;
        self.len += bytes.len() as u64;
        if self.len - self.flushed >= WRITE_BACK {
            write_back(&self.file, self.flushed, self.len - self.flushed);
            self.flushed = self.len;
        }
        Ok(())
    }

    fn restart(&mut self) -> Attempt<()> {
        self.file
            .set_len(0)
            .and_then(|_| self.file.seek(SeekFrom::Start(0)))
            .map_err(|e| Failure::Fatal(write_error(&self.path, e)))?;
        self.len = 0;
        self.flushed = 0;
        self.hash = self.hash.as_ref().map(|_| Sha256::new());
        Ok(())
    }

    /// Checks size and hash, syncs and renames into place; deletes the partial file when the
    /// check fails.
    fn finish(mut self, meta: &FileMeta, paths: &FilePaths) -> Result<()> {
        let bad = if self.len != meta.size {
            Some(format!("{} bytes, the hub states {}", self.len, meta.size))
        } else {
            match (self.hash.take(), &meta.sha256) {
                (Some(h), Some(want)) => {
                    let got: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
                    (got != want.to_ascii_lowercase()).then(|| format!("SHA-256 {got}, the hub states {want}"))
                }
                _ => None,
            }
        };
        if let Some(reason) = bad {
            drop(self.file);
            let _ = std::fs::remove_file(&self.path);
            return Err(integrity(meta, reason));
        }
        self.file.sync_all().map_err(|e| storage(&self.path, e))?;
        drop(self.file);
        std::fs::rename(&self.path, &paths.complete).map_err(|e| storage(&paths.complete, e))?;
        sync_dir(&paths.complete);
        Ok(())
    }
}

/// Bytes written between two [`write_back`] calls.
const WRITE_BACK: u64 = 8 << 20;

/// Starts writing the range just written to the disk, then waits for the range before it and
/// drops it from the page cache. The disk works while the network does, the final fsync has
/// little left to do, and a big download never holds more than ~16 MB of dirty pages (which on
/// a phone would push apps out of memory). Linux and Android; a no-op elsewhere.
fn write_back(file: &File, start: u64, len: u64) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        let (start, len) = (start as libc::off64_t, len as libc::off64_t);
        #[cfg(target_os = "linux")]
        use libc::{sync_file_range, SYNC_FILE_RANGE_WAIT_AFTER, SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE};
        // The libc crate declares no sync_file_range for Android; bionic exports it from API 26
        // (the SDK's minSdk), with <linux/fs.h>'s flag values.
        #[cfg(target_os = "android")]
        extern "C" {
            fn sync_file_range(fd: libc::c_int, offset: libc::off64_t, len: libc::off64_t, flags: libc::c_uint) -> libc::c_int;
        }
        #[cfg(target_os = "android")]
        const SYNC_FILE_RANGE_WAIT_BEFORE: libc::c_uint = 1;
        #[cfg(target_os = "android")]
        const SYNC_FILE_RANGE_WRITE: libc::c_uint = 2;
        #[cfg(target_os = "android")]
        const SYNC_FILE_RANGE_WAIT_AFTER: libc::c_uint = 4;
        // SAFETY: plain system calls on an open descriptor; failures only lose the hint.
        unsafe {
            sync_file_range(fd, start, len, SYNC_FILE_RANGE_WRITE);
            if start >= len {
                let before = start - len;
                sync_file_range(
                    fd,
                    before,
                    len,
                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER,
                );
                libc::posix_fadvise(fd, before, len, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (file, start, len);
}

/// A write error; a full disk becomes [`DownloadError::InsufficientSpace`].
fn write_error(path: &std::path::Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull {
        let available = super::layout::free_space(path).unwrap_or(0);
        return Error::Download(DownloadError::InsufficientSpace { path: path.to_path_buf(), needed: available + 1, available });
    }
    storage(path, e)
}
