//! Errors from decoding peer messages, training and applying a round.

/// Errors the node core reports; peer-caused ones lead to the peer being penalised.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A frame is larger than this message kind allows.
    #[error("frame of {len} bytes exceeds the limit of {max}; the peer is misbehaving")]
    FrameTooLarge {
        /// Frame length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// A frame or payload does not decode.
    #[error("malformed message: {0}; the peer sent bytes that are not a protocol message")]
    Malformed(#[source] postcard::Error),
    /// A signature does not verify.
    #[error(transparent)]
    Signature(#[from] neuroshard_primitives::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
