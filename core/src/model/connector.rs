//! The connector (spec §5): pixel shuffle (space-to-depth by the scale factor r) followed by a
//! bias-free linear projection into the text model's width.

use super::layers::Linear;
use super::weights::Loader;
use candle_core::{Result, Tensor};

/// `model.connector`.
pub(crate) struct Connector {
    proj: Linear,
    /// Patches per side (n).
    n: usize,
    /// Scale factor (r).
    r: usize,
}

impl Connector {
    /// Loads `modality_projection.proj.weight` under `vb` (= `model.connector`).
    pub(crate) fn new(vision_hidden: usize, n: usize, r: usize, text_hidden: usize, vb: Loader) -> Result<Self> {
        let proj = vb.pp("modality_projection.proj").linear(vision_hidden * r * r, text_hidden, false)?;
        Ok(Self { proj, n, r })
    }

    /// `[b, n·n, D]` -> `[b, n²/r², text_hidden]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.proj.forward(&pixel_shuffle(x, self.n, self.r)?)
    }
}

/// `out[b, h2·(n/r)+w2, dh·(r·D) + dw·D + d] = x[b, (h2·r+dh)·n + (w2·r+dw), d]` (spec §5).
pub(crate) fn pixel_shuffle(x: &Tensor, n: usize, r: usize) -> Result<Tensor> {
    let (b, seq, d) = x.dims3()?;
    if seq != n * n || r == 0 || n / r * r != n {
        candle_core::bail!("pixel_shuffle: {seq} patches is not {n}x{n} or {n} is not a multiple of {r}")
    }
    let m = n / r;
    // (h2, dh, w2, dw, d) -> (h2, w2, dh, dw, d)
    x.reshape((b, m, r, m, r, d))?.permute((0, 1, 3, 2, 4, 5))?.contiguous()?.reshape((b, m * m, r * r * d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pixel_shuffle_matches_closed_form() {
        let (b, n, r, d) = (2usize, 6usize, 3usize, 4usize);
        let data: Vec<f32> = (0..b * n * n * d).map(|i| i as f32).collect();
        let x = Tensor::from_vec(data.clone(), (b, n * n, d), &Device::Cpu).unwrap();
        let y = pixel_shuffle(&x, n, r).unwrap();
        let m = n / r;
        assert_eq!(y.dims(), &[b, m * m, r * r * d]);
        let y: Vec<Vec<Vec<f32>>> = y.to_vec3().unwrap();
        for bi in 0..b {
            for h2 in 0..m {
                for w2 in 0..m {
                    for dh in 0..r {
                        for dw in 0..r {
                            for di in 0..d {
                                let src = data[(bi * n * n + (h2 * r + dh) * n + (w2 * r + dw)) * d + di];
                                assert_eq!(y[bi][h2 * m + w2][dh * r * d + dw * d + di], src);
                            }
                        }
                    }
                }
            }
        }
    }
}
