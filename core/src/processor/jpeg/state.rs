//! The decoder's shared state, which every stage uses and which uses no stage: the `Decoder`
//! (each stage extends it with an `impl Decoder<'_>` block), the [`Reader`] and its byte-level
//! half, the frame's components, Huffman table definitions, the zigzag order, the colour spaces
//! and what `read_markers` stopped at.

use super::error::{JpegError, Res};

// ------------------------------------------------------------------------------------------------
// Tables

/// Zigzag index -> natural index, with 16 extra entries so corrupt run lengths stay in bounds
/// (libjpeg's `jpeg_natural_order`).
pub(super) const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42,
    49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
];

/// `NUM_ARITH_TBLS`: arithmetic conditioning tables 0..15 for DC and for AC (an SOS may select any
/// of them; DAC sets their parameters).
pub(super) const ARITH_TABLES: usize = 16;

/// A Huffman table as defined by DHT (counts per code length, symbols).
#[derive(Clone)]
pub(super) struct HuffDef {
    pub(super) bits: [u8; 17],
    pub(super) vals: [u8; 256],
}

// ------------------------------------------------------------------------------------------------
// Byte input

/// The data source plus libjpeg's bit-reading state (`jdhuff.h`, 64-bit `bit_buf_type`).
pub(super) struct Reader<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) buf: u64,
    pub(super) bits: i32,
    /// `cinfo->unread_marker`: a marker code already read past (0 = none).
    pub(super) marker: u8,
    /// `entropy->insufficient_data`: the current segment ran into a marker.
    pub(super) insufficient: bool,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(super) fn byte(&mut self) -> Res<u8> {
        let b = *self.data.get(self.pos).ok_or(JpegError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn u16(&mut self) -> Res<usize> {
        let hi = self.byte()? as usize;
        Ok((hi << 8) | self.byte()? as usize)
    }

    pub(super) fn skip(&mut self, n: usize) -> Res<()> {
        if n > self.data.len() - self.pos {
            self.pos = self.data.len();
            return Err(JpegError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// `next_marker`: skips garbage, fill bytes and stuffed zeros up to the next marker.
    pub(super) fn next_marker(&mut self) -> Res<u8> {
        loop {
            let mut c = self.byte()?;
            while c != 0xff {
                c = self.byte()?;
            }
            loop {
                c = self.byte()?;
                if c != 0xff {
                    break;
                }
            }
            if c != 0 {
                self.marker = c;
                return Ok(c);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Frame state

pub(super) struct Comp {
    pub(super) id: u8,
    pub(super) h: usize,
    pub(super) v: usize,
    pub(super) tq: usize,
    pub(super) dc_tbl: usize,
    pub(super) ac_tbl: usize,
    /// `width_in_blocks` / `height_in_blocks`: blocks holding image samples.
    pub(super) wb: usize,
    pub(super) hb: usize,
    /// Blocks stored (rounded up to whole MCUs: dummy blocks of interleaved scans).
    pub(super) bw: usize,
    pub(super) bh: usize,
    /// `downsampled_width` / `downsampled_height`.
    pub(super) dw: usize,
    pub(super) dh: usize,
    /// The quantisation table latched at the component's first scan, as `ISLOW_MULT_TYPE`.
    pub(super) quant: Option<[i16; 64]>,
    /// Raw latched values (block smoothing divides by them).
    pub(super) quant_raw: [u16; 64],
    /// Progressive: `cinfo->coef_bits` and the previous-scan copy.
    pub(super) coef_bits: [i32; 64],
    pub(super) prev_coef_bits: [i32; 64],
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ColorSpace {
    Gray,
    YCbCr,
    Rgb,
    Cmyk,
    Ycck,
}

pub(super) enum Next {
    Sos,
    Eoi,
}

// ------------------------------------------------------------------------------------------------
// The decoder

pub(super) struct Decoder<'a> {
    pub(super) r: Reader<'a>,
    /// The whole input (`r.data` is cut short during an arithmetic-coded scan).
    pub(super) input: &'a [u8],
    pub(super) max_side: u32,
    pub(super) max_pixels: u64,
    pub(super) qt: [Option<[u16; 64]>; 4],
    pub(super) dc_defs: [Option<HuffDef>; 4],
    pub(super) ac_defs: [Option<HuffDef>; 4],
    pub(super) restart_interval: u32,
    /// DAC conditioning per arithmetic table (`arith_dc_L`, `arith_dc_U`, `arith_ac_K`).
    pub(super) arith_dc_l: [u8; ARITH_TABLES],
    pub(super) arith_dc_u: [u8; ARITH_TABLES],
    pub(super) arith_ac_k: [u8; ARITH_TABLES],
    pub(super) jfif: bool,
    pub(super) adobe: Option<u8>,
    pub(super) exif: Option<Vec<u8>>,
    pub(super) xmp: Option<Vec<u8>>,
    pub(super) saw_sof: bool,
    pub(super) in_headers: bool,
    pub(super) progressive: bool,
    /// SOF9 / SOF10: arithmetic-coded scans.
    pub(super) arithmetic: bool,
    pub(super) width: usize,
    pub(super) height: usize,
    pub(super) comps: Vec<Comp>,
    pub(super) max_h: usize,
    pub(super) max_v: usize,
    pub(super) imcu_rows: usize,
    /// The last SOS: components (frame indices) and Ss, Se, Ah, Al.
    pub(super) sos: (Vec<usize>, usize, usize, i32, i32),
    pub(super) input_scan_number: u32,
    pub(super) last_good_imcu_row: usize,
    /// Work and memory counters (always on; tests check them): MCUs walked over all scans, and
    /// bytes allocated for the frame's coefficient buffers, planes and output.
    pub(super) mcus_walked: u64,
    pub(super) frame_bytes: usize,
    /// Arithmetic decisions decoded over all scans (see `arith::decision_budget`).
    pub(super) arith_decisions: u64,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(data: &'a [u8], max_side: u32, max_pixels: u64) -> Self {
        Decoder {
            r: Reader { data, pos: 2, buf: 0, bits: 0, marker: 0, insufficient: false },
            input: data,
            max_side,
            max_pixels,
            qt: [None; 4],
            dc_defs: [None, None, None, None],
            ac_defs: [None, None, None, None],
            restart_interval: 0,
            // get_soi: the defaults L = 0, U = 1, K = 5.
            arith_dc_l: [0; ARITH_TABLES],
            arith_dc_u: [1; ARITH_TABLES],
            arith_ac_k: [5; ARITH_TABLES],
            jfif: false,
            adobe: None,
            exif: None,
            xmp: None,
            saw_sof: false,
            in_headers: true,
            progressive: false,
            arithmetic: false,
            width: 0,
            height: 0,
            comps: Vec::new(),
            max_h: 1,
            max_v: 1,
            imcu_rows: 0,
            sos: (Vec::new(), 0, 0, 0, 0),
            input_scan_number: 0,
            last_good_imcu_row: 0,
            mcus_walked: 0,
            frame_bytes: 0,
            arith_decisions: 0,
        }
    }
}
