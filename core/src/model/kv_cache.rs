//! The key/value cache of one sequence: per layer, keys (after RoPE) and values in
//! preallocated buffers that grow geometrically up to a limit, written in place a row at a time.

use candle_core::{CpuStorage, DType, Device, Tensor};

/// Per-layer key/value cache of one sequence (keys after RoPE).
///
/// Storage is preallocated and grows geometrically up to the cache's limit, so appending a token
/// does not copy the history. Not `Clone`: the buffers are written in place.
pub struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    pub(crate) len: usize,
}

impl KvCache {
    /// An empty cache of `layers` layers whose buffers hold `dtype` and never grow beyond
    /// `max_tokens` positions.
    pub(crate) fn new(layers: usize, max_tokens: usize, dtype: DType) -> Self {
        KvCache { layers: (0..layers).map(|_| LayerKv::new(max_tokens, dtype)).collect(), len: 0 }
    }

    /// Number of positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps only the first `len` positions (no-op when `len >= self.len()`).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forgets every position (the buffers are kept for reuse).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Positions the buffers can hold before growing again (0 before the first append).
    pub fn capacity(&self) -> usize {
        self.layers.first().map_or(0, LayerKv::capacity)
    }

    /// Announces that the cache will hold up to `positions` positions (capped at the cache's
    /// limit): the next time the buffers grow within that, they grow to exactly that size at once,
    /// instead of doubling (a 1141-token prompt plus its answer then never moves to 2304
    /// positions, nor holds the old and the new buffers together while it copies).
    pub fn reserve(&mut self, positions: usize) {
        for layer in &mut self.layers {
            layer.planned = positions.min(layer.limit);
        }
    }
}

/// One layer's K and V buffers, `[kv_heads, capacity, head_dim]` each.
pub(crate) struct LayerKv {
    k: Option<Tensor>,
    v: Option<Tensor>,
    /// The buffers' element type (f32, or f16 for quantized models).
    dtype: DType,
    /// Most positions the buffers grow to (unless a single append needs more).
    limit: usize,
    /// Positions announced by [`KvCache::reserve`]: a growth that fits grows to this at once.
    planned: usize,
}

impl LayerKv {
    fn new(limit: usize, dtype: DType) -> Self {
        Self { k: None, v: None, dtype, limit, planned: 0 }
    }

    fn capacity(&self) -> usize {
        self.k.as_ref().map_or(0, |b| b.dims()[1])
    }

    /// Makes room for positions `0..need` in `[kv_heads, _, head_dim]` buffers, keeping the
    /// first `held` positions when the buffers grow.
    fn make_room(&mut self, held: usize, need: usize, (kvh, hd): (usize, usize), dev: &Device) -> candle_core::Result<()> {
        let cap = self.capacity();
        if need <= cap {
            return Ok(());
        }
        let new_cap = if need <= self.planned {
            self.planned
        } else {
            need.max(cap * 2).max(256).next_multiple_of(64).min(self.limit).max(need)
        };
        let grow = |old: &Option<Tensor>| -> candle_core::Result<Tensor> {
            let buf = Tensor::zeros((kvh, new_cap, hd), self.dtype, dev)?;
            if let Some(old) = old {
                if held > 0 {
                    buf.slice_set(&old.narrow(1, 0, held)?.contiguous()?, 1, 0)?;
                }
            }
            Ok(buf)
        };
        self.k = Some(grow(&self.k)?);
        self.v = Some(grow(&self.v)?);
        Ok(())
    }

    /// Writes `k`, `v` (`[kv_heads, t, head_dim]`) at positions `offset..offset+t` and returns
    /// positions `0..offset+t`, in `k`'s dtype (views when the buffers hold that dtype).
    pub(crate) fn append(&mut self, offset: usize, k: &Tensor, v: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (kvh, t, hd) = k.dims3()?;
        let need = offset + t;
        self.make_room(offset, need, (kvh, hd), k.device())?;
        let (kb, vb) = (self.k.as_ref().expect("allocated"), self.v.as_ref().expect("allocated"));
        kb.slice_set(&k.to_dtype(self.dtype)?.contiguous()?, 1, offset)?;
        vb.slice_set(&v.to_dtype(self.dtype)?.contiguous()?, 1, offset)?;
        Ok((kb.narrow(1, 0, need)?.to_dtype(k.dtype())?, vb.narrow(1, 0, need)?.to_dtype(k.dtype())?))
    }

    /// Writes one position's keys and values (host rows of `kv_heads · head_dim` values) at `pos`
    /// into CPU buffers, in place (rounded to f16 in an f16 cache).
    pub(crate) fn write_row(&mut self, pos: usize, k: &[f32], v: &[f32], head_dim: usize) -> candle_core::Result<()> {
        self.make_room(pos, pos + 1, (k.len() / head_dim.max(1), head_dim), &Device::Cpu)?;
        let (kb, vb) = (self.k.as_ref().expect("allocated"), self.v.as_ref().expect("allocated"));
        kb.inplace_op1(&WriteRow { pos, rows: k })?;
        vb.inplace_op1(&WriteRow { pos, rows: v })
    }

    /// Calls `f` with the host buffers (head `h`, position `p` at `h·stride + p·head_dim`) and
    /// the stride, once they hold at least `len` positions.
    pub(crate) fn with_host<R>(&self, len: usize, f: impl FnOnce(HostKv<'_>, usize) -> R) -> candle_core::Result<R> {
        let (Some(k), Some(v)) = (&self.k, &self.v) else { candle_core::bail!("kv cache: empty") };
        let (ks, kl) = k.storage_and_layout();
        let (vs, vl) = v.storage_and_layout();
        let (candle_core::Storage::Cpu(kc), candle_core::Storage::Cpu(vc)) = (&*ks, &*vs) else {
            candle_core::bail!("kv cache: host access needs CPU buffers")
        };
        if !kl.is_contiguous() || !vl.is_contiguous() || kl.dims()[1] < len {
            candle_core::bail!("kv cache: host access needs contiguous buffers holding {len} positions")
        }
        let stride = kl.dims()[1] * kl.dims()[2];
        let (kr, vr) = (
            kl.start_offset()..kl.start_offset() + kl.shape().elem_count(),
            vl.start_offset()..vl.start_offset() + vl.shape().elem_count(),
        );
        match (kc, vc) {
            (CpuStorage::F32(kd), CpuStorage::F32(vd)) => Ok(f(HostKv::F32(&kd[kr], &vd[vr]), stride)),
            (CpuStorage::F16(kd), CpuStorage::F16(vd)) => Ok(f(HostKv::F16(&kd[kr], &vd[vr]), stride)),
            _ => candle_core::bail!("kv cache: host access needs f32 or f16 buffers"),
        }
    }
}

/// A layer's cached keys and values on the host: `(keys, values)` in the cache's element type.
pub(crate) enum HostKv<'a> {
    F32(&'a [f32], &'a [f32]),
    F16(&'a [half::f16], &'a [half::f16]),
}

/// Writes `rows` (`[kv_heads · head_dim]`) at one position of a `[kv_heads, capacity, head_dim]`
/// f32 or f16 buffer.
struct WriteRow<'a> {
    pos: usize,
    rows: &'a [f32],
}

impl candle_core::InplaceOp1 for WriteRow<'_> {
    fn name(&self) -> &'static str {
        "kv-write-row"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &candle_core::Layout) -> candle_core::Result<()> {
        let (Some((start, _)), [kvh, cap, hd]) = (layout.contiguous_offsets(), layout.dims()) else {
            candle_core::bail!("kv cache: a row write needs contiguous [heads, capacity, dim] buffers")
        };
        if self.rows.len() != kvh * hd || self.pos >= *cap {
            candle_core::bail!("kv cache: {} values at position {} of [{kvh}, {cap}, {hd}]", self.rows.len(), self.pos)
        }
        for (h, src) in self.rows.chunks_exact(*hd).enumerate() {
            let at = start + (h * cap + self.pos) * hd;
            match storage {
                CpuStorage::F32(buf) => buf[at..at + hd].copy_from_slice(src),
                CpuStorage::F16(buf) => half::slice::HalfFloatSliceExt::convert_from_f32_slice(&mut buf[at..at + hd], src),
                _ => candle_core::bail!("kv cache: a row write needs f32 or f16 buffers"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffers grow geometrically (at least 256 positions) but never past the limit.
    #[test]
    fn kv_buffers_stop_growing_at_the_limit() {
        let kv = |t: usize| Tensor::ones((2, t, 4), DType::F32, &Device::Cpu).unwrap();
        let mut unlimited = LayerKv::new(usize::MAX, DType::F32);
        let mut limited = LayerKv::new(300, DType::F32);
        for layer in [&mut unlimited, &mut limited] {
            layer.append(0, &kv(1), &kv(1)).unwrap();
            assert_eq!(layer.capacity(), 256);
        }
        let (k, _) = limited.append(1, &kv(260), &kv(260)).unwrap();
        assert_eq!((limited.capacity(), k.dims()[1]), (300, 261), "capped at the limit");
        unlimited.append(1, &kv(260), &kv(260)).unwrap();
        assert_eq!(unlimited.capacity(), 512, "doubled");
        // Held positions survive the growth, and an append past the limit still fits exactly.
        let (k, _) = limited.append(261, &kv(50), &kv(50)).unwrap();
        assert_eq!((limited.capacity(), k.dims()[1]), (311, 311));
        assert_eq!(k.sum_all().unwrap().to_scalar::<f32>().unwrap(), (2 * 311 * 4) as f32);
    }

    /// A reservation makes the next growth exactly that size (capped at the limit); growing past
    /// it is geometric again.
    #[test]
    fn reserved_positions_are_allocated_at_once() {
        let kv = |t: usize| Tensor::ones((2, t, 4), DType::F32, &Device::Cpu).unwrap();
        let mut layer = LayerKv::new(2000, DType::F32);
        layer.planned = 1150;
        layer.append(0, &kv(1141), &kv(1141)).unwrap();
        assert_eq!(layer.capacity(), 1150);
        layer.append(1141, &kv(9), &kv(9)).unwrap();
        assert_eq!(layer.capacity(), 1150, "no growth within the reservation");
        let (k, _) = layer.append(1150, &kv(1), &kv(1)).unwrap();
        assert_eq!((layer.capacity(), k.dims()[1]), (2000, 1151), "doubling, capped at the limit");
        let mut cache = KvCache { layers: vec![LayerKv::new(300, DType::F32)], len: 0 };
        cache.reserve(5000);
        assert_eq!(cache.layers[0].planned, 300);
    }

    /// A decode step's in-place row write lands where an append of the same row would, growing
    /// the buffers the same way and keeping what they held, in an f32 and in an f16 cache.
    #[test]
    fn row_writes_match_appends() {
        // integers below 2048, exact in f16 too
        let row = |p: usize| (0..2 * 4).map(|i| (p % 200 * 10 + i) as f32).collect::<Vec<f32>>();
        let host = |layer: &LayerKv| {
            layer
                .with_host(300, |kv, s| match kv {
                    HostKv::F32(k, v) => (k.to_vec(), v.to_vec(), s),
                    HostKv::F16(k, v) => (k.iter().map(|x| x.to_f32()).collect(), v.iter().map(|x| x.to_f32()).collect(), s),
                })
                .unwrap()
        };
        for dtype in [DType::F32, DType::F16] {
            let (mut appended, mut written) = (LayerKv::new(usize::MAX, dtype), LayerKv::new(usize::MAX, dtype));
            for p in 0..300 {
                let t = Tensor::from_vec(row(p), (2, 1, 4), &Device::Cpu).unwrap();
                let (k, _) = appended.append(p, &t, &(&t * 2.0).unwrap()).unwrap();
                assert_eq!(k.dtype(), DType::F32, "appends return the caller's dtype");
                let twice: Vec<f32> = row(p).iter().map(|v| v * 2.0).collect();
                written.write_row(p, &row(p), &twice, 4).unwrap();
            }
            assert_eq!(written.capacity(), 512);
            let (a, w) = (host(&appended), host(&written));
            assert!(a == w, "{dtype:?}");
            assert_eq!(w.0[512 * 4 + 299 * 4 + 3], 997.0, "head 1, position 299, column 3 ({dtype:?})");
            assert!(written.write_row(0, &[1.0; 6], &[1.0; 6], 4).is_err(), "a row of the wrong width");
        }
    }
}
