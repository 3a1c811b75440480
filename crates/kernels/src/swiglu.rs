//! SwiGLU gate: `silu(gate) * up`.

use candle_core::{Result, Tensor, bail};

/// Returns `silu(gate) * up`; `gate` and `up` have the same shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    check(gate, up)?;
    composite(gate, up)
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
    use crate::testutil::{grad_check, rand_tensor};
    use candle_core::DType;

    #[test]
    fn composite_gradients_match_finite_differences() {
        let g = (rand_tensor((3, 7), 1, DType::F64) * 3.0).unwrap();
        let u = rand_tensor((3, 7), 2, DType::F64);
        grad_check(|t| composite(&t[0], &t[1]), &[g, u], 1e-5, 1e-6);
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
