//! AVX2: `vpmaddubsw` multiplies unsigned by signed bytes; signed weights go through the
//! `vpsignb` trick. Lanes 0–3 of a 32-element integer sum hold elements 0–15.
//!
//! This file holds the x86_64 code both kernel sets share (the [`Isa`] trait, the kernels generic
//! over it and `kernel_set!`, which builds a set from them) and the AVX2 specifics; `avx512.rs`
//! adds the AVX-512 ones on top.
use super::common::{f16_at, q4k_scale_min, Kernels, QFormat, GROUP, LEVEL2, X};
use std::arch::x86_64::*;

/// Eight lanes: four vectors a block.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_avx2<const TWO: bool>(x: &[f32], d: &mut [f32], s: &mut [f32], q: &mut [[[i8; 32]; 2]], nb: usize) {
    let sign = _mm256_set1_ps(-0.0);
    let (lo, hi, half, one) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0), _mm256_set1_ps(0.5), _mm256_set1_ps(1.0));
    // `super::round` on 8 lanes: integer part, plus one from a remainder of a half on
    let round = |t: __m256| {
        let a = _mm256_andnot_ps(sign, t);
        let i = _mm256_cvtepi32_ps(_mm256_cvttps_epi32(a));
        let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_sub_ps(a, i), half), one);
        _mm256_or_ps(_mm256_add_ps(i, up), _mm256_and_ps(t, sign))
    };
    // bytes of four vectors of i32 in element order
    let pack = |v: [__m256i; 4]| {
        let b = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
        _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    };
    let hsum = |v: __m256i| {
        let h = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let h = _mm_add_epi32(h, _mm_shuffle_epi32::<0b01_00_11_10>(h));
        _mm_cvtsi128_si32(_mm_add_epi32(h, _mm_shuffle_epi32::<0b10_11_00_01>(h)))
    };
    for b in 0..nb {
        let p = x.as_ptr().add(32 * b);
        let v = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
        // `max_ps` returns its second operand when either is NaN: NaNs are skipped, as `f32::max` does
        let mut m = _mm256_setzero_ps();
        for v in v {
            m = _mm256_max_ps(_mm256_andnot_ps(sign, v), m);
        }
        let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
        let db = amax / 127.0;
        let id = _mm256_set1_ps(if db > 0.0 { 1.0 / db } else { 0.0 });
        let (mut q0, mut q1) = ([_mm256_setzero_si256(); 4], [_mm256_setzero_si256(); 4]);
        for j in 0..4 {
            // NaN · id → −127 (second operand of max), as `super::quantize_blocks` does
            let t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v[j], id), lo), hi);
            let r0 = round(t);
            q0[j] = _mm256_cvttps_epi32(r0);
            if TWO {
                q1[j] = _mm256_cvttps_epi32(round(_mm256_mul_ps(_mm256_sub_ps(t, r0), _mm256_set1_ps(254.0))));
            }
        }
        let out = q.get_unchecked_mut(b);
        _mm256_storeu_si256(out[0].as_mut_ptr() as *mut __m256i, pack(q0));
        _mm256_storeu_si256(out[1].as_mut_ptr() as *mut __m256i, pack(q1));
        let sum = |v: [__m256i; 4]| hsum(_mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3])));
        *d.get_unchecked_mut(b) = db;
        *s.get_unchecked_mut(b) = db * (sum(q0) as f32 + sum(q1) as f32 * LEVEL2);
    }
}

/// How 32 unsigned-by-signed byte products become 8 i32 lane sums (lanes 0–3: bytes 0–15).
pub(super) trait Isa {
    unsafe fn dot_u8(a: __m256i, b: __m256i) -> __m256;
}

/// `vpmaddubsw` + `vpmaddwd` (AVX2).
struct Avx2;
impl Isa for Avx2 {
    #[inline(always)]
    unsafe fn dot_u8(a: __m256i, b: __m256i) -> __m256 {
        // pairs of products of a ≤ 127 (or a nibble) by b: no i16 saturation
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)))
    }
}

/// A kernel set over one [`Isa`], compiled with `$features`. Its entry points are safe
/// functions, reachable only through the set, which `available` offers only when the CPU has
/// those features.
///
/// It is expanded in `avx512.rs` too, so it names what it uses by absolute paths (`$isa` as well:
/// a path to the [`Isa`] type) rather than through `super`, which would be whichever file expands
/// it (and which `tools/module_deps.py`, reading the macro as this file's code, takes for `mod.rs`).
macro_rules! kernel_set {
    ($set:ident, $name:literal, $features:literal, $isa:ty, $module:ident) => {
        pub(super) static $set: Kernels = Kernels {
            name: $name,
            dot: [$module::q8_0, $module::q4_0, $module::q4_1, $module::q4k, $module::q6k],
            dot4: [Some($module::q8_0x4), Some($module::q4_0x4), Some($module::q4_1x4), None, None],
        };
        mod $module {
            use crate::kernels::qkernels::common::X;
            pub(super) fn q8_0(w: &[u8], x: X) -> f32 {
                unsafe { grouped::<0>(w, x) }
            }
            pub(super) fn q4_0(w: &[u8], x: X) -> f32 {
                unsafe { grouped::<1>(w, x) }
            }
            pub(super) fn q4_1(w: &[u8], x: X) -> f32 {
                unsafe { grouped::<2>(w, x) }
            }
            pub(super) fn q8_0x4(w: &[u8], x: [X; 4]) -> [f32; 4] {
                unsafe { grouped4::<0>(w, x) }
            }
            pub(super) fn q4_0x4(w: &[u8], x: [X; 4]) -> [f32; 4] {
                unsafe { grouped4::<1>(w, x) }
            }
            pub(super) fn q4_1x4(w: &[u8], x: [X; 4]) -> [f32; 4] {
                unsafe { grouped4::<2>(w, x) }
            }
            pub(super) fn q4k(w: &[u8], x: X) -> f32 {
                unsafe { q4k_imp(w, x) }
            }
            pub(super) fn q6k(w: &[u8], x: X) -> f32 {
                unsafe { q6k_imp(w, x) }
            }
            #[target_feature(enable = $features)]
            unsafe fn grouped<const F: u8>(w: &[u8], x: X) -> f32 {
                crate::kernels::qkernels::avx2::grouped::<$isa, F>(w, x)
            }
            #[target_feature(enable = $features)]
            unsafe fn grouped4<const F: u8>(w: &[u8], x: [X; 4]) -> [f32; 4] {
                crate::kernels::qkernels::avx2::grouped4::<$isa, F>(w, x)
            }
            #[target_feature(enable = $features)]
            unsafe fn q4k_imp(w: &[u8], x: X) -> f32 {
                crate::kernels::qkernels::avx2::q4k::<$isa>(w, x)
            }
            #[target_feature(enable = $features)]
            unsafe fn q6k_imp(w: &[u8], x: X) -> f32 {
                crate::kernels::qkernels::avx2::q6k::<$isa>(w, x)
            }
        }
    };
}
pub(super) use kernel_set;

kernel_set!(AVX2, "avx2", "avx2,fma,f16c", crate::kernels::qkernels::avx2::Avx2, avx2);

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
unsafe fn level(x: &[[i8; 32]; 2], l: usize) -> __m256i {
    load(x[l].as_ptr() as *const u8)
}

/// `dot_u8` against both levels of an activation block, combined in f32.
#[inline(always)]
unsafe fn dot_u8x<I: Isa>(a: __m256i, x: &[[i8; 32]; 2], two: bool) -> __m256 {
    let s = I::dot_u8(a, level(x, 0));
    if two {
        _mm256_fmadd_ps(I::dot_u8(a, level(x, 1)), _mm256_set1_ps(LEVEL2), s)
    } else {
        s
    }
}

/// 16 bytes of packed nibbles: low nibbles in bytes 0–15, high nibbles in bytes 16–31.
#[inline(always)]
unsafe fn nibbles16(p: *const u8) -> __m256i {
    let v = _mm_loadu_si128(p as *const __m128i);
    let m = _mm_set1_epi8(0xf);
    _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m))
}

/// The integer sums of one block's 32 products: `F` is 0 (Q8_0), 1 (Q4_0) or 2 (Q4_1).
#[inline(always)]
unsafe fn block<I: Isa, const F: u8>(q: *const u8, x: &[[i8; 32]; 2], two: bool) -> __m256 {
    let (a, w) = prepare::<F>(q);
    apply::<I, F>(a, w, x, two)
}

/// One block's weights ready for [`apply`]: `(|w|, w)` for Q8_0, `(nibbles, _)` for Q4_*.
#[inline(always)]
unsafe fn prepare<const F: u8>(q: *const u8) -> (__m256i, __m256i) {
    if F == 0 {
        let w = load(q);
        (_mm256_sign_epi8(w, w), w)
    } else {
        let n = nibbles16(q);
        (n, n)
    }
}

/// The integer sums of a prepared block against both levels of one activation block.
#[inline(always)]
unsafe fn apply<I: Isa, const F: u8>(a: __m256i, w: __m256i, x: &[[i8; 32]; 2], two: bool) -> __m256 {
    let lv = |l| if F == 0 { _mm256_sign_epi8(level(x, l), w) } else { level(x, l) };
    let s = I::dot_u8(a, lv(0));
    if two {
        _mm256_fmadd_ps(I::dot_u8(a, lv(1)), _mm256_set1_ps(LEVEL2), s)
    } else {
        s
    }
}

/// The grouped 32-element formats: `F` is 0 (Q8_0), 1 (Q4_0: `d·(q − 8)`) or 2 (Q4_1:
/// `d·q + m`). Eight scales (and minimums) at a time by F16C.
#[inline(always)]
pub(super) unsafe fn grouped<I: Isa, const F: u8>(w: &[u8], x: X) -> f32 {
    let format = [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1][F as usize];
    let bb = format.block_bytes();
    let nb = x.blocks().min(w.len() / bb);
    let (_, qo, qb) = format.group_layout(GROUP);
    let (mut a0, mut a1, mut off) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
    let mut scale = [0f32; GROUP];
    let (mut p, mut i) = (w.as_ptr(), 0);
    while i + GROUP <= nb {
        let d = _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
        _mm256_storeu_ps(scale.as_mut_ptr(), _mm256_mul_ps(d, _mm256_loadu_ps(x.d.as_ptr().add(i))));
        let xs = _mm256_loadu_ps(x.s.as_ptr().add(i));
        if F == 2 {
            off = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(p.add(16) as *const __m128i)), xs, off);
        } else if F == 1 {
            off = _mm256_fmadd_ps(d, xs, off);
        }
        let q = p.add(qo);
        for b in (0..GROUP).step_by(2) {
            let s0 = block::<I, F>(q.add(qb * b), x.q.get_unchecked(i + b), x.two);
            let s1 = block::<I, F>(q.add(qb * (b + 1)), x.q.get_unchecked(i + b + 1), x.two);
            a0 = _mm256_fmadd_ps(s0, _mm256_set1_ps(scale[b]), a0);
            a1 = _mm256_fmadd_ps(s1, _mm256_set1_ps(scale[b + 1]), a1);
        }
        p = p.add(GROUP * bb);
        i += GROUP;
    }
    let off = if F == 1 { -8.0 * hsum(off) } else { hsum(off) };
    hsum(_mm256_add_ps(a0, a1)) + off + grouped_tail::<I, F>(p, nb - i, x, i)
}

/// The partial last group (`g` < 8 blocks at `p`, activation blocks from `i`) of a row.
#[inline(always)]
unsafe fn grouped_tail<I: Isa, const F: u8>(p: *const u8, g: usize, x: X, i: usize) -> f32 {
    if g == 0 {
        return 0.0;
    }
    let format = [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1][F as usize];
    let rest = std::slice::from_raw_parts(p, g * format.block_bytes());
    let (mo, qo, qb) = format.group_layout(g);
    let (mut acc, mut tail) = (_mm256_setzero_ps(), 0f32);
    for b in 0..g {
        let d = f16_at(rest, 2 * b);
        let s = block::<I, F>(p.add(qo + qb * b), &x.q[i + b], x.two);
        acc = _mm256_fmadd_ps(s, _mm256_set1_ps(d * x.d[i + b]), acc);
        tail += match F {
            2 => f16_at(rest, mo + 2 * b) * x.s[i + b],
            1 => -8.0 * d * x.s[i + b],
            _ => 0.0,
        };
    }
    hsum(acc) + tail
}

/// [`grouped`] for four activation rows at once: each weight block is loaded and unpacked
/// once for the four (batched products: prefill, vision).
#[inline(always)]
#[allow(clippy::needless_range_loop)] // `b` also addresses the weight block and each row's activations
pub(super) unsafe fn grouped4<I: Isa, const F: u8>(w: &[u8], x: [X; 4]) -> [f32; 4] {
    let format = [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1][F as usize];
    let bb = format.block_bytes();
    let nb = x.iter().map(X::blocks).min().unwrap_or(0).min(w.len() / bb);
    let (_, qo, qb) = format.group_layout(GROUP);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut off = [_mm256_setzero_ps(); 4];
    let mut scale = [[0f32; GROUP]; 4];
    let (mut p, mut i) = (w.as_ptr(), 0);
    while i + GROUP <= nb {
        let d = _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
        let m = if F == 2 { _mm256_cvtph_ps(_mm_loadu_si128(p.add(16) as *const __m128i)) } else { d };
        for r in 0..4 {
            _mm256_storeu_ps(scale[r].as_mut_ptr(), _mm256_mul_ps(d, _mm256_loadu_ps(x[r].d.as_ptr().add(i))));
            if F != 0 {
                off[r] = _mm256_fmadd_ps(m, _mm256_loadu_ps(x[r].s.as_ptr().add(i)), off[r]);
            }
        }
        let q = p.add(qo);
        for b in 0..GROUP {
            let (a, wv) = prepare::<F>(q.add(qb * b));
            for r in 0..4 {
                let s = apply::<I, F>(a, wv, x[r].q.get_unchecked(i + b), x[r].two);
                acc[r] = _mm256_fmadd_ps(s, _mm256_set1_ps(scale[r][b]), acc[r]);
            }
        }
        p = p.add(GROUP * bb);
        i += GROUP;
    }
    let mut out = [0f32; 4];
    for r in 0..4 {
        let o = if F == 1 { -8.0 * hsum(off[r]) } else { hsum(off[r]) };
        out[r] = hsum(acc[r]) + o + grouped_tail::<I, F>(p, nb - i, x[r], i);
    }
    out
}

#[inline(always)]
pub(super) unsafe fn q4k<I: Isa>(w: &[u8], x: X) -> f32 {
    let (mut a0, mut a1, mut off) = (_mm256_setzero_ps(), _mm256_setzero_ps(), 0f32);
    let m = _mm256_set1_epi8(0xf);
    for (sb, b) in w.chunks_exact(144).enumerate() {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let sc = &b[4..16];
        for j in 0..4 {
            let v = load(b.as_ptr().add(16 + 32 * j));
            let (il, ih) = (8 * sb + 2 * j, 8 * sb + 2 * j + 1);
            let (scl, ml) = q4k_scale_min(sc, 2 * j);
            let (sch, mh) = q4k_scale_min(sc, 2 * j + 1);
            let sl = dot_u8x::<I>(_mm256_and_si256(v, m), &x.q[il], x.two);
            let sh = dot_u8x::<I>(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), &x.q[ih], x.two);
            a0 = _mm256_fmadd_ps(sl, _mm256_set1_ps(d * scl as f32 * x.d[il]), a0);
            a1 = _mm256_fmadd_ps(sh, _mm256_set1_ps(d * sch as f32 * x.d[ih]), a1);
            off -= dmin * (ml as f32 * x.s[il] + mh as f32 * x.s[ih]);
        }
    }
    hsum(_mm256_add_ps(a0, a1)) + off
}

#[inline(always)]
pub(super) unsafe fn q6k<I: Isa>(w: &[u8], x: X) -> f32 {
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (m4, m2, k32) = (_mm256_set1_epi8(0xf), _mm256_set1_epi8(0x30), _mm256_set1_epi8(32));
    for (sb, b) in w.chunks_exact(210).enumerate() {
        let d = f16_at(b, 208);
        let p = b.as_ptr();
        for h in 0..2 {
            let ql0 = load(p.add(64 * h));
            let ql1 = load(p.add(64 * h + 32));
            let qh = load(p.add(128 + 32 * h));
            let groups = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2)),
            ];
            for (k, g) in groups.into_iter().enumerate() {
                let i = 8 * sb + 4 * h + k;
                let v = _mm256_sub_epi8(g, k32);
                let s = apply::<I, 0>(_mm256_sign_epi8(v, v), v, &x.q[i], x.two);
                let dd = d * x.d[i];
                let (sa, sb) = (b[192 + 8 * h + 2 * k] as i8 as f32, b[193 + 8 * h + 2 * k] as i8 as f32);
                let scale = _mm256_set_m128(_mm_set1_ps(dd * sb), _mm_set1_ps(dd * sa));
                if k % 2 == 0 {
                    a0 = _mm256_fmadd_ps(s, scale, a0);
                } else {
                    a1 = _mm256_fmadd_ps(s, scale, a1);
                }
            }
        }
    }
    hsum(_mm256_add_ps(a0, a1))
}
