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
//!
//! Rows of the 32-element formats are kept in a grouped layout (see [`regroup_row`]): for every
//! 8 blocks, their 8 scales, then their 8 minimums (Q4_1), then their 8 quant arrays. It holds
//! the same bytes as GGML's block order, so eight scales convert in one instruction.

/// Activation rows quantized per 32 values to 8 bits, `x ≈ d·q₀`, or in two 8-bit levels,
/// `x ≈ d·(q₀ + q₁/254)` (`q₁` quantizes what `q₀` rounded away, so the error is at most
/// `max|x| / 64516` — close to f32 for the sums that follow, where one level alone lets every
/// rounding flip move an output by `d·w`: the decoder's outlier channels make that visible in
/// its answers, while the vision encoder's activations do not need it), with `s = d·Σq` for the
/// offset terms; stored as separate arrays so a kernel loads eight scales at once.
pub(crate) struct XRows {
    d: Vec<f32>,
    s: Vec<f32>,
    q: Vec<[[i8; 32]; 2]>,
    /// Blocks per row.
    nb: usize,
    /// Whether the second level is used.
    two: bool,
}

/// The second level's weight: `q₁` counts 254ths of `d`.
pub(crate) const LEVEL2: f32 = 1.0 / 254.0;

fn quantize_blocks(x: &[f32], d: &mut [f32], s: &mut [f32], q: &mut [[[i8; 32]; 2]], two: bool) {
    #[cfg(target_arch = "x86_64")]
    if x86::quantize_blocks(x, d, s, q, two) {
        return;
    }
    for (((chunk, d), s), q) in x.chunks_exact(32).zip(d).zip(s).zip(q) {
        // in 8 lanes: a single running max does not vectorize (`max` is not associative for NaN)
        let mut lanes = [0f32; 8];
        for c in chunk.chunks_exact(8) {
            for i in 0..8 {
                lanes[i] = lanes[i].max(c[i].abs());
            }
        }
        let amax = lanes.iter().fold(0f32, |m, v| m.max(*v));
        *d = amax / 127.0;
        let id = if *d > 0.0 { 1.0 / *d } else { 0.0 };
        let (mut s0, mut s1) = (0i32, 0i32);
        for (l, v) in chunk.iter().enumerate() {
            // |t| ≤ 127 (a NaN becomes −127: `max` ignores it), so every cast below is exact
            let t = (v * id).max(-127.0).min(127.0);
            let q0 = round(t);
            // |t − q0| ≤ 1/2, so |q1| ≤ 127
            let q1 = if two { round((t - q0) * 254.0) } else { 0.0 };
            let (q0, q1) = (small_int(q0), small_int(q1));
            q[0][l] = q0 as i8;
            q[1][l] = q1 as i8;
            s0 += q0;
            s1 += q1;
        }
        *s = *d * (s0 as f32 + s1 as f32 * LEVEL2);
    }
}

/// `t` (finite, integral or not, |t| < 2³¹) truncated to an integer. A plain `as` cast
/// saturates, which x86 cannot do in vector registers; this one is a single `cvttps2dq`, so the
/// quantization loops vectorize.
#[inline(always)]
fn small_int(t: f32) -> i32 {
    debug_assert!(t.is_finite() && t.abs() < 2147483648.0);
    // SAFETY: callers pass values clamped to ±127·255 (see `quantize_blocks`), finite.
    unsafe { t.to_int_unchecked::<i32>() }
}

/// Rounds half away from zero (like `f32::round`, without a libm call on baseline x86_64).
#[inline(always)]
fn round(t: f32) -> f32 {
    // (|t| ≤ 127·254 here; the integer part and the exact remainder decide)
    let a = t.abs();
    let i = small_int(a) as f32;
    let r = if a - i >= 0.5 { i + 1.0 } else { i };
    r.copysign(t)
}

/// One row of [`XRows`].
#[derive(Clone, Copy)]
pub(crate) struct X<'a> {
    pub(crate) d: &'a [f32],
    pub(crate) s: &'a [f32],
    pub(crate) q: &'a [[[i8; 32]; 2]],
    /// Whether `q[..][1]` holds a second level.
    pub(crate) two: bool,
}

impl X<'_> {
    /// The blocks all three parts of the row hold: the most a kernel may read, whatever the
    /// caller put in the fields.
    #[inline(always)]
    pub(crate) fn blocks(&self) -> usize {
        self.d.len().min(self.s.len()).min(self.q.len())
    }
}

impl XRows {
    /// Quantizes `m` rows of `k` (a multiple of 32) values: scale `max|x| / 127`, values rounded
    /// half away from zero, so `|q| ≤ 127`.
    pub(crate) fn quantize(x: &[f32], m: usize, k: usize, two: bool, parallel: bool) -> Self {
        debug_assert_eq!(x.len(), m * k);
        let nb = k / 32;
        let mut r = Self { d: vec![0.0; m * nb], s: vec![0.0; m * nb], q: vec![[[0; 32]; 2]; m * nb], nb, two };
        let (nb1, k1) = (nb.max(1), k.max(1));
        if parallel {
            use rayon::prelude::*;
            let rows = r.d.par_chunks_mut(nb1).zip(r.s.par_chunks_mut(nb1)).zip(r.q.par_chunks_mut(nb1)).zip(x.par_chunks(k1));
            rows.for_each(|(((d, s), q), x)| quantize_blocks(x, d, s, q, two));
        } else {
            let rows = r.d.chunks_mut(nb1).zip(r.s.chunks_mut(nb1)).zip(r.q.chunks_mut(nb1)).zip(x.chunks(k1));
            rows.for_each(|(((d, s), q), x)| quantize_blocks(x, d, s, q, two));
        }
        r
    }

    /// Calls `f` with `x` (one row, a multiple of 32 values) quantized as [`Self::quantize`]
    /// does, into buffers this thread reuses: a decode step quantizes ~120 activation rows, and
    /// allocating, zeroing and freeing their blocks each time cost as much as quantizing them.
    pub(crate) fn with_row<R>(x: &[f32], two: bool, f: impl FnOnce(X<'_>) -> R) -> R {
        thread_local! {
            static SPARE: std::cell::Cell<Option<XRows>> = const { std::cell::Cell::new(None) };
        }
        let nb = x.len() / 32;
        // (a nested call finds no spare and allocates its own)
        let mut r = SPARE.take().unwrap_or(Self { d: Vec::new(), s: Vec::new(), q: Vec::new(), nb, two });
        (r.nb, r.two) = (nb, two);
        r.d.resize(nb, 0.0);
        r.s.resize(nb, 0.0);
        r.q.resize(nb, [[0; 32]; 2]);
        quantize_blocks(x, &mut r.d, &mut r.s, &mut r.q, two);
        let out = f(r.row(0));
        SPARE.set(Some(r));
        out
    }

    /// Row `t`.
    pub(crate) fn row(&self, t: usize) -> X<'_> {
        let r = t * self.nb..(t + 1) * self.nb;
        X { d: &self.d[r.clone()], s: &self.s[r.clone()], q: &self.q[r], two: self.two }
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

/// Blocks per group in the grouped layout of the 32-element formats.
const GROUP: usize = 8;

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

    /// Whether rows use the grouped layout (the 32-element formats).
    fn grouped(self) -> bool {
        self.block_len() == 32
    }

    /// In a group of `g` blocks: offsets of the minimums and of the quants, and quant bytes per
    /// block.
    fn group_layout(self, g: usize) -> (usize, usize, usize) {
        match self {
            QFormat::Q4_1 => (2 * g, 4 * g, 16),
            QFormat::Q4_0 => (2 * g, 2 * g, 16),
            _ => (2 * g, 2 * g, 32),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Calls `f(block, d, m, quants)` for every block of a grouped row (`m` is 0 except for Q4_1).
#[inline(always)]
fn for_each_block(format: QFormat, w: &[u8], mut f: impl FnMut(usize, f32, f32, &[u8])) {
    let bb = format.block_bytes();
    let mut i = 0;
    for group in w.chunks(GROUP * bb) {
        let g = group.len() / bb;
        let (mo, qo, qb) = format.group_layout(g);
        for b in 0..g {
            let m = if format == QFormat::Q4_1 { f16_at(group, mo + 2 * b) } else { 0.0 };
            f(i + b, f16_at(group, 2 * b), m, &group[qo + qb * b..qo + qb * (b + 1)]);
        }
        i += g;
    }
}

/// Rewrites one row of GGML blocks (`src`) into this module's layout (`dst`, same length):
/// grouped for the 32-element formats, unchanged for the K formats.
pub(crate) fn regroup_row(format: QFormat, src: &[u8], dst: &mut [u8]) {
    let bb = format.block_bytes();
    if !format.grouped() {
        dst.copy_from_slice(src);
        return;
    }
    for (sg, dg) in src.chunks(GROUP * bb).zip(dst.chunks_mut(GROUP * bb)) {
        let g = sg.len() / bb;
        let (mo, qo, qb) = format.group_layout(g);
        for (b, blk) in sg.chunks_exact(bb).enumerate() {
            dg[2 * b..2 * b + 2].copy_from_slice(&blk[..2]);
            if format == QFormat::Q4_1 {
                dg[mo + 2 * b..mo + 2 * b + 2].copy_from_slice(&blk[2..4]);
            }
            dg[qo + qb * b..qo + qb * (b + 1)].copy_from_slice(&blk[bb - qb..]);
        }
    }
}

/// `Σ dequant(w)·x` for one weight row `w` (this module's layout) and its activation row.
pub(crate) type DotFn = fn(&[u8], X) -> f32;

/// Four dot products of one weight row with four activation rows.
pub(crate) type Dot4Fn = fn(&[u8], [X; 4]) -> [f32; 4];

/// One kernel set: a name for reports, a dot product per [`QFormat`], and optionally 4-row
/// versions (`None`: four single dots).
pub(crate) struct Kernels {
    /// `avx512vnni`, `avx2`, `neon`, `neon-dotprod` or `portable`.
    pub(crate) name: &'static str,
    dot: [DotFn; 5],
    dot4: [Option<Dot4Fn>; 5],
}

impl Kernels {
    /// The dot product for `format`.
    pub(crate) fn dot(&self, format: QFormat) -> DotFn {
        self.dot[format.index()]
    }

    /// The 4-row dot product for `format`, where the set has one.
    pub(crate) fn dot4(&self, format: QFormat) -> Option<Dot4Fn> {
        self.dot4[format.index()]
    }
}

static PORTABLE: Kernels = Kernels {
    name: "portable",
    dot: [portable::q8_0, portable::q4_0, portable::q4_1, portable::q4k, portable::q6k],
    dot4: [None; 5],
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
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            v.push(&x86::AVX512_VNNI);
        }
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
fn q4k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
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

/// Dequantizes one row (this module's layout) of `format` into `out`.
pub(crate) fn dequantize_row(format: QFormat, w: &[u8], out: &mut [f32]) {
    match format {
        QFormat::Q8_0 => for_each_block(format, w, |i, d, _, qs| {
            out[32 * i..32 * i + 32].iter_mut().zip(qs).for_each(|(o, &q)| *o = d * q as i8 as f32);
        }),
        QFormat::Q4_0 | QFormat::Q4_1 => for_each_block(format, w, |i, d, m, qs| {
            let m = if format == QFormat::Q4_1 { m } else { -8.0 * d };
            for (l, &q) in qs.iter().enumerate() {
                out[32 * i + l] = d * (q & 0xf) as f32 + m;
                out[32 * i + l + 16] = d * (q >> 4) as f32 + m;
            }
        }),
        QFormat::Q4K => {
            for (b, o) in w.chunks_exact(144).zip(out.chunks_exact_mut(256)) {
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
        }
        QFormat::Q6K => {
            for (b, o) in w.chunks_exact(210).zip(out.chunks_exact_mut(256)) {
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
    use super::{f16_at, for_each_block, q4k_scale_min, q6k_weight, QFormat, LEVEL2, X};

    fn idot(w: impl Iterator<Item = i32>, x: &[i8]) -> i32 {
        w.zip(x).map(|(w, &x)| w * x as i32).sum()
    }

    /// `Σ w·(q₀ + q₁/254)` over the elements `range` of a two-level block.
    fn xdot(w: impl Iterator<Item = i32> + Clone, x: &[[i8; 32]; 2], range: std::ops::Range<usize>, two: bool) -> f32 {
        let s = idot(w.clone(), &x[0][range.clone()]) as f32;
        if two { s + idot(w, &x[1][range]) as f32 * LEVEL2 } else { s }
    }

    fn nibble_dot(qs: &[u8], x: &[[i8; 32]; 2], two: bool) -> f32 {
        xdot(qs.iter().map(|&q| (q & 0xf) as i32), x, 0..16, two) + xdot(qs.iter().map(|&q| (q >> 4) as i32), x, 16..32, two)
    }

    pub(super) fn q8_0(w: &[u8], x: X) -> f32 {
        let mut acc = 0f32;
        for_each_block(QFormat::Q8_0, w, |i, d, _, qs| {
            acc += d * x.d[i] * xdot(qs.iter().map(|&q| q as i8 as i32), &x.q[i], 0..32, x.two);
        });
        acc
    }

    pub(super) fn q4_0(w: &[u8], x: X) -> f32 {
        let mut acc = 0f32;
        for_each_block(QFormat::Q4_0, w, |i, d, _, qs| acc += d * (x.d[i] * nibble_dot(qs, &x.q[i], x.two) - 8.0 * x.s[i]));
        acc
    }

    pub(super) fn q4_1(w: &[u8], x: X) -> f32 {
        let mut acc = 0f32;
        for_each_block(QFormat::Q4_1, w, |i, d, m, qs| acc += d * x.d[i] * nibble_dot(qs, &x.q[i], x.two) + m * x.s[i]);
        acc
    }

    pub(super) fn q4k(w: &[u8], x: X) -> f32 {
        let mut acc = 0f32;
        for (sb, b) in w.chunks_exact(144).enumerate() {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            for j in 0..8 {
                let i = 8 * sb + j;
                let (sc, m) = q4k_scale_min(&b[4..16], j);
                let qs = &b[16 + 32 * (j / 2)..16 + 32 * (j / 2) + 32];
                let s = if j % 2 == 0 { xdot(qs.iter().map(|&q| (q & 0xf) as i32), &x.q[i], 0..32, x.two) } else { xdot(qs.iter().map(|&q| (q >> 4) as i32), &x.q[i], 0..32, x.two) };
                acc += d * sc as f32 * x.d[i] * s - dmin * m as f32 * x.s[i];
            }
        }
        acc
    }

    pub(super) fn q6k(w: &[u8], x: X) -> f32 {
        let mut acc = 0f32;
        for (sb, b) in w.chunks_exact(210).enumerate() {
            let d = f16_at(b, 208);
            for k in 0..8 {
                let i = 8 * sb + k;
                // 32 weights in two halves of 16 with their own scales
                for half in 0..2 {
                    let i0 = 32 * k + 16 * half;
                    let s = xdot((i0..i0 + 16).map(|e| q6k_weight(b, e)), &x.q[i], 16 * half..16 * half + 16, x.two);
                    acc += d * x.d[i] * (b[192 + i0 / 16] as i8 as f32) * s;
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
    use super::{f16_at, q4k_scale_min, Kernels, QFormat, GROUP, LEVEL2, X};
    use std::arch::x86_64::*;

    /// [`super::quantize_blocks`] on AVX-512 or AVX2, to the same bits; false (nothing written)
    /// on a CPU with neither. Each block's scale is a horizontal maximum and a division long:
    /// the compiler's version of the scalar loop left little else to overlap with them.
    pub(super) fn quantize_blocks(x: &[f32], d: &mut [f32], s: &mut [f32], q: &mut [[[i8; 32]; 2]], two: bool) -> bool {
        let nb = (x.len() / 32).min(d.len()).min(s.len()).min(q.len());
        match quantizer() {
            // SAFETY: the CPU has the kernel's features; it touches blocks 0..nb of each slice.
            Some(Quantizer::Avx512) => unsafe {
                if two {
                    quantize_avx512::<true>(x, d, s, q, nb)
                } else {
                    quantize_avx512::<false>(x, d, s, q, nb)
                }
            },
            Some(Quantizer::Avx2) => unsafe {
                if two {
                    quantize_avx2::<true>(x, d, s, q, nb)
                } else {
                    quantize_avx2::<false>(x, d, s, q, nb)
                }
            },
            None => return false,
        }
        true
    }

    /// The vector quantizers.
    #[derive(Clone, Copy, PartialEq, Debug)]
    pub(super) enum Quantizer {
        Avx2,
        Avx512,
    }

    /// The fastest quantizer this CPU runs, detected once.
    pub(super) fn quantizer() -> Option<Quantizer> {
        static CHOSEN: std::sync::OnceLock<Option<Quantizer>> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                Some(Quantizer::Avx512)
            } else if is_x86_feature_detected!("avx2") {
                Some(Quantizer::Avx2)
            } else {
                None
            }
        })
    }

    /// Sixteen lanes: two vectors a block.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_avx512<const TWO: bool>(x: &[f32], d: &mut [f32], s: &mut [f32], q: &mut [[[i8; 32]; 2]], nb: usize) {
        let sign = _mm512_set1_epi32(i32::MIN);
        let (lo, hi, half, one) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0), _mm512_set1_ps(0.5), _mm512_set1_ps(1.0));
        // `super::round` on 16 lanes: integer part, plus one from a remainder of a half on
        let round = |t: __m512| {
            let a = _mm512_abs_ps(t);
            let i = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(a);
            let r = _mm512_mask_add_ps(i, _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_sub_ps(a, i), half), i, one);
            _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), _mm512_and_si512(_mm512_castps_si512(t), sign)))
        };
        for b in 0..nb {
            let p = x.as_ptr().add(32 * b);
            let v = [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))];
            // `max_ps` returns its second operand when either is NaN: NaNs are skipped, as `f32::max` does
            let m = _mm512_max_ps(_mm512_abs_ps(v[1]), _mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_setzero_ps()));
            let db = _mm512_reduce_max_ps(m) / 127.0;
            let id = _mm512_set1_ps(if db > 0.0 { 1.0 / db } else { 0.0 });
            let (mut q0, mut q1) = ([_mm512_setzero_si512(); 2], [_mm512_setzero_si512(); 2]);
            for j in 0..2 {
                // NaN · id → −127 (second operand of max), as `super::quantize_blocks` does
                let t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v[j], id), lo), hi);
                let r0 = round(t);
                q0[j] = _mm512_cvttps_epi32(r0);
                if TWO {
                    q1[j] = _mm512_cvttps_epi32(round(_mm512_mul_ps(_mm512_sub_ps(t, r0), _mm512_set1_ps(254.0))));
                }
            }
            let out = q.get_unchecked_mut(b);
            for (l, v) in [q0, q1].iter().enumerate() {
                _mm_storeu_si128(out[l].as_mut_ptr() as *mut __m128i, _mm512_cvtsepi32_epi8(v[0]));
                _mm_storeu_si128(out[l].as_mut_ptr().add(16) as *mut __m128i, _mm512_cvtsepi32_epi8(v[1]));
            }
            let sum = |v: [__m512i; 2]| _mm512_reduce_add_epi32(_mm512_add_epi32(v[0], v[1]));
            *d.get_unchecked_mut(b) = db;
            *s.get_unchecked_mut(b) = db * (sum(q0) as f32 + sum(q1) as f32 * LEVEL2);
        }
    }

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
    trait Isa {
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

    /// `vpdpbusd` (AVX-512 VNNI on 256-bit vectors): one instruction.
    struct Vnni;
    impl Isa for Vnni {
        #[inline(always)]
        unsafe fn dot_u8(a: __m256i, b: __m256i) -> __m256 {
            _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b))
        }
    }

    /// A kernel set over one [`Isa`], compiled with `$features`. Its entry points are safe
    /// functions, reachable only through the set, which `available` offers only when the CPU has
    /// those features.
    macro_rules! kernel_set {
        ($set:ident, $name:literal, $features:literal, $isa:ident, $module:ident) => {
            pub(super) static $set: Kernels = Kernels {
                name: $name,
                dot: [$module::q8_0, $module::q4_0, $module::q4_1, $module::q4k, $module::q6k],
                dot4: [Some($module::q8_0x4), Some($module::q4_0x4), Some($module::q4_1x4), None, None],
            };
            mod $module {
                use super::{$isa, X};
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
                    super::grouped::<$isa, F>(w, x)
                }
                #[target_feature(enable = $features)]
                unsafe fn grouped4<const F: u8>(w: &[u8], x: [X; 4]) -> [f32; 4] {
                    super::grouped4::<$isa, F>(w, x)
                }
                #[target_feature(enable = $features)]
                unsafe fn q4k_imp(w: &[u8], x: X) -> f32 {
                    super::q4k::<$isa>(w, x)
                }
                #[target_feature(enable = $features)]
                unsafe fn q6k_imp(w: &[u8], x: X) -> f32 {
                    super::q6k::<$isa>(w, x)
                }
            }
        };
    }
    kernel_set!(AVX2, "avx2", "avx2,fma,f16c", Avx2, avx2);
    kernel_set!(AVX512_VNNI, "avx512vnni", "avx2,fma,f16c,avx512f,avx512vl,avx512vnni", Vnni, avx512_vnni);

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
        if two { _mm256_fmadd_ps(I::dot_u8(a, level(x, 1)), _mm256_set1_ps(LEVEL2), s) } else { s }
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
        if two { _mm256_fmadd_ps(I::dot_u8(a, lv(1)), _mm256_set1_ps(LEVEL2), s) } else { s }
    }

    /// The grouped 32-element formats: `F` is 0 (Q8_0), 1 (Q4_0: `d·(q − 8)`) or 2 (Q4_1:
    /// `d·q + m`). Eight scales (and minimums) at a time by F16C.
    #[inline(always)]
    unsafe fn grouped<I: Isa, const F: u8>(w: &[u8], x: X) -> f32 {
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
    unsafe fn grouped4<I: Isa, const F: u8>(w: &[u8], x: [X; 4]) -> [f32; 4] {
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
    unsafe fn q4k<I: Isa>(w: &[u8], x: X) -> f32 {
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
    unsafe fn q6k<I: Isa>(w: &[u8], x: X) -> f32 {
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
}

#[cfg(target_arch = "aarch64")]
mod arm {
    //! NEON. The same kernels are built twice over a 16-byte signed dot product: `Mull` uses only
    //! ARMv8.0 instructions (`smull`, `smlal`, `sadalp`: 3 instructions per 16 products, where
    //! `sdot` needs 1), `Sdot` the `dotprod` extension (ARMv8.2+, e.g. Cortex-A55/A75 and later,
    //! Apple A11 and later).
    use super::{f16_at, for_each_block, q4k_scale_min, Kernels, QFormat, LEVEL2, X};
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

    pub(super) static NEON: Kernels =
        Kernels { name: "neon", dot: [q8_0_neon, q4_0_neon, q4_1_neon, q4k_neon, q6k_neon], dot4: [None; 5] };
    pub(super) static NEON_DOTPROD: Kernels =
        Kernels { name: "neon-dotprod", dot: [q8_0_sdot, q4_0_sdot, q4_1_sdot, q4k_sdot, q6k_sdot], dot4: [None; 5] };

    // Safe entry points, reachable only through the kernel sets above, which `available` offers
    // only when the CPU has NEON (and dotprod for the `_sdot` ones).
    macro_rules! entry_points {
        ($module:ident, $features:literal, $dot:ty, $($name:ident => $imp:ident;)*) => {$(
            fn $name(w: &[u8], x: X) -> f32 {
                unsafe { $module::$name(w, x) }
            }
        )*
        mod $module {
            use super::*;
            $(
                #[target_feature(enable = $features)]
                pub(super) unsafe fn $name(w: &[u8], x: X) -> f32 { $imp::<$dot>(w, x) }
            )*
        }};
    }
    entry_points! { with_neon, "neon", Mull,
        q8_0_neon => q8_0;
        q4_0_neon => q4_0;
        q4_1_neon => q4_1;
        q4k_neon => q4k;
        q6k_neon => q6k;
    }
    entry_points! { with_dotprod, "neon,dotprod", Sdot,
        q8_0_sdot => q8_0;
        q4_0_sdot => q4_0;
        q4_1_sdot => q4_1;
        q4k_sdot => q4k;
        q6k_sdot => q6k;
    }

    #[inline(always)]
    unsafe fn xq(x: &[[i8; 32]; 2], l: usize, half: usize) -> int8x16_t {
        vld1q_s8(x[l].as_ptr().add(16 * half))
    }

    /// `Σ a·x` over a 32-element block given as two 16-byte halves, both levels combined in f32.
    #[inline(always)]
    unsafe fn dot32<D: Dot16>(a0: int8x16_t, a1: int8x16_t, x: &[[i8; 32]; 2], two: bool) -> float32x4_t {
        let z = vdupq_n_s32(0);
        let s0 = vcvtq_f32_s32(D::dot(D::dot(z, a0, xq(x, 0, 0)), a1, xq(x, 0, 1)));
        if !two {
            return s0;
        }
        let s1 = D::dot(D::dot(z, a0, xq(x, 1, 0)), a1, xq(x, 1, 1));
        vfmaq_n_f32(s0, vcvtq_f32_s32(s1), LEVEL2)
    }

    /// `Σ a·x` over the 16 elements `half` of a block, both levels combined in f32.
    #[inline(always)]
    unsafe fn dot16<D: Dot16>(a: int8x16_t, x: &[[i8; 32]; 2], half: usize, two: bool) -> float32x4_t {
        let z = vdupq_n_s32(0);
        let s0 = vcvtq_f32_s32(D::dot(z, a, xq(x, 0, half)));
        if two { vfmaq_n_f32(s0, vcvtq_f32_s32(D::dot(z, a, xq(x, 1, half))), LEVEL2) } else { s0 }
    }

    /// Low and high nibbles of 16 bytes, as signed bytes 0..15.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> (int8x16_t, int8x16_t) {
        let v = vld1q_u8(p);
        (vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0xf))), vreinterpretq_s8_u8(vshrq_n_u8(v, 4)))
    }

    #[inline(always)]
    unsafe fn q8_0<D: Dot16>(w: &[u8], x: X) -> f32 {
        let mut acc = vdupq_n_f32(0.0);
        for_each_block(QFormat::Q8_0, w, |i, d, _, qs| {
            let p = qs.as_ptr() as *const i8;
            let s = dot32::<D>(vld1q_s8(p), vld1q_s8(p.add(16)), &x.q[i], x.two);
            acc = vfmaq_n_f32(acc, s, d * x.d[i]);
        });
        vaddvq_f32(acc)
    }

    #[inline(always)]
    unsafe fn q4<D: Dot16, const MIN: bool>(w: &[u8], x: X) -> f32 {
        let (mut acc, mut off) = (vdupq_n_f32(0.0), 0f32);
        let format = if MIN { QFormat::Q4_1 } else { QFormat::Q4_0 };
        for_each_block(format, w, |i, d, m, qs| {
            let (lo, hi) = nibbles(qs.as_ptr());
            let s = dot32::<D>(lo, hi, &x.q[i], x.two);
            acc = vfmaq_n_f32(acc, s, d * x.d[i]);
            off += if MIN { m * x.s[i] } else { -8.0 * d * x.s[i] };
        });
        vaddvq_f32(acc) + off
    }

    #[inline(always)]
    unsafe fn q4_0<D: Dot16>(w: &[u8], x: X) -> f32 {
        q4::<D, false>(w, x)
    }

    #[inline(always)]
    unsafe fn q4_1<D: Dot16>(w: &[u8], x: X) -> f32 {
        q4::<D, true>(w, x)
    }

    #[inline(always)]
    unsafe fn q4k<D: Dot16>(w: &[u8], x: X) -> f32 {
        let (mut acc, mut off) = (vdupq_n_f32(0.0), 0f32);
        for (sb, b) in w.chunks_exact(144).enumerate() {
            let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
            let sc = &b[4..16];
            for j in 0..4 {
                let (l0, h0) = nibbles(b.as_ptr().add(16 + 32 * j));
                let (l1, h1) = nibbles(b.as_ptr().add(32 + 32 * j));
                let (il, ih) = (8 * sb + 2 * j, 8 * sb + 2 * j + 1);
                let (scl, ml) = q4k_scale_min(sc, 2 * j);
                let (sch, mh) = q4k_scale_min(sc, 2 * j + 1);
                let sl = dot32::<D>(l0, l1, &x.q[il], x.two);
                let sh = dot32::<D>(h0, h1, &x.q[ih], x.two);
                acc = vfmaq_n_f32(acc, sl, d * scl as f32 * x.d[il]);
                acc = vfmaq_n_f32(acc, sh, d * sch as f32 * x.d[ih]);
                off -= dmin * (ml as f32 * x.s[il] + mh as f32 * x.s[ih]);
            }
        }
        vaddvq_f32(acc) + off
    }

    #[inline(always)]
    unsafe fn q6k<D: Dot16>(w: &[u8], x: X) -> f32 {
        let mut acc = vdupq_n_f32(0.0);
        let (m4, m2, k32) = (vdupq_n_u8(0xf), vdupq_n_u8(0x30), vdupq_n_s8(32));
        for (sb, b) in w.chunks_exact(210).enumerate() {
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
                        let i = 8 * sb + 4 * h + k;
                        let q = vsubq_s8(vreinterpretq_s8_u8(g), k32);
                        let s = dot16::<D>(q, &x.q[i], c, x.two);
                        let sc = b[192 + 8 * h + 2 * k + c] as i8 as f32;
                        acc = vfmaq_n_f32(acc, s, d * x.d[i] * sc);
                    }
                }
            }
        }
        vaddvq_f32(acc)
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
            let t = Tensor::from_raw_buffer(&h.to_le_bytes(), candle_core::DType::F16, &[1], &Device::Cpu).unwrap();
            let want = t.to_dtype(candle_core::DType::F32).unwrap().to_vec1::<f32>().unwrap()[0];
            let got = f16_to_f32(h);
            assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()), "{h:#x}: {got} vs {want}");
        }
    }

    /// Every kernel set this CPU runs, for every format, agrees with dequantize-then-dot on the
    /// same quantized activations, and the dequantization agrees with candle's. The width (1056 =
    /// 33 blocks of 32) leaves a partial group at the end of each grouped row.
    #[test]
    fn kernels_match_dequantized_dot() {
        let dev = Device::Cpu;
        let sets = available();
        assert_eq!(sets[0].name, "portable");
        assert_eq!(kernels().name, sets.last().unwrap().name);
        for format in QFormat::ALL {
            let k = if format.grouped() { 1056 } else { 1024 };
            let w = Tensor::randn(0f32, 0.05, (3, k), &dev).unwrap();
            let x: Vec<f32> = Tensor::randn(0f32, 1.0, k, &dev).unwrap().to_vec1().unwrap();
            for two in [false, true] {
            let xr = XRows::quantize(&x, 1, k, two, false);
            let xd: Vec<f32> = xr.q.iter().zip(&xr.d).flat_map(|(q, d)| (0..32).map(move |l| (q[0][l] as f32 + q[1][l] as f32 * LEVEL2) * d)).collect();
            let q = QTensor::quantize(&w, ggml(format)).unwrap();
            let data = q.data().unwrap();
            let candle: Vec<f32> = q.dequantize(&dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let row_bytes = k / format.block_len() * format.block_bytes();
            for r in 0..3 {
                let mut row = vec![0u8; row_bytes];
                regroup_row(format, &data[r * row_bytes..(r + 1) * row_bytes], &mut row);
                let mut deq = vec![0f32; k];
                dequantize_row(format, &row, &mut deq);
                assert_eq!(deq, candle[r * k..(r + 1) * k], "{format:?} dequantization");
                let want: f64 = deq.iter().zip(&xd).map(|(a, b)| *a as f64 * *b as f64).sum();
                for set in &sets {
                    if let Some(dot4) = set.dot4(format) {
                        let got = dot4(&row, [xr.row(0); 4]);
                        assert!(got.iter().all(|g| (*g as f64 - want).abs() < 1e-4 * (1.0 + want.abs())), "{} {format:?} x4: {got:?} vs {want}", set.name);
                    }
                    let got = set.dot(format)(&row, xr.row(0));
                    assert!((got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "{} {format:?} two={two}: {got} vs {want}", set.name);
                }
            }
            }
        }
    }

    /// The safe kernels read no further than the shortest part of any activation row they are
    /// given: rows of unequal length (or a row whose parts differ) are multiplied over the blocks
    /// all of them hold, as if cut there. (A 4-row kernel that took its length from row 0 read
    /// rows 1-3 past their ends.)
    #[test]
    fn kernels_never_read_past_a_short_row() {
        let dev = Device::Cpu;
        let k = 33 * 32;
        let x: Vec<f32> = Tensor::randn(0f32, 1.0, k, &dev).unwrap().to_vec1().unwrap();
        let xr = XRows::quantize(&x, 1, k, true, false);
        let full = xr.row(0);
        let cut = |n: usize| X { d: &full.d[..n], s: &full.s[..n], q: &full.q[..n], two: true };
        for format in [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1] {
            let w = Tensor::randn(0f32, 0.05, (1, k), &dev).unwrap();
            let data = QTensor::quantize(&w, ggml(format)).unwrap().data().unwrap().to_vec();
            let mut row = vec![0u8; data.len()];
            regroup_row(format, &data, &mut row);
            // whole groups of blocks, so a prefix of the regrouped row is a row of its own
            let prefix = |n: usize| {
                let mut r = vec![0u8; n * format.block_bytes()];
                regroup_row(format, &data[..n * format.block_bytes()], &mut r);
                r
            };
            // (the portable and NEON row kernels index the activations with bounds checks)
            for set in available() {
                let Some(dot4) = set.dot4(format) else { continue };
                let want = dot4(&prefix(16), [cut(16); 4]);
                assert_eq!(dot4(&row, [full, cut(24), cut(16), full]), want, "{} {format:?}: rows of unequal length", set.name);
                let odd = X { s: &full.s[..16], ..full };
                assert_eq!(dot4(&row, [full, full, odd, full]), want, "{} {format:?}: parts of unequal length", set.name);
                let dot = set.dot(format);
                assert_eq!(dot(&row, odd), dot(&prefix(16), cut(16)), "{} {format:?}: one row", set.name);
            }
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        for t in [0.0f32, 0.5, 1.5, 2.5, -0.5, -2.5, 0.49999997, -0.49999997, 126.5, 126.49999, -127.0, 3.2, -3.7, 1e-9] {
            assert_eq!(round(t), t.round(), "{t}");
        }
    }

    /// The vector quantizer writes the scalar loop's bits, NaN, zeros and extremes included.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn vector_quantization_matches_scalar() {
        let mut x: Vec<f32> = (0..32 * 40).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.0137 * (1 + i % 5) as f32).collect();
        x[3] = f32::NAN;
        x[40] = f32::INFINITY;
        x[64..96].fill(0.0);
        x[96..128].iter_mut().enumerate().for_each(|(i, v)| *v = (i as f32 - 16.0) * 0.5); // ties at 127·k/16
        x[130] = -1e30;
        x[200] = 1e-40; // subnormal
        for two in [false, true] {
            let nb = x.len() / 32;
            let Some(best) = x86::quantizer() else { return }; // no vector quantizer here
            let kernels: &[x86::Quantizer] = if best == x86::Quantizer::Avx512 { &[x86::Quantizer::Avx2, x86::Quantizer::Avx512] } else { &[x86::Quantizer::Avx2] };
            // the scalar loop, from a copy of quantize_blocks without the vector branch
            let (mut d2, mut s2, mut q2) = (vec![0f32; nb], vec![0f32; nb], vec![[[0i8; 32]; 2]; nb]);
            for (((chunk, d), s), q) in x.chunks_exact(32).zip(&mut d2).zip(&mut s2).zip(&mut q2) {
                let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
                *d = amax / 127.0;
                let id = if *d > 0.0 { 1.0 / *d } else { 0.0 };
                let (mut s0, mut s1) = (0i32, 0i32);
                for (l, v) in chunk.iter().enumerate() {
                    let t = (v * id).max(-127.0).min(127.0);
                    let q0 = round(t);
                    let q1 = if two { round((t - q0) * 254.0) } else { 0.0 };
                    (q[0][l], q[1][l]) = (q0 as i8, q1 as i8);
                    (s0, s1) = (s0 + q0 as i32, s1 + q1 as i32);
                }
                *s = *d * (s0 as f32 + s1 as f32 * LEVEL2);
            }
            for &kernel in kernels {
                let (mut d, mut s, mut q) = (vec![0f32; nb], vec![0f32; nb], vec![[[0i8; 32]; 2]; nb]);
                // SAFETY: `quantizer` found the features of every kernel listed.
                unsafe {
                    match (kernel, two) {
                        (x86::Quantizer::Avx2, true) => x86::quantize_avx2::<true>(&x, &mut d, &mut s, &mut q, nb),
                        (x86::Quantizer::Avx2, false) => x86::quantize_avx2::<false>(&x, &mut d, &mut s, &mut q, nb),
                        (x86::Quantizer::Avx512, true) => x86::quantize_avx512::<true>(&x, &mut d, &mut s, &mut q, nb),
                        (x86::Quantizer::Avx512, false) => x86::quantize_avx512::<false>(&x, &mut d, &mut s, &mut q, nb),
                    }
                }
                assert_eq!(q, q2, "{kernel:?}, two levels: {two}");
                let same = |a: &f32, b: &f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
                assert!(d.iter().zip(&d2).chain(s.iter().zip(&s2)).all(|(a, b)| same(a, b)), "{kernel:?}, two levels: {two}");
            }
        }
    }

    #[test]
    fn activation_quantization_is_close() {
        let x: Vec<f32> = (0..64).map(|i| ((i * 37 % 17) as f32 - 8.0) * 0.3).collect();
        let r = XRows::quantize(&x, 2, 32, true, true);
        for (i, v) in x.iter().enumerate() {
            let row = r.row(i / 32);
            let (q0, q1) = (row.q[0][0][i % 32] as f32, row.q[0][1][i % 32] as f32);
            assert!((q0 * row.d[0] - v).abs() <= row.d[0] / 2.0 + 1e-6);
            assert!(((q0 + q1 * LEVEL2) * row.d[0] - v).abs() <= row.d[0] / 508.0 + 1e-6);
        }
        let row = r.row(0);
        let (s0, s1): (i32, i32) = (row.q[0][0].iter().map(|&q| q as i32).sum(), row.q[0][1].iter().map(|&q| q as i32).sum());
        assert_eq!(row.s[0], row.d[0] * (s0 as f32 + s1 as f32 * LEVEL2));
        assert!(r.q.iter().all(|b| b.iter().flatten().all(|&q| q > -128)));
    }
}
