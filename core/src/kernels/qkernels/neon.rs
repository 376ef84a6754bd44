//! NEON. The same kernels are built twice over a 16-byte signed dot product: `Mull` uses only
//! ARMv8.0 instructions (`smull`, `smlal`, `sadalp`: 3 instructions per 16 products, where
//! `sdot` needs 1), `Sdot` the `dotprod` extension (ARMv8.2+, e.g. Cortex-A55/A75 and later,
//! Apple A11 and later).
use super::common::{f16_at, for_each_block, q4k_scale_min, Kernels, QFormat, LEVEL2, X};
use std::arch::aarch64::*;

/// Adds the sum of the 16 products `a[i]·b[i]` (|a|, |b| ≤ 127) into the lanes of `acc`.
trait Dot16 {
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

struct Mull;
impl Dot16 for Mull {
    #[inline(always)]
    unsafe fn dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // each i16 lane sums two products of at most 127·127: no overflow
        let p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        vpadalq_s16(acc, vmlal_s8(p, vget_high_s8(a), vget_high_s8(b)))
    }
}

struct Sdot;
impl Dot16 for Sdot {
    #[inline(always)]
    unsafe fn dot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // Only inlined into the `dotprod`-enabled entry points below.
        std::arch::asm!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b", acc = inout(vreg) acc, a = in(vreg) a, b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags));
        acc
    }
}

pub(super) static NEON: Kernels =
    Kernels { name: "neon", dot: [q8_0_neon, q4_0_neon, q4_1_neon, q4k_neon, q6k_neon], dot4: [None; 5] };
pub(super) static NEON_DOTPROD: Kernels =
    Kernels { name: "neon-dotprod", dot: [q8_0_sdot, q4_0_sdot, q4_1_sdot, q4k_sdot, q6k_sdot], dot4: [None; 5] };

// Safe entry points, reachable only through the kernel sets above, which `available` offers
// only when the CPU has NEON (and dotprod for the `_sdot` ones). (The module names this file by
// its absolute path, not `super`: `tools/module_deps.py` reads a macro as code of the file, where
// `super` is `mod.rs`.)
macro_rules! entry_points {
    ($module:ident, $features:literal, $dot:ty, $($name:ident => $imp:ident;)*) => {$(
        fn $name(w: &[u8], x: X) -> f32 {
            unsafe { $module::$name(w, x) }
        }
    )*
    mod $module {
        use crate::kernels::qkernels::neon::*;
        $(
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(w: &[u8], x: X) -> f32 { $imp::<$dot>(w, x) }
        )*
    }};
}
entry_points! { with_neon, "neon", Mull,
    q8_0_neon => q8_0;
    q4_0_neon => q4_0;
    q4_1_neon => q4_1;
    q4k_neon => q4k;
    q6k_neon => q6k;
}
entry_points! { with_dotprod, "neon,dotprod", Sdot,
    q8_0_sdot => q8_0;
    q4_0_sdot => q4_0;
    q4_1_sdot => q4_1;
    q4k_sdot => q4k;
    q6k_sdot => q6k;
}

#[inline(always)]
unsafe fn xq(x: &[[i8; 32]; 2], l: usize, half: usize) -> int8x16_t {
    vld1q_s8(x[l].as_ptr().add(16 * half))
}

/// `Σ a·x` over a 32-element block given as two 16-byte halves, both levels combined in f32.
#[inline(always)]
unsafe fn dot32<D: Dot16>(a0: int8x16_t, a1: int8x16_t, x: &[[i8; 32]; 2], two: bool) -> float32x4_t {
    let z = vdupq_n_s32(0);
    let s0 = vcvtq_f32_s32(D::dot(D::dot(z, a0, xq(x, 0, 0)), a1, xq(x, 0, 1)));
    if !two {
        return s0;
    }
    let s1 = D::dot(D::dot(z, a0, xq(x, 1, 0)), a1, xq(x, 1, 1));
    vfmaq_n_f32(s0, vcvtq_f32_s32(s1), LEVEL2)
}

/// `Σ a·x` over the 16 elements `half` of a block, both levels combined in f32.
#[inline(always)]
unsafe fn dot16<D: Dot16>(a: int8x16_t, x: &[[i8; 32]; 2], half: usize, two: bool) -> float32x4_t {
    let z = vdupq_n_s32(0);
    let s0 = vcvtq_f32_s32(D::dot(z, a, xq(x, 0, half)));
    if two {
        vfmaq_n_f32(s0, vcvtq_f32_s32(D::dot(z, a, xq(x, 1, half))), LEVEL2)
    } else {
        s0
    }
}

/// Low and high nibbles of 16 bytes, as signed bytes 0..15.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (int8x16_t, int8x16_t) {
    let v = vld1q_u8(p);
    (vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0xf))), vreinterpretq_s8_u8(vshrq_n_u8(v, 4)))
}

#[inline(always)]
unsafe fn q8_0<D: Dot16>(w: &[u8], x: X) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    for_each_block(QFormat::Q8_0, w, |i, d, _, qs| {
        let p = qs.as_ptr() as *const i8;
        let s = dot32::<D>(vld1q_s8(p), vld1q_s8(p.add(16)), &x.q[i], x.two);
        acc = vfmaq_n_f32(acc, s, d * x.d[i]);
    });
    vaddvq_f32(acc)
}

#[inline(always)]
unsafe fn q4<D: Dot16, const MIN: bool>(w: &[u8], x: X) -> f32 {
    let (mut acc, mut off) = (vdupq_n_f32(0.0), 0f32);
    let format = if MIN { QFormat::Q4_1 } else { QFormat::Q4_0 };
    for_each_block(format, w, |i, d, m, qs| {
        let (lo, hi) = nibbles(qs.as_ptr());
        let s = dot32::<D>(lo, hi, &x.q[i], x.two);
        acc = vfmaq_n_f32(acc, s, d * x.d[i]);
        off += if MIN { m * x.s[i] } else { -8.0 * d * x.s[i] };
    });
    vaddvq_f32(acc) + off
}

#[inline(always)]
unsafe fn q4_0<D: Dot16>(w: &[u8], x: X) -> f32 {
    q4::<D, false>(w, x)
}

#[inline(always)]
unsafe fn q4_1<D: Dot16>(w: &[u8], x: X) -> f32 {
    q4::<D, true>(w, x)
}

#[inline(always)]
unsafe fn q4k<D: Dot16>(w: &[u8], x: X) -> f32 {
    let (mut acc, mut off) = (vdupq_n_f32(0.0), 0f32);
    for (sb, b) in w.chunks_exact(144).enumerate() {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let sc = &b[4..16];
        for j in 0..4 {
            let (l0, h0) = nibbles(b.as_ptr().add(16 + 32 * j));
            let (l1, h1) = nibbles(b.as_ptr().add(32 + 32 * j));
            let (il, ih) = (8 * sb + 2 * j, 8 * sb + 2 * j + 1);
            let (scl, ml) = q4k_scale_min(sc, 2 * j);
            let (sch, mh) = q4k_scale_min(sc, 2 * j + 1);
            let sl = dot32::<D>(l0, l1, &x.q[il], x.two);
            let sh = dot32::<D>(h0, h1, &x.q[ih], x.two);
            acc = vfmaq_n_f32(acc, sl, d * scl as f32 * x.d[il]);
            acc = vfmaq_n_f32(acc, sh, d * sch as f32 * x.d[ih]);
            off -= dmin * (ml as f32 * x.s[il] + mh as f32 * x.s[ih]);
        }
    }
    vaddvq_f32(acc) + off
}

#[inline(always)]
unsafe fn q6k<D: Dot16>(w: &[u8], x: X) -> f32 {
    let mut acc = vdupq_n_f32(0.0);
    let (m4, m2, k32) = (vdupq_n_u8(0xf), vdupq_n_u8(0x30), vdupq_n_s8(32));
    for (sb, b) in w.chunks_exact(210).enumerate() {
        let d = f16_at(b, 208);
        let p = b.as_ptr();
        for h in 0..2 {
            for c in 0..2 {
                let ql0 = vld1q_u8(p.add(64 * h + 16 * c));
                let ql1 = vld1q_u8(p.add(64 * h + 32 + 16 * c));
                let qh = vld1q_u8(p.add(128 + 32 * h + 16 * c));
                let groups = [
                    vorrq_u8(vandq_u8(ql0, m4), vandq_u8(vshlq_n_u8(qh, 4), m2)),
                    vorrq_u8(vandq_u8(ql1, m4), vandq_u8(vshlq_n_u8(qh, 2), m2)),
                    vorrq_u8(vshrq_n_u8(ql0, 4), vandq_u8(qh, m2)),
                    vorrq_u8(vshrq_n_u8(ql1, 4), vandq_u8(vshrq_n_u8(qh, 2), m2)),
                ];
                for (k, g) in groups.into_iter().enumerate() {
                    let i = 8 * sb + 4 * h + k;
                    let q = vsubq_s8(vreinterpretq_s8_u8(g), k32);
                    let s = dot16::<D>(q, &x.q[i], c, x.two);
                    let sc = b[192 + 8 * h + 2 * k + c] as i8 as f32;
                    acc = vfmaq_n_f32(acc, s, d * x.d[i] * sc);
                }
            }
        }
    }
    vaddvq_f32(acc)
}
