//! Colour conversion (`jdcolor.c`'s YCbCr->RGB tables, libjpeg's YCCK->CMYK, Pillow's
//! `CMYK;I` unpacking and `cmyk2rgb`) and the assembly of the output pixels.

use super::error::Res;
use super::state::{ColorSpace, Decoder};
use super::upsample::{choose_upsampler, upsample_row, Up};

/// Decoded samples as Pillow hands them to `convert("RGB")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JpegPixels {
    /// One sample per pixel (Pillow mode `L`).
    Gray(Vec<u8>),
    /// Packed R, G, B (mode `RGB`, or mode `CMYK` already converted the way Pillow converts it).
    Rgb(Vec<u8>),
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

impl Decoder<'_> {
    // --- upsampling and colour conversion (jdsample.c, jdcolor.c, Pillow) ------------------------

    pub(super) fn output(&self, space: ColorSpace, planes: &[Vec<u8>]) -> Res<JpegPixels> {
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
