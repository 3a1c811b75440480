//! Cross-entropy: fused log-softmax and negative log-likelihood, averaged over rows.

use crate::cpu;
use candle_core::{CpuStorage, CustomOp2, D, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Mean negative log-likelihood of `targets` (n) u32 under `logits` (n, vocab); a scalar f32.
/// A target outside the vocabulary is an error.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check(logits, targets)?;
    if cpu::fused_ok(&[logits]) && targets.device().is_cpu() {
        logits
            .contiguous()?
            .apply_op2(&targets.contiguous()?, CrossEntropy)
    } else {
        composite(logits, targets)
    }
}

/// The fused op: log-softmax and NLL in one pass per row. Backward recomputes each row's
/// log-sum-exp (one extra read of the logits) rather than keeping n floats alive in the graph.
struct CrossEntropy;

/// `max + ln Σ exp(x − max)` of one row.
pub(crate) fn log_sum_exp(row: &[f32]) -> f32 {
    let max = cpu::max(row);
    max + cpu::sum_exp(row, max).ln()
}

pub(crate) fn u32_targets<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    vocab: usize,
) -> Result<&'a [u32]> {
    let (CpuStorage::U32(data), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
        bail!("cross_entropy: targets must be contiguous u32");
    };
    let targets = &data[start..end];
    if let Some(bad) = targets.iter().find(|&&t| t as usize >= vocab) {
        bail!(
            "cross_entropy: target {bad} is outside the vocabulary of {vocab}; check the tokenizer"
        );
    }
    Ok(targets)
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        ls: &CpuStorage,
        ll: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let logits = cpu::slice(ls, ll)?;
        let (n, vocab) = ll.shape().dims2()?;
        let targets = u32_targets(ts, tl, vocab)?;
        let losses: Vec<f32> = logits
            .par_chunks(vocab)
            .zip(targets.par_iter())
            .map(|(row, &t)| log_sum_exp(row) - row[t as usize])
            .collect();
        let mean = losses.iter().map(|&l| f64::from(l)).sum::<f64>() / n as f64;
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    /// `d logits = (softmax(logits) − onehot(target)) · dy / n`.
    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, vocab) = logits.dims2()?;
        let scale = dy.to_scalar::<f32>()? / n as f32;
        let targets = targets.to_vec1::<u32>()?;
        let lv = cpu::view(logits)?;
        let mut grad = vec![0.0f32; n * vocab];
        grad.par_chunks_mut(vocab)
            .zip(lv.get().par_chunks(vocab))
            .zip(targets.par_iter())
            .for_each(|((gr, row), &t)| {
                cpu::exp_scaled(row, log_sum_exp(row), scale, gr);
                gr[t as usize] -= scale;
            });
        Ok((Some(cpu::tensor(grad, (n, vocab))?), None))
    }
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
    use crate::testutil::{assert_same, grad_check, rand_tensor};
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
    fn fused_gradients_match_finite_differences() {
        let logits = (rand_tensor((4, 6), 1, DType::F32) * 4.0).unwrap();
        let targets = Tensor::new(&[0u32, 5, 2, 2], &Device::Cpu).unwrap();
        grad_check(|t| cross_entropy(&t[0], &targets), &[logits], 1e-2, 1e-2);
    }

    #[test]
    fn fused_equals_composite_forward_and_backward() {
        let logits = (rand_tensor((9, 300), 1, DType::F32) * 8.0).unwrap();
        let targets = Tensor::new(&[0u32, 299, 2, 7, 150, 3, 3, 0, 1], &Device::Cpu).unwrap();
        let (f, c) = (
            |t: &[Tensor]| cross_entropy(&t[0], &targets),
            |t: &[Tensor]| composite(&t[0], &targets),
        );
        assert_same(f, c, &[logits], 1e-5);
    }

    #[test]
    fn out_of_vocabulary_target_is_an_error() {
        let logits = rand_tensor((2, 3), 1, DType::F32);
        assert!(cross_entropy(&logits, &Tensor::new(&[0u32, 3], &Device::Cpu).unwrap()).is_err());
    }

    #[test]
    fn bad_targets_are_refused() {
        let logits = rand_tensor((2, 3), 1, DType::F32);
        assert!(cross_entropy(&logits, &Tensor::new(&[0u32], &Device::Cpu).unwrap()).is_err());
        assert!(cross_entropy(&logits, &Tensor::new(&[0i64, 1], &Device::Cpu).unwrap()).is_err());
    }
}
