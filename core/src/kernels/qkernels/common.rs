//! What the kernel files share: the weight formats and their grouped layout, the activation row
//! a kernel reads, the kernel-set type, and the f16 and block-decoding helpers. Kept apart from
//! `mod.rs`, which names the kernel files to choose between them: they depend on this file, not
//! on `mod.rs`, so no two modules depend on each other (`tools/module_deps.py` checks).

/// The second level's weight: `q₁` counts 254ths of `d`.
pub(crate) const LEVEL2: f32 = 1.0 / 254.0;

/// One row of [`XRows`](super::XRows).
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

    /// The row's first `n` blocks (all of it when it holds fewer).
    #[cfg(target_arch = "aarch64")]
    pub(crate) fn prefix(self, n: usize) -> Self {
        let n = n.min(self.blocks());
        X { d: &self.d[..n], s: &self.s[..n], q: &self.q[..n], two: self.two }
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
pub(super) const GROUP: usize = 8;

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
    pub(super) fn grouped(self) -> bool {
        self.block_len() == 32
    }

    /// In a group of `g` blocks: offsets of the minimums and of the quants, and quant bytes per
    /// block.
    pub(super) fn group_layout(self, g: usize) -> (usize, usize, usize) {
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
pub(super) fn for_each_block(format: QFormat, w: &[u8], mut f: impl FnMut(usize, f32, f32, &[u8])) {
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
    pub(super) dot: [DotFn; 5],
    pub(super) dot4: [Option<Dot4Fn>; 5],
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

/// IEEE half to single precision (exact), without relying on F16C/FP16 instructions.
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let em = (h & 0x7fff) as u32;
    // exponent and mantissa moved into place, then rebiased by 2^112 (also right for subnormals)
    let v = if em >= 0x7c00 {
        f32::from_bits((em << 13) | 0x7f80_0000)
    } else {
        f32::from_bits(em << 13) * f32::from_bits(0x7780_0000)
    };
    f32::from_bits(v.to_bits() | ((h as u32 & 0x8000) << 16))
}

#[inline(always)]
pub(super) fn f16_at(w: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([w[at], w[at + 1]]))
}

/// Q4_K's 6-bit scale and min of sub-block `j` (0..8) from the 12 packed bytes.
#[inline(always)]
pub(super) fn q4k_scale_min(s: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Q6_K's signed 6-bit weight `i` (0..256) of a super-block `b`.
#[inline(always)]
pub(super) fn q6k_weight(b: &[u8], i: usize) -> i32 {
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
