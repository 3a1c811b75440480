//! Test helpers: seeded random tensors and a central-difference gradient checker.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor of uniform values in [-1, 1) from `seed`.
pub(crate) fn rand_tensor<S: Into<Shape>>(shape: S, seed: u64, dtype: DType) -> Tensor {
    let shape = shape.into();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data: Vec<f64> = (0..shape.elem_count())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .expect("cpu tensor")
}

/// Largest absolute difference between two tensors of the same shape.
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a.to_dtype(DType::F64).unwrap() - b.to_dtype(DType::F64).unwrap()).unwrap();
    d.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// `sum(f(inputs) · w)` for a fixed random `w`, in f64.
fn weighted_sum(out: &Tensor, w: &Tensor) -> Result<Tensor> {
    (out.to_dtype(DType::F64)? * w)?.sum_all()
}

/// Checks the gradients of `f` at `inputs` against central differences with step `eps`:
/// `|analytic − numeric| ≤ tol · (1 + |numeric|)` for every element of every input.
pub(crate) fn grad_check(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    eps: f64,
    tol: f64,
) {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&tensors).unwrap();
    let w = rand_tensor(out.shape(), 99, DType::F64);
    let grads = weighted_sum(&out, &w).unwrap().backward().unwrap();
    for (i, input) in inputs.iter().enumerate() {
        let analytic = grads.get(&tensors[i]).expect("input has a gradient");
        let analytic: Vec<f64> = analytic
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = input
            .to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for e in 0..base.len() {
            let eval = |delta: f64| {
                let mut data = base.clone();
                data[e] += delta;
                let t = Tensor::from_vec(data, input.shape(), &Device::Cpu).unwrap();
                let mut args = inputs.to_vec();
                args[i] = t.to_dtype(input.dtype()).unwrap();
                weighted_sum(&f(&args).unwrap(), &w)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
            let err = (analytic[e] - numeric).abs();
            assert!(
                err <= tol * (1.0 + numeric.abs()),
                "input {i} element {e}: analytic {} vs numeric {numeric}",
                analytic[e]
            );
        }
    }
}

/// Asserts `fused` and `reference` agree within `tol` (max abs difference), in value and in the
/// gradient of `sum(out · w)` for a fixed random `w`, at f32 `inputs`.
pub(crate) fn assert_same(
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    tol: f64,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> Result<Tensor>| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&tensors).unwrap();
        let w = rand_tensor(out.shape(), 77, DType::F32);
        let grads = (&out * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<Tensor> = tensors
            .iter()
            .map(|t| grads.get(t).expect("gradient").clone())
            .collect();
        (out, g)
    };
    let (out_a, grads_a) = run(&fused);
    let (out_b, grads_b) = run(&reference);
    let diff = max_abs_diff(&out_a, &out_b);
    assert!(diff <= tol, "forward differs by {diff}");
    for (i, (a, b)) in grads_a.iter().zip(&grads_b).enumerate() {
        let diff = max_abs_diff(a, b);
        assert!(diff <= tol, "gradient of input {i} differs by {diff}");
    }
}
