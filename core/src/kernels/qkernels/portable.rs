use super::common::{f16_at, for_each_block, q4k_scale_min, q6k_weight, QFormat, LEVEL2, X};

fn idot(w: impl Iterator<Item = i32>, x: &[i8]) -> i32 {
    w.zip(x).map(|(w, &x)| w * x as i32).sum()
}

/// `Σ w·(q₀ + q₁/254)` over the elements `range` of a two-level block.
fn xdot(w: impl Iterator<Item = i32> + Clone, x: &[[i8; 32]; 2], range: std::ops::Range<usize>, two: bool) -> f32 {
    let s = idot(w.clone(), &x[0][range.clone()]) as f32;
    if two {
        s + idot(w, &x[1][range]) as f32 * LEVEL2
    } else {
        s
    }
}

fn nibble_dot(qs: &[u8], x: &[[i8; 32]; 2], two: bool) -> f32 {
    xdot(qs.iter().map(|&q| (q & 0xf) as i32), x, 0..16, two) + xdot(qs.iter().map(|&q| (q >> 4) as i32), x, 16..32, two)
}

pub(super) fn q8_0(w: &[u8], x: X) -> f32 {
    let mut acc = 0f32;
    for_each_block(QFormat::Q8_0, w, |i, d, _, qs| {
        acc += d * x.d[i] * xdot(qs.iter().map(|&q| q as i8 as i32), &x.q[i], 0..32, x.two);
    });
    acc
}

pub(super) fn q4_0(w: &[u8], x: X) -> f32 {
    let mut acc = 0f32;
    for_each_block(QFormat::Q4_0, w, |i, d, _, qs| acc += d * (x.d[i] * nibble_dot(qs, &x.q[i], x.two) - 8.0 * x.s[i]));
    acc
}

pub(super) fn q4_1(w: &[u8], x: X) -> f32 {
    let mut acc = 0f32;
    for_each_block(QFormat::Q4_1, w, |i, d, m, qs| acc += d * x.d[i] * nibble_dot(qs, &x.q[i], x.two) + m * x.s[i]);
    acc
}

pub(super) fn q4k(w: &[u8], x: X) -> f32 {
    let mut acc = 0f32;
    for (sb, b) in w.chunks_exact(144).enumerate() {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        for j in 0..8 {
            let i = 8 * sb + j;
            let (sc, m) = q4k_scale_min(&b[4..16], j);
            let qs = &b[16 + 32 * (j / 2)..16 + 32 * (j / 2) + 32];
            let s = if j % 2 == 0 {
                xdot(qs.iter().map(|&q| (q & 0xf) as i32), &x.q[i], 0..32, x.two)
            } else {
                xdot(qs.iter().map(|&q| (q >> 4) as i32), &x.q[i], 0..32, x.two)
            };
            acc += d * sc as f32 * x.d[i] * s - dmin * m as f32 * x.s[i];
        }
    }
    acc
}

pub(super) fn q6k(w: &[u8], x: X) -> f32 {
    let mut acc = 0f32;
    for (sb, b) in w.chunks_exact(210).enumerate() {
        let d = f16_at(b, 208);
        for k in 0..8 {
            let i = 8 * sb + k;
            // 32 weights in two halves of 16 with their own scales
            for half in 0..2 {
                let i0 = 32 * k + 16 * half;
                let s = xdot((i0..i0 + 16).map(|e| q6k_weight(b, e)), &x.q[i], 16 * half..16 * half + 16, x.two);
                acc += d * x.d[i] * (b[192 + i0 / 16] as i8 as f32) * s;
            }
        }
    }
    acc
}
