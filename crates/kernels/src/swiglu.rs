//! SwiGLU gate: `silu(gate) * up`.

use crate::cpu;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

/// Returns `silu(gate) * up`; `gate` and `up` have the same shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    check(gate, up)?;
    if cpu::fused_ok(&[gate, up]) {
        gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
    } else {
        composite(gate, up)
    }
}

/// The fused op; backward recomputes the sigmoid (cheaper than storing it).
struct SwiGlu;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + cpu::exp(-x))
}

multiversion! {
    /// `y = g·σ(g)·u` element-wise.
    fn forward(g: &[f32], u: &[f32], y: &mut [f32]) -> () {
        for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
            *y = g * sigmoid(g) * u;
        }
    }
}

multiversion! {
    /// `dg = dy·u·σ(g)·(1 + g·(1 − σ(g)))`, `du = dy·g·σ(g)` element-wise.
    fn backward(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) -> () {
        let n = dg.len();
        assert!(du.len() == n && g.len() == n && u.len() == n && dy.len() == n, "swiglu: lengths differ");
        for i in 0..n {
            let s = sigmoid(g[i]);
            dg[i] = dy[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
            du[i] = dy[i] * g[i] * s;
        }
    }
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (cpu::slice(gs, gl)?, cpu::slice(us, ul)?);
        let mut y = vec![0.0f32; g.len()];
        let chunk = cpu::rows_per_task(1);
        y.par_chunks_mut(chunk)
            .zip(g.par_chunks(chunk).zip(u.par_chunks(chunk)))
            .for_each(|(yc, (gc, uc))| forward(gc, uc, yc));
        Ok((CpuStorage::F32(y), gl.shape().clone()))
    }

    /// `d gate = dy·up·σ(g)·(1 + g·(1 − σ(g)))`, `d up = dy·g·σ(g)`.
    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let (gv, uv, dyv) = (cpu::view(gate)?, cpu::view(up)?, cpu::view(&dy)?);
        let (g, u, dys) = (gv.get(), uv.get(), dyv.get());
        let mut dg = vec![0.0f32; g.len()];
        let mut du = vec![0.0f32; g.len()];
        let chunk = cpu::rows_per_task(1);
        dg.par_chunks_mut(chunk)
            .zip(du.par_chunks_mut(chunk))
            .zip(
                g.par_chunks(chunk)
                    .zip(u.par_chunks(chunk))
                    .zip(dys.par_chunks(chunk)),
            )
            .for_each(|((dgc, duc), ((gc, uc), dyc))| backward(gc, uc, dyc, dgc, duc));
        Ok((
            Some(cpu::tensor(dg, gate.shape())?),
            Some(cpu::tensor(du, up.shape())?),
        ))
    }
}

fn check(gate: &Tensor, up: &Tensor) -> Result<()> {
    if gate.dims() != up.dims() {
        bail!(
            "swiglu: gate {:?} and up {:?} must have the same shape",
            gate.dims(),
            up.dims()
        );
    }
    Ok(())
}

/// Composite SwiGLU from candle ops (the reference and the GPU path).
pub fn composite(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    check(gate, up)?;
    gate.silu()? * up
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_same, grad_check, rand_tensor};
    use candle_core::DType;

    #[test]
    fn composite_gradients_match_finite_differences() {
        let g = (rand_tensor((3, 7), 1, DType::F64) * 3.0).unwrap();
        let u = rand_tensor((3, 7), 2, DType::F64);
        grad_check(|t| composite(&t[0], &t[1]), &[g, u], 1e-5, 1e-6);
    }

    #[test]
    fn fused_gradients_match_finite_differences() {
        let g = (rand_tensor((3, 7), 1, DType::F32) * 3.0).unwrap();
        let u = rand_tensor((3, 7), 2, DType::F32);
        grad_check(|t| swiglu(&t[0], &t[1]), &[g, u], 1e-2, 1e-2);
    }

    #[test]
    fn fused_equals_composite_forward_and_backward() {
        let g = (rand_tensor((5, 3000), 1, DType::F32) * 6.0).unwrap();
        let u = rand_tensor((5, 3000), 2, DType::F32);
        assert_same(
            |t| swiglu(&t[0], &t[1]),
            |t| composite(&t[0], &t[1]),
            &[g, u],
            1e-5,
        );
    }

    #[test]
    fn mismatched_shapes_are_refused() {
        assert!(
            swiglu(
                &rand_tensor((2, 3), 1, DType::F32),
                &rand_tensor((3, 2), 2, DType::F32)
            )
            .is_err()
        );
    }
}
