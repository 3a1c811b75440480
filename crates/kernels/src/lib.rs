//! Fused CPU kernels with forward and backward, as candle custom ops.
