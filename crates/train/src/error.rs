//! Errors from training: bad hyper-parameters, data, the model, and checkpoints.

/// Everything that can go wrong while training or loading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyper-parameter is out of range; the message says which and what is allowed.
    #[error("invalid hyper-parameters: {0}")]
    InvalidHyperParameters(String),
    /// Two vectors that must have the same length do not.
    #[error("{what} has {got} values, expected {expected}")]
    LengthMismatch {
        /// What was measured.
        what: &'static str,
        /// The length required.
        expected: usize,
        /// The length found.
        got: usize,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
