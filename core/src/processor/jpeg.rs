//! JPEG decoding that reproduces Pillow 13 (libjpeg-turbo 3.x, default settings) byte for byte.
//!
//! Pillow decodes a JPEG with libjpeg-turbo's defaults: `JDCT_ISLOW` integer IDCT
//! (`jidctint.c`), fancy upsampling (`jdsample.c`, triangle filters for h2v1 / h1v2 / h2v2, box
//! replication otherwise), the 16-bit fixed-point YCbCr->RGB tables of `jdcolor.c`, and block
//! smoothing (`jdcoefct.c`) for progressive files whose first AC coefficients never became exact.
//! This module is a port of exactly those code paths:
//!
//! * markers: `jdmarker.c` (JFIF / Adobe colour-space guess of `jdapimin.c`, restart-marker
//!   resynchronisation, standard Huffman tables for sequential files that define none);
//! * entropy decoding: `jdhuff.c` (sequential) and `jdphuff.c` (progressive: DC/AC first and
//!   refinement scans, EOB runs), including libjpeg's handling of corrupt data: a marker inside
//!   entropy-coded data yields zero bits and the rest of the segment decodes as zero blocks;
//! * the data ending before libjpeg has what it wants is "image file is truncated", as in Pillow
//!   (which feeds libjpeg a suspending source and raises when the file runs out);
//! * output: Pillow's mode `L` for one component, `RGB` for three (YCbCr or RGB per the markers),
//!   and for four components libjpeg's CMYK (YCCK converted), read as inverted CMYK (`CMYK;I`)
//!   and converted with Pillow's `cmyk2rgb`.
//!
//! The IDCT follows libjpeg-turbo's x86-64 SIMD kernels, which Pillow's wheels run: the same
//! bytes as `jidctint.c` for anything a real encoder writes, but saturating (not wrapping) when
//! absurd coefficients overflow 16 bits. The SIMD upsampling and colour-conversion kernels match
//! the C code exactly.
//!
//! Unsupported (the caller may try another decoder): arithmetic coding, lossless and
//! hierarchical processes, sample precision other than 8 bits.

use std::fmt;

/// Why [`decode_jpeg`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JpegError {
    /// Corrupt data, or data Pillow refuses (it raises an error for it).
    Invalid(String),
    /// The data ends before the image is complete (Pillow: "image file is truncated").
    Truncated,
    /// A valid JPEG using a process this decoder does not implement.
    Unsupported(String),
    /// The frame exceeds the caller's limits (checked before anything is allocated for it).
    TooLarge { width: u32, height: u32 },
    /// The frame declares far more 8x8 blocks than the file has bits, which no complete JPEG
    /// does (see [`SMALL_FRAME_PIXELS`]); refused before anything is allocated for the frame.
    /// Pillow would decode such a file as mostly grey.
    TooLittleData { width: u32, height: u32, bytes: usize },
}

impl fmt::Display for JpegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JpegError::Invalid(m) => write!(f, "JPEG: {m}"),
            JpegError::Truncated => f.write_str("JPEG: image file is truncated"),
            JpegError::Unsupported(m) => write!(f, "JPEG: unsupported {m}"),
            JpegError::TooLarge { width, height } => write!(f, "JPEG: {width}x{height} image is too large"),
            JpegError::TooLittleData { width, height, bytes } => {
                write!(f, "JPEG: declares {width}x{height} but holds only {bytes} bytes")
            }
        }
    }
}

type Res<T> = Result<T, JpegError>;

fn invalid<T>(msg: impl Into<String>) -> Res<T> {
    Err(JpegError::Invalid(msg.into()))
}

/// Decoded samples as Pillow hands them to `convert("RGB")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JpegPixels {
    /// One sample per pixel (Pillow mode `L`).
    Gray(Vec<u8>),
    /// Packed R, G, B (mode `RGB`, or mode `CMYK` already converted the way Pillow converts it).
    Rgb(Vec<u8>),
}

/// A decoded JPEG plus the metadata Pillow reads from it.
#[derive(Debug, Clone)]
pub(crate) struct DecodedJpeg {
    pub width: u32,
    pub height: u32,
    pub pixels: JpegPixels,
    /// Pillow's `info["exif"]`: the first `Exif\0\0` APP1 segment, later ones appended without
    /// their 6-byte prefix.
    pub exif: Option<Vec<u8>>,
    /// Pillow's `info["xmp"]`: the last XMP APP1 packet.
    pub xmp: Option<Vec<u8>>,
}

/// Decodes a JPEG exactly as Pillow 13 does. Frames wider or taller than `max_side`, or with more
/// than `max_pixels` pixels, are rejected with [`JpegError::TooLarge`] before any allocation.
///
/// Two more limits keep hostile files cheap, where Pillow would spend the time and memory: at
/// most [`MAX_SCANS`] scans, and a frame above [`SMALL_FRAME_PIXELS`] must come with at least one
/// byte of input per 8 blocks ([`JpegError::TooLittleData`]). No complete, real file reaches
/// either. Within a scan, the blocks after the entropy-coded data ran out are only walked while a
/// restart marker could still resynchronise the decoder, so a scan costs in proportion to its data
/// (plus at most one pass over the frame per restart marker it holds).
pub(crate) fn decode_jpeg(bytes: &[u8], max_side: u32, max_pixels: u64) -> Result<DecodedJpeg, JpegError> {
    // Pillow only recognises data starting with SOI followed by another marker's 0xFF.
    if bytes.len() < 3 || bytes[..3] != [0xff, 0xd8, 0xff] {
        return invalid("not a JPEG file");
    }
    Decoder::new(bytes, max_side, max_pixels).run()
}

/// The most scans (SOS markers) a file may hold; one more is [`JpegError::Invalid`]. libjpeg
/// accepts any number (every scan is a pass over the whole frame, so a few kilobytes of empty
/// scans cost seconds); libjpeg-turbo's own tools cap it on request (`djpeg -maxscans`,
/// `TJPARAM_SCANLIMIT`). Real files hold one scan per component (sequential) or about 10
/// (progressive: libjpeg's default script has 10 for colour, 6 for grey; mozjpeg's a few more).
pub(crate) const MAX_SCANS: u32 = 100;

/// Frames up to this many pixels (2048x2048) are decoded whatever the size of the input: their
/// buffers (at most about 15 bytes per pixel, four components) are harmless.
///
/// Above it, a frame whose blocks (the sum over components of `width_in_blocks *
/// height_in_blocks`) outnumber the bits of the whole input is refused before anything is
/// allocated for it. A complete JPEG cannot be that small: every block of every component is coded
/// in some scan with at least one Huffman code of at least one bit (sequential: a DC and an AC
/// code per block; progressive: each block's DC-first code, and DC cannot be run-length coded,
/// unlike the EOB runs of AC scans; interleaved scans code dummy blocks too, which only adds
/// bits). Only degenerate files fail: a component no scan codes, or entropy data cut short by a
/// marker (both decode as grey blocks in libjpeg).
pub(crate) const SMALL_FRAME_PIXELS: u64 = 1 << 22;

// ------------------------------------------------------------------------------------------------
// Tables

/// Zigzag index -> natural index, with 16 extra entries so corrupt run lengths stay in bounds
/// (libjpeg's `jpeg_natural_order`).
const NATURAL: [usize; 80] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
    21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
    60, 61, 54, 47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
];

/// A Huffman table as defined by DHT (counts per code length, symbols).
#[derive(Clone)]
struct HuffDef {
    bits: [u8; 17],
    vals: [u8; 256],
}

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
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71,
    0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72,
    0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59,
    0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3,
    0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
];
const STD_AC_CHROMA_BITS: [u8; 17] = [0, 0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const STD_AC_CHROMA_VALS: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22,
    0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1,
    0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36,
    0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58,
    0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
    0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a,
    0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
    0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
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
// Byte and bit input

/// The data source plus libjpeg's bit-reading state (`jdhuff.h`, 64-bit `bit_buf_type`).
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    bits: i32,
    /// `cinfo->unread_marker`: a marker code already read past (0 = none).
    marker: u8,
    /// `entropy->insufficient_data`: the current segment ran into a marker.
    insufficient: bool,
}

/// libjpeg fills the bit buffer to at least this many bits (`BIT_BUF_SIZE - 7`).
const MIN_GET_BITS: i32 = 57;

impl<'a> Reader<'a> {
    #[inline]
    fn byte(&mut self) -> Res<u8> {
        let b = *self.data.get(self.pos).ok_or(JpegError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Res<usize> {
        let hi = self.byte()? as usize;
        Ok((hi << 8) | self.byte()? as usize)
    }

    fn skip(&mut self, n: usize) -> Res<()> {
        if n > self.data.len() - self.pos {
            self.pos = self.data.len();
            return Err(JpegError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// `next_marker`: skips garbage, fill bytes and stuffed zeros up to the next marker.
    fn next_marker(&mut self) -> Res<u8> {
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
// Frame / scan state

struct Comp {
    id: u8,
    h: usize,
    v: usize,
    tq: usize,
    dc_tbl: usize,
    ac_tbl: usize,
    /// `width_in_blocks` / `height_in_blocks`: blocks holding image samples.
    wb: usize,
    hb: usize,
    /// Blocks stored (rounded up to whole MCUs: dummy blocks of interleaved scans).
    bw: usize,
    bh: usize,
    /// `downsampled_width` / `downsampled_height`.
    dw: usize,
    dh: usize,
    /// The quantisation table latched at the component's first scan, as `ISLOW_MULT_TYPE`.
    quant: Option<[i16; 64]>,
    /// Raw latched values (block smoothing divides by them).
    quant_raw: [u16; 64],
    /// Progressive: `cinfo->coef_bits` and the previous-scan copy.
    coef_bits: [i32; 64],
    prev_coef_bits: [i32; 64],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Seq,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ColorSpace {
    Gray,
    YCbCr,
    Rgb,
    Cmyk,
    Ycck,
}

/// Per-scan entropy decoder state.
struct ScanState {
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
}

enum Next {
    Sos,
    Eoi,
}

struct Decoder<'a> {
    r: Reader<'a>,
    max_side: u32,
    max_pixels: u64,
    qt: [Option<[u16; 64]>; 4],
    dc_defs: [Option<HuffDef>; 4],
    ac_defs: [Option<HuffDef>; 4],
    restart_interval: u32,
    jfif: bool,
    adobe: Option<u8>,
    exif: Option<Vec<u8>>,
    xmp: Option<Vec<u8>>,
    saw_sof: bool,
    in_headers: bool,
    progressive: bool,
    width: usize,
    height: usize,
    comps: Vec<Comp>,
    max_h: usize,
    max_v: usize,
    imcu_rows: usize,
    /// The last SOS: components (frame indices) and Ss, Se, Ah, Al.
    sos: (Vec<usize>, usize, usize, i32, i32),
    input_scan_number: u32,
    last_good_imcu_row: usize,
    /// Work and memory counters (always on; tests check them): MCUs walked over all scans, and
    /// bytes allocated for the frame's coefficient buffers, planes and output.
    mcus_walked: u64,
    frame_bytes: usize,
}

impl<'a> Decoder<'a> {
    fn new(data: &'a [u8], max_side: u32, max_pixels: u64) -> Self {
        Decoder {
            r: Reader { data, pos: 2, buf: 0, bits: 0, marker: 0, insufficient: false },
            max_side,
            max_pixels,
            qt: [None; 4],
            dc_defs: [None, None, None, None],
            ac_defs: [None, None, None, None],
            restart_interval: 0,
            jfif: false,
            adobe: None,
            exif: None,
            xmp: None,
            saw_sof: false,
            in_headers: true,
            progressive: false,
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
        }
    }

    // --- markers (jdmarker.c) -------------------------------------------------------------------

    /// `read_markers`: processes markers up to the next SOS or EOI.
    fn read_markers(&mut self) -> Res<Next> {
        loop {
            if self.r.marker == 0 {
                self.r.next_marker()?;
            }
            let m = self.r.marker;
            match m {
                0xd8 => return invalid("duplicate SOI marker"),
                0xc0..=0xc2 => self.get_sof(m == 0xc2)?,
                0xc3 | 0xc5..=0xc7 | 0xc8 | 0xc9..=0xcb | 0xcd..=0xcf => {
                    if self.saw_sof {
                        return invalid("duplicate SOF marker");
                    }
                    let what = match m {
                        0xc3 => "lossless JPEG",
                        0xc9..=0xcb => "arithmetic-coded JPEG",
                        _ => "hierarchical JPEG",
                    };
                    return Err(JpegError::Unsupported(what.into()));
                }
                0xda => {
                    self.get_sos()?;
                    self.r.marker = 0;
                    return Ok(Next::Sos);
                }
                0xd9 => {
                    self.r.marker = 0;
                    return Ok(Next::Eoi);
                }
                0xc4 => self.get_dht()?,
                0xdb => self.get_dqt()?,
                0xdd => {
                    if self.r.u16()? != 4 {
                        return invalid("bad DRI length");
                    }
                    self.restart_interval = self.r.u16()? as u32;
                }
                0xe0..=0xef => self.get_app(m)?,
                // DAC (arithmetic conditioning), COM, DNL: skipped.
                0xcc | 0xfe | 0xdc => {
                    let len = self.r.u16()?;
                    if len > 2 {
                        self.r.skip(len - 2)?;
                    }
                }
                0xd0..=0xd7 | 0x01 => {}
                _ => return invalid(format!("unknown marker 0x{m:02x}")),
            }
            self.r.marker = 0;
        }
    }

    fn get_sof(&mut self, progressive: bool) -> Res<()> {
        if self.saw_sof {
            return invalid("duplicate SOF marker");
        }
        let r = &mut self.r;
        let length = r.u16()? as i64;
        let precision = r.byte()?;
        let height = r.u16()?;
        let width = r.u16()?;
        let n = r.byte()? as usize;
        if precision != 8 {
            // Pillow: "cannot handle 12-bit layers"
            return Err(JpegError::Unsupported(format!("{precision}-bit JPEG")));
        }
        if height == 0 || width == 0 || n == 0 {
            return invalid("empty JPEG image");
        }
        if length - 8 != 3 * n as i64 {
            return invalid("bad SOF length");
        }
        if !matches!(n, 1 | 3 | 4) {
            return invalid(format!("cannot handle {n}-layer images"));
        }
        let (w, h) = (width as u32, height as u32);
        if w > self.max_side || h > self.max_side || w as u64 * h as u64 > self.max_pixels {
            return Err(JpegError::TooLarge { width: w, height: h });
        }
        for _ in 0..n {
            let id = r.byte()?;
            let hv = r.byte()? as usize;
            let tq = r.byte()? as usize;
            self.comps.push(Comp {
                id,
                h: hv >> 4,
                v: hv & 15,
                tq,
                dc_tbl: 0,
                ac_tbl: 0,
                wb: 0,
                hb: 0,
                bw: 0,
                bh: 0,
                dw: 0,
                dh: 0,
                quant: None,
                quant_raw: [0; 64],
                coef_bits: [-1; 64],
                prev_coef_bits: [0; 64],
            });
        }
        self.progressive = progressive;
        self.width = width;
        self.height = height;
        self.saw_sof = true;
        Ok(())
    }

    fn get_sos(&mut self) -> Res<()> {
        if !self.saw_sof {
            return invalid("SOS before SOF");
        }
        if self.input_scan_number >= MAX_SCANS {
            return invalid(format!("too many scans (the limit is {MAX_SCANS})"));
        }
        let length = self.r.u16()?;
        let n = self.r.byte()? as usize;
        if length != n * 2 + 6 || !(1..=4).contains(&n) {
            return invalid("bad SOS length");
        }
        // cur_comp_info, indexed by scan position (libjpeg's lookup quirks included).
        let mut cur: [Option<usize>; 4] = [None; 4];
        for i in 0..n {
            let cc = self.r.byte()?;
            let c = self.r.byte()? as usize;
            let limit = self.comps.len().min(4);
            let Some(ci) = (0..limit).find(|&ci| self.comps[ci].id == cc && cur[ci].is_none()) else {
                return invalid(format!("bad component id {cc} in SOS"));
            };
            cur[i] = Some(ci);
            self.comps[ci].dc_tbl = c >> 4;
            self.comps[ci].ac_tbl = c & 15;
            if cur[..i].contains(&Some(ci)) {
                return invalid(format!("bad component id {cc} in SOS"));
            }
        }
        let ss = self.r.byte()? as usize;
        let se = self.r.byte()? as usize;
        let a = self.r.byte()? as i32;
        self.sos = (cur[..n].iter().map(|c| c.unwrap_or(0)).collect(), ss, se, a >> 4, a & 15);
        self.input_scan_number += 1;
        Ok(())
    }

    fn get_dht(&mut self) -> Res<()> {
        let r = &mut self.r;
        let mut length = r.u16()? as i64 - 2;
        while length > 16 {
            let index = r.byte()? as usize;
            let mut def = HuffDef { bits: [0; 17], vals: [0; 256] };
            let mut count = 0usize;
            for i in 1..=16 {
                def.bits[i] = r.byte()?;
                count += def.bits[i] as usize;
            }
            length -= 17;
            if count > 256 || count as i64 > length {
                return invalid("bad Huffman table");
            }
            for i in 0..count {
                def.vals[i] = r.byte()?;
            }
            length -= count as i64;
            let (slot, idx) = if index & 0x10 != 0 {
                (&mut self.ac_defs, index - 0x10)
            } else {
                (&mut self.dc_defs, index)
            };
            if idx >= 4 {
                return invalid(format!("bad DHT index {idx}"));
            }
            slot[idx] = Some(def);
        }
        if length != 0 {
            return invalid("bad DHT length");
        }
        Ok(())
    }

    fn get_dqt(&mut self) -> Res<()> {
        let r = &mut self.r;
        let mut length = r.u16()? as i64 - 2;
        while length > 0 {
            let b = r.byte()?;
            let (prec, n) = (b >> 4, (b & 15) as usize);
            if n >= 4 {
                return invalid(format!("bad DQT index {n}"));
            }
            let mut t = [0u16; 64];
            for &nat in &NATURAL[..64] {
                t[nat] = if prec != 0 { r.u16()? as u16 } else { r.byte()? as u16 };
            }
            self.qt[n] = Some(t);
            length -= 65;
            if prec != 0 {
                length -= 64;
            }
        }
        if length != 0 {
            return invalid("bad DQT length");
        }
        Ok(())
    }

    /// APPn: JFIF (APP0) and Adobe (APP14) as libjpeg examines them, EXIF / XMP (APP1) as Pillow
    /// collects them before the first scan.
    fn get_app(&mut self, m: u8) -> Res<()> {
        let len = self.r.u16()?;
        let n = len.saturating_sub(2);
        let start = self.r.pos;
        let avail = self.r.data.len() - start;
        let head = &self.r.data[start..start + n.min(avail).min(14)];
        match m {
            0xe0 if head.len() >= 14 && head.starts_with(b"JFIF\0") => self.jfif = true,
            0xee if head.len() >= 12 && head.starts_with(b"Adobe") => self.adobe = Some(head[11]),
            _ => {}
        }
        if m == 0xe1 && self.in_headers {
            // Pillow reads the whole segment (or fails opening the file).
            let Some(s) = self.r.data.get(start..start + n) else { return Err(JpegError::Truncated) };
            if s.starts_with(b"Exif\0\0") {
                match &mut self.exif {
                    Some(e) => e.extend_from_slice(&s[6..]),
                    None => self.exif = Some(s.to_vec()),
                }
            } else if s.starts_with(b"http://ns.adobe.com/xap/1.0/\0") {
                self.xmp = Some(s[29..].to_vec());
            }
        }
        self.r.skip(n)
    }

    // --- setup (jdinput.c, jdmaster.c) ----------------------------------------------------------

    /// `initial_setup` plus the parts of `jinit_master_decompress` that can fail.
    fn initial_setup(&mut self) -> Res<()> {
        for c in &self.comps {
            if !(1..=4).contains(&c.h) || !(1..=4).contains(&c.v) {
                return invalid("bad sampling factors");
            }
        }
        self.max_h = self.comps.iter().map(|c| c.h).max().unwrap_or(1);
        self.max_v = self.comps.iter().map(|c| c.v).max().unwrap_or(1);
        let (w, h, mh, mv) = (self.width, self.height, self.max_h, self.max_v);
        for c in &mut self.comps {
            c.wb = (w * c.h).div_ceil(mh * 8);
            c.hb = (h * c.v).div_ceil(mv * 8);
            c.bw = c.wb.div_ceil(c.h) * c.h;
            c.bh = c.hb.div_ceil(c.v) * c.v;
            c.dw = (w * c.h).div_ceil(mh);
            c.dh = (h * c.v).div_ceil(mv);
        }
        self.imcu_rows = h.div_ceil(mv * 8);
        // jinit_upsampler: every component must be an integral upsampling of the maximum.
        for c in &self.comps {
            if mh % c.h != 0 || mv % c.v != 0 {
                return invalid("fractional sampling not implemented");
            }
        }
        Ok(())
    }

    /// The input-size rule of [`SMALL_FRAME_PIXELS`], after `initial_setup` (block counts known)
    /// and before anything is allocated for the frame.
    fn check_data_size(&self) -> Res<()> {
        let blocks: u64 = self.comps.iter().map(|c| c.wb as u64 * c.hb as u64).sum();
        let bytes = self.r.data.len();
        if (self.width as u64) * (self.height as u64) > SMALL_FRAME_PIXELS && blocks > 8 * bytes as u64 {
            return Err(JpegError::TooLittleData { width: self.width as u32, height: self.height as u32, bytes });
        }
        Ok(())
    }

    /// `jdapimin.c` `default_decompress_parms`: the colour space libjpeg assumes.
    fn color_space(&self) -> ColorSpace {
        match self.comps.len() {
            1 => ColorSpace::Gray,
            3 => {
                if self.jfif {
                    ColorSpace::YCbCr
                } else if let Some(t) = self.adobe {
                    if t == 0 {
                        ColorSpace::Rgb
                    } else {
                        ColorSpace::YCbCr
                    }
                } else {
                    let ids = (self.comps[0].id, self.comps[1].id, self.comps[2].id);
                    if ids == (82, 71, 66) {
                        ColorSpace::Rgb
                    } else {
                        ColorSpace::YCbCr
                    }
                }
            }
            _ => match self.adobe {
                Some(0) | None => ColorSpace::Cmyk,
                Some(_) => ColorSpace::Ycck,
            },
        }
    }

    /// `start_input_pass`: `per_scan_setup`, `latch_quant_tables` and the entropy decoder's
    /// `start_pass` for the scan just read.
    fn start_scan(&mut self) -> Res<ScanState> {
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
            for (i, &ci) in comps.iter().enumerate() {
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
            for (i, &ci) in comps.iter().enumerate() {
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
        })
    }

    // --- entropy decoding -----------------------------------------------------------------------

    /// Decodes the MCUs of one iMCU row of the current scan. Block (row, col) of component `ci` is
    /// stored at `bufs[ci][((row - base) * bw + col) * 64..]`, `base` being the first block row of
    /// this iMCU row when `row_buffers`, else 0.
    ///
    /// Returns true, possibly before the row's end, once the rest of the scan can change nothing
    /// ([`scan_exhausted`]): the caller then skips the scan's remaining rows.
    fn decode_imcu_row(
        &mut self,
        st: &mut ScanState,
        imcu: usize,
        bufs: &mut [Vec<i16>],
        row_buffers: bool,
    ) -> Res<bool> {
        let Decoder { r, comps, last_good_imcu_row, mcus_walked, .. } = self;
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
                    if scan_exhausted(r, st) {
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
                if scan_exhausted(r, st) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    // --- the whole decode -----------------------------------------------------------------------

    fn run(&mut self) -> Res<DecodedJpeg> {
        // jpeg_read_header: markers up to the first SOS.
        match self.read_markers()? {
            Next::Sos => {}
            Next::Eoi => return invalid("no image in file"),
        }
        self.in_headers = false;
        self.initial_setup()?;
        self.check_data_size()?;
        let space = self.color_space();
        let multi = self.progressive || self.sos.0.len() < self.comps.len();
        if !self.progressive {
            // jinit_huff_decoder: Motion-JPEG style files may omit the standard tables.
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
        let mut planes: Vec<Vec<u8>> = Vec::with_capacity(self.comps.len());
        // Planes and output, in both paths.
        self.frame_bytes = self.comps.iter().map(|c| c.wb * 8 * c.hb * 8).sum::<usize>()
            + self.width * self.height * if self.comps.len() == 1 { 1 } else { 3 };
        if multi {
            // Whole-image coefficient buffers; every scan is consumed before any output.
            let mut coefs: Vec<Vec<i16>> = self.comps.iter().map(|c| vec![0i16; c.bw * c.bh * 64]).collect();
            self.frame_bytes += coefs.iter().map(|b| b.len() * 2).sum::<usize>();
            let mut next = Next::Sos;
            while let Next::Sos = next {
                let mut st = self.start_scan()?;
                for imcu in 0..self.imcu_rows {
                    if self.decode_imcu_row(&mut st, imcu, &mut coefs, false)? {
                        break;
                    }
                }
                next = self.read_markers()?;
            }
            let smooth = self.smoothing_ok();
            for (ci, c) in self.comps.iter().enumerate() {
                let stride = c.wb * 8;
                let mut plane = vec![0u8; stride * c.hb * 8];
                if let Some(q) = &c.quant {
                    if smooth {
                        self.smooth_component(c, q, &coefs[ci], &mut plane);
                    } else {
                        for br in 0..c.hb {
                            for bc in 0..c.wb {
                                let off = (br * c.bw + bc) * 64;
                                let out = &mut plane[br * 8 * stride + bc * 8..];
                                idct_islow(&coefs[ci][off..off + 64], q, out, stride);
                            }
                        }
                    }
                } else {
                    // A component no scan mentions: all-zero blocks (mid grey).
                    plane.fill(128);
                }
                planes.push(plane);
            }
        } else {
            let mut st = self.start_scan()?;
            let mut rows: Vec<Vec<i16>> = self.comps.iter().map(|c| vec![0i16; c.bw * c.v * 64]).collect();
            for c in &self.comps {
                planes.push(vec![0u8; c.wb * 8 * c.hb * 8]);
            }
            let mut exhausted = false;
            for imcu in 0..self.imcu_rows {
                for b in &mut rows {
                    b.fill(0);
                }
                // Once the scan is exhausted its remaining blocks are all zero.
                if !exhausted {
                    exhausted = self.decode_imcu_row(&mut st, imcu, &mut rows, true)?;
                }
                for (ci, c) in self.comps.iter().enumerate() {
                    let stride = c.wb * 8;
                    let q = c.quant.as_ref().ok_or_else(|| JpegError::Invalid("no quantization table".into()))?;
                    for yi in 0..c.v {
                        let br = imcu * c.v + yi;
                        if br >= c.hb {
                            break;
                        }
                        for bc in 0..c.wb {
                            let off = (yi * c.bw + bc) * 64;
                            let out = &mut planes[ci][br * 8 * stride + bc * 8..];
                            idct_islow(&rows[ci][off..off + 64], q, out, stride);
                        }
                    }
                }
            }
            // jpeg_finish_decompress reads on to EOI: Pillow ignores running out of data there
            // (every scanline is out) but not errors.
            match self.read_markers() {
                Ok(Next::Eoi) | Err(JpegError::Truncated) => {}
                Ok(Next::Sos) => return invalid("expected EOI, found another scan"),
                Err(e) => return Err(e),
            }
        }
        let pixels = self.output(space, &planes)?;
        Ok(DecodedJpeg {
            width: self.width as u32,
            height: self.height as u32,
            pixels,
            exif: self.exif.take(),
            xmp: self.xmp.take(),
        })
    }

    // --- block smoothing (jdcoefct.c) -----------------------------------------------------------

    /// `smoothing_ok` at the start of the (single) output pass, all input consumed.
    fn smoothing_ok(&self) -> bool {
        if !self.progressive {
            return false;
        }
        let mut useful = false;
        for c in &self.comps {
            if c.quant.is_none() {
                return false;
            }
            if [0, 1, 8, 16, 9, 2, 3, 10, 17, 24].iter().any(|&i| c.quant_raw[i] == 0) {
                return false;
            }
            if c.coef_bits[0] < 0 {
                return false;
            }
            if c.coef_bits[1..10].iter().any(|&b| b != 0) {
                useful = true;
            }
        }
        useful
    }

    /// `decompress_smooth_data` for one component over all iMCU rows.
    fn smooth_component(&self, c: &Comp, q: &[i16; 64], coefs: &[i16], plane: &mut [u8]) {
        let stride = c.wb * 8;
        let total = self.imcu_rows;
        let last = total - 1;
        let cur_bits: [i32; 10] = std::array::from_fn(|i| c.coef_bits[i]);
        let prev_bits: [i32; 10] = std::array::from_fn(|i| {
            if i == 0 {
                c.coef_bits[0]
            } else if self.input_scan_number > 1 {
                c.prev_coef_bits[i]
            } else {
                -1
            }
        });
        let qv = |i: usize| c.quant_raw[i] as i64;
        let (q00, q01, q10, q20, q11, q02) = (qv(0), qv(1), qv(8), qv(16), qv(9), qv(2));
        let (q03, q12, q21, q30) = (qv(3), qv(10), qv(17), qv(24));
        let dc = |row: usize, col: usize| -> i32 {
            let row = row.min(c.bh - 1);
            coefs.get((row * c.bw + col) * 64).map_or(0, |&v| v as i32)
        };
        let mut ws = [0i16; 64];
        for imcu in 0..total {
            let block_rows = if imcu < last {
                c.v
            } else {
                match c.hb % c.v {
                    0 => c.v,
                    t => t,
                }
            };
            let bits = if imcu > self.last_good_imcu_row { &prev_bits } else { &cur_bits };
            let change_dc = bits[1..10].iter().all(|&b| b == -1);
            let image_block_rows = block_rows * total;
            for block_row in 0..block_rows {
                let image_block_row = imcu * block_rows + block_row;
                let abs = imcu * c.v + block_row;
                if abs >= c.hb {
                    break;
                }
                let prev = if image_block_row > 0 { abs - 1 } else { abs };
                let prev_prev = if image_block_row > 1 { abs - 2 } else { prev };
                let next = if image_block_row + 1 < image_block_rows { abs + 1 } else { abs };
                let next_next = if image_block_row + 2 < image_block_rows { abs + 2 } else { next };
                let rows = [prev_prev, prev, abs, next, next_next];
                // dcs[r][k]: the sliding 5x5 window (DC01..DC25 = dcs[0][0]..dcs[4][4]).
                let mut dcs = [[0i32; 5]; 5];
                for (r, &row) in rows.iter().enumerate() {
                    dcs[r] = [dc(row, 0); 5];
                }
                let last_col = c.wb - 1;
                for bn in 0..c.wb {
                    let off = (abs * c.bw + bn) * 64;
                    ws.copy_from_slice(&coefs[off..off + 64]);
                    if bn == 0 && bn < last_col {
                        for (r, &row) in rows.iter().enumerate() {
                            dcs[r][3] = dc(row, 1);
                            dcs[r][4] = dc(row, 1);
                        }
                    }
                    if bn + 1 < last_col {
                        for (r, &row) in rows.iter().enumerate() {
                            dcs[r][4] = dc(row, bn + 2);
                        }
                    }
                    smooth_block(&mut ws, &dcs, bits, change_dc, [q00, q01, q10, q20, q11, q02, q03, q12, q21, q30]);
                    idct_islow(&ws, q, &mut plane[abs * 8 * stride + bn * 8..], stride);
                    for row in dcs.iter_mut() {
                        row.copy_within(1..5, 0);
                    }
                }
            }
        }
    }

    // --- upsampling and colour conversion (jdsample.c, jdcolor.c, Pillow) ------------------------

    fn output(&self, space: ColorSpace, planes: &[Vec<u8>]) -> Res<JpegPixels> {
        let (w, h) = (self.width, self.height);
        let ups: Vec<Up> = self.comps.iter().map(|c| choose_upsampler(c, self.max_h, self.max_v)).collect();
        let mut tmp: Vec<(Vec<u8>, Vec<u16>)> = self
            .comps
            .iter()
            .zip(&ups)
            .map(|(c, up)| match up {
                Up::Full => (Vec::new(), Vec::new()),
                _ => (vec![0u8; c.dw * (self.max_h / c.h).max(2)], vec![0u16; c.dw]),
            })
            .collect();
        let n = self.comps.len();
        let tab = YccTables::new();
        let out_ch = if n == 1 { 1 } else { 3 };
        let mut out = vec![0u8; w * h * out_ch];
        for (y, orow) in out.chunks_exact_mut(w * out_ch).enumerate() {
            let mut rows: [&[u8]; 4] = [&[]; 4];
            for (ci, (t, cs)) in tmp.iter_mut().enumerate() {
                let c = &self.comps[ci];
                rows[ci] = upsample_row(&planes[ci], c.wb * 8, c.dw, c.dh, ups[ci], y, t, cs);
            }
            match space {
                ColorSpace::Gray => orow.copy_from_slice(&rows[0][..w]),
                ColorSpace::Rgb => {
                    for (x, p) in orow.chunks_exact_mut(3).enumerate() {
                        p.copy_from_slice(&[rows[0][x], rows[1][x], rows[2][x]]);
                    }
                }
                ColorSpace::YCbCr => tab.ycc_rgb_row(&rows[0][..w], &rows[1][..w], &rows[2][..w], orow),
                ColorSpace::Cmyk | ColorSpace::Ycck => {
                    for (x, p) in orow.chunks_exact_mut(3).enumerate() {
                        let (c0, c1, c2, k) = (rows[0][x] as i32, rows[1][x], rows[2][x], rows[3][x] as i32);
                        // libjpeg's CMYK output (YCCK converted by ycck_cmyk_convert) ...
                        let (c, m, ye) = if space == ColorSpace::Ycck {
                            let (r, g, b) = tab.ycc(c0, c1, c2);
                            ((255 - r).clamp(0, 255), (255 - g).clamp(0, 255), (255 - b).clamp(0, 255))
                        } else {
                            (c0, c1 as i32, c2 as i32)
                        };
                        // ... unpacked as "CMYK;I" (inverted), then Pillow's cmyk2rgb.
                        let nk = k; // 255 - (255 - K)
                        let conv = |v: i32| -> u8 {
                            let t = (255 - v) * nk + 128;
                            (nk - (((t >> 8) + t) >> 8)).clamp(0, 255) as u8
                        };
                        p.copy_from_slice(&[conv(c), conv(m), conv(ye)]);
                    }
                }
            }
        }
        Ok(if n == 1 { JpegPixels::Gray(out) } else { JpegPixels::Rgb(out) })
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
#[inline(always)]
fn scan_exhausted(r: &Reader, st: &ScanState) -> bool {
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

/// `process_restart` + `read_restart_marker` + `jpeg_resync_to_restart`.
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

/// The coefficient estimates of `decompress_smooth_data` for one block. `q` holds Q00, Q01, Q10,
/// Q20, Q11, Q02, Q03, Q12, Q21, Q30.
fn smooth_block(ws: &mut [i16; 64], d: &[[i32; 5]; 5], bits: &[i32; 10], change_dc: bool, q: [i64; 10]) {
    let dc = |i: usize| d[(i - 1) / 5][(i - 1) % 5] as i64; // DC01..DC25
    let q00 = q[0];
    let predict = |num: i64, qk: i64, al: i32| -> i16 {
        let mut pred;
        if num >= 0 {
            pred = ((qk << 7) + num) / (qk << 8);
            if al > 0 && pred >= (1 << al) {
                pred = (1 << al) - 1;
            }
        } else {
            pred = ((qk << 7) - num) / (qk << 8);
            if al > 0 && pred >= (1 << al) {
                pred = (1 << al) - 1;
            }
            pred = -pred;
        }
        pred as i32 as i16
    };
    // AC01
    if bits[1] != 0 && ws[1] == 0 {
        let num = q00
            * if change_dc {
                -dc(1) - dc(2) + dc(4) + dc(5) - 3 * dc(6) + 13 * dc(7) - 13 * dc(9) + 3 * dc(10) - 3 * dc(11)
                    + 38 * dc(12)
                    - 38 * dc(14)
                    + 3 * dc(15)
                    - 3 * dc(16)
                    + 13 * dc(17)
                    - 13 * dc(19)
                    + 3 * dc(20)
                    - dc(21)
                    - dc(22)
                    + dc(24)
                    + dc(25)
            } else {
                -7 * dc(11) + 50 * dc(12) - 50 * dc(14) + 7 * dc(15)
            };
        ws[1] = predict(num, q[1], bits[1]);
    }
    // AC10
    if bits[2] != 0 && ws[8] == 0 {
        let num = q00
            * if change_dc {
                -dc(1) - 3 * dc(2) - 3 * dc(3) - 3 * dc(4) - dc(5) - dc(6) + 13 * dc(7) + 38 * dc(8) + 13 * dc(9)
                    - dc(10)
                    + dc(16)
                    - 13 * dc(17)
                    - 38 * dc(18)
                    - 13 * dc(19)
                    + dc(20)
                    + dc(21)
                    + 3 * dc(22)
                    + 3 * dc(23)
                    + 3 * dc(24)
                    + dc(25)
            } else {
                -7 * dc(3) + 50 * dc(8) - 50 * dc(18) + 7 * dc(23)
            };
        ws[8] = predict(num, q[2], bits[2]);
    }
    // AC20
    if bits[3] != 0 && ws[16] == 0 {
        let num = q00
            * if change_dc {
                dc(3) + 2 * dc(7) + 7 * dc(8) + 2 * dc(9) - 5 * dc(12) - 14 * dc(13) - 5 * dc(14) + 2 * dc(17)
                    + 7 * dc(18)
                    + 2 * dc(19)
                    + dc(23)
            } else {
                -dc(3) + 13 * dc(8) - 24 * dc(13) + 13 * dc(18) - dc(23)
            };
        ws[16] = predict(num, q[3], bits[3]);
    }
    // AC11
    if bits[4] != 0 && ws[9] == 0 {
        let num = q00
            * if change_dc {
                -dc(1) + dc(5) + 9 * dc(7) - 9 * dc(9) - 9 * dc(17) + 9 * dc(19) + dc(21) - dc(25)
            } else {
                dc(10) + dc(16) - 10 * dc(17) + 10 * dc(19) - dc(2) - dc(20) + dc(22) - dc(24) + dc(4) - dc(6)
                    + 10 * dc(7)
                    - 10 * dc(9)
            };
        ws[9] = predict(num, q[4], bits[4]);
    }
    // AC02
    if bits[5] != 0 && ws[2] == 0 {
        let num = q00
            * if change_dc {
                2 * dc(7) - 5 * dc(8) + 2 * dc(9) + dc(11) + 7 * dc(12) - 14 * dc(13) + 7 * dc(14) + dc(15)
                    + 2 * dc(17)
                    - 5 * dc(18)
                    + 2 * dc(19)
            } else {
                -dc(11) + 13 * dc(12) - 24 * dc(13) + 13 * dc(14) - dc(15)
            };
        ws[2] = predict(num, q[5], bits[5]);
    }
    if change_dc {
        // AC03
        if bits[6] != 0 && ws[3] == 0 {
            let num = q00 * (dc(7) - dc(9) + 2 * dc(12) - 2 * dc(14) + dc(17) - dc(19));
            ws[3] = predict(num, q[6], bits[6]);
        }
        // AC12
        if bits[7] != 0 && ws[10] == 0 {
            let num = q00 * (dc(7) - 3 * dc(8) + dc(9) - dc(17) + 3 * dc(18) - dc(19));
            ws[10] = predict(num, q[7], bits[7]);
        }
        // AC21
        if bits[8] != 0 && ws[17] == 0 {
            let num = q00 * (dc(7) - dc(9) - 3 * dc(12) + 3 * dc(14) + dc(17) - dc(19));
            ws[17] = predict(num, q[8], bits[8]);
        }
        // AC30
        if bits[9] != 0 && ws[24] == 0 {
            let num = q00 * (dc(7) + 2 * dc(8) + dc(9) - dc(17) - 2 * dc(18) - dc(19));
            ws[24] = predict(num, q[9], bits[9]);
        }
        // DC
        let num = q00
            * (-2 * dc(1) - 6 * dc(2) - 8 * dc(3) - 6 * dc(4) - 2 * dc(5) - 6 * dc(6) + 6 * dc(7) + 42 * dc(8)
                + 6 * dc(9)
                - 6 * dc(10)
                - 8 * dc(11)
                + 42 * dc(12)
                + 152 * dc(13)
                + 42 * dc(14)
                - 8 * dc(15)
                - 6 * dc(16)
                + 6 * dc(17)
                + 42 * dc(18)
                + 6 * dc(19)
                - 6 * dc(20)
                - 2 * dc(21)
                - 6 * dc(22)
                - 8 * dc(23)
                - 6 * dc(24)
                - 2 * dc(25));
        ws[0] = predict(num, q00, 0);
    }
}

// ------------------------------------------------------------------------------------------------
// IDCT: jpeg_idct_islow as libjpeg-turbo's x86-64 SSE2/AVX2 kernels compute it
//
// For any data a real encoder writes this is jidctint.c's result. The kernels differ from the C
// code only when values leave the 16-bit range: dequantisation (`pmullw`) and the sums
// in0 +- in4, in7 + in3, in5 + in1 wrap to 16 bits, each pass saturates its outputs to 16 bits
// (`packssdw`), the final samples saturate to -128..127 before +CENTERJSAMPLE (where the C
// code's `range_limit[x & 1023]` wraps), and the DC-only shortcut of pass 1 applies to whole
// blocks. Pillow's wheels run these kernels, so they are what "bit-exact with Pillow" means.

const F_0_298: i32 = 2446;
const F_0_390: i32 = 3196;
const F_0_541: i32 = 4433;
const F_0_765: i32 = 6270;
const F_0_899: i32 = 7373;
const F_1_175: i32 = 9633;
const F_1_501: i32 = 12299;
const F_1_847: i32 = 15137;
const F_1_961: i32 = 16069;
const F_2_053: i32 = 16819;
const F_2_562: i32 = 20995;
const F_3_072: i32 = 25172;

/// One 8-point pass (`DODCT`) on 8 lanes at once, as the SIMD kernels run it: `v[k]` holds input
/// k of every lane (16-bit), products and sums are exact in 32 bits (`pmaddwd`), the sums
/// in0 +- in4, in7 + in3, in5 + in1 wrap to 16 bits, outputs are descaled by `shift` and
/// saturated to 16 bits (`packssdw`).
#[inline(always)]
fn idct_pass(v: &[[i16; 8]; 8], shift: u32) -> [[i16; 8]; 8] {
    let mut out = [[0i16; 8]; 8];
    for l in 0..8 {
        let i = |k: usize| v[k][l];
        let w = |x: i16| x as i32;
        // Even part: tmp3 = z2 * (0.541 + 0.765) + z3 * 0.541, tmp2 = z2 * 0.541 + z3 * (0.541 - 1.847).
        let tmp3 = w(i(2)) * (F_0_541 + F_0_765) + w(i(6)) * F_0_541;
        let tmp2 = w(i(2)) * F_0_541 + w(i(6)) * (F_0_541 - F_1_847);
        let tmp0 = w(i(0).wrapping_add(i(4))) << 13;
        let tmp1 = w(i(0).wrapping_sub(i(4))) << 13;
        let tmp10 = tmp0.wrapping_add(tmp3);
        let tmp13 = tmp0.wrapping_sub(tmp3);
        let tmp11 = tmp1.wrapping_add(tmp2);
        let tmp12 = tmp1.wrapping_sub(tmp2);
        // Odd part (in7, in5, in3, in1 = the C code's tmp0..tmp3).
        let z3 = w(i(7).wrapping_add(i(3)));
        let z4 = w(i(5).wrapping_add(i(1)));
        let z3p = z3 * (F_1_175 - F_1_961) + z4 * F_1_175;
        let z4p = z3 * F_1_175 + z4 * (F_1_175 - F_0_390);
        let (i7, i5, i3, i1) = (w(i(7)), w(i(5)), w(i(3)), w(i(1)));
        let o0 = (i7 * (F_0_298 - F_0_899) + i1 * -F_0_899).wrapping_add(z3p);
        let o1 = (i5 * (F_2_053 - F_2_562) + i3 * -F_2_562).wrapping_add(z4p);
        let o3 = (i7 * -F_0_899 + i1 * (F_1_501 - F_0_899)).wrapping_add(z4p);
        let o2 = (i5 * -F_2_562 + i3 * (F_3_072 - F_2_562)).wrapping_add(z3p);
        let d = |x: i32| (x.wrapping_add(1 << (shift - 1)) >> shift).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        out[0][l] = d(tmp10.wrapping_add(o3));
        out[1][l] = d(tmp11.wrapping_add(o2));
        out[2][l] = d(tmp12.wrapping_add(o1));
        out[3][l] = d(tmp13.wrapping_add(o0));
        out[4][l] = d(tmp13.wrapping_sub(o0));
        out[5][l] = d(tmp12.wrapping_sub(o1));
        out[6][l] = d(tmp11.wrapping_sub(o2));
        out[7][l] = d(tmp10.wrapping_sub(o3));
    }
    out
}

fn transpose(m: &[[i16; 8]; 8]) -> [[i16; 8]; 8] {
    std::array::from_fn(|r| std::array::from_fn(|c| m[c][r]))
}

/// `jpeg_idct_islow`: dequantises `coef` (natural order) with `q` (`ISLOW_MULT_TYPE`, 16 bits)
/// and writes 8x8 samples at `out[0..]` with row stride `stride`.
fn idct_islow(coef: &[i16], q: &[i16; 64], out: &mut [u8], stride: usize) {
    let Some(coef) = coef.get(..64).and_then(|c| <&[i16; 64]>::try_from(c).ok()) else { return };
    if out.len() < 7 * stride + 8 {
        return;
    }
    // Dequantisation is a 16-bit multiply (pmullw).
    let deq = |k: usize| coef[k].wrapping_mul(q[k]);
    let ws: [[i16; 8]; 8] = if coef[8..].iter().all(|&c| c == 0) {
        // Rows 1-7 all zero: every column is its dequantised DC << PASS1_BITS (16-bit shift).
        let row: [i16; 8] = std::array::from_fn(|c| deq(c).wrapping_shl(2));
        if row[1..].iter().all(|&v| v == 0) {
            // DC only: pass 2 gives every sample the same value.
            let v = ((row[0] as i32 + 16) >> 5).clamp(-128, 127) as u8 ^ 0x80;
            for r in 0..8 {
                out[r * stride..r * stride + 8].fill(v);
            }
            return;
        }
        [row; 8]
    } else {
        // Pass 1 on columns: input vector k = row k of the block.
        idct_pass(&std::array::from_fn(|k| std::array::from_fn(|c| deq(k * 8 + c))), 11)
    };
    // Pass 2 on rows: input vector k = column k; output vector k = column k of the samples.
    let res = transpose(&idct_pass(&transpose(&ws), 18));
    for (r, row) in res.iter().enumerate() {
        for (d, &v) in out[r * stride..r * stride + 8].iter_mut().zip(row) {
            *d = v.clamp(-128, 127) as u8 ^ 0x80;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Upsampling (jdsample.c)

#[derive(Clone, Copy)]
enum Up {
    Full,
    H2V1Fancy,
    H2V1Box,
    H1V2Fancy,
    H2V2Fancy,
    H2V2Box,
    Int(usize, usize),
}

/// `jinit_upsampler` with `do_fancy_upsampling` on and full-size IDCTs.
fn choose_upsampler(c: &Comp, max_h: usize, max_v: usize) -> Up {
    if c.h == max_h && c.v == max_v {
        Up::Full
    } else if c.h * 2 == max_h && c.v == max_v {
        if c.dw > 2 {
            Up::H2V1Fancy
        } else {
            Up::H2V1Box
        }
    } else if c.h == max_h && c.v * 2 == max_v {
        Up::H1V2Fancy
    } else if c.h * 2 == max_h && c.v * 2 == max_v {
        if c.dw > 2 {
            Up::H2V2Fancy
        } else {
            Up::H2V2Box
        }
    } else {
        Up::Int(max_h / c.h, max_v / c.v)
    }
}

/// Output row `y` of one component at full resolution (`tmp`: scratch of at least
/// `max(2, h_expand) * dw` samples; `cs`: `dw` column sums). The main buffer controller gives the
/// upsamplers the first sample row as context above the image and the last real row
/// (`downsampled_height - 1`) below it.
#[allow(clippy::too_many_arguments)]
fn upsample_row<'p>(
    plane: &'p [u8],
    stride: usize,
    dw: usize,
    dh: usize,
    up: Up,
    y: usize,
    tmp: &'p mut [u8],
    cs: &mut [u16],
) -> &'p [u8] {
    let row = |r: usize| &plane[r * stride..r * stride + dw];
    // The nearer and further input rows of output row y of a 2:1 vertical upsampling.
    let rows2 = |y: usize| {
        let r = y >> 1;
        let far = if y & 1 == 1 { (r + 1).min(dh - 1) } else { r.saturating_sub(1) };
        (row(r), row(far))
    };
    match up {
        Up::Full => &plane[y * stride..(y + 1) * stride],
        Up::H2V1Fancy => {
            let inp = row(y);
            let n = dw;
            tmp[0] = inp[0];
            tmp[1] = ((inp[0] as u32 * 3 + inp[1] as u32 + 2) >> 2) as u8;
            for (w, o) in inp.windows(3).zip(tmp[2..2 * n - 2].chunks_exact_mut(2)) {
                let v = w[1] as u32 * 3;
                o[0] = ((v + w[0] as u32 + 1) >> 2) as u8;
                o[1] = ((v + w[2] as u32 + 2) >> 2) as u8;
            }
            tmp[2 * n - 2] = ((inp[n - 1] as u32 * 3 + inp[n - 2] as u32 + 1) >> 2) as u8;
            tmp[2 * n - 1] = inp[n - 1];
            tmp
        }
        Up::H1V2Fancy => {
            let (near, far) = rows2(y);
            let bias = if y & 1 == 1 { 2 } else { 1 };
            for ((o, &a), &b) in tmp[..dw].iter_mut().zip(near).zip(far) {
                *o = ((a as u32 * 3 + b as u32 + bias) >> 2) as u8;
            }
            tmp
        }
        Up::H2V2Fancy => {
            let (near, far) = rows2(y);
            let n = dw;
            let cs = &mut cs[..n];
            for ((c, &a), &b) in cs.iter_mut().zip(near).zip(far) {
                *c = a as u16 * 3 + b as u16;
            }
            tmp[0] = ((cs[0] as u32 * 4 + 8) >> 4) as u8;
            tmp[1] = ((cs[0] as u32 * 3 + cs[1] as u32 + 7) >> 4) as u8;
            for (w, o) in cs.windows(3).zip(tmp[2..2 * n - 2].chunks_exact_mut(2)) {
                let v = w[1] as u32 * 3;
                o[0] = ((v + w[0] as u32 + 8) >> 4) as u8;
                o[1] = ((v + w[2] as u32 + 7) >> 4) as u8;
            }
            tmp[2 * n - 2] = ((cs[n - 1] as u32 * 3 + cs[n - 2] as u32 + 8) >> 4) as u8;
            tmp[2 * n - 1] = ((cs[n - 1] as u32 * 4 + 7) >> 4) as u8;
            tmp
        }
        Up::H2V1Box | Up::H2V2Box => {
            let inp = row(if matches!(up, Up::H2V2Box) { y >> 1 } else { y });
            for (o, &v) in tmp[..2 * dw].chunks_exact_mut(2).zip(inp) {
                o.fill(v);
            }
            tmp
        }
        Up::Int(hx, vx) => {
            let inp = row(y / vx);
            for (o, &v) in tmp[..hx * dw].chunks_exact_mut(hx).zip(inp) {
                o.fill(v);
            }
            tmp
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Colour conversion (jdcolor.c)

struct YccTables {
    cr_r: [i32; 256],
    cb_b: [i32; 256],
    /// Cr=>G and Cb=>G (the latter with ONE_HALF added) at 16 fractional bits.
    cr_g: [i32; 256],
    cb_g: [i32; 256],
}

impl YccTables {
    /// `build_ycc_rgb_table` (SCALEBITS = 16).
    fn new() -> Self {
        let fix = |x: f64| (x * 65536.0 + 0.5) as i32;
        const ONE_HALF: i32 = 1 << 15;
        let mut t = YccTables { cr_r: [0; 256], cb_b: [0; 256], cr_g: [0; 256], cb_g: [0; 256] };
        for i in 0..256 {
            let x = i as i32 - 128;
            t.cr_r[i] = (fix(1.40200) * x + ONE_HALF) >> 16;
            t.cb_b[i] = (fix(1.77200) * x + ONE_HALF) >> 16;
            t.cr_g[i] = -fix(0.71414) * x;
            t.cb_g[i] = -fix(0.34414) * x + ONE_HALF;
        }
        t
    }

    /// Unclamped R, G, B (`range_limit` clamps them).
    #[inline(always)]
    fn ycc(&self, y: i32, cb: u8, cr: u8) -> (i32, i32, i32) {
        let (cb, cr) = (cb as usize, cr as usize);
        (y + self.cr_r[cr], y + ((self.cb_g[cb] + self.cr_g[cr]) >> 16), y + self.cb_b[cb])
    }

    fn ycc_rgb_row(&self, y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
        // The tables hold (FIX(k) * x + ONE_HALF) >> 16 etc.; computing it is identical and
        // vectorises (fixed-size chunks, then the rest).
        #[inline(always)]
        fn px(y: u8, cb: u8, cr: u8) -> [u8; 3] {
            const CR_R: i32 = 91881; // FIX(1.40200)
            const CB_B: i32 = 116130; // FIX(1.77200)
            const CR_G: i32 = 46802; // FIX(0.71414)
            const CB_G: i32 = 22554; // FIX(0.34414)
            let (y, b, r) = (y as i32, cb as i32 - 128, cr as i32 - 128);
            let rr = y + ((CR_R * r + (1 << 15)) >> 16);
            let gg = y + ((-CB_G * b + (1 << 15) - CR_G * r) >> 16);
            let bb = y + ((CB_B * b + (1 << 15)) >> 16);
            [rr.clamp(0, 255) as u8, gg.clamp(0, 255) as u8, bb.clamp(0, 255) as u8]
        }
        const N: usize = 16;
        let n = y.len().min(cb.len()).min(cr.len()).min(out.len() / 3);
        let full = n / N * N;
        let chunks = y[..full].chunks_exact(N).zip(cb[..full].chunks_exact(N)).zip(cr[..full].chunks_exact(N));
        for (((y, cb), cr), o) in chunks.zip(out[..3 * full].chunks_exact_mut(3 * N)) {
            let mut rgb = [[0u8; 3]; N];
            for i in 0..N {
                rgb[i] = px(y[i], cb[i], cr[i]);
            }
            o.copy_from_slice(rgb.as_flattened());
        }
        for x in full..n {
            out[3 * x..3 * x + 3].copy_from_slice(&px(y[x], cb[x], cr[x]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/preprocess/images").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The offset of the first marker `m` (0xFF m).
    fn marker_at(data: &[u8], m: u8) -> usize {
        data.windows(2).position(|w| w == [0xff, m]).unwrap()
    }

    #[test]
    fn decodes_gray_and_color() {
        let d = decode_jpeg(&fixture("jgray.jpg"), 8192, 1 << 26).unwrap();
        assert!(matches!(d.pixels, JpegPixels::Gray(ref v) if v.len() == 212 * 148));
        let d = decode_jpeg(&fixture("jorient6.jpg"), 8192, 1 << 26).unwrap();
        assert!(matches!(d.pixels, JpegPixels::Rgb(ref v) if v.len() == 212 * 148 * 3));
        assert!(d.exif.as_deref().is_some_and(|e| e.starts_with(b"Exif\0\0")));
    }

    #[test]
    fn other_processes_are_unsupported() {
        let base = fixture("j420.jpg");
        let sof = marker_at(&base, 0xc0);
        for m in [0xc3u8, 0xc5, 0xc9, 0xca, 0xcd] {
            let mut b = base.clone();
            b[sof + 1] = m;
            assert!(matches!(decode_jpeg(&b, 8192, 1 << 26), Err(JpegError::Unsupported(_))), "SOF 0x{m:02x}");
        }
        let mut b = base.clone();
        b[sof + 4] = 12; // sample precision
        assert!(matches!(decode_jpeg(&b, 8192, 1 << 26), Err(JpegError::Unsupported(_))));
    }

    #[test]
    fn size_limits_apply_before_allocation() {
        let mut b = fixture("j420.jpg");
        let sof = marker_at(&b, 0xc0);
        b[sof + 5..sof + 9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]); // 65535 x 65535
        assert_eq!(decode_jpeg(&b, 8192, 1 << 26).unwrap_err(), JpegError::TooLarge { width: 65535, height: 65535 });
        let b = fixture("j420.jpg");
        assert!(matches!(decode_jpeg(&b, 100, 1 << 26), Err(JpegError::TooLarge { .. })));
        assert!(matches!(decode_jpeg(&b, 8192, 1000), Err(JpegError::TooLarge { .. })));
    }

    #[test]
    fn truncation_is_an_error_but_a_marker_ends_the_data() {
        let b = fixture("j420.jpg");
        assert_eq!(decode_jpeg(&b[..b.len() - 1], 8192, 1 << 26).unwrap_err(), JpegError::Truncated);
        assert_eq!(decode_jpeg(&b[..b.len() / 2], 8192, 1 << 26).unwrap_err(), JpegError::Truncated);
        let mut cut = b[..b.len() / 2].to_vec();
        cut.extend_from_slice(&[0xff, 0xd9]);
        assert!(decode_jpeg(&cut, 8192, 1 << 26).is_ok());
        assert!(matches!(decode_jpeg(b"\xff\xd8\xff\xd9", 8192, 1 << 26), Err(JpegError::Invalid(_))));
        assert!(matches!(decode_jpeg(b"\xff\xd8", 8192, 1 << 26), Err(JpegError::Invalid(_))));
    }

    /// A hand-built progressive (SOF2) file: `ncomp` components sampled 1x1, one quantisation
    /// table, a DRI when `restart_interval` is not 0, a DC table with a single 1-bit code (category
    /// 0) when some scan is a DC-first scan, then one SOS per `(Ah, Al, data)` (all components,
    /// Ss = Se = 0) followed by its entropy-coded `data`, then EOI.
    fn progressive(width: u16, height: u16, ncomp: u8, restart_interval: u16, scans: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0xff, 0xd8];
        b.extend_from_slice(&[0xff, 0xdb, 0, 67, 0]);
        b.extend_from_slice(&[1; 64]);
        b.extend_from_slice(&[0xff, 0xc2]);
        b.extend_from_slice(&(8 + 3 * ncomp as u16).to_be_bytes());
        b.push(8);
        b.extend_from_slice(&height.to_be_bytes());
        b.extend_from_slice(&width.to_be_bytes());
        b.push(ncomp);
        for id in 1..=ncomp {
            b.extend_from_slice(&[id, 0x11, 0]);
        }
        if restart_interval != 0 {
            b.extend_from_slice(&[0xff, 0xdd, 0, 4]);
            b.extend_from_slice(&restart_interval.to_be_bytes());
        }
        if scans.iter().any(|s| s.0 == 0) {
            b.extend_from_slice(&[0xff, 0xc4, 0, 20, 0x00, 1]);
            b.extend_from_slice(&[0; 15]);
            b.push(0);
        }
        for &(ah, al, data) in scans {
            b.extend_from_slice(&[0xff, 0xda]);
            b.extend_from_slice(&(6 + 2 * ncomp as u16).to_be_bytes());
            b.push(ncomp);
            for id in 1..=ncomp {
                b.extend_from_slice(&[id, 0x00]);
            }
            b.extend_from_slice(&[0, 0, (ah << 4) | al]);
            b.extend_from_slice(data);
        }
        b.extend_from_slice(&[0xff, 0xd9]);
        b
    }

    /// Decodes like `decode_jpeg`, returning the decoder's counters too: (result, MCUs walked,
    /// bytes allocated for the frame).
    fn decode_counted(b: &[u8]) -> (Res<DecodedJpeg>, u64, usize) {
        let mut d = Decoder::new(b, 8192, 64_000_000);
        let res = d.run();
        (res, d.mcus_walked, d.frame_bytes)
    }

    #[test]
    fn scan_bomb_is_refused_before_any_work() {
        // 8192x7812, three components, 500 empty DC refinement scans: ~7 KB. Before the limits,
        // each scan walked the frame's million MCUs (seconds), after ~300 MB of allocations.
        let empty: &[u8] = &[];
        let b = progressive(8192, 7812, 3, 0, &vec![(1, 0, empty); 500]);
        assert!(b.len() < 8192, "{}", b.len());
        let (res, walked, allocated) = decode_counted(&b);
        assert_eq!(res.unwrap_err(), JpegError::TooLittleData { width: 8192, height: 7812, bytes: b.len() });
        assert_eq!((walked, allocated), (0, 0));
    }

    #[test]
    fn huge_header_is_refused_before_allocation() {
        // 111 bytes declaring an 8192x7812 four-component progressive frame (~440 MB of buffers).
        let b = progressive(8192, 7812, 4, 0, &[(1, 0, &[])]);
        assert_eq!(b.len(), 111);
        let (res, walked, allocated) = decode_counted(&b);
        assert_eq!(res.unwrap_err(), JpegError::TooLittleData { width: 8192, height: 7812, bytes: 111 });
        assert_eq!((walked, allocated), (0, 0));
        assert_eq!(
            JpegError::TooLittleData { width: 8192, height: 7812, bytes: 111 }.to_string(),
            "JPEG: declares 8192x7812 but holds only 111 bytes"
        );
    }

    #[test]
    fn scan_count_is_capped() {
        // At the small-frame floor (2048x2048), so only the scan cap and the early end of empty
        // scans apply: one MCU walked per scan, then the error at scan MAX_SCANS + 1.
        let empty: &[u8] = &[];
        let b = progressive(2048, 2048, 1, 0, &vec![(1, 0, empty); 500]);
        let (res, walked, _) = decode_counted(&b);
        assert!(matches!(res, Err(JpegError::Invalid(ref m)) if m.contains("too many scans")), "{res:?}");
        assert_eq!(walked, MAX_SCANS as u64);
        let b = progressive(512, 512, 1, 0, &vec![(1, 0, empty); MAX_SCANS as usize + 1]);
        assert!(matches!(decode_counted(&b).0, Err(JpegError::Invalid(ref m)) if m.contains("too many scans")));
        let b = progressive(512, 512, 1, 0, &vec![(1, 0, empty); MAX_SCANS as usize]);
        assert!(decode_counted(&b).0.is_ok());
    }

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

    #[test]
    fn fixtures_code_at_least_a_bit_per_block() {
        // The premise of SMALL_FRAME_PIXELS, on every fixture (all below the floor).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/preprocess/images");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "jpg") {
                let b = std::fs::read(&p).unwrap();
                let mut d = Decoder::new(&b, 8192, 1 << 26);
                assert!(matches!(d.read_markers(), Ok(Next::Sos)), "{}", p.display());
                d.initial_setup().unwrap();
                let blocks: usize = d.comps.iter().map(|c| c.wb * c.hb).sum();
                assert!(blocks <= 8 * b.len(), "{}: {blocks} blocks in {} bytes", p.display(), b.len());
                n += 1;
            }
        }
        assert!(n > 20);
    }

    #[test]
    fn corrupted_files_never_panic() {
        // xorshift; a few thousand random byte changes and cuts of small fixtures.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let files = ["j440.jpg", "jprog_approx.jpg", "j411.jpg", "jycck.jpg", "j422_prog_rst_odd.jpg"].map(fixture);
        for i in 0..3000 {
            let mut b = files[i % files.len()].clone();
            for _ in 0..1 + rnd() % 4 {
                let p = rnd() as usize % b.len();
                match rnd() % 3 {
                    0 => b[p] = rnd() as u8,
                    1 => b[p] ^= 1 << (rnd() % 8),
                    _ => b.truncate(p.max(3)),
                }
            }
            let _ = decode_jpeg(&b, 8192, 1 << 26);
        }
    }
}
