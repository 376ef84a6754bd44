//! Weight matrices of the 32-element formats (Q8_0, Q4_0, Q4_1) in tiles of 16 rows, for CPUs
//! with a wide integer dot product: x86 AVX-512 VNNI and arm64 NEON with `dotprod`.
//!
//! A row-at-a-time kernel multiplies 32 weights by 32 activations and must then sum its lanes
//! and scale the result for every block. In a tile, the same bytes are interleaved so one
//! 512-bit register holds 4 consecutive weights of each of 16 rows: `vpdpbusd` multiplies them
//! by 4 activations broadcast to every lane, the 16 lanes are the 16 rows' sums, and one
//! multiply-add per block applies the 16 rows' scales. No horizontal sum, and a block of 16 rows
//! costs about what a block of one row costs in the row layout. On arm64, `sdot` by element does
//! the same four rows at a time from the same bytes (a 64-byte group is four 16-byte registers).
//!
//! Tile layout, per block of 32 columns: the 16 rows' f16 scales (32 bytes), their f16
//! minimums (Q4_1 only, 32 bytes), then the quants in groups of 4 bytes: group `g` is 64 bytes,
//! row `j`'s bytes `4g..4g+4` at `4j`. Q4_* quant bytes are GGML's (low nibble = element `i`,
//! high nibble = element `i + 16`); Q8_0 quants are stored offset by 128 (unsigned), which the
//! kernel corrects with the activation sums. The last tile is padded with zero rows. A tile
//! holds exactly the bytes of its 16 rows.

use super::qkernels::{f16_to_f32, QFormat, X};

/// Rows per tile.
pub(crate) const TILE: usize = 16;

/// The kernels of one format: the 16 dot products of one tile with one activation row, and
/// with four rows at once (each weight register unpacked once for the four).
pub(crate) struct TileKernels {
    pub(crate) one: fn(&[u8], X) -> [f32; TILE],
    pub(crate) four: fn(&[u8], [X; 4]) -> [[f32; TILE]; 4],
}

/// Quant bytes per row and block.
fn quant_bytes(format: QFormat) -> usize {
    if format == QFormat::Q8_0 {
        32
    } else {
        16
    }
}

/// Offset of the quants within a tile-block.
fn quant_offset(format: QFormat) -> usize {
    if format == QFormat::Q4_1 {
        4 * TILE
    } else {
        2 * TILE
    }
}

/// For the kernels' format index `f` (0 Q8_0, 1 Q4_0, 2 Q4_1), a tile of `tile_len` bytes and
/// activations of `x_blocks` blocks: bytes per tile-block, blocks to multiply, offset of the quants
/// within a tile-block.
#[inline(always)]
fn geometry(f: u8, tile_len: usize, x_blocks: usize) -> (usize, usize, usize) {
    let format = [QFormat::Q8_0, QFormat::Q4_0, QFormat::Q4_1][f as usize];
    let tb = TILE * format.block_bytes();
    (tb, x_blocks.min(tile_len / tb), quant_offset(format))
}

/// The tile kernel for `format` on this CPU, or None where rows stay in the row layout (other
/// CPUs, other formats).
pub(crate) fn kernel(format: QFormat) -> Option<&'static TileKernels> {
    #[cfg(target_arch = "x86_64")]
    {
        static VNNI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ok = *VNNI.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("fma")
        });
        if ok {
            return match format {
                QFormat::Q8_0 => Some(&x86::Q8_0),
                QFormat::Q4_0 => Some(&x86::Q4_0),
                QFormat::Q4_1 => Some(&x86::Q4_1),
                _ => None,
            };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        static DOTPROD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ok = *DOTPROD.get_or_init(|| {
            std::arch::is_aarch64_feature_detected!("neon") && std::arch::is_aarch64_feature_detected!("dotprod")
        });
        if ok {
            return match format {
                QFormat::Q8_0 => Some(&arm::Q8_0),
                QFormat::Q4_0 => Some(&arm::Q4_0),
                QFormat::Q4_1 => Some(&arm::Q4_1),
                _ => None,
            };
        }
    }
    let _ = format;
    None
}

/// Interleaves up to 16 rows of GGML blocks (`src`, `row_bytes` each) into one tile (`dst`,
/// `16 · row_bytes`, zeroed beforehand: missing rows stay zero).
pub(crate) fn tile_rows(format: QFormat, src: &[u8], row_bytes: usize, dst: &mut [u8]) {
    let (bb, qb, qo) = (format.block_bytes(), quant_bytes(format), quant_offset(format));
    let tb = TILE * bb;
    for (j, row) in src.chunks_exact(row_bytes).enumerate() {
        for (b, blk) in row.chunks_exact(bb).enumerate() {
            let t = &mut dst[b * tb..(b + 1) * tb];
            t[2 * j..2 * j + 2].copy_from_slice(&blk[..2]);
            if format == QFormat::Q4_1 {
                t[2 * TILE + 2 * j..2 * TILE + 2 * j + 2].copy_from_slice(&blk[2..4]);
            }
            for (g, q) in blk[bb - qb..].chunks_exact(4).enumerate() {
                let at = qo + 4 * TILE * g + 4 * j;
                for (o, &q) in t[at..at + 4].iter_mut().zip(q) {
                    *o = if format == QFormat::Q8_0 { q ^ 0x80 } else { q };
                }
            }
        }
    }
}

/// Dequantizes row `lane` of a tile into `out` (`32 · blocks` values).
pub(crate) fn dequantize_tile_row(format: QFormat, tile: &[u8], lane: usize, out: &mut [f32]) {
    let (bb, qo) = (format.block_bytes(), quant_offset(format));
    let f16 = |t: &[u8], at: usize| f16_to_f32(u16::from_le_bytes([t[at], t[at + 1]]));
    for (t, o) in tile.chunks_exact(TILE * bb).zip(out.chunks_exact_mut(32)) {
        let d = f16(t, 2 * lane);
        let quant = |i: usize| t[qo + 4 * TILE * (i / 4) + 4 * lane + i % 4];
        match format {
            QFormat::Q8_0 => o.iter_mut().enumerate().for_each(|(i, o)| *o = d * ((quant(i) ^ 0x80) as i8) as f32),
            _ => {
                let m = if format == QFormat::Q4_1 { f16(t, 2 * TILE + 2 * lane) } else { -8.0 * d };
                for i in 0..16 {
                    o[i] = d * (quant(i) & 0xf) as f32 + m;
                    o[i + 16] = d * (quant(i) >> 4) as f32 + m;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{geometry, TileKernels, TILE};
    use crate::kernels::qkernels::{LEVEL2, X};
    use std::arch::x86_64::*;

    /// Blocks ahead of the one being multiplied whose bytes are prefetched.
    const AHEAD: usize = 16;

    // Safe entry points: `kernel` hands them out only when the CPU has the features.
    macro_rules! kernels {
        ($name:ident, $f:literal) => {
            pub(super) static $name: TileKernels =
                TileKernels { one: |t, x| unsafe { tile::<$f>(t, x) }, four: |t, x| unsafe { tile4::<$f>(t, x) } };
        };
    }
    kernels!(Q8_0, 0);
    kernels!(Q4_0, 1);
    kernels!(Q4_1, 2);

    /// Four activation bytes from `at`, broadcast to the 16 lanes.
    #[inline(always)]
    unsafe fn bcast(q: &[i8; 32], at: usize) -> __m512i {
        _mm512_set1_epi32((q.as_ptr().add(at) as *const i32).read_unaligned())
    }

    /// `F`: 0 Q8_0 (`d·q`, stored `q + 128`), 1 Q4_0 (`d·(q − 8)`), 2 Q4_1 (`d·q + m`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
    unsafe fn tile<const F: u8>(t: &[u8], x: X) -> [f32; TILE] {
        let (tb, nb, qo) = geometry(F, t.len(), x.blocks());
        let nib = _mm512_set1_epi8(0xf);
        let (mut acc, mut off) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for b in 0..nb {
            let p = t.as_ptr().add(b * tb);
            // the weights stream through once: ask for a block `AHEAD` blocks on (in this tile
            // or the next one, which follows it in memory; a prefetch never faults)
            let ahead = p.wrapping_add(AHEAD * tb);
            for l in (0..tb).step_by(64) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(l) as *const i8);
            }
            let q = p.add(qo);
            let xq = x.q.get_unchecked(b);
            // two chains per level: 4 (Q8_0) or 2 × 4 dot products each
            let z = _mm512_setzero_si512();
            let (mut a0, mut b0, mut a1, mut b1) = (z, z, z, z);
            if F == 0 {
                for g in 0..4 {
                    let (w0, w1) =
                        (_mm512_loadu_si512(q.add(128 * g) as *const _), _mm512_loadu_si512(q.add(128 * g + 64) as *const _));
                    a0 = _mm512_dpbusd_epi32(a0, w0, bcast(&xq[0], 8 * g));
                    b0 = _mm512_dpbusd_epi32(b0, w1, bcast(&xq[0], 8 * g + 4));
                    if x.two {
                        a1 = _mm512_dpbusd_epi32(a1, w0, bcast(&xq[1], 8 * g));
                        b1 = _mm512_dpbusd_epi32(b1, w1, bcast(&xq[1], 8 * g + 4));
                    }
                }
            } else {
                for g in 0..4 {
                    let v = _mm512_loadu_si512(q.add(64 * g) as *const _);
                    let (lo, hi) = (_mm512_and_si512(v, nib), _mm512_and_si512(_mm512_srli_epi16(v, 4), nib));
                    a0 = _mm512_dpbusd_epi32(a0, lo, bcast(&xq[0], 4 * g));
                    b0 = _mm512_dpbusd_epi32(b0, hi, bcast(&xq[0], 16 + 4 * g));
                    if x.two {
                        a1 = _mm512_dpbusd_epi32(a1, lo, bcast(&xq[1], 4 * g));
                        b1 = _mm512_dpbusd_epi32(b1, hi, bcast(&xq[1], 16 + 4 * g));
                    }
                }
            }
            let mut s = _mm512_cvtepi32_ps(_mm512_add_epi32(a0, b0));
            if x.two {
                s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a1, b1)), _mm512_set1_ps(LEVEL2), s);
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
            acc = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(*x.d.get_unchecked(b))), s, acc);
            let m = if F == 2 { _mm512_cvtph_ps(_mm256_loadu_si256(p.add(2 * TILE) as *const __m256i)) } else { d };
            off = _mm512_fmadd_ps(m, _mm512_set1_ps(*x.s.get_unchecked(b)), off);
        }
        let c = [-128.0f32, -8.0, 1.0][F as usize];
        let mut out = [0f32; TILE];
        _mm512_storeu_ps(out.as_mut_ptr(), _mm512_fmadd_ps(off, _mm512_set1_ps(c), acc));
        out
    }

    /// [`tile`] for four activation rows: each weight register is loaded and unpacked once.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma")]
    unsafe fn tile4<const F: u8>(t: &[u8], x: [X; 4]) -> [[f32; TILE]; 4] {
        let (tb, nb, qo) = geometry(F, t.len(), x.iter().map(X::blocks).min().unwrap_or(0));
        let two = x[0].two;
        let nib = _mm512_set1_epi8(0xf);
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut off = [_mm512_setzero_ps(); 4];
        for b in 0..nb {
            let p = t.as_ptr().add(b * tb);
            let q = p.add(qo);
            let xq: [&[[i8; 32]; 2]; 4] = std::array::from_fn(|r| x[r].q.get_unchecked(b));
            let z = _mm512_setzero_si512();
            let (mut a0, mut a1) = ([z; 4], [z; 4]);
            if F == 0 {
                for g in 0..8 {
                    let w = _mm512_loadu_si512(q.add(64 * g) as *const _);
                    for r in 0..4 {
                        a0[r] = _mm512_dpbusd_epi32(a0[r], w, bcast(&xq[r][0], 4 * g));
                        if two {
                            a1[r] = _mm512_dpbusd_epi32(a1[r], w, bcast(&xq[r][1], 4 * g));
                        }
                    }
                }
            } else {
                for g in 0..4 {
                    let v = _mm512_loadu_si512(q.add(64 * g) as *const _);
                    let (lo, hi) = (_mm512_and_si512(v, nib), _mm512_and_si512(_mm512_srli_epi16(v, 4), nib));
                    for r in 0..4 {
                        a0[r] = _mm512_dpbusd_epi32(a0[r], lo, bcast(&xq[r][0], 4 * g));
                        a0[r] = _mm512_dpbusd_epi32(a0[r], hi, bcast(&xq[r][0], 16 + 4 * g));
                        if two {
                            a1[r] = _mm512_dpbusd_epi32(a1[r], lo, bcast(&xq[r][1], 4 * g));
                            a1[r] = _mm512_dpbusd_epi32(a1[r], hi, bcast(&xq[r][1], 16 + 4 * g));
                        }
                    }
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
            let m = if F == 2 { _mm512_cvtph_ps(_mm256_loadu_si256(p.add(2 * TILE) as *const __m256i)) } else { d };
            for r in 0..4 {
                let mut s = _mm512_cvtepi32_ps(a0[r]);
                if two {
                    s = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1[r]), _mm512_set1_ps(LEVEL2), s);
                }
                acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(*x[r].d.get_unchecked(b))), s, acc[r]);
                off[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(*x[r].s.get_unchecked(b)), off[r]);
            }
        }
        let c = _mm512_set1_ps([-128.0f32, -8.0, 1.0][F as usize]);
        let mut out = [[0f32; TILE]; 4];
        for r in 0..4 {
            _mm512_storeu_ps(out[r].as_mut_ptr(), _mm512_fmadd_ps(off[r], c, acc[r]));
        }
        out
    }
}

#[cfg(target_arch = "aarch64")]
pub(crate) use arm::f16x4;

#[cfg(target_arch = "aarch64")]
mod arm {
    //! NEON with `dotprod`: `sdot` by element multiplies 4 weights of each of 4 rows (one
    //! 16-byte register of a tile group) by 4 activations taken from one lane of another register,
    //! so a group of 16 rows is 4 `sdot`s per nibble half and level, with no horizontal sums.
    use super::{geometry, TileKernels, TILE};
    use crate::kernels::qkernels::{LEVEL2, X};
    use std::arch::aarch64::*;

    // Safe entry points: `kernel` hands them out only when the CPU has NEON and dotprod.
    macro_rules! kernels {
        ($name:ident, $f:literal) => {
            pub(super) static $name: TileKernels = TileKernels {
                one: |t, x| unsafe { tile::<$f>(t, x) },
                // (four accumulator sets would not fit the 32 registers: one row at a time,
                // the tile staying in L1, over the blocks all four rows hold, as on x86)
                four: |t, x| {
                    let n = x.iter().map(X::blocks).min().unwrap_or(0);
                    x.map(|x| unsafe { tile::<$f>(t, x.prefix(n)) })
                },
            };
        };
    }
    kernels!(Q8_0, 0);
    kernels!(Q4_0, 1);
    kernels!(Q4_1, 2);

    /// `acc += w · x[lane]`: 4 rows of 4 weights by the 4 activations in lane `$l` of `x`.
    macro_rules! sdot_lane {
        ($acc:expr, $w:expr, $x:expr, $l:literal) => {{
            let mut acc: int32x4_t = $acc;
            std::arch::asm!(concat!("sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[", $l, "]"),
                acc = inout(vreg) acc, w = in(vreg) $w, x = in(vreg) $x, options(pure, nomem, nostack, preserves_flags));
            acc
        }};
    }

    /// Four f16 values at `p` as f32 (`fcvtl`, ARMv8.0).
    #[inline(always)]
    pub(crate) unsafe fn f16x4(p: *const u8) -> float32x4_t {
        let h = vld1_u16(p as *const u16);
        let out: float32x4_t;
        std::arch::asm!("fcvtl {o:v}.4s, {h:v}.4h", o = out(vreg) out, h = in(vreg) h, options(pure, nomem, nostack, preserves_flags));
        out
    }

    /// The 16 rows' integer sums of one block against one activation level (`xl`: elements
    /// 0–15, `xh`: 16–31), four rows per register.
    #[inline(always)]
    unsafe fn block<const F: u8>(q: *const u8, xl: int8x16_t, xh: int8x16_t) -> [int32x4_t; 4] {
        let z = vdupq_n_s32(0);
        let mut acc = [z; 4];
        if F == 0 {
            let flip = vdupq_n_u8(0x80);
            // group g: elements 4g..4g+4, from xl (g < 4) or xh
            macro_rules! group {
                ($g:literal, $x:expr, $l:literal) => {
                    for r in 0..4 {
                        let w = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(q.add(64 * $g + 16 * r)), flip));
                        acc[r] = sdot_lane!(acc[r], w, $x, $l);
                    }
                };
            }
            group!(0, xl, 0);
            group!(1, xl, 1);
            group!(2, xl, 2);
            group!(3, xl, 3);
            group!(4, xh, 0);
            group!(5, xh, 1);
            group!(6, xh, 2);
            group!(7, xh, 3);
        } else {
            let nib = vdupq_n_u8(0xf);
            // group g: low nibbles are elements 4g..4g+4, high nibbles 16 + 4g..
            macro_rules! group {
                ($g:literal) => {
                    for r in 0..4 {
                        let v = vld1q_u8(q.add(64 * $g + 16 * r));
                        acc[r] = sdot_lane!(acc[r], vreinterpretq_s8_u8(vandq_u8(v, nib)), xl, $g);
                        acc[r] = sdot_lane!(acc[r], vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), xh, $g);
                    }
                };
            }
            group!(0);
            group!(1);
            group!(2);
            group!(3);
        }
        acc
    }

    /// `F`: 0 Q8_0 (stored `q + 128`, flipped back to signed here), 1 Q4_0, 2 Q4_1.
    #[target_feature(enable = "neon,dotprod")]
    unsafe fn tile<const F: u8>(t: &[u8], x: X) -> [f32; TILE] {
        let (tb, nb, qo) = geometry(F, t.len(), x.blocks());
        let z = vdupq_n_f32(0.0);
        let (mut acc, mut off) = ([z; 4], [z; 4]);
        for b in 0..nb {
            let p = t.as_ptr().add(b * tb);
            let xq = x.q.get_unchecked(b);
            let load = |l: usize, h: usize| vld1q_s8(xq[l].as_ptr().add(16 * h));
            let s0 = block::<F>(p.add(qo), load(0, 0), load(0, 1));
            let s1 = if x.two { Some(block::<F>(p.add(qo), load(1, 0), load(1, 1))) } else { None };
            let (dx, sx) = (*x.d.get_unchecked(b), *x.s.get_unchecked(b));
            for r in 0..4 {
                let mut s = vcvtq_f32_s32(s0[r]);
                if let Some(s1) = &s1 {
                    s = vfmaq_n_f32(s, vcvtq_f32_s32(s1[r]), LEVEL2);
                }
                let d = f16x4(p.add(8 * r));
                acc[r] = vfmaq_f32(acc[r], vmulq_n_f32(d, dx), s);
                if F != 0 {
                    let m = if F == 2 { f16x4(p.add(2 * TILE + 8 * r)) } else { d };
                    off[r] = vfmaq_n_f32(off[r], m, sx);
                }
            }
        }
        let c = [0.0f32, -8.0, 1.0][F as usize];
        let mut out = [0f32; TILE];
        for r in 0..4 {
            vst1q_f32(out.as_mut_ptr().add(4 * r), vfmaq_n_f32(acc[r], off[r], c));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::qkernels::{dequantize_row, regroup_row, XRows, LEVEL2};
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// A tile holds its rows exactly (dequantized like the row layout), and where this CPU has
    /// tile kernels they agree with the f64 dot product of the dequantized weights and
    /// activations, for full and partial tiles and both activation precisions.
    #[test]
    fn tiles_hold_their_rows_and_kernels_match() {
        let dev = Device::Cpu;
        for (format, dtype) in
            [(QFormat::Q8_0, GgmlDType::Q8_0), (QFormat::Q4_0, GgmlDType::Q4_0), (QFormat::Q4_1, GgmlDType::Q4_1)]
        {
            let (k, rows) = (96usize, 11usize);
            let w = Tensor::randn(0f32, 0.05, (rows, k), &dev).unwrap();
            let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().to_vec();
            let rb = k / 32 * format.block_bytes();
            let mut tile = vec![0u8; TILE * rb];
            tile_rows(format, &data, rb, &mut tile);
            let x: Vec<f32> = Tensor::randn(0f32, 1.0, k, &dev).unwrap().to_vec1().unwrap();
            for j in 0..TILE {
                let mut got = vec![0f32; k];
                dequantize_tile_row(format, &tile, j, &mut got);
                let mut want = vec![0f32; k];
                if j < rows {
                    let mut grouped = vec![0u8; rb];
                    regroup_row(format, &data[j * rb..(j + 1) * rb], &mut grouped);
                    dequantize_row(format, &grouped, &mut want);
                }
                assert_eq!(got, want, "{format:?} row {j}");
            }
            let mut whole = vec![0f32; TILE * k];
            for (j, row) in whole.chunks_exact_mut(k).enumerate() {
                dequantize_tile_row(format, &tile, j, row);
            }
            let Some(kernels) = kernel(format) else { continue };
            for two in [false, true] {
                // four different activation rows
                let xs: Vec<f32> = (0..4).flat_map(|r| x.iter().map(move |v| v * (1.0 + r as f32) - 0.1 * r as f32)).collect();
                let xr = XRows::quantize(&xs, 4, k, two, false);
                let four = (kernels.four)(&tile, [xr.row(0), xr.row(1), xr.row(2), xr.row(3)]);
                for (r, four) in four.iter().enumerate() {
                    let row = xr.row(r);
                    let xd: Vec<f64> = (0..k)
                        .map(|i| {
                            (row.q[i / 32][0][i % 32] as f64 + row.q[i / 32][1][i % 32] as f64 * LEVEL2 as f64)
                                * row.d[i / 32] as f64
                        })
                        .collect();
                    let one = (kernels.one)(&tile, row);
                    for j in 0..TILE {
                        let want: f64 = whole[j * k..(j + 1) * k].iter().zip(&xd).map(|(a, b)| *a as f64 * b).sum();
                        for (what, got) in [("one", one[j]), ("four", four[j])] {
                            assert!(
                                (got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "{format:?} {what} two={two} x{r} row {j}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The tile kernels multiply over the blocks every part of every activation row holds: a
    /// short row (or a row with a short part) is read as if the tile were cut there.
    #[test]
    fn tile_kernels_never_read_past_a_short_row() {
        let dev = Device::Cpu;
        let k = 96;
        for (format, dtype) in
            [(QFormat::Q8_0, GgmlDType::Q8_0), (QFormat::Q4_0, GgmlDType::Q4_0), (QFormat::Q4_1, GgmlDType::Q4_1)]
        {
            let Some(kernels) = kernel(format) else { continue };
            let data =
                QTensor::quantize(&Tensor::randn(0f32, 0.05, (TILE, k), &dev).unwrap(), dtype).unwrap().data().unwrap().to_vec();
            let rb = k / 32 * format.block_bytes();
            let mut tile = vec![0u8; TILE * rb];
            tile_rows(format, &data, rb, &mut tile);
            // the first block of each row alone, tiled
            let first: Vec<u8> = data.chunks_exact(rb).flat_map(|r| r[..format.block_bytes()].to_vec()).collect();
            let mut tile1 = vec![0u8; TILE * format.block_bytes()];
            tile_rows(format, &first, format.block_bytes(), &mut tile1);
            let xs: Vec<f32> = Tensor::randn(0f32, 1.0, k, &dev).unwrap().to_vec1().unwrap();
            let xr = XRows::quantize(&xs, 1, k, true, false);
            let full = xr.row(0);
            let one = X { d: &full.d[..1], s: &full.s[..1], q: &full.q[..1], two: true };
            let odd = X { q: &full.q[..1], ..full };
            let want = (kernels.one)(&tile1, one);
            assert_eq!((kernels.one)(&tile, odd), want, "{format:?}: one row");
            assert_eq!((kernels.four)(&tile, [full, odd, one, full]), (kernels.four)(&tile1, [one; 4]), "{format:?}: four rows");
        }
    }
}
