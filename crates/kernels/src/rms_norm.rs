//! RMSNorm: `y = x / sqrt(mean(x²) + eps) * weight` over the last dimension.

use candle_core::{D, Result, Tensor, bail};

/// RMS-normalises `x` (..., d) over its last dimension and scales by `weight` (d).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f32) -> Result<Tensor> {
    check(x, weight)?;
    composite(x, weight, eps)
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
    use crate::testutil::{grad_check, rand_tensor};
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
    fn wrong_weight_shape_is_refused() {
        let x = rand_tensor((2, 4), 1, DType::F32);
        assert!(rms_norm(&x, &rand_tensor(3, 2, DType::F32), 1e-5).is_err());
    }
}
