//! Errors from the network: configuration, transport, protocol and peer misbehaviour.

use neuroshard_primitives::Hash;

/// Errors from starting the network and talking to peers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node key could not be turned into a libp2p identity.
    #[error("invalid node key: {0}")]
    Identity(String),
    /// A peer id does not hold an ed25519 key, so it names no NeuroShard node.
    #[error("peer id {0} is not an ed25519 key; only NeuroShard nodes are accepted")]
    NotANode(String),
    /// The transport or a behaviour could not be built.
    #[error("cannot build the libp2p stack: {0}")]
    Build(String),
    /// A listen address was refused.
    #[error("cannot listen on {addr}: {reason}; check the address and that the port is free")]
    Listen {
        /// The address asked for.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// A dial was refused before it started.
    #[error("cannot dial {addr}: {reason}")]
    Dial {
        /// The address dialled.
        addr: String,
        /// Why it failed.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid network config: {0}")]
    Config(String),
    /// A message is larger than its protocol allows.
    #[error("{what} is {len} bytes, over the {max}-byte limit; send large data by fetch instead")]
    TooLarge {
        /// Which kind of message.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Bytes from the wire did not decode.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// Which kind of message.
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// An announcement's signature or signer is wrong.
    #[error("bad announcement signature: {0}")]
    BadSignature(String),
    /// Gossipsub refused to publish (no peers on the topic yet, duplicate, …).
    #[error("cannot publish on {topic}: {reason}; retry once peers have subscribed")]
    Publish {
        /// The topic.
        topic: String,
        /// Gossipsub's reason.
        reason: String,
    },
    /// The peer does not hold the requested content.
    #[error("peer {peer} does not have {key:?}; ask another peer")]
    NotFound {
        /// Who was asked.
        peer: String,
        /// What was asked for.
        key: Hash,
    },
    /// A chunk request failed in transit (timeout, closed connection, unsupported protocol).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// Who was asked.
        peer: String,
        /// Why it failed.
        reason: String,
    },
    /// A peer sent chunks that do not fit together (lengths, counts, size cap).
    #[error("peer {peer} sent an inconsistent payload for {key:?}: {reason}")]
    BadPayload {
        /// The sender.
        peer: String,
        /// What was asked for.
        key: Hash,
        /// What was wrong.
        reason: String,
    },
    /// The assembled payload does not hash to the announced key.
    #[error("payload from {peer} hashes to {got:?}, not the announced {key:?}; it was discarded")]
    HashMismatch {
        /// The sender.
        peer: String,
        /// The announced hash.
        key: Hash,
        /// The hash of what arrived.
        got: Hash,
    },
    /// The network task has stopped.
    #[error("the network task has stopped; restart the node")]
    Stopped,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
