//! The LM head and cross-entropy in one op: `mean NLL(targets | x · weightᵀ)`.
//!
//! Separately, the (n, vocab) logits are the largest tensor of a training step (32 MiB for the
//! `tiny` preset at batch 8 × 128) and candle's backward touches them five times: the softmax
//! gradient, a zero-filled accumulator, the sum into it, and the two products. Fused, forward turns
//! the logits into probabilities in place and keeps them; backward subtracts the one-hot targets
//! (n writes) and feeds the probabilities straight to the two products, with the `1/n` folded in.

use std::sync::Mutex;

use crate::cpu;
use crate::cross_entropy::{self, log_sum_exp, u32_targets};
use crate::matmul::{Mat, matmul_par};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Mean negative log-likelihood of `targets` (n) u32 under the logits `x · weightᵀ`, with `x`
/// (n, d) and `weight` (vocab, d) — a bias-free linear layer's weight. Equals
/// `cross_entropy(&x.matmul(&weight.t()?)?, targets)`, computed without a logits node in the
/// graph on the CPU. A target outside the vocabulary is an error.
pub fn linear_cross_entropy(x: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check(x, weight, targets)?;
    if cpu::fused_ok(&[x, weight]) && targets.device().is_cpu() {
        let op = LinearCrossEntropy {
            probs: Mutex::new(None),
        };
        x.contiguous()?
            .apply_op3(&weight.contiguous()?, &targets.contiguous()?, op)
    } else {
        composite(x, weight, targets)
    }
}

fn check(x: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<()> {
    let (_, d) = x.dims2()?;
    let (_, dw) = weight.dims2()?;
    if d != dw {
        bail!(
            "linear_cross_entropy: x {:?} and weight {:?} must share the last dimension",
            x.dims(),
            weight.dims()
        );
    }
    if targets.dtype() != DType::U32 {
        bail!(
            "linear_cross_entropy: targets must be u32, got {:?}",
            targets.dtype()
        );
    }
    Ok(())
}

/// Composite version from candle ops (the reference and the GPU path).
pub fn composite(x: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check(x, weight, targets)?;
    cross_entropy::composite(&x.matmul(&weight.t()?)?, targets)
}

/// The fused op. It keeps the softmax probabilities from forward to backward (the op is built
/// per call, so one forward pairs with at most one backward): they cost the same memory the
/// logits tensor would, and recomputing them would cost a third product.
struct LinearCrossEntropy {
    probs: Mutex<Option<Vec<f32>>>,
}

impl CustomOp3 for LinearCrossEntropy {
    fn name(&self) -> &'static str {
        "fused-linear-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (cpu::slice(xs, xl)?, cpu::slice(ws, wl)?);
        let ((n, d), (vocab, _)) = (xl.shape().dims2()?, wl.shape().dims2()?);
        let targets = u32_targets(ts, tl, vocab)?;
        if targets.len() != n || n == 0 {
            bail!(
                "linear_cross_entropy: {} targets for {n} rows; need one per row, at least one",
                targets.len()
            );
        }
        let mut probs = vec![0.0f32; n * vocab];
        let xm = Mat {
            data: x,
            rows: n,
            cols: d,
            rs: d,
            cs: 1,
        };
        let wt = Mat {
            data: w,
            rows: vocab,
            cols: d,
            rs: d,
            cs: 1,
        }
        .t();
        matmul_par(&mut probs, vocab, xm, wt, 1.0);
        let losses: Vec<f32> = probs
            .par_chunks_mut(vocab)
            .zip(targets.par_iter())
            .map(|(row, &t)| {
                let lse = log_sum_exp(row);
                let loss = lse - row[t as usize];
                cpu::exp_in_place(row, lse);
                loss
            })
            .collect();
        *self
            .probs
            .lock()
            .map_err(|_| candle_core::Error::Msg("linear_cross_entropy: poisoned".into()))? =
            Some(probs);
        let mean = losses.iter().map(|&l| f64::from(l)).sum::<f64>() / n as f64;
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    /// With `G = (softmax − onehot) · dy / n`: `dx = G · weight`, `d weight = Gᵀ · x`.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        targets: &Tensor,
        _loss: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let ((n, d), (vocab, _)) = (x.dims2()?, w.dims2()?);
        let taken = self
            .probs
            .lock()
            .map_err(|_| candle_core::Error::Msg("linear_cross_entropy: poisoned".into()))?
            .take();
        let Some(mut g) = taken else {
            bail!("linear_cross_entropy: backward ran twice for one forward");
        };
        for (row, &t) in targets.to_vec1::<u32>()?.iter().enumerate() {
            g[row * vocab + t as usize] -= 1.0;
        }
        let scale = dy.to_scalar::<f32>()? / n as f32;
        let (xv, wv) = (cpu::view(x)?, cpu::view(w)?);
        let gm = Mat {
            data: &g,
            rows: n,
            cols: vocab,
            rs: vocab,
            cs: 1,
        };
        let mut dx = vec![0.0f32; n * d];
        matmul_par(
            &mut dx,
            d,
            gm,
            Mat {
                data: wv.get(),
                rows: vocab,
                cols: d,
                rs: d,
                cs: 1,
            },
            scale,
        );
        let mut dw = vec![0.0f32; vocab * d];
        matmul_par(
            &mut dw,
            d,
            gm.t(),
            Mat {
                data: xv.get(),
                rows: n,
                cols: d,
                rs: d,
                cs: 1,
            },
            scale,
        );
        Ok((
            Some(cpu::tensor(dx, (n, d))?),
            Some(cpu::tensor(dw, (vocab, d))?),
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_same, grad_check, rand_tensor};
    use candle_core::Device;

    #[test]
    fn fused_gradients_match_finite_differences() {
        let x = rand_tensor((4, 5), 1, DType::F32);
        let w = (rand_tensor((7, 5), 2, DType::F32) * 2.0).unwrap();
        let targets = Tensor::new(&[0u32, 6, 3, 3], &Device::Cpu).unwrap();
        grad_check(
            |t| linear_cross_entropy(&t[0], &t[1], &targets),
            &[x, w],
            1e-2,
            1e-2,
        );
    }

    #[test]
    fn composite_gradients_match_finite_differences() {
        let x = rand_tensor((4, 5), 1, DType::F64);
        let w = (rand_tensor((7, 5), 2, DType::F64) * 2.0).unwrap();
        let targets = Tensor::new(&[0u32, 6, 3, 3], &Device::Cpu).unwrap();
        grad_check(|t| composite(&t[0], &t[1], &targets), &[x, w], 1e-5, 1e-6);
    }

    #[test]
    fn fused_equals_composite_forward_and_backward() {
        let x = rand_tensor((33, 24), 1, DType::F32);
        let w = (rand_tensor((300, 24), 2, DType::F32) * 3.0).unwrap();
        let targets: Vec<u32> = (0..33).map(|i| (i * 37 % 300) as u32).collect();
        let targets = Tensor::new(targets.as_slice(), &Device::Cpu).unwrap();
        let (f, c) = (
            |t: &[Tensor]| linear_cross_entropy(&t[0], &t[1], &targets),
            |t: &[Tensor]| composite(&t[0], &t[1], &targets),
        );
        assert_same(f, c, &[x, w], 1e-5);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let x = rand_tensor((2, 3), 1, DType::F32);
        let w = rand_tensor((5, 3), 2, DType::F32);
        let bad = Tensor::new(&[0u32, 5], &Device::Cpu).unwrap();
        assert!(linear_cross_entropy(&x, &w, &bad).is_err());
        assert!(linear_cross_entropy(&x, &rand_tensor((5, 4), 2, DType::F32), &bad).is_err());
        assert!(
            linear_cross_entropy(&x, &w, &Tensor::new(&[0u32], &Device::Cpu).unwrap()).is_err()
        );
    }
}
