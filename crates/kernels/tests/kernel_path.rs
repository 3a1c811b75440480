//! The process-wide kernel path: with `Composite` set every op equals its composite reference
//! bit for bit, forward and backward; with `Fused` set the fused kernels run again. One test in
//! its own binary, so flipping the global cannot race other tests.

use candle_core::{DType, Device, Result, Tensor, Var};
use neuroshard_kernels::{
    KernelPath, causal_attention, composite, cross_entropy, kernel_path, rms_norm, set_kernel_path,
    swiglu,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A CPU f32 tensor of uniform values in [-2, 2) from `seed`.
fn rand_tensor(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = dims.iter().product();
    let data: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
    Tensor::from_vec(data, dims, &Device::Cpu).expect("cpu tensor")
}

fn bits(t: &Tensor) -> Vec<u32> {
    let flat = t.flatten_all().and_then(|t| t.to_vec1::<f32>());
    flat.expect("f32 tensor")
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// The public ops and their composite references on the same seeded inputs, as pairs of
/// (public result, reference result): forward outputs and the RMSNorm input gradient.
fn public_and_reference() -> Result<Vec<(&'static str, Tensor, Tensor)>> {
    let x = Var::from_tensor(&rand_tensor(&[8, 64], 1))?;
    let w = rand_tensor(&[64], 2);
    let y = rms_norm(&x, &w, 1e-5)?;
    let y_ref = composite::rms_norm(&x, &w, 1e-5)?;
    let dx = y.sqr()?.sum_all()?.backward()?.get(&x).cloned();
    let dx_ref = y_ref.sqr()?.sum_all()?.backward()?.get(&x).cloned();
    let (q, k, v) = (
        rand_tensor(&[2, 16, 4, 16], 3),
        rand_tensor(&[2, 16, 2, 16], 4),
        rand_tensor(&[2, 16, 2, 16], 5),
    );
    let (gate, up) = (rand_tensor(&[8, 64], 6), rand_tensor(&[8, 64], 7));
    let logits = rand_tensor(&[16, 500], 8);
    let targets = Tensor::from_vec((0..16u32).map(|i| i * 31).collect(), 16, &Device::Cpu)?;
    Ok(vec![
        ("rms_norm", y, y_ref),
        ("rms_norm backward", dx.expect("dx"), dx_ref.expect("dx")),
        (
            "causal_attention",
            causal_attention(&q, &k, &v, 0.25)?,
            composite::causal_attention(&q, &k, &v, 0.25)?,
        ),
        (
            "swiglu",
            swiglu(&gate, &up)?,
            composite::swiglu(&gate, &up)?,
        ),
        (
            "cross_entropy",
            cross_entropy(&logits, &targets)?,
            composite::cross_entropy(&logits, &targets)?,
        ),
    ])
}

#[test]
fn the_composite_path_is_the_reference_and_the_fused_path_is_not() {
    assert_eq!(kernel_path(), KernelPath::Fused, "fused by default");

    set_kernel_path(KernelPath::Composite);
    assert_eq!(kernel_path(), KernelPath::Composite);
    for (name, public, reference) in public_and_reference().unwrap() {
        assert_eq!(public.dtype(), DType::F32);
        assert_eq!(
            bits(&public),
            bits(&reference),
            "{name} on the composite path"
        );
    }

    set_kernel_path(KernelPath::Fused);
    assert_eq!(kernel_path(), KernelPath::Fused);
    let differ: Vec<_> = public_and_reference()
        .unwrap()
        .into_iter()
        .filter(|(_, public, reference)| bits(public) != bits(reference))
        .map(|(name, ..)| name)
        .collect();
    // The fused kernels sum in another order (and approximate `exp`), so on these inputs some
    // of their results differ from the references in the last bits: proof that they ran.
    assert!(
        !differ.is_empty(),
        "no op took its fused form on the fused path"
    );
}
