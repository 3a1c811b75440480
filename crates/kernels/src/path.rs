//! The process-wide choice between the fused kernels and their composite references, so a
//! verifier can replay training on the composite path and compare it with the fused one.

use std::sync::atomic::{AtomicBool, Ordering};

/// Which implementation the public ops run where the fused kernels could run (CPU, `f32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelPath {
    /// The fused CPU custom ops where they apply, the composite ops elsewhere (the default).
    #[default]
    Fused,
    /// The composite candle-op references everywhere.
    Composite,
}

/// Whether [`KernelPath::Composite`] is set; `false` (fused) until someone sets it.
static COMPOSITE: AtomicBool = AtomicBool::new(false);

/// Sets the path every op in this process takes from its next call on; ops already running
/// finish on the path they started with.
pub fn set_kernel_path(path: KernelPath) {
    COMPOSITE.store(path == KernelPath::Composite, Ordering::Relaxed);
}

/// The path set by [`set_kernel_path`], [`KernelPath::Fused`] by default.
pub fn kernel_path() -> KernelPath {
    if COMPOSITE.load(Ordering::Relaxed) {
        KernelPath::Composite
    } else {
        KernelPath::Fused
    }
}
