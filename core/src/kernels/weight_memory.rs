//! Memory for quantized weights, packed into large chunks the OS may back with 2 MB pages.
//!
//! A decode step streams every weight once. With 4 KB pages that is a TLB miss every 4 KB (a
//! two-level page walk in a virtual machine) over ~25 000 pages for SmolLM2-135M. Most matrices
//! are smaller than a 2 MB page, so they are packed one after another into 32 MB chunks, aligned
//! to 2 MB and advised `MADV_HUGEPAGE` on Linux and Android (where transparent huge pages are
//! enabled, or on `madvise`); a chunk is freed with the last matrix in it. Elsewhere, or where
//! the OS declines, the chunks are ordinary memory.

use std::alloc::Layout;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Weak};

/// The huge page size chunks are aligned to.
const HUGE: usize = 2 << 20;
/// Bytes per chunk (a larger matrix gets a chunk of its own size).
const CHUNK: usize = 32 << 20;
/// Where each matrix starts within a chunk (the kernels' loads need no more).
const ALIGN: usize = 64;

/// One allocation holding several matrices' bytes, each range written once by its owner.
struct Chunk {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the chunk is plain memory; every range of it is written only while its `WeightBytes`
// is built (by that one owner) and only read afterwards.
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: allocated in `Chunk::new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl Chunk {
    /// A chunk of at least `size` bytes, or None where the size cannot be laid out or allocated.
    fn new(size: usize) -> Option<Arc<Chunk>> {
        let layout = Layout::from_size_align(size.checked_next_multiple_of(HUGE)?, HUGE).ok()?;
        // SAFETY: the layout's size is non-zero (at least HUGE).
        let ptr = NonNull::new(unsafe { std::alloc::alloc(layout) })?;
        // Advised before any byte is touched, so the pages are huge from the first fault.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: the range is this allocation; advice never changes its contents.
        unsafe {
            libc::madvise(ptr.as_ptr().cast(), layout.size(), libc::MADV_HUGEPAGE);
        }
        Some(Arc::new(Chunk { ptr, layout }))
    }
}

/// The chunk being filled, and where its free space begins.
static CURRENT: Mutex<(Weak<Chunk>, usize)> = Mutex::new((Weak::new(), 0));

/// Where a matrix's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Memory {
    /// An allocation of its own (weights read a block at a time, e.g. the vision encoder's).
    Own,
    /// Packed into a chunk with other matrices (weights streamed once per decode step).
    Packed,
}

/// A matrix's bytes: their own allocation, or a range of a shared chunk.
pub(crate) struct WeightBytes(Repr);

enum Repr {
    Own(Vec<u8>),
    Packed { chunk: Arc<Chunk>, start: usize, len: usize },
}

impl WeightBytes {
    /// `len` bytes in `memory`, zeroed, then written by `fill`; an error where `len` bytes cannot
    /// be had (the size comes from a model file: it never aborts the process).
    pub(crate) fn new(len: usize, memory: Memory, fill: impl FnOnce(&mut [u8])) -> candle_core::Result<Self> {
        let refuse = || candle_core::Error::Msg(format!("cannot allocate {len} bytes of weights"));
        if memory == Memory::Own {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| refuse())?;
            v.resize(len, 0);
            fill(&mut v);
            return Ok(Self(Repr::Own(v)));
        }
        let (chunk, start) = {
            let mut cur = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
            let room = cur.0.upgrade().filter(|c| cur.1.checked_add(len).is_some_and(|end| end <= c.layout.size()));
            // (`end` fits the chunk, so rounding it up to ALIGN cannot overflow)
            match room {
                Some(c) => {
                    let start = cur.1;
                    cur.1 = (start + len).next_multiple_of(ALIGN);
                    (c, start)
                }
                None => {
                    let c = Chunk::new(CHUNK.max(len)).ok_or_else(refuse)?;
                    *cur = (Arc::downgrade(&c), len.next_multiple_of(ALIGN));
                    (c, 0)
                }
            }
        };
        // SAFETY: `start..start + len` lies in the chunk and was handed to no one else (the
        // free space only moves forward); it is zeroed before the slice is made.
        let bytes = unsafe {
            let p = chunk.ptr.as_ptr().add(start);
            std::ptr::write_bytes(p, 0, len);
            std::slice::from_raw_parts_mut(p, len)
        };
        fill(bytes);
        Ok(Self(Repr::Packed { chunk, start, len }))
    }

    /// Where the bytes live.
    pub(crate) fn memory(&self) -> Memory {
        match self.0 {
            Repr::Own(_) => Memory::Own,
            Repr::Packed { .. } => Memory::Packed,
        }
    }
}

impl Deref for WeightBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Own(v) => v,
            // SAFETY: the range was initialised in `new` and is only read from then on.
            Repr::Packed { chunk, start, len } => unsafe { std::slice::from_raw_parts(chunk.ptr.as_ptr().add(*start), *len) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Matrices share chunks without overlapping, keep their bytes, and a large one gets a chunk
    /// of its own.
    #[test]
    fn matrices_pack_into_chunks_without_overlap() {
        let chunk = |w: &WeightBytes| match &w.0 {
            Repr::Packed { chunk, .. } => chunk.ptr.as_ptr() as usize,
            Repr::Own(_) => unreachable!("packed"),
        };
        let parts: Vec<WeightBytes> =
            (0..40).map(|i| WeightBytes::new(1 << 20, Memory::Packed, |b| b.fill(i as u8)).unwrap()).collect();
        let big = WeightBytes::new(CHUNK + 5, Memory::Packed, |b| b[CHUNK + 4] = 7).unwrap();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.len(), 1 << 20);
            assert!(p.iter().all(|&v| v == i as u8), "matrix {i} was overwritten");
        }
        // (other tests may take chunk space in between: most neighbours still share a chunk)
        let shared = parts.windows(2).filter(|w| chunk(&w[0]) == chunk(&w[1])).count();
        assert!(shared >= 30 && chunk(&parts[0]) != chunk(&parts[39]), "{shared} neighbours share");
        assert_eq!((big.len(), big[CHUNK + 4], big[0]), (CHUNK + 5, 7, 0));
        assert_eq!(chunk(&big) % HUGE, 0);
        assert!(WeightBytes::new(0, Memory::Packed, |_| ()).unwrap().is_empty());
        let own = WeightBytes::new(3, Memory::Own, |b| b[1] = 9).unwrap();
        assert_eq!((&own[..], own.memory()), (&[0u8, 9, 0][..], Memory::Own));
    }

    /// Sizes no memory can hold, near the top of `usize` (where rounding up to a chunk or to the
    /// alignment used to wrap to a tiny allocation, then zero ~2^64 bytes), are refused with an
    /// error, and the chunk being filled stays usable.
    #[test]
    fn impossible_sizes_are_errors() {
        let before = WeightBytes::new(100, Memory::Packed, |b| b.fill(3)).unwrap();
        for len in [usize::MAX, usize::MAX - 63, usize::MAX - (CHUNK - 1), 1usize << 62] {
            for memory in [Memory::Packed, Memory::Own] {
                let r = WeightBytes::new(len, memory, |_| unreachable!("nothing to fill"));
                assert!(r.is_err(), "{len} bytes in {memory:?}");
            }
        }
        let after = WeightBytes::new(100, Memory::Packed, |b| b.fill(4)).unwrap();
        assert!(before.iter().all(|&v| v == 3) && after.iter().all(|&v| v == 4));
    }
}
