//! Quantized weight matrices: GGML blocks (as llama.cpp stores them) multiplied by this crate's
//! kernels ([`super::qkernels`]), which pick their instructions from the CPU's features at run
//! time. candle's quantized matmul is not used: on aarch64 it executes `sdot` without checking for
//! it (SIGILL on Cortex-A53/A72-class cores), and its Q4_1 kernel is scalar.

use super::qkernels::{self, QFormat, XRows, X};
use super::qtiles::{self, TileKernels, TILE};
use super::spin_pool::SpinPool;
use super::weight_memory::{Memory, WeightBytes};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Below this many multiply-adds a product runs on the calling thread.
const PAR_MIN_WORK: usize = 1 << 15;
/// From this many activation rows on (prefill, vision) a product dequantizes the weights, a
/// chunk of rows at a time, and runs gemm in f32: compute-bound there, gemm's blocked f32 kernels
/// beat per-row integer dot products, and the activations stay exact.
const GEMM_MIN_ROWS: usize = 16;
/// Weights dequantized at a time for the gemm path (4 MB of f32).
const GEMM_CHUNK: usize = 1 << 20;

/// Rows ahead of the one being multiplied whose bytes are prefetched (matrix–vector products
/// stream the weights once, from L3 or memory).
const AHEAD: usize = 4;

/// Asks the CPU to bring `bytes` into its caches.
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: prefetching is a hint, valid for any address; SSE is baseline on x86_64.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr() as *const i8) };
    }
    #[cfg(target_arch = "aarch64")]
    for line in bytes.chunks(64) {
        // SAFETY: `prfm` is a hint in ARMv8.0, valid for any address.
        unsafe { std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) line.as_ptr(), options(nostack, readonly, preserves_flags)) };
    }
}

/// A `[rows, cols]` weight matrix in one GGML block format, row after row.
pub(crate) struct QMatrix {
    format: QFormat,
    rows: usize,
    cols: usize,
    data: WeightBytes,
    /// Quantize the activations in two levels (see [`XRows`]); true unless turned off.
    precise: bool,
    /// The kernel when `data` holds 16-row tiles ([`qtiles`], chosen at load where this CPU has
    /// tile kernels for the format); None for the row layout.
    tile: Option<&'static TileKernels>,
}

impl QMatrix {
    /// Quantizes the f32 matrix `w` `[rows, cols]` to `dtype` (Q8_0 or Q4_K, with candle's
    /// quantizer so the blocks match llama.cpp's), its bytes in `memory`.
    pub(crate) fn quantize(w: &Tensor, dtype: GgmlDType, memory: Memory) -> Result<Self> {
        Self::from_qtensor(&QTensor::quantize(w, dtype)?, memory)
    }

    /// Takes a quantized `[rows, cols]` tensor (e.g. read from a GGUF file). Formats with kernels
    /// here (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) keep their bytes (regrouped within each row for the
    /// kernels); the rarer ones (Q5_0, Q5_1,
    /// Q2_K, Q3_K, Q5_K, …) are dequantized and re-quantized to Q8_0, which is at least as precise.
    /// The bytes are held in `memory`.
    pub(crate) fn from_qtensor(q: &QTensor, memory: Memory) -> Result<Self> {
        let (rows, cols) = q.shape().dims2()?;
        let format = match q.dtype() {
            GgmlDType::Q8_0 => Some(QFormat::Q8_0),
            GgmlDType::Q4_0 => Some(QFormat::Q4_0),
            GgmlDType::Q4_1 => Some(QFormat::Q4_1),
            GgmlDType::Q4K => Some(QFormat::Q4K),
            GgmlDType::Q6K => Some(QFormat::Q6K),
            _ => None,
        };
        match format {
            Some(format) if cols % format.block_len() == 0 => {
                let src = q.data()?;
                // Every size in checked arithmetic: the dims may come from a hostile file, and
                // a wrapped product would size the storage far below what is written into it.
                let size = |a: usize, b: usize| {
                    a.checked_mul(b)
                        .ok_or_else(|| candle_core::Error::Msg(format!("{format:?} tensor [{rows}, {cols}] is too large")))
                };
                let row_bytes = size(cols / format.block_len(), format.block_bytes())?;
                if src.len() != size(rows, row_bytes)? {
                    candle_core::bail!("{format:?} tensor [{rows}, {cols}] has {} bytes", src.len())
                }
                if let Some(tile) = qtiles::kernel(format) {
                    let tb = size(TILE, row_bytes)?.max(1);
                    let data = WeightBytes::new(size(rows.div_ceil(TILE), tb)?, memory, |data| {
                        for (s, d) in src.chunks(tb).zip(data.chunks_exact_mut(tb)) {
                            qtiles::tile_rows(format, s, row_bytes, d);
                        }
                    })?;
                    return Ok(Self { format, rows, cols, data, precise: true, tile: Some(tile) });
                }
                let data = WeightBytes::new(src.len(), memory, |data| {
                    for (s, d) in src.chunks_exact(row_bytes.max(1)).zip(data.chunks_exact_mut(row_bytes.max(1))) {
                        qkernels::regroup_row(format, s, d);
                    }
                })?;
                Ok(Self { format, rows, cols, data, precise: true, tile: None })
            }
            _ if cols % 32 == 0 => Self::quantize(&q.dequantize(&Device::Cpu)?, GgmlDType::Q8_0, memory),
            _ => candle_core::bail!("cannot run a {:?} matrix of width {cols}", q.dtype()),
        }
    }

    /// The matrices' rows one after the other (`[Σ rows, cols]`), when they share format, width
    /// and activation precision, and tiled ones fill their tiles (all but the last); None
    /// otherwise.
    pub(crate) fn concat(parts: &[&QMatrix]) -> Option<QMatrix> {
        let first = parts.first()?;
        let same = parts.iter().all(|q| {
            (q.format, q.cols, q.precise, q.tile.is_some()) == (first.format, first.cols, first.precise, first.tile.is_some())
        });
        let whole = parts.iter().rev().skip(1).all(|q| q.rows % q.unit() == 0);
        if !same || !whole {
            return None;
        }
        let len = parts.iter().map(|q| q.data.len()).sum();
        // (where the joined copy cannot be allocated, the parts stay apart)
        let data = WeightBytes::new(len, first.data.memory(), |d| {
            let mut at = 0;
            for q in parts {
                d[at..at + q.data.len()].copy_from_slice(&q.data);
                at += q.data.len();
            }
        })
        .ok()?;
        Some(QMatrix { data, rows: parts.iter().map(|q| q.rows).sum(), ..**first })
    }

    /// Quantizes the activations of this matrix's products in one 8-bit level instead of two:
    /// half the integer work, for layers whose activations have no outlier channels (the vision
    /// encoder).
    pub(crate) fn single_level_activations(mut self) -> Self {
        self.precise = false;
        self
    }

    /// Rows (output width).
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held.
    pub(crate) fn size_in_bytes(&self) -> usize {
        self.data.len()
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.format.block_len() * self.format.block_bytes()
    }

    /// Row `r`'s bytes (row layout only).
    fn row(&self, r: usize) -> &[u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }

    /// Rows computed together: a tile, or one row.
    fn unit(&self) -> usize {
        if self.tile.is_some() {
            TILE
        } else {
            1
        }
    }

    /// Rows rounded up to whole units (the outputs a product computes).
    fn padded_rows(&self) -> usize {
        self.rows.div_ceil(self.unit()) * self.unit()
    }

    /// Row `r` dequantized into `out` (`cols` values).
    fn dequantize_into(&self, r: usize, out: &mut [f32]) {
        match self.tile {
            Some(_) => {
                let tb = TILE * self.row_bytes();
                qtiles::dequantize_tile_row(self.format, &self.data[r / TILE * tb..(r / TILE + 1) * tb], r % TILE, out)
            }
            None => qkernels::dequantize_row(self.format, self.row(r), out),
        }
    }

    /// Rows `first..first + out.len()` (whole units) times one activation row.
    fn rows_into(&self, first: usize, x: X, out: &mut [f32]) {
        let rb = self.row_bytes();
        match self.tile {
            Some(tile) => {
                let tb = TILE * rb;
                for (t, o) in (first / TILE..).zip(out.chunks_exact_mut(TILE)) {
                    o.copy_from_slice(&(tile.one)(&self.data[t * tb..(t + 1) * tb], x));
                }
            }
            None => {
                let dot = qkernels::kernels().dot(self.format);
                for (r, o) in (first..).zip(out.iter_mut()) {
                    if let Some(ahead) = self.data.get((r + AHEAD) * rb..(r + AHEAD + 1) * rb) {
                        prefetch(ahead);
                    }
                    *o = dot(&self.data[r * rb..(r + 1) * rb], x);
                }
            }
        }
    }

    /// `x · selfᵀ` for `x` `[m, cols]` (row-major): `[m, rows]`. One row goes to
    /// [`Self::matvec_many`]; tiled matrices run longer products on the tile kernels in bands
    /// of rows ([`Self::matmul_tiles`]), a few rows one by one; in the row layout, up to [`GEMM_MIN_ROWS`] rows the activations
    /// are quantized to 8-bit blocks of 32 and weight rows are split over rayon's pool, and from
    /// there on the weights are dequantized for gemm.
    pub(crate) fn matmul(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let (n, k) = (self.rows, self.cols);
        debug_assert_eq!(x.len(), m * k);
        if m == 1 {
            return Ok(Self::matvec_many(&[self], x)?.pop().expect("one matrix"));
        }
        if let Some(tile) = self.tile {
            if m >= 4 * rayon::current_num_threads() {
                return Ok(self.matmul_tiles(tile, x, m));
            }
            // Too few rows for a band per thread: one row at a time, each across all the tiles.
            let mut out = Vec::with_capacity(m * n);
            for s in 0..m {
                out.extend(Self::matvec_many(&[self], &x[s * k..(s + 1) * k])?.concat());
            }
            return Ok(out);
        }
        if m >= GEMM_MIN_ROWS {
            return self.matmul_dequantized(x, m);
        }
        let parallel = rayon::current_num_threads() > 1 && m * n * k >= 2 * PAR_MIN_WORK;
        let xq = XRows::quantize(x, m, k, self.precise, parallel && m > 1);
        let dot = qkernels::kernels().dot(self.format);
        let dot4 = qkernels::kernels().dot4(self.format);
        // Output transposed, `[n, m]`, so each task owns whole rows of it.
        let mut out_t = vec![0f32; n * m];
        let task = |first: usize, o: &mut [f32]| {
            // (m < GEMM_MIN_ROWS: all activation rows stay in L1 while a weight row is used)
            for (r, o) in o.chunks_exact_mut(m).enumerate() {
                let w = self.row(first + r);
                let mut t = 0;
                if let Some(dot4) = dot4 {
                    while t + 4 <= m {
                        o[t..t + 4].copy_from_slice(&dot4(w, [xq.row(t), xq.row(t + 1), xq.row(t + 2), xq.row(t + 3)]));
                        t += 4;
                    }
                }
                for (o, t) in o[t..m].iter_mut().zip(t..) {
                    *o = dot(w, xq.row(t));
                }
            }
        };
        if parallel {
            let per = n.div_ceil(rayon::current_num_threads() * 4).max(PAR_MIN_WORK.div_ceil(m * k));
            out_t.par_chunks_mut(per * m).enumerate().for_each(|(i, o)| task(i * per, o));
        } else {
            task(0, &mut out_t);
        }
        let mut out = vec![0f32; m * n];
        for (r, col) in out_t.chunks_exact(m).enumerate() {
            for (t, v) in col.iter().enumerate() {
                out[t * n + r] = *v;
            }
        }
        Ok(out)
    }

    /// [`Self::matmul`] on tiles: the activations are quantized (in the matrix's levels) and
    /// each thread takes a band of activation rows through every tile, four rows per pass while
    /// the tile sits in L1, writing whole output rows.
    fn matmul_tiles(&self, tile: &TileKernels, x: &[f32], m: usize) -> Vec<f32> {
        let (n, k) = (self.rows, self.cols);
        let threads = rayon::current_num_threads();
        let parallel = threads > 1 && m * n * k >= 2 * PAR_MIN_WORK;
        let xq = XRows::quantize(x, m, k, self.precise, parallel);
        let tb = TILE * self.row_bytes();
        let mut out = vec![0f32; m * n];
        let band = |first: usize, o: &mut [f32]| {
            let rows = o.len() / n.max(1);
            for (t, w) in self.data.chunks_exact(tb.max(1)).enumerate() {
                let (r0, width) = (t * TILE, TILE.min(n - t * TILE));
                let mut s = 0;
                while s + 4 <= rows {
                    let x4 = [xq.row(first + s), xq.row(first + s + 1), xq.row(first + s + 2), xq.row(first + s + 3)];
                    for (i, y) in (tile.four)(w, x4).iter().enumerate() {
                        o[(s + i) * n + r0..(s + i) * n + r0 + width].copy_from_slice(&y[..width]);
                    }
                    s += 4;
                }
                for s in s..rows {
                    let y = (tile.one)(w, xq.row(first + s));
                    o[s * n + r0..s * n + r0 + width].copy_from_slice(&y[..width]);
                }
            }
        };
        if parallel {
            let per = m.div_ceil(threads * 4).next_multiple_of(4);
            out.par_chunks_mut((per * n).max(1)).enumerate().for_each(|(i, o)| band(i * per, o));
        } else {
            band(0, &mut out);
        }
        out
    }

    /// `x · Mᵀ` for one row `x` and each matrix `M` of `mats` (same width): the activations are
    /// quantized once and the rows of all the matrices are split over the decode pool
    /// ([`SpinPool`]) in one pass, so a decode step pays one dispatch for Q, K and V together. Matrices that disagree on the
    /// activation precision are run one by one.
    pub(crate) fn matvec_many(mats: &[&QMatrix], x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let k = x.len();
        let Some(first) = mats.first() else { return Ok(Vec::new()) };
        if mats.iter().any(|q| q.cols != k) {
            candle_core::bail!(
                "matvec: a row of {k} against matrices of widths {:?}",
                mats.iter().map(|q| q.cols).collect::<Vec<_>>()
            )
        }
        if mats.iter().any(|q| q.precise != first.precise) {
            return mats.iter().map(|q| q.matmul(x, 1)).collect();
        }
        // Each matrix's outputs (padded to whole units), cut into chunks.
        let mut outs: Vec<Vec<f32>> = mats.iter().map(|q| vec![0f32; q.padded_rows()]).collect();
        let total: usize = outs.iter().map(Vec::len).sum();
        let mut chunks: Vec<(&QMatrix, usize, &mut [f32])> = Vec::with_capacity(16);
        let mut split = Split::new(total, k);
        for (q, o) in mats.iter().zip(outs.iter_mut()) {
            let (mut rest, mut first) = (o.as_mut_slice(), 0);
            while !rest.is_empty() {
                let n = split.next(q.unit(), rest.len());
                let (c, r) = std::mem::take(&mut rest).split_at_mut(n);
                chunks.push((*q, first, c));
                (first, rest) = (first + n, r);
            }
        }
        XRows::with_row(x, first.precise, |xr| {
            split.run(chunks, &|(q, first, o): (&QMatrix, usize, &mut [f32])| q.rows_into(first, xr, o))
        });
        Ok(outs
            .into_iter()
            .zip(mats)
            .map(|(mut o, q)| {
                o.truncate(q.rows);
                o
            })
            .collect())
    }

    /// `x · Aᵀ` combined with `x · Bᵀ` by `f(a_rows, b_rows)` (which updates `a_rows` in place),
    /// for one row `x` and two matrices of one shape and layout (SwiGLU's gate and up): the
    /// activations are quantized once, and each task of the decode pool computes the same rows
    /// of both and combines them while they are in L1, so the combination costs no serial pass.
    /// Returns the combined rows; matrices that differ in shape or layout are an error.
    pub(crate) fn matvec_pair(a: &QMatrix, b: &QMatrix, x: &[f32], f: &(dyn Fn(&mut [f32], &[f32]) + Sync)) -> Result<Vec<f32>> {
        let k = x.len();
        let layout = |q: &QMatrix| (q.rows, q.cols, q.unit(), q.precise);
        if layout(a) != layout(b) || a.cols != k {
            candle_core::bail!("matvec_pair: {:?} and {:?} against a row of {k}", layout(a), layout(b))
        }
        let (mut out, mut other) = (vec![0f32; a.padded_rows()], vec![0f32; a.padded_rows()]);
        let mut chunks: Vec<(usize, &mut [f32], &mut [f32])> = Vec::with_capacity(16);
        // each row costs two rows' work
        let mut split = Split::new(out.len(), 2 * k);
        let (mut ra, mut rb, mut first) = (out.as_mut_slice(), other.as_mut_slice(), 0);
        while !ra.is_empty() {
            let n = split.next(a.unit(), ra.len());
            let ((ca, ta), (cb, tb)) = (std::mem::take(&mut ra).split_at_mut(n), std::mem::take(&mut rb).split_at_mut(n));
            chunks.push((first, ca, cb));
            (first, ra, rb) = (first + n, ta, tb);
        }
        XRows::with_row(x, a.precise, |xr| {
            split.run(chunks, &|(first, oa, ob): (usize, &mut [f32], &mut [f32])| {
                a.rows_into(first, xr, oa);
                b.rows_into(first, xr, ob);
                f(oa, ob);
            })
        });
        out.truncate(a.rows);
        Ok(out)
    }

    /// [`Self::matmul`] by gemm over dequantized chunks of weight rows.
    fn matmul_dequantized(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        let (n, k) = (self.rows, self.cols);
        let xt = Tensor::from_slice(x, (m, k), &Device::Cpu)?;
        let chunk = (GEMM_CHUNK / k.max(1)).clamp(1, n.max(1));
        let mut wbuf = vec![0f32; chunk * k];
        let mut out = vec![0f32; m * n];
        for r0 in (0..n).step_by(chunk) {
            let c = chunk.min(n - r0);
            wbuf[..c * k]
                .par_chunks_mut(k.max(1))
                .enumerate()
                .for_each(|(i, o)| qkernels::dequantize_row(self.format, self.row(r0 + i), o));
            let w = Tensor::from_slice(&wbuf[..c * k], (c, k), &Device::Cpu)?;
            let y: Vec<f32> = xt.matmul(&w.t()?)?.flatten_all()?.to_vec1()?;
            for (t, yr) in y.chunks_exact(c).enumerate() {
                out[t * n + r0..t * n + r0 + c].copy_from_slice(yr);
            }
        }
        Ok(out)
    }

    /// Rows `ids`, dequantized to f32 `[ids.len(), cols]`.
    pub(crate) fn rows_f32(&self, ids: &[u32]) -> Result<Tensor> {
        let mut out = vec![0f32; ids.len() * self.cols];
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(self.cols)) {
            if id as usize >= self.rows {
                candle_core::bail!("row {id} out of range for a table of {} rows", self.rows)
            }
            self.dequantize_into(id as usize, o);
        }
        Tensor::from_vec(out, (ids.len(), self.cols), &Device::Cpu)
    }

    /// The whole matrix in f32.
    #[cfg(test)]
    pub(crate) fn dequantize(&self) -> Result<Tensor> {
        self.rows_f32(&(0..self.rows as u32).collect::<Vec<_>>())
    }
}

impl CustomOp1 for QMatrix {
    fn name(&self) -> &'static str {
        "qmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("qmatmul: needs contiguous f32"),
        };
        let mut dims = layout.dims().to_vec();
        match dims.last_mut() {
            Some(k) if *k == self.cols => *k = self.rows,
            _ => candle_core::bail!("qmatmul: input {dims:?} against a [{}, {}] matrix", self.rows, self.cols),
        }
        let y = self.matmul(x, x.len() / self.cols)?;
        Ok((CpuStorage::F32(y), Shape::from_dims(&dims)))
    }
}

/// The kernel set the quantized matrices run on this CPU: `avx2`, `neon-dotprod`, `neon` (arm64
/// cores without the dotprod extension, e.g. Cortex-A53) or `portable`.
pub fn quantized_kernels() -> &'static str {
    qkernels::kernels().name
}

/// How a decode product's outputs are cut into chunks for the decode pool: guided chunks, each
/// a share (1/threads) of the work still left, down to a floor, so the threads finish together
/// without paying a handout per tile. Long chunks pay: a share of 1/(2·threads) made 9 chunks
/// of a 576-row product instead of 6 and decode 5 % slower (each chunk restarts the weight
/// stream cold). Serial (one chunk) when the product is too small to split.
struct Split {
    threads: usize,
    parallel: bool,
    /// Rows of work not yet handed out.
    left: usize,
    floor: usize,
}

impl Split {
    /// `rows` outputs of `work` multiply-adds each.
    fn new(rows: usize, work: usize) -> Self {
        let threads = SpinPool::global().threads();
        let parallel = threads > 1 && rows * work >= 2 * PAR_MIN_WORK;
        Self { threads, parallel, left: rows, floor: (PAR_MIN_WORK / 2).div_ceil(work.max(1)) }
    }

    /// The next chunk's length: whole `unit`s, at most `rest`.
    fn next(&mut self, unit: usize, rest: usize) -> usize {
        let want = if self.parallel { (self.left / self.threads).max(self.floor) } else { rest };
        let n = want.next_multiple_of(unit).min(rest);
        self.left = self.left.saturating_sub(n);
        n
    }

    /// Runs `task` on every chunk, on the decode pool when parallel (chunks taken by whichever
    /// thread is free).
    fn run<T: Send>(&self, chunks: Vec<T>, task: &(dyn Fn(T) + Sync)) {
        if self.parallel {
            SpinPool::global().for_each(chunks, task);
        } else {
            chunks.into_iter().for_each(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threaded, tiled product equals the f32 product with the dequantized weights (the
    /// two-level activations keep it within ~1e-5 even with SmolLM2-like outlier channels), for
    /// every shape class (one row, a few rows, more rows than a tile, a partial group, a GGUF-only
    /// format).
    #[test]
    fn matmul_matches_f32_product_with_dequantized_weights() {
        let dev = Device::Cpu;
        for (dtype, k) in [
            (GgmlDType::Q8_0, 96),
            (GgmlDType::Q4K, 512),
            (GgmlDType::Q4_1, 64),
            (GgmlDType::Q4_1, 576),
            (GgmlDType::Q8_0, 576),
            (GgmlDType::Q5_0, 64),
        ] {
            let w = Tensor::randn(0f32, 0.1, (300, k), &dev).unwrap();
            let q = QMatrix::from_qtensor(&QTensor::quantize(&w, dtype).unwrap(), Memory::Packed).unwrap();
            let wd = q.dequantize().unwrap();
            for m in [1usize, 3, 7, 15, 37] {
                let mut xv: Vec<f32> = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                xv.iter_mut().step_by(37).for_each(|v| *v *= 300.0);
                let x = Tensor::from_vec(xv, (m, k), &dev).unwrap();
                let got =
                    Tensor::from_vec(q.matmul(&x.flatten_all().unwrap().to_vec1().unwrap(), m).unwrap(), (m, 300), &dev).unwrap();
                let want = x.matmul(&wd.t().unwrap()).unwrap();
                let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                let d = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(d / scale < 1e-4, "{dtype:?} m={m}: {d} vs {scale}");
            }
        }
        // Q5_0 has no kernel here: it became Q8_0.
        let w = Tensor::randn(0f32, 0.1, (4, 64), &dev).unwrap();
        let q = QMatrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q5_0).unwrap(), Memory::Own).unwrap();
        assert_eq!(q.format, QFormat::Q8_0);
        assert!(q.rows_f32(&[4]).is_err());
    }

    /// Dims whose byte size wraps (as a crafted GGUF can declare: `(2^62 + 1) · 68` bytes wraps
    /// to the 68 a one-row tensor holds) are refused, never sized from the wrapped product.
    #[test]
    fn wrapping_dims_are_refused() {
        use candle_core::quantized::QStorage;
        let w = Tensor::randn(0f32, 0.1, (1, 64), &Device::Cpu).unwrap();
        let bytes = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap().data().unwrap().to_vec();
        assert_eq!(bytes.len(), 68);
        for rows in [(1usize << 62) + 1, usize::MAX / 64] {
            let storage = QStorage::from_data(std::borrow::Cow::Owned(bytes.clone()), &Device::Cpu, GgmlDType::Q8_0).unwrap();
            let q = QTensor::new(storage, (rows, 64)).unwrap();
            for memory in [Memory::Packed, Memory::Own] {
                let r = QMatrix::from_qtensor(&q, memory);
                assert!(r.is_err(), "[{rows}, 64] in {memory:?} was accepted");
            }
        }
    }

    /// A pair product equals the two products combined afterwards, bit for bit, split over the
    /// pool or not (300 rows: a partial tile; 1536: several chunks per thread); shapes that
    /// differ are refused.
    #[test]
    fn pair_products_equal_separate_ones() {
        let dev = Device::Cpu;
        let combine = |a: &mut [f32], b: &[f32]| a.iter_mut().zip(b).for_each(|(a, b)| *a = *a * 0.5 - b);
        for (dtype, rows, k) in
            [(GgmlDType::Q4_1, 300, 64), (GgmlDType::Q4_1, 1536, 576), (GgmlDType::Q8_0, 1536, 576), (GgmlDType::Q4K, 40, 256)]
        {
            let m = |seed: f32| {
                let w = (Tensor::randn(0f32, 0.1, (rows, k), &dev).unwrap() + seed as f64).unwrap();
                QMatrix::from_qtensor(&QTensor::quantize(&w, dtype).unwrap(), Memory::Own).unwrap()
            };
            let (a, b) = (m(0.0), m(0.01));
            let x: Vec<f32> = Tensor::randn(0f32, 1.0, k, &dev).unwrap().to_vec1().unwrap();
            let [mut want, yb]: [Vec<f32>; 2] = QMatrix::matvec_many(&[&a, &b], &x).unwrap().try_into().unwrap();
            combine(&mut want, &yb);
            assert_eq!(QMatrix::matvec_pair(&a, &b, &x, &combine).unwrap(), want, "{dtype:?} {rows}x{k}");
        }
        let m = |rows: usize| {
            let w = Tensor::randn(0f32, 0.1, (rows, 64), &dev).unwrap();
            QMatrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0).unwrap(), Memory::Own).unwrap()
        };
        let (a, b) = (m(32), m(16));
        assert!(QMatrix::matvec_pair(&a, &b, &[0.0; 64], &combine).is_err());
    }
}
