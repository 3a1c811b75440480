//! Causal scaled-dot-product attention with grouped-query heads and a stable softmax.

use candle_core::{D, Device, Result, Tensor, bail};

/// Causal attention. `q` (b, tq, h, dh); `k`, `v` (b, tk, hkv, dh) with `hkv` dividing `h`
/// (query head `j` reads kv head `j / (h / hkv)`); `tq <= tk`. Query `i` sits at absolute position
/// `tk - tq + i` and sees keys `0..=tk - tq + i`. Returns (b, tq, h, dh).
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    check(q, k, v)?;
    composite(q, k, v, scale)
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<()> {
    let (b, tq, h, dh) = q.dims4()?;
    let (bk, tk, hkv, dhk) = k.dims4()?;
    if v.dims() != k.dims() {
        bail!(
            "causal_attention: v {:?} must have k's shape {:?}",
            v.dims(),
            k.dims()
        );
    }
    if bk != b || dhk != dh {
        bail!(
            "causal_attention: k {:?} must match q {:?} in batch and head_dim",
            k.dims(),
            q.dims()
        );
    }
    if hkv == 0 || !h.is_multiple_of(hkv) {
        bail!("causal_attention: kv heads {hkv} must divide query heads {h}");
    }
    if tq > tk {
        bail!("causal_attention: {tq} queries but only {tk} keys; need tq <= tk");
    }
    Ok(())
}

/// Additive causal mask (tq, tk): 0 where key `j <= tk - tq + i`, −∞ elsewhere.
fn causal_mask(tq: usize, tk: usize, device: &Device) -> Result<Tensor> {
    let offset = tk - tq;
    let mask: Vec<f32> = (0..tq)
        .flat_map(|i| {
            (0..tk).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(mask, (tq, tk), device)
}

/// (b, t, hkv, dh) → (b, hkv·rep, t, dh), each kv head repeated `rep` times consecutively.
fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    let (b, t, hkv, dh) = x.dims4()?;
    let x = x.transpose(1, 2)?;
    if rep == 1 {
        return x.contiguous();
    }
    x.unsqueeze(2)?
        .broadcast_as((b, hkv, rep, t, dh))?
        .contiguous()?
        .reshape((b, hkv * rep, t, dh))
}

/// Composite causal attention from candle ops (the reference and the GPU path).
pub fn composite(q: &Tensor, k: &Tensor, v: &Tensor, scale: f32) -> Result<Tensor> {
    check(q, k, v)?;
    let (_, tq, h, _) = q.dims4()?;
    let (_, tk, hkv, _) = k.dims4()?;
    let dtype = q.dtype();
    let cdt = crate::compute_dtype(dtype);
    let q = q.to_dtype(cdt)?.transpose(1, 2)?.contiguous()?;
    let k = repeat_kv(&k.to_dtype(cdt)?, h / hkv)?;
    let v = repeat_kv(&v.to_dtype(cdt)?, h / hkv)?;
    let scores = (q.matmul(&k.t()?)? * f64::from(scale))?;
    let scores = scores.broadcast_add(&causal_mask(tq, tk, q.device())?.to_dtype(cdt)?)?;
    let max = scores.max_keepdim(D::Minus1)?.detach();
    let e = scores.broadcast_sub(&max)?.exp()?;
    let probs = e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?;
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{grad_check, max_abs_diff, rand_tensor};
    use candle_core::DType;

    #[test]
    fn gqa_equals_explicitly_repeated_heads() {
        let q = rand_tensor((2, 5, 4, 8), 1, DType::F32);
        let k = rand_tensor((2, 5, 2, 8), 2, DType::F32);
        let v = rand_tensor((2, 5, 2, 8), 3, DType::F32);
        let rep = |t: &Tensor| repeat_kv(t, 2).unwrap().transpose(1, 2).unwrap();
        let a = causal_attention(&q, &k, &v, 0.3).unwrap();
        let b = causal_attention(&q, &rep(&k), &rep(&v), 0.3).unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-6);
    }

    #[test]
    fn fewer_queries_see_the_prefix_like_the_last_rows() {
        let q = rand_tensor((1, 6, 2, 4), 1, DType::F32);
        let k = rand_tensor((1, 6, 1, 4), 2, DType::F32);
        let v = rand_tensor((1, 6, 1, 4), 3, DType::F32);
        let full = causal_attention(&q, &k, &v, 0.5).unwrap();
        let tail = causal_attention(&q.narrow(1, 4, 2).unwrap(), &k, &v, 0.5).unwrap();
        assert!(max_abs_diff(&full.narrow(1, 4, 2).unwrap(), &tail) < 1e-6);
    }

    #[test]
    fn first_query_copies_first_value() {
        let q = rand_tensor((1, 3, 2, 4), 1, DType::F32);
        let k = rand_tensor((1, 3, 2, 4), 2, DType::F32);
        let v = rand_tensor((1, 3, 2, 4), 3, DType::F32);
        let out = causal_attention(&q, &k, &v, 1.0).unwrap();
        assert!(max_abs_diff(&out.narrow(1, 0, 1).unwrap(), &v.narrow(1, 0, 1).unwrap()) < 1e-6);
    }

    #[test]
    fn composite_gradients_match_finite_differences() {
        let q = rand_tensor((2, 3, 4, 4), 1, DType::F64);
        let k = rand_tensor((2, 4, 2, 4), 2, DType::F64);
        let v = rand_tensor((2, 4, 2, 4), 3, DType::F64);
        grad_check(
            |t| composite(&t[0], &t[1], &t[2], 0.7),
            &[q, k, v],
            1e-5,
            1e-6,
        );
    }

    #[test]
    fn bad_shapes_are_refused() {
        let q = rand_tensor((1, 4, 3, 4), 1, DType::F32);
        let k = rand_tensor((1, 4, 2, 4), 2, DType::F32);
        assert!(causal_attention(&q, &k, &k, 1.0).is_err());
        let q = rand_tensor((1, 5, 2, 4), 1, DType::F32);
        assert!(causal_attention(&q, &k, &k, 1.0).is_err());
    }
}
