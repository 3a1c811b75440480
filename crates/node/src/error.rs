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
    /// The node's settings are inconsistent.
    #[error("invalid node settings: {0}")]
    InvalidConfig(String),
    /// A snapshot or a peer's state does not fit this node's model.
    #[error("unusable state: {0}; it belongs to another model or is damaged")]
    BadState(String),
    /// The model or the optimiser failed while training, or refused its settings or inputs.
    #[error(transparent)]
    Train(#[from] neuroshard_train::Error),
    /// Compression refused its settings or a payload.
    #[error(transparent)]
    Compress(#[from] neuroshard_compress::Error),
    /// A checkpoint, an opening or a replay failed on this node.
    #[error(transparent)]
    Verify(#[from] neuroshard_verify::Error),
    /// The node's checkpoint store failed.
    #[error("keeping a checkpoint: {0}")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The node's data source failed.
    #[error("reading training data: {0}")]
    Data(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
