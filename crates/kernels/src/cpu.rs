//! Shared pieces of the fused CPU kernels: slice access to candle storage, work splitting, and
//! small vector helpers written so the compiler can vectorise them.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Device, Layout, Result, Shape, Storage, StorageRef, Tensor, bail};

use crate::{KernelPath, kernel_path};

/// Elements one rayon task handles: large enough to amortise scheduling, small enough to
/// balance two to sixteen threads on the model's activation sizes.
const TASK_ELEMS: usize = 16 * 1024;

/// Rows of length `row_len` per rayon task. Depends on the shape only, never on the thread
/// count, so chunked reductions sum in the same order on every machine.
pub(crate) fn rows_per_task(row_len: usize) -> usize {
    (TASK_ELEMS / row_len.max(1)).max(1)
}

/// Whether the fused kernels should run: the process is on [`KernelPath::Fused`] and every
/// tensor lives on the CPU as f32, the case they handle.
pub(crate) fn fused_ok(tensors: &[&Tensor]) -> bool {
    kernel_path() == KernelPath::Fused
        && tensors
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

/// `e^x` for f32 without a libm call, so loops over it vectorise: range reduction by ln 2 (with
/// round-to-nearest by the 1.5·2²³ trick) and a degree-6 polynomial; relative error below 3e-7.
/// Inputs are clamped to [−87, 88], so the result stays a normal float (≈1e-38 at the bottom).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// Defines a slice function twice, generic and compiled for AVX2 + FMA, and picks the second at
/// run time when the CPU has it: the loops below then vectorise 8 lanes wide without requiring
/// `-C target-cpu` at build time.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$meta])*
        pub(crate) fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) -> $ret $body
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            fn generic($($arg: $ty),*) -> $ret $body
            generic($($arg),*)
        }
    };
}

multiversion! {
    /// The largest element (−∞ for an empty slice).
    fn max(x: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 8];
        let chunks = x.chunks_exact(8);
        let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        for c in chunks {
            for l in 0..8 {
                acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
            }
        }
        acc.iter().fold(tail, |m, &v| if v > m { v } else { m })
    }
}

multiversion! {
    /// `Σ exp(x − shift)`.
    fn sum_exp(x: &[f32], shift: f32) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|&v| exp(v - shift)).sum();
        for c in chunks {
            for l in 0..8 {
                acc[l] += exp(c[l] - shift);
            }
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// `x ← exp(x − shift)` in place; returns the new sum.
    fn exp_in_place(x: &mut [f32], shift: f32) -> f32 {
        let mut acc = [0.0f32; 8];
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            for l in 0..8 {
                c[l] = exp(c[l] - shift);
                acc[l] += c[l];
            }
        }
        let mut tail = 0.0;
        for v in chunks.into_remainder() {
            *v = exp(*v - shift);
            tail += *v;
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// `out ← exp(x − shift) · scale`.
    fn exp_scaled(x: &[f32], shift: f32, scale: f32, out: &mut [f32]) -> () {
        assert_eq!(x.len(), out.len(), "exp_scaled: lengths differ");
        for (o, &v) in out.iter_mut().zip(x) {
            *o = exp(v - shift) * scale;
        }
    }
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
    fn slice_helpers_match_scalar_maths() {
        let x: Vec<f32> = (0..29).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(max(&x), m);
        let want: f32 = x.iter().map(|v| (v - m).exp()).sum();
        assert!((sum_exp(&x, m) - want).abs() < 1e-5 * want);
        let mut y = x.clone();
        assert!((exp_in_place(&mut y, m) - want).abs() < 1e-5 * want);
        let mut z = vec![0.0; x.len()];
        exp_scaled(&x, m, 2.0, &mut z);
        for i in 0..x.len() {
            assert!((y[i] - (x[i] - m).exp()).abs() < 1e-6 && (z[i] - 2.0 * y[i]).abs() < 1e-6);
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
