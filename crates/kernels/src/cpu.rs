//! Shared pieces of the fused CPU kernels: slice access to candle storage, work splitting, and
//! small vector helpers written so the compiler can vectorise them.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Device, Layout, Result, Shape, Storage, StorageRef, Tensor, bail};

/// Elements one rayon task handles: large enough to amortise scheduling, small enough to
/// balance two to sixteen threads on the model's activation sizes.
const TASK_ELEMS: usize = 16 * 1024;

/// Rows of length `row_len` per rayon task. Depends on the shape only, never on the thread
/// count, so chunked reductions sum in the same order on every machine.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (TASK_ELEMS / row_len.max(1)).max(1)
}

/// Whether every tensor lives on the CPU as f32: the case the fused kernels handle.
pub(crate) fn fused_ok(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

/// The contiguous f32 data a custom op's `cpu_fwd` receives.
pub(crate) fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!(
            "fused kernel: expected f32 storage, got {:?}",
            storage.dtype()
        );
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!(
            "fused kernel: expected a contiguous input, got strides {:?}",
            layout.stride()
        );
    };
    Ok(&data[start..end])
}

/// Read access to a contiguous CPU f32 tensor's data, for use inside `bwd`.
pub(crate) struct F32View<'a> {
    guard: StorageRef<'a>,
    start: usize,
    end: usize,
}

impl F32View<'_> {
    /// The tensor's elements in row-major order.
    pub(crate) fn get(&self) -> &[f32] {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(data)) => &data[self.start..self.end],
            _ => unreachable!("checked in view()"),
        }
    }
}

/// Borrows `t`'s data; `t` must be a contiguous CPU f32 tensor (use [`Tensor::contiguous`]).
pub(crate) fn view(t: &Tensor) -> Result<F32View<'_>> {
    let (guard, layout) = t.storage_and_layout();
    if !matches!(&*guard, Storage::Cpu(CpuStorage::F32(_))) {
        bail!(
            "fused kernel: expected a cpu f32 tensor, got {:?} on {:?}",
            t.dtype(),
            t.device().location()
        );
    }
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!(
            "fused kernel: expected a contiguous tensor, got strides {:?}",
            layout.stride()
        );
    };
    Ok(F32View { guard, start, end })
}

/// A CPU f32 tensor from `data`.
pub(crate) fn tensor<S: Into<Shape>>(data: Vec<f32>, shape: S) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Dot product with eight independent accumulators (vectorisable without reassociation).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `e^x` for f32 without a libm call: range reduction by ln 2 and a degree-6 polynomial,
/// relative error below 2e-7 on the range the softmax kernels use (x ≤ 0, and moderate x > 0).
/// Inputs are clamped to [−87, 88], so the result stays a normal float (≈1e-38 at the bottom).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E).round();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 3e-7 * want,
                "exp({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
