//! Cross-entropy: fused log-softmax and negative log-likelihood, averaged over rows.

use candle_core::{D, DType, Result, Tensor, bail};

/// Mean negative log-likelihood of `targets` (n) u32 under `logits` (n, vocab); a scalar f32.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check(logits, targets)?;
    composite(logits, targets)
}

fn check(logits: &Tensor, targets: &Tensor) -> Result<()> {
    let (n, vocab) = logits.dims2()?;
    if n == 0 || vocab == 0 {
        bail!(
            "cross_entropy: logits {:?} must have at least one row and one class",
            logits.dims()
        );
    }
    if targets.dims() != [n] || targets.dtype() != DType::U32 {
        bail!(
            "cross_entropy: targets must be u32 of shape [{n}], got {:?} {:?}",
            targets.dtype(),
            targets.dims()
        );
    }
    Ok(())
}

/// Composite cross-entropy from candle ops (the reference and the GPU path); computes in f32 (f64 for f64).
pub fn composite(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check(logits, targets)?;
    let logits = logits.to_dtype(crate::compute_dtype(logits.dtype()))?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let picked = shifted.gather(&targets.unsqueeze(1)?, 1)?;
    (lse - picked)?.mean_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{grad_check, rand_tensor};
    use candle_core::Device;

    #[test]
    fn uniform_logits_give_log_vocab() {
        let logits = Tensor::zeros((4, 10), DType::F32, &Device::Cpu).unwrap();
        let targets = Tensor::new(&[0u32, 3, 9, 5], &Device::Cpu).unwrap();
        let loss = cross_entropy(&logits, &targets)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((loss - 10f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn composite_gradients_match_finite_differences() {
        let logits = (rand_tensor((4, 6), 1, DType::F64) * 4.0).unwrap();
        let targets = Tensor::new(&[0u32, 5, 2, 2], &Device::Cpu).unwrap();
        grad_check(|t| composite(&t[0], &targets), &[logits], 1e-5, 1e-6);
    }

    #[test]
    fn bad_targets_are_refused() {
        let logits = rand_tensor((2, 3), 1, DType::F32);
        assert!(cross_entropy(&logits, &Tensor::new(&[0u32], &Device::Cpu).unwrap()).is_err());
        assert!(cross_entropy(&logits, &Tensor::new(&[0i64, 1], &Device::Cpu).unwrap()).is_err());
    }
}
