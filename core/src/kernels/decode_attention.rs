//! Attention of one new position (a decode step) against the KV cache, grouped-query.
//!
//! Each key and value row (f32, or f16 for quantized models) is read once for all the query heads
//! that share it, and the dot products and weighted sums run on explicit vector code (AVX2, FMA
//! and F16C on x86-64, NEON on arm64): the compiler turned the plain loops into 2-lane code,
//! which made attention a seventh of a SmolLM2 decode step at 60 positions.

use super::ops::{exp, exp_shifted};
use super::spin_pool::SpinPool;

/// One task of [`decode_attention`]: its index, its share of the outputs and of the statistics.
type Task<'a> = (usize, (&'a mut [f32], &'a mut [f32]));

/// Query heads handled in one pass over a kv head's keys and values.
const GROUP: usize = 4;
/// From this many multiply-adds (positions × heads × head size) on, the positions are split over
/// the decode pool.
const PAR_MIN: usize = 1 << 14;
/// The fewest positions a parallel task takes.
const MIN_SPAN: usize = 16;
/// Positions ahead of the one being scored whose key and value rows are prefetched. The rows
/// come from memory (a layer's were last read a step ago) in 4 KB pages: the hardware prefetcher
/// stops at each page's end, and after an image (1141 positions) the cache is 26 MB a step.
/// Measured inside one process, alternating token by token: SmolVLM-256M q8_0 decode after a
/// 512×512 image +10 % (16 or 32 ahead), SmolLM2 at 30–290 positions +3 % (16) / +4.5 % (32).
const PREFETCH_ROWS: usize = 32;

/// `softmax(qⱼ·Kᵀ·scale)·V` for every query head `j` of `q` (`heads · hd` values), where head `j`
/// reads kv head `j / n_rep`; kv head `g`'s position `t` starts at `g·stride + t·hd` of `keys`
/// and `values`, and `len` positions are attended. Writes `out` (`heads · hd`).
///
/// The cached rows come from L3 or memory (a layer's were last read a whole step ago), so their
/// bytes set the time: each is read once, for all the query heads sharing it, and with several
/// threads each takes a span of positions for every head, keeping its partial softmax (maximum,
/// sum, unnormalised output), and the spans are merged at the end.
pub(crate) fn decode_attention<T: Element>(q: &[f32], cache: Cache<T>, n_rep: usize, scale: f32, out: &mut [f32]) {
    let hd = cache.hd;
    let heads = q.len() / hd.max(1);
    let (len, kvh) = (cache.len, heads / n_rep.max(1));
    debug_assert!(out.len() == q.len() && n_rep > 0 && heads.is_multiple_of(n_rep) && len > 0);
    let pool = SpinPool::global();
    let parallel = pool.threads() > 1 && len * heads * hd >= PAR_MIN;
    // Spans per kv head: about two tasks per thread in all.
    let spans = if parallel { (2 * pool.threads()).div_ceil(kvh).clamp(1, len.div_ceil(MIN_SPAN)) } else { 1 };
    let span = len.div_ceil(spans);
    // Per task and query head: the unnormalised output (hd values), and the maximum and the sum.
    let mut outs = vec![0f32; kvh * spans * n_rep * hd];
    let mut stats = [f32::NEG_INFINITY, 0.0].repeat(kvh * spans * n_rep); // an empty span adds nothing
    let tasks: Vec<Task> = outs.chunks_mut(n_rep * hd).zip(stats.chunks_mut(n_rep * 2)).enumerate().collect();
    let task = |(i, (o, st)): Task| {
        let g = i / spans;
        let a = (i % spans * span).min(len);
        let b = (a + span).min(len);
        let (k, v) = (&cache.keys[g * cache.stride..][a * hd..b * hd], &cache.values[g * cache.stride..][a * hd..b * hd]);
        let mut p = vec![0f32; GROUP.min(n_rep) * (b - a)];
        for ((r0, o), st) in (0..n_rep).step_by(GROUP).zip(o.chunks_mut(GROUP * hd)).zip(st.chunks_mut(GROUP * 2)) {
            let j = g * n_rep + r0;
            let r = o.len() / hd;
            span_partial(&q[j * hd..(j + r) * hd], k, v, hd, scale, &mut p[..r * (b - a)], o, st);
        }
    };
    if parallel {
        pool.for_each(tasks, &task);
    } else {
        tasks.into_iter().for_each(task);
    }
    // Merge the spans of each head: rescale to the largest maximum.
    for (j, o) in out.chunks_exact_mut(hd).enumerate() {
        let at = |s: usize| (j / n_rep * spans + s) * n_rep + j % n_rep;
        let m = (0..spans).map(|s| stats[2 * at(s)]).fold(f32::NEG_INFINITY, f32::max);
        o.fill(0.0);
        let mut sum = 0f32;
        for s in 0..spans {
            let w = exp(stats[2 * at(s)] - m);
            sum += w * stats[2 * at(s) + 1];
            o.iter_mut().zip(&outs[at(s) * hd..][..hd]).for_each(|(o, v)| *o += w * v);
        }
        o.iter_mut().for_each(|v| *v /= sum);
    }
}

/// A layer's cached keys and values as [`decode_attention`] reads them.
#[derive(Clone, Copy)]
pub(crate) struct Cache<'a, T> {
    pub(crate) keys: &'a [T],
    pub(crate) values: &'a [T],
    /// Values from one kv head to the next.
    pub(crate) stride: usize,
    /// Positions attended.
    pub(crate) len: usize,
    /// Head size.
    pub(crate) hd: usize,
}

/// A cache element type: f32, or f16 (quantized models).
pub(crate) trait Element: Copy + Send + Sync {
    /// The value as f32.
    fn to_f32(self) -> f32;
    /// Eight values at `p` (AVX2 + F16C).
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
    /// Four values at `p`.
    #[cfg(target_arch = "aarch64")]
    unsafe fn load4(p: *const Self) -> std::arch::aarch64::float32x4_t;
}

impl Element for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    unsafe fn load4(p: *const f32) -> std::arch::aarch64::float32x4_t {
        std::arch::aarch64::vld1q_f32(p)
    }
}

impl Element for half::f16 {
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const half::f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    unsafe fn load4(p: *const half::f16) -> std::arch::aarch64::float32x4_t {
        super::qtiles::f16x4(p as *const u8)
    }
}

/// The heads `q` (`r · hd`, r ≤ GROUP) against a span of one kv head's positions `k`, `v`
/// (`n · hd`), with `p` (`r · n`) as scratch: writes per head the unnormalised output
/// `Σ e^(s_t − m)·v_t` to `o` (`r · hd`), and the largest scaled score `m` and `Σ e^(s_t − m)`
/// to `stats` (`r · 2`).
#[allow(clippy::too_many_arguments)]
fn span_partial<T: Element>(q: &[f32], k: &[T], v: &[T], hd: usize, scale: f32, p: &mut [f32], o: &mut [f32], stats: &mut [f32]) {
    let n = k.len() / hd;
    simd::scores(q, k, v, hd, p);
    for (row, st) in p.chunks_exact_mut(n.max(1)).zip(stats.chunks_exact_mut(2)) {
        let (m, sum) = exp_shifted(row, scale);
        st.copy_from_slice(&[m, sum]);
    }
    simd::weighted_sum(p, v, hd, o);
}

/// `$f::<T, R>(args)` for `R = $rows` query heads (1 to GROUP).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! by_rows {
    ($rows:expr, $f:ident::<$t:ty>($($a:expr),*)) => {
        match $rows {
            1 => $f::<$t, 1>($($a),*),
            2 => $f::<$t, 2>($($a),*),
            3 => $f::<$t, 3>($($a),*),
            _ => $f::<$t, 4>($($a),*),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::Element;
    use std::arch::x86_64::*;

    fn fast() -> bool {
        use std::sync::OnceLock;
        static FAST: OnceLock<bool> = OnceLock::new();
        *FAST.get_or_init(|| {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
        })
    }

    /// `p[r·len + t] = q_r · k_t` for each query row `r` of `q` and key row `t` of `k`; the
    /// value rows `v` (as many as `k`'s), which `weighted_sum` reads next, are prefetched.
    pub(super) fn scores<T: Element>(q: &[f32], k: &[T], v: &[T], hd: usize, p: &mut [f32]) {
        if fast() && hd.is_multiple_of(8) {
            // SAFETY: AVX2, FMA and F16C were detected; every access is within the slices (hd % 8 == 0).
            unsafe { by_rows!(q.len() / hd, scores_avx2::<T>(q, k, v, hd, p)) }
        } else {
            super::portable::scores(q, k, v, hd, p)
        }
    }

    /// `out_r = Σ_t p[r·len + t] · v_t` for each row `r`.
    pub(super) fn weighted_sum<T: Element>(p: &[f32], v: &[T], hd: usize, out: &mut [f32]) {
        if fast() && hd.is_multiple_of(16) {
            // SAFETY: as in `scores` (hd % 16 == 0).
            unsafe { by_rows!(out.len() / hd, weighted_sum_avx2::<T>(p, v, hd, out)) }
        } else {
            super::portable::weighted_sum(p, v, hd, out)
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scores_avx2<T: Element, const R: usize>(q: &[f32], k: &[T], v: &[T], hd: usize, p: &mut [f32]) {
        assert!(q.len() == R * hd && p.len() == R * (k.len() / hd) && v.len() == k.len());
        let len = k.len() / hd;
        let bytes = hd * std::mem::size_of::<T>();
        for t in 0..len {
            let kt = k.as_ptr().add(t * hd);
            // keys for the next rows' scores into L1, values for `weighted_sum` into L2 (a
            // prefetch never faults, so rows past the span are harmless)
            let (ka, va) = (
                (kt as *const i8).wrapping_add(super::PREFETCH_ROWS * bytes),
                (v.as_ptr().add(t * hd) as *const i8).wrapping_add(super::PREFETCH_ROWS * bytes),
            );
            for l in (0..bytes).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ka.wrapping_add(l));
                _mm_prefetch::<_MM_HINT_T1>(va.wrapping_add(l));
            }
            let mut acc = [_mm256_setzero_ps(); R];
            for c in (0..hd).step_by(8) {
                let kv = T::load8(kt.add(c));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(r * hd + c)), kv, *a);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let s = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps::<1>(*a));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                *p.get_unchecked_mut(r * len + t) = _mm_cvtss_f32(s);
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn weighted_sum_avx2<T: Element, const R: usize>(p: &[f32], v: &[T], hd: usize, out: &mut [f32]) {
        assert!(out.len() == R * hd && p.len() == R * (v.len() / hd));
        let len = v.len() / hd;
        // 16 columns at a time: 2·R independent accumulators.
        for c in (0..hd).step_by(16) {
            let (mut a, mut b) = ([_mm256_setzero_ps(); R], [_mm256_setzero_ps(); R]);
            for t in 0..len {
                let vt = v.as_ptr().add(t * hd + c);
                let (v0, v1) = (T::load8(vt), T::load8(vt.add(8)));
                for r in 0..R {
                    let w = _mm256_set1_ps(*p.get_unchecked(r * len + t));
                    a[r] = _mm256_fmadd_ps(w, v0, a[r]);
                    b[r] = _mm256_fmadd_ps(w, v1, b[r]);
                }
            }
            for r in 0..R {
                _mm256_storeu_ps(out.as_mut_ptr().add(r * hd + c), a[r]);
                _mm256_storeu_ps(out.as_mut_ptr().add(r * hd + c + 8), b[r]);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod simd {
    use super::Element;
    use std::arch::aarch64::*;

    /// `p[r·len + t] = q_r · k_t` for each query row `r` of `q` and key row `t` of `k`; the
    /// value rows `v` (as many as `k`'s), which `weighted_sum` reads next, are prefetched.
    pub(super) fn scores<T: Element>(q: &[f32], k: &[T], v: &[T], hd: usize, p: &mut [f32]) {
        if !hd.is_multiple_of(4) {
            return super::portable::scores(q, k, v, hd, p);
        }
        // SAFETY: NEON is part of ARMv8-A; every access is within the slices (hd % 4 == 0).
        unsafe { by_rows!(q.len() / hd, scores_neon::<T>(q, k, v, hd, p)) }
    }

    /// `out_r = Σ_t p[r·len + t] · v_t` for each row `r`.
    pub(super) fn weighted_sum<T: Element>(p: &[f32], v: &[T], hd: usize, out: &mut [f32]) {
        if !hd.is_multiple_of(8) {
            return super::portable::weighted_sum(p, v, hd, out);
        }
        // SAFETY: as in `scores` (hd % 8 == 0).
        unsafe { by_rows!(out.len() / hd, weighted_sum_neon::<T>(p, v, hd, out)) }
    }

    unsafe fn scores_neon<T: Element, const R: usize>(q: &[f32], k: &[T], v: &[T], hd: usize, p: &mut [f32]) {
        assert!(q.len() == R * hd && p.len() == R * (k.len() / hd) && v.len() == k.len());
        let len = k.len() / hd;
        let bytes = hd * std::mem::size_of::<T>();
        for t in 0..len {
            let kt = k.as_ptr().add(t * hd);
            // keys into L1, values into L2, as on x86 (`prfm` is a hint: it never faults)
            let (ka, va) = (
                (kt as *const u8).wrapping_add(super::PREFETCH_ROWS * bytes),
                (v.as_ptr().add(t * hd) as *const u8).wrapping_add(super::PREFETCH_ROWS * bytes),
            );
            for l in (0..bytes).step_by(64) {
                std::arch::asm!("prfm pldl1keep, [{0}]", "prfm pldl2keep, [{1}]", in(reg) ka.wrapping_add(l), in(reg) va.wrapping_add(l), options(nostack, readonly, preserves_flags));
            }
            let mut acc = [vdupq_n_f32(0.0); R];
            for c in (0..hd).step_by(4) {
                let kv = T::load4(kt.add(c));
                for (r, a) in acc.iter_mut().enumerate() {
                    *a = vfmaq_f32(*a, vld1q_f32(q.as_ptr().add(r * hd + c)), kv);
                }
            }
            for (r, a) in acc.iter().enumerate() {
                *p.get_unchecked_mut(r * len + t) = vaddvq_f32(*a);
            }
        }
    }

    unsafe fn weighted_sum_neon<T: Element, const R: usize>(p: &[f32], v: &[T], hd: usize, out: &mut [f32]) {
        assert!(out.len() == R * hd && p.len() == R * (v.len() / hd));
        let len = v.len() / hd;
        // 8 columns at a time: 2·R independent accumulators.
        for c in (0..hd).step_by(8) {
            let (mut a, mut b) = ([vdupq_n_f32(0.0); R], [vdupq_n_f32(0.0); R]);
            for t in 0..len {
                let vt = v.as_ptr().add(t * hd + c);
                let (v0, v1) = (T::load4(vt), T::load4(vt.add(4)));
                for r in 0..R {
                    let w = *p.get_unchecked(r * len + t);
                    a[r] = vfmaq_n_f32(a[r], v0, w);
                    b[r] = vfmaq_n_f32(b[r], v1, w);
                }
            }
            for r in 0..R {
                vst1q_f32(out.as_mut_ptr().add(r * hd + c), a[r]);
                vst1q_f32(out.as_mut_ptr().add(r * hd + c + 4), b[r]);
            }
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
use portable as simd;

/// Plain loops: other CPUs, and head sizes the vector code does not cover.
mod portable {
    use super::Element;

    /// (The value rows are not prefetched here.)
    pub(super) fn scores<T: Element>(q: &[f32], k: &[T], _v: &[T], hd: usize, p: &mut [f32]) {
        let len = k.len() / hd;
        for (qr, pr) in q.chunks_exact(hd).zip(p.chunks_exact_mut(len)) {
            for (s, kt) in pr.iter_mut().zip(k.chunks_exact(hd)) {
                *s = qr.iter().zip(kt).map(|(q, k)| q * k.to_f32()).sum();
            }
        }
    }

    pub(super) fn weighted_sum<T: Element>(p: &[f32], v: &[T], hd: usize, out: &mut [f32]) {
        let len = v.len() / hd;
        for (pr, o) in p.chunks_exact(len).zip(out.chunks_exact_mut(hd)) {
            o.fill(0.0);
            for (w, vt) in pr.iter().zip(v.chunks_exact(hd)) {
                o.iter_mut().zip(vt).for_each(|(o, v)| *o += w * v.to_f32());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every group size and both the serial and the parallel split equal a plain f64 attention,
    /// from an f32 cache and from an f16 one (against the f16 values).
    #[test]
    fn matches_plain_attention() {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let hd = 64;
        for (heads, kvh, len) in [(9, 3, 1), (9, 3, 37), (15, 5, 300), (4, 4, 20), (8, 1, 129), (10, 2, 2000)] {
            let n_rep = heads / kvh;
            let stride = (len + 5) * hd; // room past `len`, as in a cache with spare capacity
            let q: Vec<f32> = (0..heads * hd).map(|_| rnd()).collect();
            let keys: Vec<f32> = (0..kvh * stride).map(|_| rnd()).collect();
            let values: Vec<f32> = (0..kvh * stride).map(|_| rnd()).collect();
            let scale = 0.125;
            let half = |x: &[f32]| x.iter().map(|v| half::f16::from_f32(*v)).collect::<Vec<_>>();
            let (keys16, values16) = (half(&keys), half(&values));
            let mut out = vec![f32::NAN; heads * hd];
            let mut out16 = vec![f32::NAN; heads * hd];
            decode_attention(&q, Cache { keys: &keys, values: &values, stride, len, hd }, n_rep, scale, &mut out);
            decode_attention(&q, Cache { keys: &keys16, values: &values16, stride, len, hd }, n_rep, scale, &mut out16);
            let wide = |x: &[half::f16]| x.iter().map(|v| v.to_f32()).collect::<Vec<_>>();
            for (out, keys, values) in [(&out, keys, values), (&out16, wide(&keys16), wide(&values16))] {
                for j in 0..heads {
                    let base = j / n_rep * stride;
                    let s: Vec<f64> = (0..len)
                        .map(|t| {
                            (0..hd).map(|i| q[j * hd + i] as f64 * keys[base + t * hd + i] as f64).sum::<f64>() * scale as f64
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for i in 0..hd {
                        let want: f64 = (0..len).map(|t| e[t] / z * values[base + t * hd + i] as f64).sum();
                        let got = out[j * hd + i] as f64;
                        assert!((got - want).abs() < 1e-5, "heads {heads}/{kvh} len {len}: head {j} col {i}: {got} vs {want}");
                    }
                }
            }
        }
    }
}
