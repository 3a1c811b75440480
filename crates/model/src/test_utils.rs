//! Helpers shared by this crate's unit tests.

use candle_core::Device;

use crate::Config;

/// The devices to run device-dependent tests on: the CPU always, CUDA when built and present.
pub(crate) fn test_devices() -> Vec<Device> {
    #[allow(unused_mut)] // Only the cuda build pushes.
    let mut devices = vec![Device::Cpu];
    #[cfg(feature = "cuda")]
    if let Ok(cuda) = Device::new_cuda(0) {
        devices.push(cuda);
    }
    devices
}

/// A config smaller than `nano`, so model tests take milliseconds.
pub(crate) fn micro() -> Config {
    Config {
        vocab_size: 37,
        d_model: 16,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        d_ff: 24,
        seq_len: 8,
        rope_theta: 10_000.0,
        norm_eps: 1e-5,
    }
}
