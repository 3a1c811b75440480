//! The pool's errors: a bad capacity record, a bad growth schedule.

use neuroshard_primitives::Hash;

/// Result with the pool's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong reading a capacity record or building a growth schedule.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A capacity frame is longer than any honest one.
    #[error("capacity frame of {len} bytes exceeds the limit of {max}; the peer is misbehaving")]
    FrameTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A capacity frame does not decode.
    #[error("capacity frame does not decode: {0}")]
    Malformed(#[from] postcard::Error),
    /// The envelope's signature or key is bad.
    #[error(transparent)]
    Signature(#[from] neuroshard_primitives::Error),
    /// The record was made for another network.
    #[error("capacity record is for network {got}, not ours ({expected}); ignore the peer")]
    WrongNetwork {
        /// Our network id.
        expected: Hash,
        /// The record's.
        got: Hash,
    },
    /// A growth schedule that cannot be followed.
    #[error("bad growth schedule: {0}")]
    BadSchedule(String),
}
