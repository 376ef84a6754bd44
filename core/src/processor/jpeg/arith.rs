//! Arithmetic entropy decoding (`jdarith.c`, with the probability estimation table of
//! `jaricom.c`): the decoder registers and their byte input, the statistics areas, and the
//! decoding of blocks for sequential (SOF9) and progressive (SOF10) scans, including libjpeg's
//! handling of corrupt data: a marker inside the data feeds zeros, and a bad code (a magnitude or a
//! run past the block's end) leaves the decoder in its error state (`ct = -1`), in which the rest
//! of the scan (up to the next restart) decodes nothing.
//!
//! The scan setup, the restart markers and the walk over the image are shared with the Huffman
//! decoder (`entropy.rs`), which calls in here for each block and at each restart.

use super::error::{JpegError, Res};
use super::state::{Reader, ARITH_TABLES, NATURAL};

// ------------------------------------------------------------------------------------------------
// The probability estimation state machine

/// One state of ITU T.81 Table D.2 packed as `jaricom.c` does: Qe in bits 16..32, the next state
/// after an MPS in bits 8..16, the "switch MPS" flag in bit 7 and the next state after an LPS in
/// bits 0..7.
const fn state(qe: u32, next_lps: u32, next_mps: u32, switch: u32) -> u32 {
    (qe << 16) | (next_mps << 8) | (switch << 7) | next_lps
}

/// `jpeg_aritab`: Table D.2, plus state 113, a fixed probability of one half (ITU T.851).
#[rustfmt::skip]
const ARITAB: [u32; 114] = [
    state(0x5a1d, 1, 1, 1), state(0x2586, 14, 2, 0), state(0x1114, 16, 3, 0), state(0x080b, 18, 4, 0),
    state(0x03d8, 20, 5, 0), state(0x01da, 23, 6, 0), state(0x00e5, 25, 7, 0), state(0x006f, 28, 8, 0),
    state(0x0036, 30, 9, 0), state(0x001a, 33, 10, 0), state(0x000d, 35, 11, 0), state(0x0006, 9, 12, 0),
    state(0x0003, 10, 13, 0), state(0x0001, 12, 13, 0), state(0x5a7f, 15, 15, 1), state(0x3f25, 36, 16, 0),
    state(0x2cf2, 38, 17, 0), state(0x207c, 39, 18, 0), state(0x17b9, 40, 19, 0), state(0x1182, 42, 20, 0),
    state(0x0cef, 43, 21, 0), state(0x09a1, 45, 22, 0), state(0x072f, 46, 23, 0), state(0x055c, 48, 24, 0),
    state(0x0406, 49, 25, 0), state(0x0303, 51, 26, 0), state(0x0240, 52, 27, 0), state(0x01b1, 54, 28, 0),
    state(0x0144, 56, 29, 0), state(0x00f5, 57, 30, 0), state(0x00b7, 59, 31, 0), state(0x008a, 60, 32, 0),
    state(0x0068, 62, 33, 0), state(0x004e, 63, 34, 0), state(0x003b, 32, 35, 0), state(0x002c, 33, 9, 0),
    state(0x5ae1, 37, 37, 1), state(0x484c, 64, 38, 0), state(0x3a0d, 65, 39, 0), state(0x2ef1, 67, 40, 0),
    state(0x261f, 68, 41, 0), state(0x1f33, 69, 42, 0), state(0x19a8, 70, 43, 0), state(0x1518, 72, 44, 0),
    state(0x1177, 73, 45, 0), state(0x0e74, 74, 46, 0), state(0x0bfb, 75, 47, 0), state(0x09f8, 77, 48, 0),
    state(0x0861, 78, 49, 0), state(0x0706, 79, 50, 0), state(0x05cd, 48, 51, 0), state(0x04de, 50, 52, 0),
    state(0x040f, 50, 53, 0), state(0x0363, 51, 54, 0), state(0x02d4, 52, 55, 0), state(0x025c, 53, 56, 0),
    state(0x01f8, 54, 57, 0), state(0x01a4, 55, 58, 0), state(0x0160, 56, 59, 0), state(0x0125, 57, 60, 0),
    state(0x00f6, 58, 61, 0), state(0x00cb, 59, 62, 0), state(0x00ab, 61, 63, 0), state(0x008f, 61, 32, 0),
    state(0x5b12, 65, 65, 1), state(0x4d04, 80, 66, 0), state(0x412c, 81, 67, 0), state(0x37d8, 82, 68, 0),
    state(0x2fe8, 83, 69, 0), state(0x293c, 84, 70, 0), state(0x2379, 86, 71, 0), state(0x1edf, 87, 72, 0),
    state(0x1aa9, 87, 73, 0), state(0x174e, 72, 74, 0), state(0x1424, 72, 75, 0), state(0x119c, 74, 76, 0),
    state(0x0f6b, 74, 77, 0), state(0x0d51, 75, 78, 0), state(0x0bb6, 77, 79, 0), state(0x0a40, 77, 48, 0),
    state(0x5832, 80, 81, 1), state(0x4d1c, 88, 82, 0), state(0x438e, 89, 83, 0), state(0x3bdd, 90, 84, 0),
    state(0x34ee, 91, 85, 0), state(0x2eae, 92, 86, 0), state(0x299a, 93, 87, 0), state(0x2516, 86, 71, 0),
    state(0x5570, 88, 89, 1), state(0x4ca9, 95, 90, 0), state(0x44d9, 96, 91, 0), state(0x3e22, 97, 92, 0),
    state(0x3824, 99, 93, 0), state(0x32b4, 99, 94, 0), state(0x2e17, 93, 86, 0), state(0x56a8, 95, 96, 1),
    state(0x4f46, 101, 97, 0), state(0x47e5, 102, 98, 0), state(0x41cf, 103, 99, 0), state(0x3c3d, 104, 100, 0),
    state(0x375e, 99, 93, 0), state(0x5231, 105, 102, 0), state(0x4c0f, 106, 103, 0), state(0x4639, 107, 104, 0),
    state(0x415e, 103, 99, 0), state(0x5627, 105, 106, 1), state(0x50e7, 108, 107, 0), state(0x4b85, 109, 103, 0),
    state(0x5597, 110, 109, 0), state(0x504f, 111, 107, 0), state(0x5a10, 110, 111, 1), state(0x5522, 112, 109, 0),
    state(0x59eb, 112, 111, 1), state(0x5a1d, 113, 113, 0),
];

// ------------------------------------------------------------------------------------------------
// Statistics areas

/// `DC_STAT_BINS` / `AC_STAT_BINS`: one byte per bin (MPS in bit 7, state index below).
const DC_BINS: usize = 64;
const AC_BINS: usize = 256;
/// All statistics areas in one array: DC table `t` at `t * DC_BINS`, AC table `t` at
/// `AC_BASE + t * AC_BINS`, and the fixed bin (`fixed_bin`, probability one half) last.
const AC_BASE: usize = ARITH_TABLES * DC_BINS;
const FIXED: usize = AC_BASE + ARITH_TABLES * AC_BINS;

/// Arithmetic decoding work allowed to a file: this many binary decisions, plus
/// [`DECISIONS_PER_BYTE`] per byte of input. Unlike a Huffman code, an arithmetic decision can
/// cost far less than a bit (down to 1/20 000 of one in a well-adapted context), so without a bound
/// a few kilobytes could make each scan decode thousands of decisions per block; libjpeg has no
/// bound. Real files need a few decisions per byte of data, plus about one per 8x8 block per scan
/// for empty blocks: the floor covers a flat image up to the size limits, several scans over.
const DECISIONS_FLOOR: u64 = 1 << 27;
/// See [`DECISIONS_FLOOR`].
const DECISIONS_PER_BYTE: u64 = 256;

/// The arithmetic decoding work a file of `bytes` bytes may cost ([`DECISIONS_FLOOR`]).
pub(super) fn decision_budget(bytes: usize) -> u64 {
    DECISIONS_FLOOR + DECISIONS_PER_BYTE * bytes as u64
}

/// The conditioning of one scan component: its statistics areas and the DAC parameters of its
/// tables (`arith_dc_L`, `arith_dc_U`, `arith_ac_K`).
#[derive(Clone, Copy, Default)]
pub(super) struct Conditioning {
    pub(super) dc_tbl: usize,
    pub(super) ac_tbl: usize,
    pub(super) dc_l: u8,
    pub(super) dc_u: u8,
    pub(super) ac_k: u8,
}

// ------------------------------------------------------------------------------------------------
// The decoder

/// `arith_entropy_decoder`: the state of one scan.
pub(super) struct Arith {
    /// The C register: base of the coding interval plus the input bits not yet used.
    c: i64,
    /// The A register: the normalised size of the coding interval.
    a: i64,
    /// Bits of input left in C; -16 to load two bytes first, -1 after a bad code (the error
    /// state: nothing more is decoded until a restart).
    ct: i32,
    stats: Box<[u8; FIXED + 1]>,
    last_dc: [i32; 4],
    dc_context: [usize; 4],
    /// Per scan component.
    cond: [Conditioning; 4],
    ncomps: usize,
    /// Which statistics a restart resets: DC (sequential, DC first scans) and AC (sequential, AC
    /// scans).
    uses_dc: bool,
    uses_ac: bool,
    /// Decisions decoded so far in the file, and the most allowed ([`decision_budget`]).
    pub(super) decisions: u64,
    budget: u64,
}

impl Arith {
    /// `start_pass`: statistics zeroed, DC predictions and contexts reset, registers set to load
    /// two bytes. `fixed_bin` starts at state 113, which it never leaves.
    pub(super) fn new(cond: &[Conditioning], uses_dc: bool, uses_ac: bool, decisions: u64, budget: u64) -> Self {
        let mut stats = Box::new([0u8; FIXED + 1]);
        stats[FIXED] = 113;
        let mut c = [Conditioning::default(); 4];
        c[..cond.len()].copy_from_slice(cond);
        Arith {
            c: 0,
            a: 0,
            ct: -16,
            stats,
            last_dc: [0; 4],
            dc_context: [0; 4],
            cond: c,
            ncomps: cond.len(),
            uses_dc,
            uses_ac,
            decisions,
            budget,
        }
    }

    /// The arithmetic half of `process_restart` (after the marker is read): the scan's statistics
    /// areas, DC predictions and contexts reset, registers set to load two new bytes.
    pub(super) fn restart(&mut self) {
        for ci in 0..self.ncomps {
            let cond = self.cond[ci];
            if self.uses_dc {
                self.stats[cond.dc_tbl * DC_BINS..][..DC_BINS].fill(0);
                self.last_dc[ci] = 0;
                self.dc_context[ci] = 0;
            }
            if self.uses_ac {
                self.stats[AC_BASE + cond.ac_tbl * AC_BINS..][..AC_BINS].fill(0);
            }
        }
        self.c = 0;
        self.a = 0;
        self.ct = -16;
    }

    /// Whether a bad code has stopped the decoder until the next restart (`ct == -1`).
    pub(super) fn failed(&self) -> bool {
        self.ct == -1
    }

    /// Refuses the file once its decisions exceed [`decision_budget`].
    pub(super) fn check_budget(&self, bytes: usize) -> Res<()> {
        if self.decisions > self.budget {
            return Err(JpegError::TooMuchWork { bytes });
        }
        Ok(())
    }

    /// `arith_decode`: one binary decision in statistics bin `st`. Renormalisation reads bytes as
    /// `jdarith.c` does: 0xFF 0x00 is a stuffed 0xFF, a marker is left for the marker reader
    /// (`unread_marker`) and zeros are fed from then on.
    #[inline]
    fn decode(&mut self, r: &mut Reader, st: usize) -> Res<bool> {
        self.decisions += 1;
        while self.a < 0x8000 {
            self.ct -= 1;
            if self.ct < 0 {
                let data = if r.marker != 0 {
                    0
                } else {
                    let mut d = r.byte()?;
                    if d == 0xff {
                        while d == 0xff {
                            d = r.byte()?;
                        }
                        if d == 0 {
                            d = 0xff;
                        } else {
                            r.marker = d;
                            d = 0;
                        }
                    }
                    d
                };
                self.c = (self.c << 8) | data as i64;
                self.ct += 8;
                if self.ct < 0 {
                    // Still loading the two initial bytes.
                    self.ct += 1;
                    if self.ct == 0 {
                        self.a = 0x8000;
                    }
                }
            }
            self.a <<= 1;
        }
        let mut sv = self.stats[st];
        let e = ARITAB[(sv & 0x7f) as usize];
        let qe = (e >> 16) as i64;
        let (nm, nl) = ((e >> 8) as u8, e as u8);
        let temp = self.a - qe;
        self.a = temp;
        let temp = temp << self.ct;
        if self.c >= temp {
            self.c -= temp;
            // Conditional LPS exchange.
            if self.a < qe {
                self.stats[st] = (sv & 0x80) ^ nm;
            } else {
                self.stats[st] = (sv & 0x80) ^ nl;
                sv ^= 0x80;
            }
            self.a = qe;
        } else if self.a < 0x8000 {
            // Conditional MPS exchange.
            if self.a < qe {
                self.stats[st] = (sv & 0x80) ^ nl;
                sv ^= 0x80;
            } else {
                self.stats[st] = (sv & 0x80) ^ nm;
            }
        }
        Ok(sv >> 7 != 0)
    }

    /// The DC difference of scan component `si` (`Decode_DC_DIFF`, ITU T.81 F.19 to F.24) added to
    /// its prediction, modulo 2^16. Returns false after a bad magnitude (the error state).
    fn dc(&mut self, r: &mut Reader, si: usize) -> Res<bool> {
        let cond = self.cond[si];
        let tbl = cond.dc_tbl * DC_BINS;
        let mut st = tbl + self.dc_context[si];
        if !self.decode(r, st)? {
            self.dc_context[si] = 0;
            return Ok(true);
        }
        let sign = self.decode(r, st + 1)?;
        st += 2 + sign as usize;
        let mut m = self.decode(r, st)? as i32;
        if m != 0 {
            st = tbl + 20; // X1
            while self.decode(r, st)? {
                m <<= 1;
                if m == 0x8000 {
                    self.ct = -1; // JWRN_ARITH_BAD_CODE
                    return Ok(false);
                }
                st += 1;
            }
        }
        // The conditioning category of the next difference (F.1.4.4.1.2).
        let sign4 = 4 * sign as usize;
        self.dc_context[si] = if m < (1i32 << cond.dc_l) >> 1 {
            0
        } else if m > (1i32 << cond.dc_u) >> 1 {
            12 + sign4
        } else {
            4 + sign4
        };
        let v = self.magnitude(r, st + 14, m, sign)?;
        self.last_dc[si] = (self.last_dc[si] + v) & 0xffff;
        Ok(true)
    }

    /// The value whose magnitude category `m` (its top bit) was decoded: the bits below it from
    /// the bins at `st`, plus one, with `sign` (F.2.4.3.1, shared by DC and AC).
    fn magnitude(&mut self, r: &mut Reader, st: usize, mut m: i32, sign: bool) -> Res<i32> {
        let mut v = m;
        loop {
            m >>= 1;
            if m == 0 {
                break;
            }
            if self.decode(r, st)? {
                v |= m;
            }
        }
        v += 1;
        Ok(if sign { -v } else { v })
    }

    /// Coefficients `ss..=se` of a block (`Decode_AC_coefficients`, F.20 to F.24), stored shifted
    /// left by `al`; the AC half of `decode_mcu` and `decode_mcu_AC_first`. A run of zeros past
    /// `se` or a magnitude of 2^15 or more is a bad code (the error state).
    fn ac(&mut self, r: &mut Reader, si: usize, ss: usize, se: usize, al: i32, blk: &mut [i16]) -> Res<()> {
        let cond = self.cond[si];
        let tbl = AC_BASE + cond.ac_tbl * AC_BINS;
        let mut k = ss;
        while k <= se {
            let mut st = tbl + 3 * (k - 1);
            if self.decode(r, st)? {
                break; // EOB
            }
            while !self.decode(r, st + 1)? {
                st += 3;
                k += 1;
                if k > se {
                    self.ct = -1; // JWRN_ARITH_BAD_CODE: spectral overflow
                    return Ok(());
                }
            }
            let sign = self.decode(r, FIXED)?;
            st += 2;
            let mut m = self.decode(r, st)? as i32;
            if m != 0 && self.decode(r, st)? {
                m <<= 1;
                st = tbl + if k <= cond.ac_k as usize { 189 } else { 217 };
                while self.decode(r, st)? {
                    m <<= 1;
                    if m == 0x8000 {
                        self.ct = -1; // JWRN_ARITH_BAD_CODE: magnitude overflow
                        return Ok(());
                    }
                    st += 1;
                }
            }
            let v = self.magnitude(r, st + 14, m, sign)?;
            blk[NATURAL[k]] = ((v as u32) << al) as i16;
            k += 1;
        }
        Ok(())
    }

    /// One block of a sequential scan (`decode_mcu`, per block).
    pub(super) fn sequential(&mut self, r: &mut Reader, si: usize, blk: &mut [i16]) -> Res<()> {
        if self.failed() || !self.dc(r, si)? {
            return Ok(());
        }
        blk[0] = self.last_dc[si] as i16;
        self.ac(r, si, 1, 63, 0, blk)
    }

    /// One block of a DC first scan (`decode_mcu_DC_first`, per block).
    pub(super) fn dc_first(&mut self, r: &mut Reader, si: usize, al: i32, blk: &mut [i16]) -> Res<()> {
        if self.failed() || !self.dc(r, si)? {
            return Ok(());
        }
        blk[0] = ((self.last_dc[si] as u32) << al) as i16;
        Ok(())
    }

    /// One block of a DC refinement scan (`decode_mcu_DC_refine`, per block): the next bit of the
    /// DC value, at fixed probability. Never in the error state (no bad code exists here).
    pub(super) fn dc_refine(&mut self, r: &mut Reader, al: i32, blk: &mut [i16]) -> Res<()> {
        if self.decode(r, FIXED)? {
            blk[0] |= (1i32 << al) as i16;
        }
        Ok(())
    }

    /// One block of an AC first scan (`decode_mcu_AC_first`).
    pub(super) fn ac_first(&mut self, r: &mut Reader, ss: usize, se: usize, al: i32, blk: &mut [i16]) -> Res<()> {
        if self.failed() {
            return Ok(());
        }
        self.ac(r, 0, ss, se, al, blk)
    }

    /// One block of an AC refinement scan (`decode_mcu_AC_refine`): a correction bit for each
    /// coefficient already nonzero, new coefficients of magnitude `1 << al`, and an EOB decision
    /// only past the last coefficient the previous scans made nonzero (`kex`).
    pub(super) fn ac_refine(&mut self, r: &mut Reader, ss: usize, se: usize, al: i32, blk: &mut [i16]) -> Res<()> {
        if self.failed() {
            return Ok(());
        }
        let tbl = AC_BASE + self.cond[0].ac_tbl * AC_BINS;
        let p1 = (1i32 << al) as i16;
        let m1 = ((-1i32) << al) as i16;
        let mut kex = se;
        while kex > 0 && blk[NATURAL[kex]] == 0 {
            kex -= 1;
        }
        let mut k = ss;
        while k <= se {
            let mut st = tbl + 3 * (k - 1);
            if k > kex && self.decode(r, st)? {
                break; // EOB
            }
            loop {
                let pos = NATURAL[k];
                let coef = blk[pos];
                if coef != 0 {
                    if self.decode(r, st + 2)? {
                        blk[pos] = coef.wrapping_add(if coef < 0 { m1 } else { p1 });
                    }
                    break;
                }
                if self.decode(r, st + 1)? {
                    blk[pos] = if self.decode(r, FIXED)? { m1 } else { p1 };
                    break;
                }
                st += 3;
                k += 1;
                if k > se {
                    self.ct = -1; // JWRN_ARITH_BAD_CODE: spectral overflow
                    return Ok(());
                }
            }
            k += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::jpeg::state::Decoder;
    use crate::processor::jpeg::tests::fixture;
    use crate::processor::jpeg::{decode_jpeg, JpegPixels};

    /// `tests/fixtures/jpeg/arith/`: `j420.jpg` converted by libjpeg-turbo 2.1.5's `jpegtran
    /// -arithmetic -copy none`, with `-restart 1` (`j420_arith_rst.jpg`, SOF9, one DAC) or
    /// `-progressive` (`j420_arith_prog.jpg`, SOF10, a DAC per scan).
    fn arith_fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/jpeg/arith").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// FNV-1a of the RGB pixels, as the expected values were computed from Pillow 13's
    /// `Image.open(...).tobytes()`.
    fn rgb_hash(b: &[u8]) -> u64 {
        let JpegPixels::Rgb(v) = decode_jpeg(b, 8192, 1 << 26).unwrap().pixels else { panic!("not RGB") };
        v.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x0100_0000_01b3))
    }

    /// Every DAC entry set to `dc` (tables 0..15: U << 4 | L) or `ac` (tables 16..31: K).
    fn with_dac(b: &[u8], dc: u8, ac: u8) -> Vec<u8> {
        let mut b = b.to_vec();
        let mut i = 2;
        while let Some(j) = b[i..].windows(2).position(|w| w == [0xff, 0xcc]).map(|p| p + i) {
            let n = u16::from_be_bytes([b[j + 2], b[j + 3]]) as usize;
            for k in (j + 4..j + 2 + n).step_by(2) {
                b[k + 1] = if b[k] < 16 { dc } else { ac };
            }
            i = j + 2;
        }
        b
    }

    const PILLOW_J420: u64 = 0x637b_0d0e_d0b8_0fe9;

    #[test]
    fn decodes_sequential_and_progressive_as_pillow() {
        // The same coefficients as the Huffman original, so the same pixels.
        assert_eq!(rgb_hash(&fixture("j420.jpg")), PILLOW_J420);
        assert_eq!(rgb_hash(&arith_fixture("j420_arith_rst.jpg")), PILLOW_J420);
        assert_eq!(rgb_hash(&arith_fixture("j420_arith_prog.jpg")), PILLOW_J420);
    }

    #[test]
    fn dac_conditioning_changes_the_decode_as_in_pillow() {
        // The data was coded with the default conditioning (L = 0, U = 1, K = 5): other values
        // decode other (garbage) pixels, the same in Pillow.
        let seq = with_dac(&arith_fixture("j420_arith_rst.jpg"), 0x52, 2);
        assert_eq!(rgb_hash(&seq), 0x35c4_72c3_08c3_291f);
        let prog = with_dac(&arith_fixture("j420_arith_prog.jpg"), 0xf3, 63);
        assert_eq!(rgb_hash(&prog), 0x4b06_95cf_0eda_62c6);
    }

    #[test]
    fn a_bad_code_stops_decoding_until_the_next_restart() {
        // All-ones data: the first DC magnitude runs past 2^15, the error state.
        let data = [0xff, 0x00].repeat(64);
        let mut r = Reader { data: &data, pos: 0, buf: 0, bits: 0, marker: 0, insufficient: false };
        let cond = Conditioning { dc_tbl: 0, ac_tbl: 0, dc_l: 0, dc_u: 1, ac_k: 5 };
        let mut a = Arith::new(&[cond], true, true, 0, 1000);
        let mut blk = [0i16; 64];
        a.sequential(&mut r, 0, &mut blk).unwrap();
        assert!(a.failed());
        assert_eq!(blk, [0; 64]);
        // Further blocks decode nothing and read nothing; a restart leaves the error state.
        let pos = r.pos;
        a.sequential(&mut r, 0, &mut blk).unwrap();
        assert_eq!((r.pos, blk), (pos, [0; 64]));
        a.restart();
        assert!(!a.failed());
        assert!(a.check_budget(0).is_ok());
        a.decisions = 1001;
        assert_eq!(a.check_budget(7), Err(JpegError::TooMuchWork { bytes: 7 }));

        // In a file: the first restart interval's data replaced by stuffed 0xFF bytes. Its MCUs
        // decode as nothing after the bad code, the next intervals as before, as in Pillow.
        let mut b = arith_fixture("j420_arith_rst.jpg");
        let sos = b.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        let start = sos + 2 + u16::from_be_bytes([b[sos + 2], b[sos + 3]]) as usize;
        let rst0 = start + b[start..].windows(2).position(|w| w == [0xff, 0xd0]).unwrap();
        for k in (start..rst0 - 1).step_by(2) {
            b[k] = 0xff;
            b[k + 1] = 0;
        }
        assert_eq!(rgb_hash(&b), 0x92c7_2394_198f_5b8b);
    }

    #[test]
    fn a_scan_reads_only_what_pillow_has_read() {
        // A COM segment before the frame puts the scan's start near the end of Pillow's first
        // 64 KiB read: ending the SOS header before 65536 leaves the scan's data past it out of
        // reach (Pillow: "broken data stream"); ending it after, the next read covers the scan.
        let b = arith_fixture("j420_arith_rst.jpg");
        let sos = b.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        let sos_end = sos + 2 + u16::from_be_bytes([b[sos + 2], b[sos + 3]]) as usize;
        let padded = |end: usize| {
            let n = end - sos_end - 4;
            let mut p = b[..2].to_vec();
            p.extend_from_slice(&[0xff, 0xfe]);
            p.extend_from_slice(&(n as u16 + 2).to_be_bytes());
            p.resize(p.len() + n, 0);
            p.extend_from_slice(&b[2..]);
            p
        };
        assert!(matches!(decode_jpeg(&padded(65536 - 100), 8192, 1 << 26), Err(JpegError::Truncated)));
        assert!(matches!(decode_jpeg(&padded(65536), 8192, 1 << 26), Err(JpegError::Truncated)));
        assert_eq!(rgb_hash(&padded(65537)), PILLOW_J420);
    }

    #[test]
    fn corrupted_files_never_panic() {
        let mut rng = fastrand::Rng::with_seed(9);
        let files = [arith_fixture("j420_arith_rst.jpg"), arith_fixture("j420_arith_prog.jpg")];
        for i in 0..2000 {
            let mut b = files[i % 2].clone();
            for _ in 0..rng.usize(1..5) {
                let p = rng.usize(..b.len());
                match rng.u8(..3) {
                    0 => b[p] = rng.u8(..),
                    1 => b[p] ^= 1 << rng.u8(..8),
                    _ => b.truncate(p.max(3)),
                }
            }
            let _ = decode_jpeg(&b, 8192, 1 << 26);
        }
    }

    #[test]
    fn real_files_need_few_decisions_per_byte() {
        // The premise of the decision budget, far below DECISIONS_PER_BYTE.
        for name in ["j420_arith_rst.jpg", "j420_arith_prog.jpg"] {
            let b = arith_fixture(name);
            let mut d = Decoder::new(&b, 8192, 1 << 26);
            assert!(d.run().is_ok());
            assert!(d.arith_decisions > 0 && d.arith_decisions < 32 * b.len() as u64, "{name}: {} decisions", d.arith_decisions);
        }
    }
}
