//! Rotary position embeddings, rotate-half (Llama / Hugging Face) convention.

use crate::cpu;
use candle_core::{CpuStorage, CustomOp3, D, Device, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Rotates `x` (b, t, h, dh) by the angles in `cos`/`sin` (t, dh/2): for the halves
/// `x1 = x[.., :dh/2]`, `x2 = x[.., dh/2:]` it returns `[x1·cos − x2·sin, x2·cos + x1·sin]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    check(x, cos, sin)?;
    if cpu::fused_ok(&[x, cos, sin]) {
        x.contiguous()?
            .apply_op3(&cos.contiguous()?, &sin.contiguous()?, Rope)
    } else {
        composite(x, cos, sin)
    }
}

/// The fused op. Gradients flow to `x` only: the tables are constants of the position.
struct Rope;

/// Rotates every (b, t, head) vector of `x` by its position's angles; `sign = -1` rotates back
/// (the backward pass, since a rotation's transpose is its inverse).
fn rotate(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    dims: (usize, usize, usize, usize),
    sign: f32,
) -> Vec<f32> {
    let (_, t, h, dh) = dims;
    let half = dh / 2;
    let row = h * dh;
    let mut y = vec![0.0f32; x.len()];
    let rows = cpu::rows_per_task(row);
    y.par_chunks_mut(row * rows)
        .zip(x.par_chunks(row * rows))
        .enumerate()
        .for_each(|(task, (yc, xc))| {
            for (r, (yr, xr)) in yc
                .chunks_exact_mut(row)
                .zip(xc.chunks_exact(row))
                .enumerate()
            {
                let pos = (task * rows + r) % t;
                let (c, s) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
                for (yh, xh) in yr.chunks_exact_mut(dh).zip(xr.chunks_exact(dh)) {
                    let (x1, x2) = xh.split_at(half);
                    let (y1, y2) = yh.split_at_mut(half);
                    for i in 0..half {
                        let si = sign * s[i];
                        y1[i] = x1[i] * c[i] - x2[i] * si;
                        y2[i] = x2[i] * c[i] + x1[i] * si;
                    }
                }
            }
        });
    y
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "fused-rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, cos, sin) = (
            cpu::slice(xs, xl)?,
            cpu::slice(cs, cl)?,
            cpu::slice(ss, sl)?,
        );
        let y = rotate(x, cos, sin, xl.shape().dims4()?, 1.0);
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (dyv, cv, sv) = (cpu::view(&dy)?, cpu::view(cos)?, cpu::view(sin)?);
        let dx = rotate(dyv.get(), cv.get(), sv.get(), x.dims4()?, -1.0);
        Ok((Some(cpu::tensor(dx, x.shape())?), None, None))
    }
}

fn check(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<()> {
    let (_, t, _, dh) = x.dims4()?;
    if !dh.is_multiple_of(2) {
        bail!("rope: head_dim {dh} must be even");
    }
    for (name, table) in [("cos", cos), ("sin", sin)] {
        if table.dims() != [t, dh / 2] {
            bail!(
                "rope: {name} shape {:?} must be [{t}, {}] for x {:?}",
                table.dims(),
                dh / 2,
                x.dims()
            );
        }
    }
    Ok(())
}

/// Composite RoPE from candle ops (the reference and the GPU path).
pub fn composite(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    check(x, cos, sin)?;
    let (_, t, _, dh) = x.dims4()?;
    let half = dh / 2;
    let cos = cos.to_dtype(x.dtype())?.reshape((1, t, 1, half))?;
    let sin = sin.to_dtype(x.dtype())?.reshape((1, t, 1, half))?;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let y1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let y2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Tensor::cat(&[y1, y2], D::Minus1)
}

/// The cos and sin tables (t, head_dim/2) for absolute `positions`, f32, with inverse frequencies
/// `theta^(-2i/head_dim)`. Angles are computed in f64, so any position works (no maximum length).
pub fn rope_tables(
    positions: std::ops::Range<usize>,
    head_dim: usize,
    theta: f32,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        bail!("rope_tables: head_dim {head_dim} must be even and non-zero");
    }
    let half = head_dim / 2;
    let t = positions.len();
    let inv_freq: Vec<f64> = (0..half)
        .map(|i| f64::from(theta).powf(-2.0 * i as f64 / head_dim as f64))
        .collect();
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for pos in positions {
        for f in &inv_freq {
            let angle = pos as f64 * f;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let cos = Tensor::from_vec(cos, (t, half), device)?;
    let sin = Tensor::from_vec(sin, (t, half), device)?;
    Ok((cos, sin))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_same, grad_check, max_abs_diff, rand_tensor};
    use candle_core::DType;

    #[test]
    fn position_zero_is_identity_and_norms_are_kept() {
        let (cos, sin) = rope_tables(0..3, 8, 10_000.0, &Device::Cpu).unwrap();
        let x = rand_tensor((2, 3, 4, 8), 1, DType::F32);
        let y = rope(&x, &cos, &sin).unwrap();
        assert!(max_abs_diff(&y.narrow(1, 0, 1).unwrap(), &x.narrow(1, 0, 1).unwrap()) < 1e-7);
        let norm = |t: &Tensor| t.sqr().unwrap().sum(D::Minus1).unwrap();
        assert!(max_abs_diff(&norm(&x), &norm(&y)) < 1e-5);
    }

    #[test]
    fn tables_follow_theta_convention() {
        let (cos, sin) = rope_tables(5..7, 4, 100.0, &Device::Cpu).unwrap();
        let c: Vec<Vec<f32>> = cos.to_vec2().unwrap();
        let s: Vec<Vec<f32>> = sin.to_vec2().unwrap();
        // inv_freq = [1, 100^(-1/2) = 0.1]; row 1 is position 6.
        assert!((c[1][0] - 6f32.cos()).abs() < 1e-6 && (s[1][1] - 0.6f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn fused_gradients_match_finite_differences() {
        let (cos, sin) = rope_tables(3..6, 4, 10_000.0, &Device::Cpu).unwrap();
        let x = rand_tensor((2, 3, 2, 4), 1, DType::F32);
        grad_check(|t| rope(&t[0], &cos, &sin), &[x], 1e-2, 1e-2);
    }

    #[test]
    fn fused_equals_composite_forward_and_backward() {
        let (cos, sin) = rope_tables(7..12, 8, 10_000.0, &Device::Cpu).unwrap();
        let x = rand_tensor((3, 5, 4, 8), 1, DType::F32);
        let cs = [cos, sin];
        assert_same(
            |t| rope(&t[0], &cs[0], &cs[1]),
            |t| composite(&t[0], &cs[0], &cs[1]),
            &[x],
            1e-6,
        );
    }

    #[test]
    fn composite_gradients_match_finite_differences() {
        let (cos, sin) = rope_tables(3..6, 4, 10_000.0, &Device::Cpu).unwrap();
        let (cos, sin) = (
            cos.to_dtype(DType::F64).unwrap(),
            sin.to_dtype(DType::F64).unwrap(),
        );
        let x = rand_tensor((2, 3, 2, 4), 1, DType::F64);
        grad_check(|t| composite(&t[0], &cos, &sin), &[x], 1e-5, 1e-6);
    }
}
