//! Errors from configuring and running a simulation.

/// Errors a simulation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An attack name is not one of the known ones.
    #[error(
        "unknown attack {0:?}; use one of sign-flip, noise, scale, alie, ipm, free-ride, replay, none"
    )]
    UnknownAttack(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
