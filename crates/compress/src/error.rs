//! Errors from encoding a pseudo-gradient and from decoding a packet.

/// Errors from encoding a pseudo-gradient or decoding a peer's packet.
///
/// Every decoding failure is a value of this type: hostile bytes never panic the decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A codec name did not parse.
    #[error(
        "unknown codec {0:?}; use one of none, int8, int4, sign, topk, topk-int8, topk-int4, topk-sign, topk-int2, int2, ternary, hint2, hbits, hent, htcq"
    )]
    UnknownCodec(String),
    /// A configuration parameter is out of its range.
    #[error("invalid codec parameter {name} = {value}: {expected}")]
    BadParameter {
        /// The parameter's name.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// What the value must be.
        expected: &'static str,
    },
    /// The residual passed to `encode` has a different length than the pseudo-gradient.
    #[error(
        "residual holds {residual} values but the pseudo-gradient has {delta}; keep one residual per vector"
    )]
    ResidualLength {
        /// Length of the residual.
        residual: usize,
        /// Length of the pseudo-gradient.
        delta: usize,
    },
    /// The vector to encode (pseudo-gradient plus residual) holds a NaN or an infinity.
    #[error("value at index {index} is not finite; the pseudo-gradient diverged")]
    NonFiniteInput {
        /// Index of the first non-finite value.
        index: usize,
    },
    /// The packet is shorter than the fixed header and checksum.
    #[error(
        "packet of {got} bytes is shorter than the {min}-byte minimum; the peer sent a truncated packet"
    )]
    TooShort {
        /// Bytes received.
        got: usize,
        /// The minimum length of any packet.
        min: usize,
    },
    /// The packet does not start with the magic bytes.
    #[error(
        "packet does not start with the neuroshard-compress magic; it is not a compressed update"
    )]
    BadMagic,
    /// The packet's format version is not one this build reads.
    #[error(
        "packet format version {0} is not supported (this build reads version 1); upgrade the node"
    )]
    UnsupportedVersion(u8),
    /// The packet names a codec id this build does not know.
    #[error("packet names unknown codec id {0}")]
    UnknownCodecId(u8),
    /// The checksum over the packet does not match its contents.
    #[error("packet checksum does not match; the bytes were corrupted or tampered with")]
    BadChecksum,
    /// A header field is outside its allowed range.
    #[error("packet header field {field} = {value} is invalid: {expected}")]
    BadHeader {
        /// The field's name.
        field: &'static str,
        /// The value found.
        value: u64,
        /// What the field must be.
        expected: &'static str,
    },
    /// The packet declares more parameters than the caller allows.
    #[error(
        "packet declares {declared} parameters but at most {max} are allowed; reject the peer's update"
    )]
    TooManyParameters {
        /// Parameters declared in the header.
        declared: u64,
        /// The caller's maximum.
        max: usize,
    },
    /// The packet's length does not match the length its header implies.
    #[error(
        "packet is {got} bytes but its header implies {expected}; the packet is truncated or padded"
    )]
    LengthMismatch {
        /// Bytes received.
        got: usize,
        /// Bytes the header implies (saturated at `u64::MAX` when it overflows).
        expected: u64,
    },
    /// A value in the payload is invalid (a non-finite scale, an index out of order, …).
    #[error("chunk {chunk} of the payload is invalid: {reason}")]
    BadPayload {
        /// Index of the chunk holding the bad value.
        chunk: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
