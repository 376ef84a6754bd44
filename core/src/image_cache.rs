//! The engine-wide cache of image encodings: the vision encoder's and connector's output for
//! one image, keyed by the SHA-256 of its preprocessed pixels, least recently used first out,
//! bounded in bytes. The same image in a new session, after a reset, or asked about again by a
//! live session, is not encoded again.

use candle_core::Tensor;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// The default bound: a 512 px tile of SmolVLM-256M encodes to 64 × 576 f32 (147 KB), so this
/// holds about 200 tiles, or 15 fully split photos.
pub(crate) const DEFAULT_BYTES: usize = 32 << 20;

/// The key of one image: the SHA-256 of its preprocessed tiles (pixels and sizes).
pub(crate) type ImageKey = [u8; 32];

/// Hashes tiles as they are made, into an [`ImageKey`].
pub(crate) struct KeyHasher(Sha256);

impl KeyHasher {
    pub(crate) fn new(tiles: usize, side: usize) -> Self {
        let mut h = Sha256::new();
        h.update((tiles as u64).to_le_bytes());
        h.update((side as u64).to_le_bytes());
        KeyHasher(h)
    }

    pub(crate) fn tile(&mut self, pixels: &[f32]) {
        let mut bytes = [0u8; 4 * 1024];
        for chunk in pixels.chunks(1024) {
            for (b, v) in bytes.chunks_exact_mut(4).zip(chunk) {
                b.copy_from_slice(&v.to_le_bytes());
            }
            self.0.update(&bytes[..4 * chunk.len()]);
        }
    }

    pub(crate) fn finish(self) -> ImageKey {
        self.0.finalize().into()
    }
}

struct Entry {
    features: Tensor,
    bytes: usize,
    used: u64,
}

/// A byte-bounded LRU map from [`ImageKey`] to image features.
pub(crate) struct ImageCache {
    max_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<ImageKey, Entry>,
    bytes: usize,
    clock: u64,
}

impl ImageCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        ImageCache { max_bytes, state: Mutex::new(State::default()) }
    }

    /// Whether anything can be cached (a bound above zero).
    pub(crate) fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The features cached for `key`, marked as just used.
    pub(crate) fn get(&self, key: &ImageKey) -> Option<Tensor> {
        let mut st = self.lock();
        st.clock += 1;
        let now = st.clock;
        st.entries.get_mut(key).map(|e| {
            e.used = now;
            e.features.clone()
        })
    }

    /// Caches `features` for `key`, evicting the least recently used entries to stay within the
    /// bound. Features larger than the whole bound are not cached.
    pub(crate) fn insert(&self, key: ImageKey, features: &Tensor) {
        let bytes = features.elem_count() * features.dtype().size_in_bytes();
        if bytes > self.max_bytes {
            return;
        }
        let mut st = self.lock();
        st.clock += 1;
        let used = st.clock;
        if let Some(old) = st.entries.insert(key, Entry { features: features.clone(), bytes, used }) {
            st.bytes -= old.bytes;
        }
        st.bytes += bytes;
        while st.bytes > self.max_bytes {
            let Some(oldest) = st.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k) else { break };
            let e = st.entries.remove(&oldest).expect("present");
            st.bytes -= e.bytes;
        }
    }

    /// Forgets `key` (a live session's previous frame, which will not be seen again).
    pub(crate) fn remove(&self, key: &ImageKey) {
        let mut st = self.lock();
        if let Some(e) = st.entries.remove(key) {
            st.bytes -= e.bytes;
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn feats(v: f32) -> Tensor {
        Tensor::full(v, (4, 8), &Device::Cpu).unwrap() // 128 bytes
    }

    #[test]
    fn least_recently_used_goes_first_and_the_bound_holds() {
        let cache = ImageCache::new(300);
        let key = |b: u8| [b; 32];
        cache.insert(key(1), &feats(1.0));
        cache.insert(key(2), &feats(2.0));
        assert!(cache.get(&key(1)).is_some()); // 1 is now newer than 2
        cache.insert(key(3), &feats(3.0));
        assert!(cache.get(&key(2)).is_none(), "the least recently used was evicted");
        assert_eq!(cache.get(&key(1)).unwrap().to_vec2::<f32>().unwrap()[0][0], 1.0);
        assert!(cache.get(&key(3)).is_some());
        assert_eq!(cache.bytes(), 256);
        let big = Tensor::zeros((100, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        cache.insert(key(4), &big);
        assert!(cache.get(&key(4)).is_none(), "larger than the bound: not cached");
        cache.remove(&key(1));
        assert!(cache.get(&key(1)).is_none());
        assert_eq!(cache.bytes(), 128);
    }

    #[test]
    fn keys_follow_the_pixels_and_the_tiling() {
        let key = |tiles: usize, px: &[f32]| {
            let mut h = KeyHasher::new(tiles, 2);
            h.tile(px);
            h.finish()
        };
        assert_eq!(key(1, &[0.5, 1.0]), key(1, &[0.5, 1.0]));
        assert_ne!(key(1, &[0.5, 1.0]), key(1, &[0.5, 1.5]));
        assert_ne!(key(1, &[0.5, 1.0]), key(2, &[0.5, 1.0]));
    }
}
