//! Entropy decoding (`jdhuff.c` sequential, `jdphuff.c` progressive): Huffman tables, the bit
//! reader, scan setup, restart markers and the decoding of blocks, including when a scan whose
//! data has run out may stop early. Arithmetic-coded scans share the scan setup, the restart
//! markers and the walk over the image, and decode their blocks in `arith.rs`.

use super::arith::{decision_budget, Arith, Conditioning};
use super::error::{invalid, Res};
use super::state::{Decoder, HuffDef, Reader, NATURAL};

// ------------------------------------------------------------------------------------------------
// Huffman tables

impl HuffDef {
    fn std(bits: [u8; 17], vals: &[u8]) -> Self {
        let mut v = [0u8; 256];
        v[..vals.len()].copy_from_slice(vals);
        HuffDef { bits, vals: v }
    }
}

const STD_DC_LUMA_BITS: [u8; 17] = [0, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const STD_DC_CHROMA_BITS: [u8; 17] = [0, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const STD_DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const STD_AC_LUMA_BITS: [u8; 17] = [0, 0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
const STD_AC_LUMA_VALS: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81,
    0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18,
    0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
    0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5,
    0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
];
const STD_AC_CHROMA_BITS: [u8; 17] = [0, 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const STD_AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08,
    0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25,
    0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47,
    0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74,
    0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
    0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
    0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4,
    0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
];

/// `d_derived_tbl` of `jdhuff.c`: canonical decoding tables plus an 8-bit lookahead table.
struct Huff {
    maxcode: [i32; 18],
    valoffset: [i32; 18],
    /// `(code length << 8) | symbol`, or `9 << 8` when the code is longer than 8 bits.
    lookup: [u16; 256],
    vals: [u8; 256],
}

/// `jpeg_make_d_derived_tbl`.
fn derive_huff(def: Option<&HuffDef>, is_dc: bool) -> Res<Huff> {
    let Some(def) = def else { return invalid("Huffman table not defined") };
    let mut huffsize = [0u8; 257];
    let mut huffcode = [0u32; 257];
    let mut p = 0usize;
    for l in 1..=16 {
        let n = def.bits[l] as usize;
        if p + n > 256 {
            return invalid("bad Huffman table");
        }
        huffsize[p..p + n].fill(l as u8);
        p += n;
    }
    huffsize[p] = 0;
    let numsymbols = p;
    let mut code = 0u32;
    let mut si = huffsize[0] as u32;
    p = 0;
    while huffsize[p] != 0 {
        while huffsize[p] as u32 == si {
            huffcode[p] = code;
            p += 1;
            code += 1;
        }
        if code as u64 >= 1u64 << si {
            return invalid("bad Huffman table");
        }
        code <<= 1;
        si += 1;
    }
    let mut t = Huff { maxcode: [-1; 18], valoffset: [0; 18], lookup: [9 << 8; 256], vals: def.vals };
    p = 0;
    for l in 1..=16 {
        let n = def.bits[l] as usize;
        if n > 0 {
            t.valoffset[l] = p as i32 - huffcode[p] as i32;
            p += n;
            t.maxcode[l] = huffcode[p - 1] as i32;
        }
    }
    t.valoffset[17] = 0;
    t.maxcode[17] = 0xfffff;
    p = 0;
    for l in 1..=8usize {
        for _ in 0..def.bits[l] {
            let look = (huffcode[p] << (8 - l)) as usize;
            let entry = ((l as u16) << 8) | def.vals[p] as u16;
            t.lookup[look..look + (1 << (8 - l))].fill(entry);
            p += 1;
        }
    }
    if is_dc && def.vals[..numsymbols].iter().any(|&s| s > 15) {
        return invalid("bad Huffman table");
    }
    Ok(t)
}

// ------------------------------------------------------------------------------------------------
// Bit input

/// libjpeg fills the bit buffer to at least this many bits (`BIT_BUF_SIZE - 7`).
const MIN_GET_BITS: i32 = 57;

impl<'a> Reader<'a> {
    /// `jpeg_fill_bit_buffer`: loads bytes until 57 bits are buffered, stopping at a marker; past
    /// a marker, a request for more bits than are left is answered with zero bits.
    #[inline(never)]
    fn fill(&mut self, nbits: i32) -> Res<()> {
        if self.marker == 0 {
            while self.bits < MIN_GET_BITS {
                let mut c = self.byte()?;
                if c == 0xff {
                    loop {
                        c = self.byte()?;
                        if c != 0xff {
                            break;
                        }
                    }
                    if c == 0 {
                        c = 0xff;
                    } else {
                        self.marker = c;
                        break;
                    }
                }
                self.buf = (self.buf << 8) | c as u64;
                self.bits += 8;
            }
            if self.marker == 0 {
                return Ok(());
            }
        }
        if nbits > self.bits {
            self.insufficient = true;
            self.buf <<= MIN_GET_BITS - self.bits;
            self.bits = MIN_GET_BITS;
        }
        Ok(())
    }

    #[inline(always)]
    fn check(&mut self, n: i32) -> Res<()> {
        if self.bits < n {
            self.fill(n)?;
        }
        Ok(())
    }

    #[inline(always)]
    fn get_bits(&mut self, n: i32) -> i32 {
        self.bits -= n;
        ((self.buf >> self.bits) as i32) & ((1 << n) - 1)
    }

    /// `HUFF_DECODE` (slow path, which decides when libjpeg reads and so when it can run out).
    #[inline(always)]
    fn huff(&mut self, t: &Huff) -> Res<i32> {
        if self.bits < 8 {
            self.fill(0)?;
            if self.bits < 8 {
                return self.huff_slow(t, 1);
            }
        }
        let e = t.lookup[((self.buf >> (self.bits - 8)) & 0xff) as usize];
        let nb = (e >> 8) as i32;
        if nb <= 8 {
            self.bits -= nb;
            return Ok((e & 0xff) as i32);
        }
        self.huff_slow(t, nb)
    }

    /// `jpeg_huff_decode`.
    #[inline(never)]
    fn huff_slow(&mut self, t: &Huff, min_bits: i32) -> Res<i32> {
        let mut l = min_bits as usize;
        self.check(l as i32)?;
        let mut code = self.get_bits(l as i32);
        while code > t.maxcode[l] {
            code <<= 1;
            self.check(1)?;
            code |= self.get_bits(1);
            l += 1;
        }
        if l > 16 {
            return Ok(0); // JWRN_HUFF_BAD_CODE: fake a zero
        }
        Ok(t.vals[((code + t.valoffset[l]) & 0xff) as usize] as i32)
    }
}

/// The size of Pillow's reads of the file (`ImageFile.MAXBLOCK`), which bounds what an
/// arithmetic-coded scan can read (see `start_scan`).
const PILLOW_READ: usize = 65536;

/// `HUFF_EXTEND`.
#[inline(always)]
fn extend(x: i32, s: i32) -> i32 {
    if x < (1 << (s - 1)) {
        x + ((-1i32) << s) + 1
    } else {
        x
    }
}

// ------------------------------------------------------------------------------------------------
// Scan state and block decoding

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Seq,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

/// Per-scan entropy decoder state.
pub(super) struct ScanState {
    kind: Kind,
    /// Frame component indices of the scan's components.
    comps: Vec<usize>,
    ss: usize,
    se: usize,
    al: i32,
    dc: Vec<Option<Huff>>,
    ac: Vec<Option<Huff>>,
    last_dc: [i32; 4],
    eobrun: u32,
    interval: u32,
    restarts_to_go: u32,
    next_rst: u8,
    mcus_per_row: usize,
    /// The arithmetic decoder of an arithmetic-coded scan (the Huffman tables are then unused).
    arith: Option<Arith>,
}

impl Decoder<'_> {
    /// `jinit_huff_decoder` of a sequential file: the standard tables (`std_huff_tables`) in
    /// the DC and AC slots 0 and 1 the file leaves undefined.
    pub(super) fn std_huff_tables(&mut self) {
        for (i, slot) in self.dc_defs.iter_mut().take(2).enumerate() {
            if slot.is_none() {
                let bits = if i == 0 { STD_DC_LUMA_BITS } else { STD_DC_CHROMA_BITS };
                *slot = Some(HuffDef::std(bits, &STD_DC_VALS));
            }
        }
        for (i, slot) in self.ac_defs.iter_mut().take(2).enumerate() {
            if slot.is_none() {
                *slot = Some(if i == 0 {
                    HuffDef::std(STD_AC_LUMA_BITS, &STD_AC_LUMA_VALS)
                } else {
                    HuffDef::std(STD_AC_CHROMA_BITS, &STD_AC_CHROMA_VALS)
                });
            }
        }
    }

    /// `start_input_pass`: `per_scan_setup`, `latch_quant_tables` and the entropy decoder's
    /// `start_pass` for the scan just read (`jdhuff.c`, `jdphuff.c` or `jdarith.c`).
    ///
    /// An arithmetic-coded scan may only read the data Pillow has handed libjpeg when the scan
    /// starts: Pillow feeds the file in 64 KiB reads, and a new read only happens when libjpeg
    /// suspends, which the arithmetic decoder cannot do (`JERR_CANT_SUSPEND`, Pillow's "broken
    /// data stream"). The marker reader suspends whenever it needs a byte past the data read, so
    /// when a scan starts the data read is the whole 64 KiB reads covering everything up to the end
    /// of its SOS header. For the scan, the reader's data ends there (`end_scan` restores it), and
    /// a read past it is an error.
    pub(super) fn start_scan(&mut self) -> Res<ScanState> {
        let (comps, ss, se, ah, al) = self.sos.clone();
        // per_scan_setup
        let mcus_per_row = if comps.len() == 1 {
            self.comps[comps[0]].wb
        } else {
            let blocks: usize = comps.iter().map(|&ci| self.comps[ci].h * self.comps[ci].v).sum();
            if blocks > 10 {
                return invalid("bad MCU size");
            }
            self.width.div_ceil(self.max_h * 8)
        };
        // latch_quant_tables
        for &ci in &comps {
            let c = &mut self.comps[ci];
            if c.quant.is_none() {
                let Some(t) = self.qt.get(c.tq).copied().flatten() else {
                    return invalid(format!("quantization table 0x{:02x} was not defined", c.tq));
                };
                c.quant_raw = t;
                c.quant = Some(std::array::from_fn(|i| t[i] as i16));
            }
        }
        let n = comps.len();
        let mut dc: Vec<Option<Huff>> = (0..n).map(|_| None).collect();
        let mut ac: Vec<Option<Huff>> = (0..n).map(|_| None).collect();
        let kind;
        if !self.progressive {
            // Ss/Se/Ah/Al other than 0/63/0/0 only draw a warning (JWRN_NOT_SEQUENTIAL).
            kind = Kind::Seq;
            for (i, &ci) in comps.iter().enumerate().filter(|_| !self.arithmetic) {
                let c = &self.comps[ci];
                dc[i] = Some(derive_huff(self.dc_defs.get(c.dc_tbl).and_then(Option::as_ref), true)?);
                ac[i] = Some(derive_huff(self.ac_defs.get(c.ac_tbl).and_then(Option::as_ref), false)?);
            }
        } else {
            let is_dc = ss == 0;
            let mut bad = if is_dc { se != 0 } else { ss > se || se >= 64 || n != 1 };
            if ah != 0 && al != ah - 1 {
                bad = true;
            }
            if al > 13 {
                bad = true;
            }
            if bad {
                return invalid(format!("invalid progressive parameters Ss={ss} Se={se} Ah={ah} Al={al}"));
            }
            let scan_no = self.input_scan_number;
            for &ci in &comps {
                let c = &mut self.comps[ci];
                for k in ss.min(1)..=se.max(9) {
                    c.prev_coef_bits[k] = if scan_no > 1 { c.coef_bits[k] } else { 0 };
                }
                // Inconsistent successive-approximation bit positions only draw a warning.
                for k in ss..=se {
                    c.coef_bits[k] = al;
                }
            }
            kind = match (ah == 0, is_dc) {
                (true, true) => Kind::DcFirst,
                (true, false) => Kind::AcFirst,
                (false, true) => Kind::DcRefine,
                (false, false) => Kind::AcRefine,
            };
            for (i, &ci) in comps.iter().enumerate().filter(|_| !self.arithmetic) {
                let c = &self.comps[ci];
                if is_dc {
                    if ah == 0 {
                        dc[i] = Some(derive_huff(self.dc_defs.get(c.dc_tbl).and_then(Option::as_ref), true)?);
                    }
                } else {
                    ac[i] = Some(derive_huff(self.ac_defs.get(c.ac_tbl).and_then(Option::as_ref), false)?);
                }
            }
        }
        self.r.bits = 0;
        self.r.buf = 0;
        self.r.insufficient = false;
        let arith = if self.arithmetic {
            // jdarith.c: any table 0..15 (NUM_ARITH_TBLS); SOS selectors are 4 bits, so all valid.
            let cond: Vec<Conditioning> = comps
                .iter()
                .map(|&ci| {
                    let c = &self.comps[ci];
                    Conditioning {
                        dc_tbl: c.dc_tbl,
                        ac_tbl: c.ac_tbl,
                        dc_l: self.arith_dc_l[c.dc_tbl],
                        dc_u: self.arith_dc_u[c.dc_tbl],
                        ac_k: self.arith_ac_k[c.ac_tbl],
                    }
                })
                .collect();
            let uses_dc = !self.progressive || (ss == 0 && ah == 0);
            let uses_ac = !self.progressive || ss != 0;
            let budget = decision_budget(self.input.len());
            let window = self.r.pos.div_ceil(PILLOW_READ) * PILLOW_READ;
            self.r.data = &self.input[..window.min(self.input.len())];
            Some(Arith::new(&cond, uses_dc, uses_ac, self.arith_decisions, budget))
        } else {
            None
        };
        Ok(ScanState {
            kind,
            comps,
            ss,
            se: se.min(63),
            al,
            dc,
            ac,
            last_dc: [0; 4],
            eobrun: 0,
            interval: self.restart_interval,
            restarts_to_go: self.restart_interval,
            next_rst: 0,
            mcus_per_row,
            arith,
        })
    }

    /// The end of a scan's data: the reader sees the whole input again, and the arithmetic work
    /// done is kept for the next scans' budget.
    pub(super) fn end_scan(&mut self, st: ScanState) {
        self.r.data = self.input;
        if let Some(a) = st.arith {
            self.arith_decisions = a.decisions;
        }
    }

    // --- entropy decoding -----------------------------------------------------------------------

    /// Decodes the MCUs of one iMCU row of the current scan. Block (row, col) of component `ci` is
    /// stored at `bufs[ci][((row - base) * bw + col) * 64..]`, `base` being the first block row of
    /// this iMCU row when `row_buffers`, else 0.
    ///
    /// Returns true, possibly before the row's end, once the rest of the scan can change nothing
    /// ([`scan_exhausted`]): the caller then skips the scan's remaining rows.
    pub(super) fn decode_imcu_row(
        &mut self,
        st: &mut ScanState,
        imcu: usize,
        bufs: &mut [Vec<i16>],
        row_buffers: bool,
    ) -> Res<bool> {
        let Decoder { r, comps, last_good_imcu_row, mcus_walked, imcu_rows, input, .. } = self;
        // An arithmetic scan never runs out of data (libjpeg walks it to its end): when it stops
        // early, its last row is the last good one.
        let exhausted = |r: &Reader, st: &ScanState, last_good: &mut usize| -> Res<bool> {
            if let Some(a) = &st.arith {
                a.check_budget(input.len())?;
            }
            let done = scan_exhausted(r, st);
            if done && st.arith.is_some() {
                *last_good = *imcu_rows - 1;
            }
            Ok(done)
        };
        if st.comps.len() == 1 {
            let ci = st.comps[0];
            let c = &comps[ci];
            let base = if row_buffers { imcu * c.v } else { 0 };
            let rows = (imcu * c.v)..((imcu + 1) * c.v).min(c.hb);
            for br in rows {
                for bc in 0..c.wb {
                    // consume_data notes the row before decode_mcu processes a restart marker.
                    if !r.insufficient {
                        *last_good_imcu_row = imcu;
                    }
                    *mcus_walked += 1;
                    start_mcu(r, st)?;
                    if st.kind == Kind::DcRefine || !r.insufficient {
                        let off = ((br - base) * c.bw + bc) * 64;
                        let Some(blk) = bufs[ci].get_mut(off..off + 64) else { return invalid("internal") };
                        decode_block(r, st, 0, blk)?;
                    }
                    end_mcu(st);
                    if exhausted(r, st, last_good_imcu_row)? {
                        return Ok(true);
                    }
                }
            }
        } else {
            for mcol in 0..st.mcus_per_row {
                if !r.insufficient {
                    *last_good_imcu_row = imcu;
                }
                *mcus_walked += 1;
                start_mcu(r, st)?;
                if st.kind == Kind::DcRefine || !r.insufficient {
                    for si in 0..st.comps.len() {
                        let ci = st.comps[si];
                        let c = &comps[ci];
                        let base = if row_buffers { imcu * c.v } else { 0 };
                        for yi in 0..c.v {
                            for xi in 0..c.h {
                                let (br, bc) = (imcu * c.v + yi, mcol * c.h + xi);
                                let off = ((br - base) * c.bw + bc) * 64;
                                let Some(blk) = bufs[ci].get_mut(off..off + 64) else { return invalid("internal") };
                                decode_block(r, st, si, blk)?;
                            }
                        }
                    }
                }
                end_mcu(st);
                if exhausted(r, st, last_good_imcu_row)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Whether the rest of the current scan is a no-op, so that it need not be walked: the entropy
/// data ran into a marker (`insufficient`: every further bit reads as zero) and nothing can
/// resynchronise the decoder before the scan ends. That holds when the scan has no restart
/// interval, or when the pending marker is a valid marker other than RSTn (>= 0xC0, not
/// 0xD0..=0xD7): `process_restart` leaves such a marker in place without reading input, so
/// `insufficient` stays set. In that state, `decode_block` is skipped for every kind except a DC
/// refinement, which only ORs in the zero bits it reads; the bit buffer, EOB run, DC predictors and
/// restart counters die with the scan; `last_good_imcu_row` is only updated while data remains;
/// nothing can fail (no input is read). A marker below 0xC0 or an RSTn is different:
/// `process_restart` reads on or consumes it, and decoding may resume.
///
/// An arithmetic decoder never stops for lack of data (it decodes the zeros fed after a marker,
/// which may still set coefficients): only its error state ends its work, and only while no
/// restart can follow (`process_restart` leaves the error state whatever the marker). A DC
/// refinement scan has no error state.
#[inline(always)]
fn scan_exhausted(r: &Reader, st: &ScanState) -> bool {
    if let Some(a) = &st.arith {
        return a.failed() && st.interval == 0;
    }
    r.insufficient && (st.interval == 0 || (r.marker >= 0xc0 && !(0xd0..=0xd7).contains(&r.marker)))
}

fn start_mcu(r: &mut Reader, st: &mut ScanState) -> Res<()> {
    if st.interval != 0 && st.restarts_to_go == 0 {
        process_restart(r, st)?;
    }
    Ok(())
}

#[inline(always)]
fn end_mcu(st: &mut ScanState) {
    if st.interval != 0 {
        st.restarts_to_go = st.restarts_to_go.wrapping_sub(1);
    }
}

/// `process_restart` + `read_restart_marker` + `jpeg_resync_to_restart`, of `jdhuff.c` /
/// `jdphuff.c` or (through [`Arith::restart`]) of `jdarith.c`.
#[cold]
fn process_restart(r: &mut Reader, st: &mut ScanState) -> Res<()> {
    r.bits = 0;
    if r.marker == 0 {
        r.next_marker()?;
    }
    let desired = st.next_rst as i32;
    if r.marker as i32 == 0xd0 + desired {
        r.marker = 0;
    } else {
        let mut marker = r.marker as i32;
        loop {
            let rst = |d: i32| 0xd0 + (d & 7);
            let action = if marker < 0xc0 {
                2 // not a valid marker
            } else if !(0xd0..=0xd7).contains(&marker) || marker == rst(desired + 1) || marker == rst(desired + 2) {
                3 // a valid non-restart marker, or one of the next two restarts
            } else if marker == rst(desired - 1) || marker == rst(desired - 2) {
                2
            } else {
                1
            };
            match action {
                1 => {
                    r.marker = 0;
                    break;
                }
                2 => marker = r.next_marker()? as i32,
                _ => break,
            }
        }
    }
    st.next_rst = (st.next_rst + 1) & 7;
    if let Some(a) = &mut st.arith {
        a.restart();
    }
    st.last_dc = [0; 4];
    st.eobrun = 0;
    st.restarts_to_go = st.interval;
    if r.marker == 0 {
        r.insufficient = false;
    }
    Ok(())
}

/// One block of the current scan (`decode_mcu_*` of jdhuff.c / jdphuff.c, per block).
#[inline]
fn decode_block(r: &mut Reader, st: &mut ScanState, si: usize, blk: &mut [i16]) -> Res<()> {
    if let Some(a) = &mut st.arith {
        return match st.kind {
            Kind::Seq => a.sequential(r, si, blk),
            Kind::DcFirst => a.dc_first(r, si, st.al, blk),
            Kind::DcRefine => a.dc_refine(r, st.al, blk),
            Kind::AcFirst => a.ac_first(r, st.ss, st.se, st.al, blk),
            Kind::AcRefine => a.ac_refine(r, st.ss, st.se, st.al, blk),
        };
    }
    match st.kind {
        Kind::Seq => {
            let (Some(dc), Some(ac)) = (&st.dc[si], &st.ac[si]) else { return invalid("internal") };
            let mut s = r.huff(dc)?;
            if s != 0 {
                r.check(s)?;
                let v = r.get_bits(s);
                s = extend(v, s);
            }
            let v = st.last_dc[si].wrapping_add(s);
            st.last_dc[si] = v;
            blk[0] = v as i16;
            let mut k = 1usize;
            while k < 64 {
                let rs = r.huff(ac)?;
                let run = (rs >> 4) as usize;
                let s = rs & 15;
                if s != 0 {
                    k += run;
                    r.check(s)?;
                    let v = r.get_bits(s);
                    blk[NATURAL[k]] = extend(v, s) as i16;
                } else {
                    if run != 15 {
                        break;
                    }
                    k += 15;
                }
                k += 1;
            }
        }
        Kind::DcFirst => {
            let Some(dc) = &st.dc[si] else { return invalid("internal") };
            let mut s = r.huff(dc)?;
            if s != 0 {
                r.check(s)?;
                let v = r.get_bits(s);
                s = extend(v, s);
            }
            let Some(v) = st.last_dc[si].checked_add(s) else { return invalid("DCT coefficient out of range") };
            st.last_dc[si] = v;
            blk[0] = ((v as u32) << st.al) as i16;
        }
        Kind::DcRefine => {
            r.check(1)?;
            if r.get_bits(1) != 0 {
                blk[0] |= (1i32 << st.al) as i16;
            }
        }
        Kind::AcFirst => {
            if st.eobrun > 0 {
                st.eobrun -= 1;
                return Ok(());
            }
            let Some(ac) = &st.ac[si] else { return invalid("internal") };
            let mut k = st.ss;
            while k <= st.se {
                let rs = r.huff(ac)?;
                let run = rs >> 4;
                let s = rs & 15;
                if s != 0 {
                    k += run as usize;
                    r.check(s)?;
                    let v = r.get_bits(s);
                    blk[NATURAL[k]] = ((extend(v, s) as u32) << st.al) as i16;
                } else if run == 15 {
                    k += 15;
                } else {
                    let mut e = 1u32 << run;
                    if run != 0 {
                        r.check(run)?;
                        e += r.get_bits(run) as u32;
                    }
                    st.eobrun = e - 1;
                    break;
                }
                k += 1;
            }
        }
        Kind::AcRefine => {
            let Some(ac) = &st.ac[si] else { return invalid("internal") };
            let p1 = (1i32 << st.al) as i16;
            let m1 = ((-1i32) << st.al) as i16;
            let se = st.se;
            let mut k = st.ss;
            if st.eobrun == 0 {
                while k <= se {
                    let rs = r.huff(ac)?;
                    let mut run = rs >> 4;
                    let s = rs & 15;
                    let mut newval = 0i16;
                    if s != 0 {
                        // A size other than 1 only draws a warning.
                        r.check(1)?;
                        newval = if r.get_bits(1) != 0 { p1 } else { m1 };
                    } else if run != 15 {
                        let mut e = 1u32 << run;
                        if run != 0 {
                            r.check(run)?;
                            e += r.get_bits(run) as u32;
                        }
                        st.eobrun = e;
                        break;
                    }
                    loop {
                        let pos = NATURAL[k];
                        let coef = blk[pos];
                        if coef != 0 {
                            r.check(1)?;
                            if r.get_bits(1) != 0 && coef & p1 == 0 {
                                blk[pos] = if coef >= 0 { coef.wrapping_add(p1) } else { coef.wrapping_add(m1) };
                            }
                        } else {
                            run -= 1;
                            if run < 0 {
                                break;
                            }
                        }
                        k += 1;
                        if k > se {
                            break;
                        }
                    }
                    if newval != 0 {
                        blk[NATURAL[k]] = newval;
                    }
                    k += 1;
                }
            }
            if st.eobrun > 0 {
                while k <= se {
                    let pos = NATURAL[k];
                    let coef = blk[pos];
                    if coef != 0 {
                        r.check(1)?;
                        if r.get_bits(1) != 0 && coef & p1 == 0 {
                            blk[pos] = if coef >= 0 { coef.wrapping_add(p1) } else { coef.wrapping_add(m1) };
                        }
                    }
                    k += 1;
                }
                st.eobrun -= 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::processor::jpeg::tests::{decode_counted, progressive};
    use crate::processor::jpeg::JpegPixels;

    #[test]
    fn empty_scans_stop_at_once_and_decode_grey() {
        // An empty DC-first scan and 20 empty DC refinements: libjpeg decodes zero coefficients
        // (mid grey), walking each scan to the end; we stop each after its first MCU. With a
        // restart interval too: the pending marker (SOS / EOI) is not a restart marker.
        let empty: &[u8] = &[];
        let mut scans = vec![(0, 1, empty)];
        scans.extend(vec![(1, 0, empty); 20]);
        for interval in [0, 1, 5] {
            let b = progressive(512, 512, 1, interval, &scans);
            let (res, walked, _) = decode_counted(&b);
            let d = res.unwrap();
            assert!(matches!(d.pixels, JpegPixels::Gray(ref v) if v.len() == 512 * 512 && v.iter().all(|&p| p == 128)));
            assert_eq!(walked, 21, "interval {interval}");
        }
        // Data that runs out mid-scan: the scan ends with it (4096 MCUs in the frame).
        let b = progressive(512, 512, 1, 0, &[(0, 0, &[0x00; 8])]);
        let (res, walked, _) = decode_counted(&b);
        assert!(res.is_ok());
        assert!(walked <= 8 * 8 + 1, "{walked}");
    }
}
