//! Fused CPU kernels with forward and backward, as candle custom ops.
//!
//! Every public function checks its input shapes, then dispatches: on the CPU with `f32` inputs
//! it runs a fused, rayon-parallel custom op (forward and backward written by hand); on any other
//! device or dtype it runs the composite candle-op version, which is also the reference the fused
//! kernels are tested against. Activations use the (batch, time, heads, head_dim) layout that a
//! projection's output reshapes to without a transpose.
//!
//! [`set_kernel_path`] with [`KernelPath::Composite`] makes every op in the process take its
//! composite form even on the CPU, so a verifier can replay training with the references and
//! compare it with the fused run; the default, [`KernelPath::Fused`], is the dispatch above.

#[macro_use]
mod cpu;
mod attention;
mod cross_entropy;
mod linear_cross_entropy;
mod matmul;
mod path;
mod rms_norm;
mod rope;
mod swiglu;
#[cfg(test)]
mod testutil;

pub use attention::causal_attention;
pub use cross_entropy::cross_entropy;
pub use linear_cross_entropy::linear_cross_entropy;
pub use path::{KernelPath, kernel_path, set_kernel_path};
pub use rms_norm::rms_norm;
pub use rope::{rope, rope_tables};
pub use swiglu::swiglu;

use candle_core::DType;

/// The dtype composite ops compute in: f64 stays f64 (for gradient checks), all else is f32.
fn compute_dtype(dtype: DType) -> DType {
    if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// The composite (plain candle-op) implementations: the GPU path and the tests' reference.
pub mod composite {
    pub use crate::attention::composite as causal_attention;
    pub use crate::cross_entropy::composite as cross_entropy;
    pub use crate::linear_cross_entropy::composite as linear_cross_entropy;
    pub use crate::rms_norm::composite as rms_norm;
    pub use crate::rope::composite as rope;
    pub use crate::swiglu::composite as swiglu;
}
