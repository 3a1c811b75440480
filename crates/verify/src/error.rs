//! What can go wrong while building, opening or replaying a training chain.

/// Errors of the verification crate. A peer's bad input is an [`Error::Malformed`] or an
/// [`Error::Mismatch`]; the others are local failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes from a peer that do not decode to what they claim to be.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The kind of input.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Well-formed input that does not match the commitment or the model it must match.
    #[error("{0}")]
    Mismatch(String),
    /// The replay itself failed (a model or data error on this node).
    #[error("replay: {0}")]
    Train(#[from] neuroshard_train::Error),
    /// The batches to replay on could not be read.
    #[error("replay data: {0}")]
    Data(Box<dyn std::error::Error + Send + Sync>),
    /// Invalid settings.
    #[error("invalid verification settings: {0}")]
    InvalidConfig(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn malformed(what: &'static str, reason: impl ToString) -> Error {
    Error::Malformed {
        what,
        reason: reason.to_string(),
    }
}
