//! Errors from checking hashes and signatures.

/// Errors from parsing ids and checking signatures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hex string did not decode to the expected number of bytes.
    #[error("expected {expected} hex-encoded bytes, got {got:?}")]
    BadHex {
        /// Number of bytes expected.
        expected: usize,
        /// The text that was given.
        got: String,
    },
    /// The public key bytes are not a valid ed25519 point.
    #[error("invalid ed25519 public key {0}")]
    BadPublicKey(String),
    /// The signature does not verify under the signer's key and namespace.
    #[error("signature by {signer} does not verify under namespace {namespace:?}")]
    BadSignature {
        /// Who claims to have signed.
        signer: String,
        /// The namespace checked against.
        namespace: String,
    },
    /// The operating system's random source failed.
    #[error("operating system randomness unavailable: {0}")]
    Randomness(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
