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
//!
//! By instruction set, one file each: `portable.rs`, `avx2.rs` (with the x86_64 code both x86
//! sets share) and `avx512.rs`, `neon.rs`; what they all use is in `common.rs`. This file holds
//! the activation rows, their quantization, and the choice of kernel set.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod common;
#[cfg(target_arch = "aarch64")]
mod neon;
/// Portable kernels: integer sums per (sub-)block, one f32 multiply-add each.
mod portable;

pub(crate) use common::{dequantize_row, f16_to_f32, regroup_row, Kernels, QFormat, LEVEL2, X};

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
            #[allow(clippy::manual_clamp)] // `clamp` would keep a NaN, which must become −127
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

/// The vector branch of [`quantize_blocks`]. It lives here, not in `avx2.rs`: it chooses between
/// the quantizers of `avx2.rs` and `avx512.rs`, and `avx512.rs` builds on `avx2.rs` (its kernel
/// set is the generic kernels of `avx2.rs`), so from `avx2.rs` each file would depend on the
/// other (an import cycle, which `tools/module_deps.py` rejects). Here it sits by the scalar loop
/// it stands in for, as [`available`] does for the kernel sets.
#[cfg(target_arch = "x86_64")]
mod x86 {
    // the quantizers it chooses between (the tests call them through here too)
    pub(super) use super::avx2::quantize_avx2;
    pub(super) use super::avx512::quantize_avx512;

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
        v.push(&avx2::AVX2);
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
        {
            v.push(&avx512::AVX512_VNNI);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            v.push(&neon::NEON);
        }
        if std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("dotprod") {
            v.push(&neon::NEON_DOTPROD);
        }
    }
    v
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
                let xd: Vec<f32> =
                    xr.q.iter()
                        .zip(&xr.d)
                        .flat_map(|(q, d)| (0..32).map(move |l| (q[0][l] as f32 + q[1][l] as f32 * LEVEL2) * d))
                        .collect();
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
                            assert!(
                                got.iter().all(|g| (*g as f64 - want).abs() < 1e-4 * (1.0 + want.abs())),
                                "{} {format:?} x4: {got:?} vs {want}",
                                set.name
                            );
                        }
                        let got = set.dot(format)(&row, xr.row(0));
                        assert!(
                            (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{} {format:?} two={two}: {got} vs {want}",
                            set.name
                        );
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
            let kernels: &[x86::Quantizer] = if best == x86::Quantizer::Avx512 {
                &[x86::Quantizer::Avx2, x86::Quantizer::Avx512]
            } else {
                &[x86::Quantizer::Avx2]
            };
            // the scalar loop, from a copy of quantize_blocks without the vector branch
            let (mut d2, mut s2, mut q2) = (vec![0f32; nb], vec![0f32; nb], vec![[[0i8; 32]; 2]; nb]);
            for (((chunk, d), s), q) in x.chunks_exact(32).zip(&mut d2).zip(&mut s2).zip(&mut q2) {
                let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
                *d = amax / 127.0;
                let id = if *d > 0.0 { 1.0 / *d } else { 0.0 };
                let (mut s0, mut s1) = (0i32, 0i32);
                for (l, v) in chunk.iter().enumerate() {
                    #[allow(clippy::manual_clamp)] // `clamp` would keep a NaN, which must become −127
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
