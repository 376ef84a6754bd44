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
//! * arithmetic decoding (SOF9, SOF10): `jdarith.c`, with the DAC conditioning of `jdmarker.c`
//!   and libjpeg's handling of corrupt data (zeros fed after a marker, a bad code ending the
//!   decoding until the next restart); a scan reads only the data Pillow has handed libjpeg when
//!   it starts (Pillow feeds the file in 64 KiB reads, which the arithmetic decoder cannot wait
//!   for), and the work is bounded (`arith::decision_budget`);
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
//! Unsupported (the caller may try another decoder): lossless (SOF3, SOF11) and hierarchical
//! processes, sample precision other than 8 bits.
//!
//! One file per stage, each with the tests of that stage:
//!
//! * `mod.rs`: the API ([`decode_jpeg`], [`DecodedJpeg`], the limit [`SMALL_FRAME_PIXELS`], and
//!   re-exported from the stages: [`JpegError`], [`JpegPixels`]), `Decoder::run`, which drives
//!   the stages below, and the tests of the whole decoder;
//! * `error.rs`: the error type and the `Res` / `invalid` shorthands;
//! * `state.rs`: the data every stage shares: the decoder state `Decoder` (which each stage
//!   extends), the byte-level reader, the frame's components, Huffman table definitions, the
//!   zigzag order, the colour spaces;
//! * `markers.rs`: markers and headers (and the limit [`MAX_SCANS`](markers::MAX_SCANS)), the
//!   components' setup, the colour-space guess;
//! * `entropy.rs`: Huffman tables, the bit reader, scan setup, restart markers and block decoding
//!   (sequential and progressive), including the early end of a scan whose data has run out;
//! * `arith.rs`: the arithmetic decoder (probability table, registers, statistics, blocks of the
//!   sequential and the four progressive kinds) and its work budget;
//! * `idct.rs`: the integer IDCT and progressive block smoothing;
//! * `upsample.rs`: fancy upsampling;
//! * `color.rs`: colour conversion and the output pixels.
//!
//! Dependencies run one way: `error` <- `state` <- `markers`, `arith`, `entropy`, `idct`,
//! `upsample`; `arith` <- `entropy`; `upsample` <- `color` (which defines [`JpegPixels`]); this file uses them all, and nothing uses
//! this file (only the tests, which share its fixtures).

mod arith;
mod color;
mod entropy;
mod error;
mod idct;
mod markers;
mod state;
mod upsample;

pub(crate) use color::JpegPixels;
pub(crate) use error::JpegError;
use error::{invalid, Res};
use idct::idct_islow;
use state::{Decoder, Next};

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
/// most [`MAX_SCANS`](markers::MAX_SCANS) scans, and a frame above [`SMALL_FRAME_PIXELS`] must
/// come with at least one byte of input per 8 blocks ([`JpegError::TooLittleData`]). No complete,
/// real file reaches either. Within a scan, the blocks after the entropy-coded data ran out are only walked while a
/// restart marker could still resynchronise the decoder, so a scan costs in proportion to its data
/// (plus at most one pass over the frame per restart marker it holds). An arithmetic-coded scan
/// decodes on after its data (libjpeg feeds zeros) unless a bad code stopped it, so it walks the
/// frame once; its decoding work is bounded by `arith::decision_budget`
/// ([`JpegError::TooMuchWork`]).
pub(crate) fn decode_jpeg(bytes: &[u8], max_side: u32, max_pixels: u64) -> Result<DecodedJpeg, JpegError> {
    // Pillow only recognises data starting with SOI followed by another marker's 0xFF.
    if bytes.len() < 3 || bytes[..3] != [0xff, 0xd8, 0xff] {
        return invalid("not a JPEG file");
    }
    Decoder::new(bytes, max_side, max_pixels).run()
}

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
/// marker (both decode as grey blocks in libjpeg). Arithmetic coding breaks the premise (a flat
/// block can cost far less than a bit), and the rule is kept for it: a near-flat arithmetic-coded
/// frame above the floor is refused, which Pillow decodes as long as each scan fits in its 64 KiB
/// reads (see `entropy.rs` `start_scan`).
pub(crate) const SMALL_FRAME_PIXELS: u64 = 1 << 22;

// ------------------------------------------------------------------------------------------------
// The decoder

impl Decoder<'_> {
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
        if !self.progressive && !self.arithmetic {
            // jinit_huff_decoder: Motion-JPEG style files may omit the standard tables.
            self.std_huff_tables();
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
                self.end_scan(st);
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
            self.end_scan(st);
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
}

#[cfg(test)]
mod tests {
    use super::markers::MAX_SCANS;
    use super::*;

    pub(super) fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/preprocess/images").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// The offset of the first marker `m` (0xFF m).
    pub(super) fn marker_at(data: &[u8], m: u8) -> usize {
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
    pub(super) fn progressive(width: u16, height: u16, ncomp: u8, restart_interval: u16, scans: &[(u8, u8, &[u8])]) -> Vec<u8> {
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
    pub(super) fn decode_counted(b: &[u8]) -> (Res<DecodedJpeg>, u64, usize) {
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
