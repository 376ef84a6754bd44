//! AVX-512: the activation quantizer on 512-bit vectors, and the kernel set whose byte products
//! are AVX-512 VNNI's `vpdpbusd` on 256-bit vectors: the generic kernels of `avx2.rs` over [`Vnni`].
use super::avx2::{kernel_set, Isa};
use super::common::{Kernels, LEVEL2};
use std::arch::x86_64::*;

/// Sixteen lanes: two vectors a block.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn quantize_avx512<const TWO: bool>(
    x: &[f32],
    d: &mut [f32],
    s: &mut [f32],
    q: &mut [[[i8; 32]; 2]],
    nb: usize,
) {
    let sign = _mm512_set1_epi32(i32::MIN);
    let (lo, hi, half, one) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0), _mm512_set1_ps(0.5), _mm512_set1_ps(1.0));
    // `super::round` on 16 lanes: integer part, plus one from a remainder of a half on
    let round = |t: __m512| {
        let a = _mm512_abs_ps(t);
        let i = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(a);
        let r = _mm512_mask_add_ps(i, _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_sub_ps(a, i), half), i, one);
        _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), _mm512_and_si512(_mm512_castps_si512(t), sign)))
    };
    for b in 0..nb {
        let p = x.as_ptr().add(32 * b);
        let v = [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))];
        // `max_ps` returns its second operand when either is NaN: NaNs are skipped, as `f32::max` does
        let m = _mm512_max_ps(_mm512_abs_ps(v[1]), _mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_setzero_ps()));
        let db = _mm512_reduce_max_ps(m) / 127.0;
        let id = _mm512_set1_ps(if db > 0.0 { 1.0 / db } else { 0.0 });
        let (mut q0, mut q1) = ([_mm512_setzero_si512(); 2], [_mm512_setzero_si512(); 2]);
        for j in 0..2 {
            // NaN · id → −127 (second operand of max), as `super::quantize_blocks` does
            let t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v[j], id), lo), hi);
            let r0 = round(t);
            q0[j] = _mm512_cvttps_epi32(r0);
            if TWO {
                q1[j] = _mm512_cvttps_epi32(round(_mm512_mul_ps(_mm512_sub_ps(t, r0), _mm512_set1_ps(254.0))));
            }
        }
        let out = q.get_unchecked_mut(b);
        for (l, v) in [q0, q1].iter().enumerate() {
            _mm_storeu_si128(out[l].as_mut_ptr() as *mut __m128i, _mm512_cvtsepi32_epi8(v[0]));
            _mm_storeu_si128(out[l].as_mut_ptr().add(16) as *mut __m128i, _mm512_cvtsepi32_epi8(v[1]));
        }
        let sum = |v: [__m512i; 2]| _mm512_reduce_add_epi32(_mm512_add_epi32(v[0], v[1]));
        *d.get_unchecked_mut(b) = db;
        *s.get_unchecked_mut(b) = db * (sum(q0) as f32 + sum(q1) as f32 * LEVEL2);
    }
}

/// `vpdpbusd` (AVX-512 VNNI on 256-bit vectors): one instruction.
struct Vnni;
impl Isa for Vnni {
    #[inline(always)]
    unsafe fn dot_u8(a: __m256i, b: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b))
    }
}

kernel_set!(
    AVX512_VNNI,
    "avx512vnni",
    "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
    crate::kernels::qkernels::avx512::Vnni,
    avx512_vnni
);
