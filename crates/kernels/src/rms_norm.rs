//! RMSNorm: `y = x / sqrt(mean(x²) + eps) * weight` over the last dimension.

use crate::cpu;
use candle_core::{CpuStorage, CustomOp2, D, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// RMS-normalises `x` (..., d) over its last dimension and scales by `weight` (d).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    check(x, weight)?;
    if cpu::fused_ok(&[x, weight]) {
        x.contiguous()?
            .apply_op2(&weight.contiguous()?, RmsNorm { eps })
    } else {
        composite(x, weight, eps)
    }
}

/// The fused op. Backward recomputes `1/rms` per row (one pass over `x`) instead of saving it.
struct RmsNorm {
    eps: f32,
}

fn inv_rms(row: &[f32], eps: f32) -> f32 {
    (cpu::dot(row, row) / row.len() as f32 + eps).sqrt().recip()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (cpu::slice(xs, xl)?, cpu::slice(ws, wl)?);
        let d = w.len();
        let mut y = vec![0.0f32; x.len()];
        let chunk = d * cpu::rows_per_task(d);
        y.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .for_each(|(yc, xc)| {
                for (yr, xr) in yc.chunks_exact_mut(d).zip(xc.chunks_exact(d)) {
                    let r = inv_rms(xr, self.eps);
                    for i in 0..d {
                        yr[i] = xr[i] * r * w[i];
                    }
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    /// With `x̂ = x·r`, `g = dy·w`: `dx = r·(g − x̂·mean(g·x̂))`, `dw = Σ_rows dy·x̂`.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (xv, wv, dyv) = (cpu::view(x)?, cpu::view(w)?, cpu::view(&dy)?);
        let (xs, ws, dys) = (xv.get(), wv.get(), dyv.get());
        let d = ws.len();
        let mut dx = vec![0.0f32; xs.len()];
        let chunk = d * cpu::rows_per_task(d);
        let partial_dw: Vec<Vec<f32>> = dx
            .par_chunks_mut(chunk)
            .zip(xs.par_chunks(chunk).zip(dys.par_chunks(chunk)))
            .map(|(dxc, (xc, dyc))| {
                let mut dw = vec![0.0f32; d];
                let mut g = vec![0.0f32; d];
                for ((dxr, xr), dyr) in dxc
                    .chunks_exact_mut(d)
                    .zip(xc.chunks_exact(d))
                    .zip(dyc.chunks_exact(d))
                {
                    let r = inv_rms(xr, self.eps);
                    for i in 0..d {
                        g[i] = dyr[i] * ws[i];
                        dw[i] += dyr[i] * xr[i] * r;
                    }
                    let c = cpu::dot(&g, xr) * r * r / d as f32;
                    for i in 0..d {
                        dxr[i] = r * (g[i] - xr[i] * c);
                    }
                }
                dw
            })
            .collect();
        let mut dw = vec![0.0f32; d];
        for part in &partial_dw {
            for i in 0..d {
                dw[i] += part[i];
            }
        }
        Ok((Some(cpu::tensor(dx, x.shape())?), Some(cpu::tensor(dw, d)?)))
    }
}

fn check(x: &Tensor, weight: &Tensor) -> Result<()> {
    let d = x.dim(D::Minus1)?;
    if weight.dims() != [d] {
        bail!(
            "rms_norm: weight shape {:?} must be [{d}] to match x {:?}",
            weight.dims(),
            x.dims()
        );
    }
    Ok(())
}

/// Composite RMSNorm from candle ops; computes in f32 (f64 for f64) and returns `x`'s dtype.
pub fn composite(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    check(x, weight)?;
    let dtype = x.dtype();
    let xf = x.to_dtype(crate::compute_dtype(dtype))?;
    let inv = (xf.sqr()?.mean_keepdim(D::Minus1)? + f64::from(eps))?
        .sqrt()?
        .recip()?;
    let y = xf
        .broadcast_mul(&inv)?
        .broadcast_mul(&weight.to_dtype(xf.dtype())?)?;
    y.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_same, grad_check, rand_tensor};
    use candle_core::DType;

    #[test]
    fn composite_matches_definition() {
        let x = Tensor::new(&[[3.0f32, 4.0]], &candle_core::Device::Cpu).unwrap();
        let w = Tensor::new(&[1.0f32, 2.0], &candle_core::Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = composite(&x, &w, 0.0).unwrap().to_vec2().unwrap();
        let rms = (12.5f32).sqrt();
        assert!((y[0][0] - 3.0 / rms).abs() < 1e-6 && (y[0][1] - 8.0 / rms).abs() < 1e-6);
    }

    #[test]
    fn composite_gradients_match_finite_differences() {
        let x = rand_tensor((2, 3, 5), 1, DType::F64);
        let w = rand_tensor(5, 2, DType::F64);
        grad_check(|t| composite(&t[0], &t[1], 1e-5), &[x, w], 1e-5, 1e-6);
    }

    #[test]
    fn fused_gradients_match_finite_differences() {
        let x = rand_tensor((2, 3, 5), 1, DType::F32);
        let w = rand_tensor(5, 2, DType::F32);
        grad_check(|t| rms_norm(&t[0], &t[1], 1e-5), &[x, w], 1e-2, 1e-2);
    }

    #[test]
    fn fused_equals_composite_forward_and_backward() {
        let x = rand_tensor((3, 7, 40), 1, DType::F32);
        let w = rand_tensor(40, 2, DType::F32);
        assert_same(
            |t| rms_norm(&t[0], &t[1], 1e-5),
            |t| composite(&t[0], &t[1], 1e-5),
            &[x, w],
            1e-5,
        );
    }

    #[test]
    fn wrong_weight_shape_is_refused() {
        let x = rand_tensor((2, 4), 1, DType::F32);
        assert!(rms_norm(&x, &rand_tensor(3, 2, DType::F32), 1e-5).is_err());
    }
}
