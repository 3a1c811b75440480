//! Rotary position embeddings, rotate-half (Llama / Hugging Face) convention.

use candle_core::{D, Device, Result, Tensor, bail};

/// Rotates `x` (b, t, h, dh) by the angles in `cos`/`sin` (t, dh/2): for the halves
/// `x1 = x[.., :dh/2]`, `x2 = x[.., dh/2:]` it returns `[x1·cos − x2·sin, x2·cos + x1·sin]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    check(x, cos, sin)?;
    composite(x, cos, sin)
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
    use crate::testutil::{grad_check, max_abs_diff, rand_tensor};
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
