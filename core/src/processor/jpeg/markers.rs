//! Markers and headers (`jdmarker.c`): SOF, SOS (and the limit [`MAX_SCANS`]), DHT, DQT, DRI,
//! APPn (JFIF, Adobe, EXIF, XMP), the setup of the frame's components (`jdinput.c`,
//! `jdmaster.c`), and the colour space libjpeg guesses (`jdapimin.c`).

use super::error::{invalid, JpegError, Res};
use super::state::{ColorSpace, Comp, Decoder, HuffDef, Next, ARITH_TABLES, NATURAL};

/// The most scans (SOS markers) a file may hold; one more is [`JpegError::Invalid`]. libjpeg
/// accepts any number (every scan is a pass over the whole frame, so a few kilobytes of empty
/// scans cost seconds); libjpeg-turbo's own tools cap it on request (`djpeg -maxscans`,
/// `TJPARAM_SCANLIMIT`). Real files hold one scan per component (sequential) or about 10
/// (progressive: libjpeg's default script has 10 for colour, 6 for grey; mozjpeg's a few more).
pub(crate) const MAX_SCANS: u32 = 100;

impl Decoder<'_> {
    // --- markers (jdmarker.c) -------------------------------------------------------------------

    /// `read_markers`: processes markers up to the next SOS or EOI.
    pub(super) fn read_markers(&mut self) -> Res<Next> {
        loop {
            if self.r.marker == 0 {
                self.r.next_marker()?;
            }
            let m = self.r.marker;
            match m {
                0xd8 => return invalid("duplicate SOI marker"),
                0xc0..=0xc2 => self.get_sof(m == 0xc2, false)?,
                0xc9 | 0xca => self.get_sof(m == 0xca, true)?,
                0xc3 | 0xc5..=0xc7 | 0xc8 | 0xcb | 0xcd..=0xcf => {
                    if self.saw_sof {
                        return invalid("duplicate SOF marker");
                    }
                    let what = match m {
                        0xc3 | 0xcb => "lossless JPEG",
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
                0xcc => self.get_dac()?,
                // COM, DNL: skipped.
                0xfe | 0xdc => {
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

    /// `get_dac`: arithmetic-coding conditioning tables, the DC bounds L and U of tables 0..15
    /// and the AC threshold K of tables 16..31 (minus 16). libjpeg checks the segment even in a
    /// Huffman file, and refuses the file when a table index or a DC bound is out of range or the
    /// pairs overrun the segment.
    fn get_dac(&mut self) -> Res<()> {
        let mut length = self.r.u16()? as i64 - 2;
        while length > 0 {
            let index = self.r.byte()?;
            let val = self.r.byte()?;
            length -= 2;
            let index = index as usize;
            if index >= 2 * ARITH_TABLES {
                return invalid(format!("bogus DAC index {index}"));
            }
            if index >= ARITH_TABLES {
                self.arith_ac_k[index - ARITH_TABLES] = val;
            } else {
                self.arith_dc_l[index] = val & 15;
                self.arith_dc_u[index] = val >> 4;
                if val & 15 > val >> 4 {
                    return invalid(format!("bogus DAC value 0x{val:x}"));
                }
            }
        }
        if length != 0 {
            return invalid("bogus marker length");
        }
        Ok(())
    }

    /// `get_sof`: SOF0/1 (sequential), SOF2 (progressive), SOF9 / SOF10 (the same, arithmetic-coded).
    fn get_sof(&mut self, progressive: bool, arithmetic: bool) -> Res<()> {
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
        self.arithmetic = arithmetic;
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
            let (slot, idx) = if index & 0x10 != 0 { (&mut self.ac_defs, index - 0x10) } else { (&mut self.dc_defs, index) };
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
    pub(super) fn initial_setup(&mut self) -> Res<()> {
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

    /// `jdapimin.c` `default_decompress_parms`: the colour space libjpeg assumes.
    pub(super) fn color_space(&self) -> ColorSpace {
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
}

#[cfg(test)]
mod tests {
    use crate::processor::jpeg::tests::{fixture, marker_at};
    use crate::processor::jpeg::{decode_jpeg, JpegError};

    #[test]
    fn other_processes_are_unsupported() {
        let base = fixture("j420.jpg");
        let sof = marker_at(&base, 0xc0);
        for m in [0xc3u8, 0xc5, 0xcb, 0xcd] {
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

    /// DAC segments are checked as libjpeg checks them (the JPEG differential corpus found a DHT
    /// turned into a DAC by one flipped bit, which Pillow refuses).
    #[test]
    fn dac_segments_are_checked() {
        let base = fixture("j420.jpg");
        let sof = marker_at(&base, 0xc0);
        let with_dac = |body: &[u8]| {
            let mut b = base[..sof].to_vec();
            b.extend_from_slice(&[0xff, 0xcc]);
            b.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
            b.extend_from_slice(body);
            b.extend_from_slice(&base[sof..]);
            decode_jpeg(&b, 8192, 1 << 26)
        };
        // DC table 0 with L = 0, U = 1; AC table 16 with K = 5; an empty segment.
        assert!(with_dac(&[0x00, 0x10, 0x10, 0x05]).is_ok());
        assert!(with_dac(&[]).is_ok());
        // L > U, an index past 31, a pair running past the segment's end.
        for body in [&[0x01, 0x05][..], &[0x20, 0x00], &[0x00, 0x10, 0x01]] {
            assert!(matches!(with_dac(body), Err(JpegError::Invalid(_))), "{body:?}");
        }
    }
}
