//! Bidirectional multi-head attention over activations in their row layout (`[b, s, heads·hd]`,
//! as the projections write them), for the vision encoder.
//!
//! The generic path splits Q, K and V into `[b·heads, s, hd]` copies, lets candle allocate every
//! head group's score matrices and output, and copies the heads back into rows. Here each block
//! of 128 queries of a head is two gemm calls that read Q, K and V in place through their strides
//! and write the block's output columns straight into the `[b, s, heads·hd]` result: no copy of
//! the activations, one reused score buffer per thread that stays in L2, blocks spread over the
//! threads (each gemm on one thread, so the sums are the same whatever the thread count).

use crate::kernels::ops::exp;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `softmax(q·kᵀ·scale)·v` per head for `q`, `k`, `v` `[b, s, heads·hd]` (f32, CPU, each row
/// contiguous; rows may be strided, e.g. column ranges of one fused projection):
/// `[b, s, heads·hd]`, heads side by side in each row as the output projection reads them.
pub(crate) fn attention_rows(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, scale: f64) -> Result<Tensor> {
    q.apply_op3_no_bwd(k, v, &RowAttention { heads, scale: scale as f32 })
}

/// Queries per job: their scores (`s` keys × 128 × 4 bytes, 512 KB at 1024 patches) fit in a
/// core's L2 cache, on phones too.
const QUERY_BLOCK: usize = 128;

struct RowAttention {
    heads: usize,
    scale: f32,
}

/// The output pointer shared by the head jobs, each writing its own columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every job writes a distinct set of elements (its head's columns of its image).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// The f32 values of a `[b, s, d]` operand from its first element on, and its row stride: rows
/// may be further apart than `d` (a column range of a wider tensor) but not split.
fn rows<'a>(st: &'a CpuStorage, l: &Layout, what: &str) -> Result<(&'a [f32], usize)> {
    let (CpuStorage::F32(v), [b, s, d], [bs, rs, 1]) = (st, l.dims(), l.stride()) else {
        candle_core::bail!("attention: {what} must be f32 [b, s, d] with contiguous rows")
    };
    let v = &v[l.start_offset()..];
    let (b, s, d, bs, rs) = (*b, *s, *d, *bs, *rs);
    if b * s > 0 && ((s > 1 && bs != s * rs) || rs < d || (b * s - 1) * rs + d > v.len()) {
        candle_core::bail!("attention: {what} rows are not evenly strided: {:?} / {:?}", l.dims(), l.stride())
    }
    Ok((v, rs))
}

impl CustomOp3 for RowAttention {
    fn name(&self) -> &'static str {
        "row-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((q, qr), (k, kr), (v, vr)) = (rows(s1, l1, "q")?, rows(s2, l2, "k")?, rows(s3, l3, "v")?);
        let (b, s, d) = l1.shape().dims3()?;
        if l2.shape() != l1.shape() || l3.shape() != l1.shape() || self.heads == 0 || d % self.heads != 0 {
            candle_core::bail!("attention: q {:?}, k {:?}, v {:?}, {} heads", l1.dims(), l2.dims(), l3.dims(), self.heads)
        }
        let hd = d / self.heads;
        let mut out = vec![0f32; b * s * d];
        let o = Out(out.as_mut_ptr());
        // One job per image, head and block of queries: a block's scores (`s × QUERY_BLOCK`)
        // stay in the core's L2 cache through the softmax and the product with V, where a
        // whole head's `s × s` matrix (4 MB at 1024 patches) would go out to memory and back.
        let per_head = s.div_ceil(QUERY_BLOCK);
        let jobs: Vec<(usize, usize, usize)> =
            (0..b).flat_map(|i| (0..self.heads).flat_map(move |h| (0..per_head).map(move |j| (i, h, j)))).collect();
        jobs.par_iter().for_each_init(
            || vec![0f32; s * QUERY_BLOCK.min(s)],
            |st, &(i, h, j)| {
                let (r0, n) = (j * QUERY_BLOCK, QUERY_BLOCK.min(s - j * QUERY_BLOCK));
                let at = (i * s + r0) * d + h * hd;
                let (qa, ka, va) = ((i * s + r0) * qr + h * hd, i * s * kr + h * hd, i * s * vr + h * hd);
                let st = &mut st[..s * n];
                let (d, s, n, qr, kr, vr) = (d as isize, s as isize, n as isize, qr as isize, kr as isize, vr as isize);
                // SAFETY: `rows` checked that every operand row lies inside its slice; the output
                // is `[b, s, d]`; `st` holds s·n values; each job writes only its head's `hd`
                // columns of its `n` query rows of image `i`.
                unsafe {
                    // scores transposed, st[j, r] = Σ_c k[j, c]·q[r0 + r, c]: a column per query
                    gemm::gemm(
                        s as usize,
                        n as usize,
                        hd,
                        st.as_mut_ptr(),
                        1,
                        n,
                        false,
                        k.as_ptr().add(ka),
                        1,
                        kr,
                        q.as_ptr().add(qa),
                        qr,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                let inv = exp_columns(st, n as usize, self.scale);
                // out[r, c] = Σ_j p[r, j]·v[j, c], P read in place as a column-major matrix
                // (gemm packs no copy of it), then each row divided by its softmax sum
                unsafe {
                    gemm::gemm(
                        n as usize,
                        hd,
                        s as usize,
                        { o }.0.add(at),
                        1,
                        d,
                        false,
                        st.as_ptr(),
                        n,
                        1,
                        v.as_ptr().add(va),
                        1,
                        vr,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                    for (r, inv) in inv.iter().enumerate() {
                        std::slice::from_raw_parts_mut({ o }.0.add(at + r * d as usize), hd).iter_mut().for_each(|v| *v *= inv);
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from_dims(&[b, s, d])))
    }
}

/// For a row-major matrix of scores stored transposed, `n` columns wide (column `r` holds query
/// `r`'s scores, one row per key), replaces each column by `e^(v·scale − max)` and returns one
/// over each column's sum: softmax without its division. The passes run along the rows, so they
/// vectorize across queries.
fn exp_columns(st: &mut [f32], n: usize, scale: f32) -> Vec<f32> {
    let mut max = vec![f32::NEG_INFINITY; n];
    for row in st.chunks_exact_mut(n) {
        for (v, m) in row.iter_mut().zip(&mut max) {
            *v *= scale;
            *m = m.max(*v);
        }
    }
    // Sums in f32 over bands of rows (vectorized at full width), each band's sum then added in
    // f64: within a few f32 ulps of an all-f64 sum, at about half its cost.
    let (mut sum, mut band) = (vec![0f64; n], vec![0f32; n]);
    for rows in st.chunks_mut(SUM_BAND * n) {
        band.fill(0.0);
        for row in rows.chunks_exact_mut(n) {
            for ((v, m), s) in row.iter_mut().zip(&max).zip(&mut band) {
                *v = exp(*v - m);
                *s += *v;
            }
        }
        sum.iter_mut().zip(&band).for_each(|(s, b)| *s += *b as f64);
    }
    sum.iter().map(|s| (1.0 / s) as f32).collect()
}

/// Rows of scores summed in f32 before their sum joins the f64 total.
const SUM_BAND: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The row-layout kernel equals the split-heads computation (candle's batched matmuls and
    /// the fused softmax) to a few ulps, on two images of a non-square head count, in one block
    /// of queries and in several (the last one partial).
    #[test]
    fn row_attention_equals_split_heads() {
        for s in [77, 2 * QUERY_BLOCK + 44] {
            row_attention_case(s);
        }
    }

    fn row_attention_case(s: usize) {
        let dev = Device::Cpu;
        let (b, heads, hd) = (2usize, 3usize, 16usize);
        // fixed inputs (the two sums differ by a few ulps, and random draws reached 1.2e-6)
        let t = |seed: u64, mean: f32| {
            let mut x = seed;
            let vals = (0..b * s * heads * hd).map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                mean + ((x >> 40) as f32 / (1u64 << 24) as f32) * 3.4 - 1.7
            });
            Tensor::from_vec(vals.collect::<Vec<f32>>(), (b, s, heads * hd), &dev).unwrap()
        };
        let (q, k, v) = (t(1, 0.0), t(2, 0.5), t(3, -0.5));
        let got = attention_rows(&q, &k, &v, heads, 0.25).unwrap();
        let got_copy = got.copy().unwrap();
        let split = |x: &Tensor| {
            x.reshape((b, s, heads, hd))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape((b * heads, s, hd))
                .unwrap()
        };
        let want = crate::kernels::ops::attention(&split(&q), &split(&k), &split(&v), 0.25, None).unwrap();
        let want = want.reshape((b, heads, s, hd)).unwrap().transpose(1, 2).unwrap().reshape((b, s, heads * hd)).unwrap();
        let d = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(d < 4e-6, "max difference {d}");
        // the same from column ranges of one [b, s, 3·d] tensor
        let qkv = Tensor::cat(&[&q, &k, &v], 2).unwrap();
        let d3 = heads * hd;
        let (qn, kn, vn) = (qkv.narrow(2, 0, d3).unwrap(), qkv.narrow(2, d3, d3).unwrap(), qkv.narrow(2, 2 * d3, d3).unwrap());
        let fused = attention_rows(&qn, &kn, &vn, heads, 0.25).unwrap();
        let d = (fused - &got_copy).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(d, 0.0);
        let bad = Tensor::zeros((b, s, heads * hd + 1), candle_core::DType::F32, &dev).unwrap();
        assert!(attention_rows(&q, &bad, &v, heads, 0.25).is_err());
        assert!(attention_rows(&q, &k.transpose(1, 2).unwrap(), &v, heads, 0.25).is_err());
    }
}
#[cfg(test)]
mod tmp_bench {
    use super::*;
    use candle_core::Device;
    #[test]
    #[ignore]
    fn tmp_attn_speed() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (1, 1024, 3 * 768), &dev).unwrap();
        let (q, k, v) = (x.narrow(2, 0, 768).unwrap(), x.narrow(2, 768, 768).unwrap(), x.narrow(2, 1536, 768).unwrap());
        let _ = attention_rows(&q, &k, &v, 12, 0.125).unwrap();
        let mut best = f64::MAX;
        for _ in 0..10 {
            let t = std::time::Instant::now();
            std::hint::black_box(attention_rows(&q, &k, &v, 12, 0.125).unwrap());
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("attn best {:.2} ms = {:.1} GFLOPS", best * 1e3, 4.0 * 1024.0 * 1024.0 * 768.0 / best / 1e9);
    }
}
