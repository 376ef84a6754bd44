//! The integer IDCT (`jidctint.c` as libjpeg-turbo's SIMD kernels compute it) and the block
//! smoothing of progressive files (`jdcoefct.c`).

use super::state::{Comp, Decoder};

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
pub(super) fn idct_islow(coef: &[i16], q: &[i16; 64], out: &mut [u8], stride: usize) {
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

impl Decoder<'_> {
    // --- block smoothing (jdcoefct.c) -----------------------------------------------------------

    /// `smoothing_ok` at the start of the (single) output pass, all input consumed.
    pub(super) fn smoothing_ok(&self) -> bool {
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
    pub(super) fn smooth_component(&self, c: &Comp, q: &[i16; 64], coefs: &[i16], plane: &mut [u8]) {
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
                -dc(1) - dc(2) + dc(4) + dc(5) - 3 * dc(6) + 13 * dc(7) - 13 * dc(9) + 3 * dc(10) - 3 * dc(11) + 38 * dc(12)
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
                -dc(1) - 3 * dc(2) - 3 * dc(3) - 3 * dc(4) - dc(5) - dc(6) + 13 * dc(7) + 38 * dc(8) + 13 * dc(9) - dc(10)
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
                dc(3) + 2 * dc(7) + 7 * dc(8) + 2 * dc(9) - 5 * dc(12) - 14 * dc(13) - 5 * dc(14)
                    + 2 * dc(17)
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
                dc(10) + dc(16) - 10 * dc(17) + 10 * dc(19) - dc(2) - dc(20) + dc(22) - dc(24) + dc(4) - dc(6) + 10 * dc(7)
                    - 10 * dc(9)
            };
        ws[9] = predict(num, q[4], bits[4]);
    }
    // AC02
    if bits[5] != 0 && ws[2] == 0 {
        let num = q00
            * if change_dc {
                2 * dc(7) - 5 * dc(8) + 2 * dc(9) + dc(11) + 7 * dc(12) - 14 * dc(13) + 7 * dc(14) + dc(15) + 2 * dc(17)
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
            * (-2 * dc(1) - 6 * dc(2) - 8 * dc(3) - 6 * dc(4) - 2 * dc(5) - 6 * dc(6) + 6 * dc(7) + 42 * dc(8) + 6 * dc(9)
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
