//! Errors from the consensus engine, its store, and the follower's checks.

/// Everything that can go wrong in this crate.
///
/// A peer's bad bytes (a forged certificate, a block that does not match, a malformed encoding)
/// are always one of these values, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that should hold a block or a certificate do not decode.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded (`block`, `certificate`).
        what: &'static str,
        /// The codec's reason.
        reason: String,
    },
    /// The committee is empty, holds a key that is not an ed25519 point, or repeats a key.
    #[error("invalid committee: {0}")]
    Committee(String),
    /// The certificate is for another epoch than the one the caller expects.
    #[error("certificate is for epoch {got}, expected epoch {expected}")]
    WrongEpoch {
        /// The epoch the caller expected.
        expected: u64,
        /// The epoch in the certificate.
        got: u64,
    },
    /// The block's header says another epoch than its certificate.
    #[error("block header says epoch {header} but its certificate is for epoch {certificate}")]
    EpochMismatch {
        /// The epoch in the block header.
        header: u64,
        /// The epoch of the certificate.
        certificate: u64,
    },
    /// The block header's epoch is not the epoch its height belongs to.
    #[error("block at height {height} says epoch {header}, but that height is in epoch {expected}")]
    HeaderEpoch {
        /// The block's height.
        height: u64,
        /// The epoch in its header.
        header: u64,
        /// The epoch its height belongs to.
        expected: u64,
    },
    /// A certificate of an epoch whose committee this node has not learned from the chain yet
    /// (it has not applied the last block of the epoch before).
    #[error("the committee of epoch {0} is not known yet")]
    UnknownEpoch(u64),
    /// The certificate's signatures do not verify against the committee (forged, or another committee).
    #[error("finalization certificate does not verify against the committee of epoch {epoch}")]
    BadCertificate {
        /// The epoch whose committee was used.
        epoch: u64,
    },
    /// The certificate finalizes another block than the one given.
    #[error("certificate finalizes block {certified} but the block's digest is {block}")]
    PayloadMismatch {
        /// Hex digest the certificate carries.
        certified: String,
        /// Hex digest of the block given.
        block: String,
    },
    /// The block does not extend the last applied block.
    #[error("block at height {height} does not extend the applied chain: {reason}")]
    NotNext {
        /// The block's height.
        height: u64,
        /// Why (height gap, parent digest).
        reason: String,
    },
    /// Re-executing the block failed: the machine rejected its body.
    #[error("block at height {height} is invalid: {reason}")]
    Execute {
        /// The block's height.
        height: u64,
        /// The machine's reason.
        reason: String,
    },
    /// The state root after re-executing differs from the one in the header.
    #[error(
        "block at height {height}: header state root {header} but re-execution gives {computed}"
    )]
    StateRoot {
        /// The block's height.
        height: u64,
        /// Hex root in the header.
        header: String,
        /// Hex root computed here.
        computed: String,
    },
    /// The store (redb) failed.
    #[error("store: {0}")]
    Store(String),
    /// The stored state is inconsistent (rows do not load, or their root differs from the stored block's).
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    /// The store was written in another state format ([`crate::Machine::format`]) than this
    /// build reads: by another version of the software.
    #[error(
        "the store holds state format {found}, and this build reads format {expected}: another version of the software wrote it"
    )]
    Format {
        /// The format the store notes (0 when it notes none).
        found: u64,
        /// The machine's format.
        expected: u64,
    },
    /// The mempool refused a transaction.
    #[error("transaction refused: {0}")]
    Mempool(String),
    /// A configuration value is unusable (our own key is not in the committee, no peers, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The engine has stopped (shut down, or failed earlier).
    #[error("the consensus engine has stopped")]
    Stopped,
}

impl Error {
    pub(crate) fn store(e: impl std::fmt::Display) -> Self {
        Self::Store(e.to_string())
    }
}
