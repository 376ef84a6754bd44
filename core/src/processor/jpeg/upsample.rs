//! Upsampling (`jdsample.c`): fancy (triangle-filter) upsampling for h2v1 / h1v2 / h2v2, box
//! replication otherwise.

use super::state::Comp;

#[derive(Clone, Copy)]
pub(super) enum Up {
    Full,
    H2V1Fancy,
    H2V1Box,
    H1V2Fancy,
    H2V2Fancy,
    H2V2Box,
    Int(usize, usize),
}

/// `jinit_upsampler` with `do_fancy_upsampling` on and full-size IDCTs.
pub(super) fn choose_upsampler(c: &Comp, max_h: usize, max_v: usize) -> Up {
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
pub(super) fn upsample_row<'p>(
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
