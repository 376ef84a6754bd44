//! Dot products between one row of GGML-quantized weights and one activation row quantized to
//! 8-bit blocks, for the formats the engine runs: Q8_0, Q4_0, Q4_1 (32-element blocks) and Q4_K,
//! Q6_K (256-element super-blocks of 32- and 16-element sub-blocks).
//!
//! Every kernel exists in portable Rust (the reference and the fallback) and in SIMD versions:
//! AVX2+FMA on x86_64; on aarch64 plain ARMv8.0 NEON (widening multiplies, `smull`/`smlal`/`sadalp`:
//! runs on every arm64 core, Cortex-A53 included) and NEON with the `dotprod` extension (`sdot`).
//! The set is chosen once, at run time, from the CPU's features ([`kernels`]), so no instruction
//! the CPU lacks is ever executed: a binary built for plain `aarch64` runs on any arm64 phone.
//!
//! Activations are quantized per 32 elements with an f32 scale (finer than GGML's Q8_K), and each
//! block also carries `d·Σq` for the formats whose weights have an offset (Q4_0, Q4_1, Q4_K).

/// 32 activations quantized to `q · d`, with `s = d · Σq` for offset corrections.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct XBlock {
    pub(crate) d: f32,
    pub(crate) s: f32,
    pub(crate) q: [i8; 32],
}

impl Default for XBlock {
    fn default() -> Self {
        Self { d: 0.0, s: 0.0, q: [0; 32] }
    }
}

/// Quantizes `x` (a multiple of 32 long) into `out` (`x.len() / 32` blocks): scale `max|x| / 127`,
/// values rounded half away from zero, so `|q| ≤ 127`.
pub(crate) fn quantize_row(x: &[f32], out: &mut [XBlock]) {
    debug_assert_eq!(x.len(), out.len() * 32);
    for (chunk, b) in x.chunks_exact(32).zip(out.iter_mut()) {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in b.q.iter_mut().zip(chunk) {
            *q = (v * id).round() as i8;
            sum += *q as i32;
        }
        b.d = d;
        b.s = d * sum as f32;
    }
}

/// A weight block format with kernels here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QFormat {
    Q8_0,
    Q4_0,
    Q4_1,
    Q4K,
    Q6K,
}

impl QFormat {
    /// Every format, in [`Kernels::dot`] order.
    #[cfg(test)]
    pub(crate) const ALL: [QFormat; 5] = [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1, QFormat::Q4K, QFormat::Q6K];

    /// Weights per block.
    pub(crate) fn block_len(self) -> usize {
        match self {
            QFormat::Q4K | QFormat::Q6K => 256,
            _ => 32,
        }
    }

    /// Bytes per block.
    pub(crate) fn block_bytes(self) -> usize {
        match self {
            QFormat::Q8_0 => 34,
            QFormat::Q4_0 => 18,
            QFormat::Q4_1 => 20,
            QFormat::Q4K => 144,
            QFormat::Q6K => 210,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// `Σ dequant(w)·x` for one weight row `w` (whole blocks) and its activation blocks.
pub(crate) type DotFn = fn(&[u8], &[XBlock]) -> f32;

/// One kernel set: a name for reports and a dot product per [`QFormat`].
pub(crate) struct Kernels {
    /// `avx2`, `neon`, `neon-dotprod` or `portable`.
    pub(crate) name: &'static str,
    dot: [DotFn; 5],
}

impl Kernels {
    /// The dot product for `format`.
    pub(crate) fn dot(&self, format: QFormat) -> DotFn {
        self.dot[format.index()]
    }
}

static PORTABLE: Kernels = Kernels {
    name: "portable",
    dot: [portable::q8_0, portable::q4_0, portable::q4_1, portable::q4k, portable::q6k],
};

/// The fastest kernel set this CPU can run, detected once.
pub(crate) fn kernels() -> &'static Kernels {
    static CHOSEN: std::sync::OnceLock<&'static Kernels> = std::sync::OnceLock::new();
    CHOSEN.get_or_init(|| available().last().copied().unwrap_or(&PORTABLE))
}

/// Every kernel set this CPU can run, slowest (portable) first.
pub(crate) fn available() -> Vec<&'static Kernels> {
    #[allow(unused_mut)]
    let mut v = vec![&PORTABLE];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
    {
        v.push(&x86::AVX2);
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push(&arm::NEON);
        }
        if std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("dotprod") {
            v.push(&arm::NEON_DOTPROD);
        }
    }
    v
}

/// IEEE half to single precision (exact), without relying on F16C/FP16 instructions.
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let em = (h & 0x7fff) as u32;
    // exponent and mantissa moved into place, then rebiased by 2^112 (also right for subnormals)
    let v = if em >= 0x7c00 { f32::from_bits((em << 13) | 0x7f80_0000) } else { f32::from_bits(em << 13) * f32::from_bits(0x7780_0000) };
    f32::from_bits(v.to_bits() | ((h as u32 & 0x8000) << 16))
}

#[inline(always)]
fn f16_at(w: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([w[at], w[at + 1]]))
}

/// Q4_K's 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes.
#[inline(always)]
pub(crate) fn q4k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Q6_K's signed 6-bit weight `i` (0..256) of a super-block `b`.
#[inline(always)]
fn q6k_weight(b: &[u8], i: usize) -> i32 {
    let (h, r) = (i / 128, i % 128);
    let (g, l) = (r / 32, r % 32);
    let ql = b[64 * h + l + 32 * (g & 1)];
    let lo = if g < 2 { ql & 0xf } else { ql >> 4 };
    let hi = (b[128 + 32 * h + l] >> (2 * g)) & 3;
    (lo | (hi << 4)) as i32 - 32
}

/// Dequantizes one row (whole blocks) of `format` into `out`.
pub(crate) fn dequantize_row(format: QFormat, w: &[u8], out: &mut [f32]) {
    let (bl, bb) = (format.block_len(), format.block_bytes());
    for (b, o) in w.chunks_exact(bb).zip(out.chunks_exact_mut(bl)) {
        match format {
            QFormat::Q8_0 => {
                let d = f16_at(b, 0);
                o.iter_mut().zip(&b[2..]).for_each(|(o, &q)| *o = d * q as i8 as f32);
            }
            QFormat::Q4_0 | QFormat::Q4_1 => {
                let d = f16_at(b, 0);
                let (m, qs) = if format == QFormat::Q4_1 { (f16_at(b, 2), &b[4..20]) } else { (-8.0 * d, &b[2..18]) };
                for (i, &q) in qs.iter().enumerate() {
                    o[i] = d * (q & 0xf) as f32 + m;
                    o[i + 16] = d * (q >> 4) as f32 + m;
                }
            }
            QFormat::Q4K => {
                let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
                for j in 0..8 {
                    let (sc, m) = q4k_scale_min(&b[4..16], j);
                    let qs = &b[16 + 32 * (j / 2)..16 + 32 * (j / 2) + 32];
                    for (l, &q) in qs.iter().enumerate() {
                        let q = if j % 2 == 0 { q & 0xf } else { q >> 4 };
                        o[32 * j + l] = d * sc as f32 * q as f32 - dmin * m as f32;
                    }
                }
            }
            QFormat::Q6K => {
                let d = f16_at(b, 208);
                for (i, o) in o.iter_mut().enumerate() {
                    *o = d * (b[192 + i / 16] as i8 as f32) * q6k_weight(b, i) as f32;
                }
            }
        }
    }
}

/// Portable kernels: integer sums per (sub-)block, one f32 multiply-add each.
mod portable {
    use super::{f16_at, q4k_scale_min, q6k_weight, XBlock};

    fn idot(w: impl Iterator<Item = i32>, x: &[i8]) -> i32 {
        w.zip(x).map(|(w, &x)| w * x as i32).sum()
    }

    pub(super) fn q8_0(w: &[u8], x: &[XBlock]) -> f32 {
        let mut acc = 0f32;
        for (b, xb) in w.chunks_exact(34).zip(x) {
            acc += f16_at(b, 0) * xb.d * idot(b[2..].iter().map(|&q| q as i8 as i32), &xb.q) as f32;
        }
        acc
    }

    fn nibble_dot(qs: &[u8], x: &[i8; 32]) -> i32 {
        idot(qs.iter().map(|&q| (q & 0xf) as i32), &x[..16]) + idot(qs.iter().map(|&q| (q >> 4) as i32), &x[16..])
    }

    pub(super) fn q4_0(w: &[u8], x: &[XBlock]) -> f32 {
        let mut acc = 0f32;
        for (b, xb) in w.chunks_exact(18).zip(x) {
            acc += f16_at(b, 0) * (xb.d * nibble_dot(&b[2..18], &xb.q) as f32 - 8.0 * xb.s);
        }
        acc
    }

    pub(super) fn q4_1(w: &[u8], x: &[XBlock]) -> f32 {
        let mut acc = 0f32;
        for (b, xb) in w.chunks_exact(20).zip(x) {
            acc += f16_at(b, 0) * xb.d * nibble_dot(&b[4..20], &xb.q) as f32 + f16_at(b, 2) * xb.s;
        }
        acc
    }

    pub(super) fn q4k(w: &[u8], x: &[XBlock]) -> f32 {
        let mut acc = 0f32;
        for (b, xs) in w.chunks_exact(144).zip(x.chunks_exact(8)) {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            for (j, xb) in xs.iter().enumerate() {
                let (sc, m) = q4k_scale_min(&b[4..16], j);
                let qs = &b[16 + 32 * (j / 2)..16 + 32 * (j / 2) + 32];
                let s = if j % 2 == 0 { idot(qs.iter().map(|&q| (q & 0xf) as i32), &xb.q) } else { idot(qs.iter().map(|&q| (q >> 4) as i32), &xb.q) };
                acc += d * sc as f32 * xb.d * s as f32 - dmin * m as f32 * xb.s;
            }
        }
        acc
    }

    pub(super) fn q6k(w: &[u8], x: &[XBlock]) -> f32 {
        let mut acc = 0f32;
        for (b, xs) in w.chunks_exact(210).zip(x.chunks_exact(8)) {
            let d = f16_at(b, 208);
            for (k, xb) in xs.iter().enumerate() {
                // 32 weights in two halves of 16 with their own scales
                for half in 0..2 {
                    let i0 = 32 * k + 16 * half;
                    let s = idot((i0..i0 + 16).map(|i| q6k_weight(b, i)), &xb.q[16 * half..16 * half + 16]);
                    acc += d * xb.d * (b[192 + i0 / 16] as i8 as f32) * s as f32;
                }
            }
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2: `vpmaddubsw` multiplies unsigned by signed bytes; signed weights go through the
    //! `vpsignb` trick. Lanes 0–3 of a 32-element integer sum hold elements 0–15.
    use super::{f16_at, q4k_scale_min, Kernels, XBlock};
    use std::arch::x86_64::*;

    pub(super) static AVX2: Kernels = Kernels { name: "avx2", dot: [q8_0, q4_0, q4_1, q4k, q6k] };

    // Safe entry points: only reachable through `AVX2`, which is offered only when the CPU has
    // AVX2, FMA and F16C (`available`).
    fn q8_0(w: &[u8], x: &[XBlock]) -> f32 {
        unsafe { q8_0_avx2(w, x) }
    }
    fn q4_0(w: &[u8], x: &[XBlock]) -> f32 {
        unsafe { q4_avx2::<false>(w, x) }
    }
    fn q4_1(w: &[u8], x: &[XBlock]) -> f32 {
        unsafe { q4_avx2::<true>(w, x) }
    }
    fn q4k(w: &[u8], x: &[XBlock]) -> f32 {
        unsafe { q4k_avx2(w, x) }
    }
    fn q6k(w: &[u8], x: &[XBlock]) -> f32 {
        unsafe { q6k_avx2(w, x) }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    /// Products of 32 unsigned (≤ 127) by 32 signed bytes, summed in 8 i32 lanes of 4.
    #[inline(always)]
    unsafe fn dot_u8(a: __m256i, b: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)))
    }

    /// Products of 32 signed by 32 signed bytes (|a|, |b| ≤ 127), summed in 8 i32 lanes of 4.
    #[inline(always)]
    unsafe fn dot_i8(a: __m256i, b: __m256i) -> __m256 {
        dot_u8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p as *const __m256i)
    }

    /// 16 bytes of packed nibbles: low nibbles in bytes 0–15, high nibbles in bytes 16–31.
    #[inline(always)]
    unsafe fn nibbles16(p: *const u8) -> __m256i {
        let v = _mm_loadu_si128(p as *const __m128i);
        let m = _mm_set1_epi8(0xf);
        _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m))
    }

    /// The f16 at `p`, by F16C.
    #[inline(always)]
    unsafe fn f16(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((p as *const u16).read_unaligned() as i32)))
    }

    /// The two consecutive f16s at `p`.
    #[inline(always)]
    unsafe fn f16_pair(p: *const u8) -> (f32, f32) {
        let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
        (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q8_0_avx2(w: &[u8], x: &[XBlock]) -> f32 {
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let n = x.len().min(w.len() / 34);
        let (mut p, mut xp) = (w.as_ptr(), x.as_ptr());
        for _ in 0..n / 2 {
            let (x0, x1) = (&*xp, &*xp.add(1));
            let s0 = dot_i8(load(p.add(2)), load(x0.q.as_ptr() as *const u8));
            let s1 = dot_i8(load(p.add(36)), load(x1.q.as_ptr() as *const u8));
            a0 = _mm256_fmadd_ps(s0, _mm256_set1_ps(f16(p) * x0.d), a0);
            a1 = _mm256_fmadd_ps(s1, _mm256_set1_ps(f16(p.add(34)) * x1.d), a1);
            p = p.add(68);
            xp = xp.add(2);
        }
        if n % 2 == 1 {
            let s0 = dot_i8(load(p.add(2)), load((*xp).q.as_ptr() as *const u8));
            a0 = _mm256_fmadd_ps(s0, _mm256_set1_ps(f16(p) * (*xp).d), a0);
        }
        hsum(_mm256_add_ps(a0, a1))
    }

    /// Q4_0 (`q − 8`) and, with `MIN`, Q4_1 (`d·q + m`).
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_avx2<const MIN: bool>(w: &[u8], x: &[XBlock]) -> f32 {
        let bb = if MIN { 20 } else { 18 };
        let qo = if MIN { 4 } else { 2 };
        let (mut a0, mut a1, mut o0, mut o1) = (_mm256_setzero_ps(), _mm256_setzero_ps(), 0f32, 0f32);
        let n = x.len().min(w.len() / bb);
        let (mut p, mut xp) = (w.as_ptr(), x.as_ptr());
        // (scale, offset term) of the block at p against activation block xb
        let coef = |p: *const u8, xb: &XBlock| {
            if MIN {
                let (d, m) = f16_pair(p);
                (d * xb.d, m * xb.s)
            } else {
                let d = f16(p);
                (d * xb.d, -8.0 * d * xb.s)
            }
        };
        for _ in 0..n / 2 {
            let (x0, x1) = (&*xp, &*xp.add(1));
            let s0 = dot_u8(nibbles16(p.add(qo)), load(x0.q.as_ptr() as *const u8));
            let s1 = dot_u8(nibbles16(p.add(bb + qo)), load(x1.q.as_ptr() as *const u8));
            let ((d0, m0), (d1, m1)) = (coef(p, x0), coef(p.add(bb), x1));
            a0 = _mm256_fmadd_ps(s0, _mm256_set1_ps(d0), a0);
            a1 = _mm256_fmadd_ps(s1, _mm256_set1_ps(d1), a1);
            o0 += m0;
            o1 += m1;
            p = p.add(2 * bb);
            xp = xp.add(2);
        }
        if n % 2 == 1 {
            let s0 = dot_u8(nibbles16(p.add(qo)), load((*xp).q.as_ptr() as *const u8));
            let (d0, m0) = coef(p, &*xp);
            a0 = _mm256_fmadd_ps(s0, _mm256_set1_ps(d0), a0);
            o0 += m0;
        }
        hsum(_mm256_add_ps(a0, a1)) + o0 + o1
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4k_avx2(w: &[u8], x: &[XBlock]) -> f32 {
        let (mut a0, mut a1, mut off) = (_mm256_setzero_ps(), _mm256_setzero_ps(), 0f32);
        let m = _mm256_set1_epi8(0xf);
        for (b, xs) in w.chunks_exact(144).zip(x.chunks_exact(8)) {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let sc = &b[4..16];
            for j in 0..4 {
                let v = load(b.as_ptr().add(16 + 32 * j));
                let (xl, xh) = (&xs[2 * j], &xs[2 * j + 1]);
                let (scl, ml) = q4k_scale_min(sc, 2 * j);
                let (sch, mh) = q4k_scale_min(sc, 2 * j + 1);
                let sl = dot_u8(_mm256_and_si256(v, m), load(xl.q.as_ptr() as *const u8));
                let sh = dot_u8(_mm256_and_si256(_mm256_srli_epi16(v, 4), m), load(xh.q.as_ptr() as *const u8));
                a0 = _mm256_fmadd_ps(sl, _mm256_set1_ps(d * scl as f32 * xl.d), a0);
                a1 = _mm256_fmadd_ps(sh, _mm256_set1_ps(d * sch as f32 * xh.d), a1);
                off -= dmin * (ml as f32 * xl.s + mh as f32 * xh.s);
            }
        }
        hsum(_mm256_add_ps(a0, a1)) + off
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q6k_avx2(w: &[u8], x: &[XBlock]) -> f32 {
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (m4, m2, k32) = (_mm256_set1_epi8(0xf), _mm256_set1_epi8(0x30), _mm256_set1_epi8(32));
        for (b, xs) in w.chunks_exact(210).zip(x.chunks_exact(8)) {
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
                    let xb = &xs[4 * h + k];
                    let s = dot_i8(_mm256_sub_epi8(g, k32), load(xb.q.as_ptr() as *const u8));
                    let dd = d * xb.d;
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
}

#[cfg(target_arch = "aarch64")]
mod arm {
    //! NEON. The same kernels are built twice over a 16-byte signed dot product: `Mull` uses only
    //! ARMv8.0 instructions (`smull`, `smlal`, `sadalp`: 3 instructions per 16 products, where
    //! `sdot` needs 1), `Sdot` the `dotprod` extension (ARMv8.2+, e.g. Cortex-A55/A75 and later,
    //! Apple A11 and later).
    use super::{f16_at, q4k_scale_min, Kernels, XBlock};
    use std::arch::aarch64::*;

    /// Adds the sum of the 16 products `a[i]·b[i]` (|a|, |b| ≤ 127) into the lanes of `acc`.
    trait Dot16 {
        unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
    }

    struct Mull;
    impl Dot16 for Mull {
        #[inline(always)]
        unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
            // each i16 lane sums two products of at most 127·127: no overflow
            let p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            vpadalq_s16(acc, vmlal_s8(p, vget_high_s8(a), vget_high_s8(b)))
        }
    }

    struct Sdot;
    impl Dot16 for Sdot {
        #[inline(always)]
        unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
            // Only inlined into the `dotprod`-enabled entry points below.
            std::arch::asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b", acc = inout(vreg) acc, a = in(vreg) a, b = in(vreg) b,
                options(pure, nomem, nostack, preserves_flags));
            acc
        }
    }

    pub(super) static NEON: Kernels = Kernels { name: "neon", dot: [q8_0_neon, q4_0_neon, q4_1_neon, q4k_neon, q6k_neon] };
    pub(super) static NEON_DOTPROD: Kernels =
        Kernels { name: "neon-dotprod", dot: [q8_0_sdot, q4_0_sdot, q4_1_sdot, q4k_sdot, q6k_sdot] };

    // Safe entry points, reachable only through the kernel sets above, which `available` offers
    // only when the CPU has NEON (and dotprod for the `_sdot` ones).
    macro_rules! entry_points {
        ($($name:ident => $imp:ident;)*) => {$(
            fn $name(w: &[u8], x: &[XBlock]) -> f32 {
                unsafe { with_neon::$name(w, x) }
            }
        )*
        mod with_neon {
            use super::*;
            $(
                #[target_feature(enable = "neon")]
                pub(super) unsafe fn $name(w: &[u8], x: &[XBlock]) -> f32 { $imp::<Mull>(w, x) }
            )*
        }};
    }
    macro_rules! sdot_entry_points {
        ($($name:ident => $imp:ident;)*) => {$(
            fn $name(w: &[u8], x: &[XBlock]) -> f32 {
                unsafe { with_dotprod::$name(w, x) }
            }
        )*
        mod with_dotprod {
            use super::*;
            $(
                #[target_feature(enable = "neon,dotprod")]
                pub(super) unsafe fn $name(w: &[u8], x: &[XBlock]) -> f32 { $imp::<Sdot>(w, x) }
            )*
        }};
    }
    entry_points! {
        q8_0_neon => q8_0;
        q4_0_neon => q4_0;
        q4_1_neon => q4_1;
        q4k_neon => q4k;
        q6k_neon => q6k;
    }
    sdot_entry_points! {
        q8_0_sdot => q8_0;
        q4_0_sdot => q4_0;
        q4_1_sdot => q4_1;
        q4k_sdot => q4k;
        q6k_sdot => q6k;
    }

    #[inline(always)]
    unsafe fn xq(x: &XBlock, half: usize) -> int8x16_t {
        vld1q_s8(x.q.as_ptr().add(16 * half))
    }

    #[inline(always)]
    unsafe fn q8_0<D: Dot16>(w: &[u8], x: &[XBlock]) -> f32 {
        let (mut a0, mut a1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        let p = w.as_ptr() as *const i8;
        let n = x.len().min(w.len() / 34);
        let mut i = 0;
        while i + 1 < n {
            let (x0, x1) = (&x[i], &x[i + 1]);
            let z = vdupq_n_s32(0);
            let s0 = D::dot(D::dot(z, vld1q_s8(p.add(34 * i + 2)), xq(x0, 0)), vld1q_s8(p.add(34 * i + 18)), xq(x0, 1));
            let s1 = D::dot(D::dot(z, vld1q_s8(p.add(34 * i + 36)), xq(x1, 0)), vld1q_s8(p.add(34 * i + 52)), xq(x1, 1));
            a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s0), f16_at(w, 34 * i) * x0.d);
            a1 = vfmaq_n_f32(a1, vcvtq_f32_s32(s1), f16_at(w, 34 * i + 34) * x1.d);
            i += 2;
        }
        if i < n {
            let z = vdupq_n_s32(0);
            let s0 = D::dot(D::dot(z, vld1q_s8(p.add(34 * i + 2)), xq(&x[i], 0)), vld1q_s8(p.add(34 * i + 18)), xq(&x[i], 1));
            a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s0), f16_at(w, 34 * i) * x[i].d);
        }
        vaddvq_f32(vaddq_f32(a0, a1))
    }

    /// Low and high nibbles of 16 bytes, as signed bytes 0..15.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> (int8x16_t, int8x16_t) {
        let v = vld1q_u8(p);
        (vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0xf))), vreinterpretq_s8_u8(vshrq_n_u8(v, 4)))
    }

    #[inline(always)]
    unsafe fn q4<D: Dot16, const MIN: bool>(w: &[u8], x: &[XBlock]) -> f32 {
        let bb = if MIN { 20 } else { 18 };
        let qo = if MIN { 4 } else { 2 };
        let (mut a0, mut off) = (vdupq_n_f32(0.0), 0f32);
        let p = w.as_ptr();
        for (i, xb) in x.iter().enumerate().take(w.len() / bb) {
            let (lo, hi) = nibbles(p.add(bb * i + qo));
            let s = D::dot(D::dot(vdupq_n_s32(0), lo, xq(xb, 0)), hi, xq(xb, 1));
            let d = f16_at(w, bb * i);
            a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s), d * xb.d);
            off += if MIN { f16_at(w, bb * i + 2) * xb.s } else { -8.0 * d * xb.s };
        }
        vaddvq_f32(a0) + off
    }

    #[inline(always)]
    unsafe fn q4_0<D: Dot16>(w: &[u8], x: &[XBlock]) -> f32 {
        q4::<D, false>(w, x)
    }

    #[inline(always)]
    unsafe fn q4_1<D: Dot16>(w: &[u8], x: &[XBlock]) -> f32 {
        q4::<D, true>(w, x)
    }

    #[inline(always)]
    unsafe fn q4k<D: Dot16>(w: &[u8], x: &[XBlock]) -> f32 {
        let (mut a0, mut off) = (vdupq_n_f32(0.0), 0f32);
        for (b, xs) in w.chunks_exact(144).zip(x.chunks_exact(8)) {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let sc = &b[4..16];
            for j in 0..4 {
                let (l0, h0) = nibbles(b.as_ptr().add(16 + 32 * j));
                let (l1, h1) = nibbles(b.as_ptr().add(32 + 32 * j));
                let (xl, xh) = (&xs[2 * j], &xs[2 * j + 1]);
                let (scl, ml) = q4k_scale_min(sc, 2 * j);
                let (sch, mh) = q4k_scale_min(sc, 2 * j + 1);
                let z = vdupq_n_s32(0);
                let sl = D::dot(D::dot(z, l0, xq(xl, 0)), l1, xq(xl, 1));
                let sh = D::dot(D::dot(z, h0, xq(xh, 0)), h1, xq(xh, 1));
                a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(sl), d * scl as f32 * xl.d);
                a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(sh), d * sch as f32 * xh.d);
                off -= dmin * (ml as f32 * xl.s + mh as f32 * xh.s);
            }
        }
        vaddvq_f32(a0) + off
    }

    #[inline(always)]
    unsafe fn q6k<D: Dot16>(w: &[u8], x: &[XBlock]) -> f32 {
        let mut a0 = vdupq_n_f32(0.0);
        let (m4, m2, k32) = (vdupq_n_u8(0xf), vdupq_n_u8(0x30), vdupq_n_s8(32));
        for (b, xs) in w.chunks_exact(210).zip(x.chunks_exact(8)) {
            let d = f16_at(b, 208);
            let p = b.as_ptr();
            for h in 0..2 {
                for c in 0..2 {
                    let ql0 = vld1q_u8(p.add(64 * h + 16 * c));
                    let ql1 = vld1q_u8(p.add(64 * h + 32 + 16 * c));
                    let qh = vld1q_u8(p.add(128 + 32 * h + 16 * c));
                    let groups = [
                        vorrq_u8(vandq_u8(ql0, m4), vandq_u8(vshlq_n_u8(qh, 4), m2)),
                        vorrq_u8(vandq_u8(ql1, m4), vandq_u8(vshlq_n_u8(qh, 2), m2)),
                        vorrq_u8(vshrq_n_u8(ql0, 4), vandq_u8(qh, m2)),
                        vorrq_u8(vshrq_n_u8(ql1, 4), vandq_u8(vshrq_n_u8(qh, 2), m2)),
                    ];
                    for (k, g) in groups.into_iter().enumerate() {
                        let xb = &xs[4 * h + k];
                        let q = vsubq_s8(vreinterpretq_s8_u8(g), k32);
                        let s = D::dot(vdupq_n_s32(0), q, xq(xb, c));
                        let sc = b[192 + 8 * h + 2 * k + c] as i8 as f32;
                        a0 = vfmaq_n_f32(a0, vcvtq_f32_s32(s), d * xb.d * sc);
                    }
                }
            }
        }
        vaddvq_f32(a0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    fn ggml(format: QFormat) -> GgmlDType {
        match format {
            QFormat::Q8_0 => GgmlDType::Q8_0,
            QFormat::Q4_0 => GgmlDType::Q4_0,
            QFormat::Q4_1 => GgmlDType::Q4_1,
            QFormat::Q4K => GgmlDType::Q4K,
            QFormat::Q6K => GgmlDType::Q6K,
        }
    }

    #[test]
    fn f16_conversion_is_exact() {
        for h in 0..=u16::MAX {
            let (a, b) = (f16_to_f32(h), half_ref(h));
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{h:#x}: {a} vs {b}");
        }
    }

    fn half_ref(h: u16) -> f32 {
        let t = Tensor::from_raw_buffer(&h.to_le_bytes(), candle_core::DType::F16, &[1], &Device::Cpu).unwrap();
        t.to_dtype(candle_core::DType::F32).unwrap().to_vec1::<f32>().unwrap()[0]
    }

    /// Every kernel set this CPU runs, for every format, agrees with dequantize-then-dot on the
    /// same quantized activations, and the dequantization agrees with candle's.
    #[test]
    fn kernels_match_dequantized_dot() {
        let dev = Device::Cpu;
        let k = 1024;
        let w = Tensor::randn(0f32, 0.05, (3, k), &dev).unwrap();
        let x: Vec<f32> = Tensor::randn(0f32, 1.0, k, &dev).unwrap().to_vec1().unwrap();
        let mut xb = vec![XBlock::default(); k / 32];
        quantize_row(&x, &mut xb);
        let xd: Vec<f32> = xb.iter().flat_map(|b| b.q.iter().map(move |&q| q as f32 * b.d)).collect();
        let sets = available();
        assert_eq!(sets[0].name, "portable");
        assert_eq!(kernels().name, sets.last().unwrap().name);
        for format in QFormat::ALL {
            let q = QTensor::quantize(&w, ggml(format)).unwrap();
            let data = q.data().unwrap();
            let candle: Vec<f32> = q.dequantize(&dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let row_bytes = k / format.block_len() * format.block_bytes();
            for r in 0..3 {
                let row = &data[r * row_bytes..(r + 1) * row_bytes];
                let mut deq = vec![0f32; k];
                dequantize_row(format, row, &mut deq);
                assert_eq!(deq, candle[r * k..(r + 1) * k], "{format:?} dequantization");
                let want: f64 = deq.iter().zip(&xd).map(|(a, b)| *a as f64 * *b as f64).sum();
                for set in &sets {
                    let got = set.dot(format)(row, &xb);
                    assert!((got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "{} {format:?}: {got} vs {want}", set.name);
                }
            }
        }
    }

    #[test]
    fn activation_quantization_is_close() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.3).collect();
        let mut b = vec![XBlock::default(); 2];
        quantize_row(&x, &mut b);
        for (i, v) in x.iter().enumerate() {
            let bl = &b[i / 32];
            assert!((bl.q[i % 32] as f32 * bl.d - v).abs() <= bl.d / 2.0 + 1e-6);
        }
        let s: i32 = b[0].q.iter().map(|&q| q as i32).sum();
        assert_eq!(b[0].s, b[0].d * s as f32);
        assert!(b.iter().all(|bl| bl.q.iter().all(|&q| q > -128)));
    }
}
