//! Errors from accounting: parameters outside the mechanism's domain.

/// A parameter of the mechanism or of the guarantee asked for is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The sampling rate is not a probability.
    #[error("sampling rate {0} must be a number in [0, 1]")]
    SamplingRate(f64),
    /// The noise multiplier is negative or not a number.
    #[error("noise multiplier {0} must be a finite number ≥ 0")]
    Noise(f64),
    /// δ is not a probability in (0, 1).
    #[error("δ {0} must be a number in (0, 1)")]
    Delta(f64),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
