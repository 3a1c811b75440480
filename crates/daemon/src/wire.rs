//! How the node core's frames and the dataset's offers travel over the p2p layer.
//!
//! The node core speaks in frames to "everyone" and to "one peer"; the p2p layer offers gossip
//! (small, signed, ≤ 64 KiB) and fetch-by-hash (large, chunked, hash-checked). The mapping:
//!
//! | core output | small frame (≤ [`SMALL_FRAME`]) | large frame |
//! |---|---|---|
//! | `Broadcast(frame)` | gossip on [`ROUND_TOPIC`] under [`FRAME_NS`] | store it, gossip an [`Offer`] on [`ROUND_TOPIC`] |
//! | `Send(peer, frame)` | gossip on the peer's [`inbox_topic`] | store it, gossip an [`Offer`] on the peer's inbox |
//!
//! A receiver hands a frame's bytes to the core as sent by the gossip author; for an offer it
//! first fetches the bytes from the author by hash. Nothing here is trusted: the core opens and
//! checks every frame (size, decoding, signature), and the fetch checks the hash.

use neuroshard_primitives::{Hash, NodeId};
use serde::{Deserialize, Serialize};

/// Gossip topic of frames for every member.
pub(crate) const ROUND_TOPIC: &str = "round";
/// Gossip topic on which holders of genesis data say what they hold.
pub(crate) const DATA_TOPIC: &str = "genesis-data";
/// Gossip topic of the nodes' capacity records (`neuroshard_pool::CapacityRecord`).
pub(crate) const POOL_TOPIC: &str = "pool";
/// Namespace of an announcement whose payload is a sealed capacity record.
pub(crate) const POOL_NS: &str = "neuroshard/capacity/1";
/// Namespace of an announcement whose payload is a [`crate::role::PlanNotice`]: the pipeline
/// plan the sender trains under (`docs/replan.md`).
pub(crate) const PLAN_NS: &str = "neuroshard/plan/1";
/// Namespace of an announcement whose payload is a node-core frame.
pub(crate) const FRAME_NS: &str = "neuroshard/frame/1";
/// Namespace of an announcement whose payload is an [`Offer`].
pub(crate) const OFFER_NS: &str = "neuroshard/offer/1";
/// Namespace of an announcement whose payload is a [`Holdings`].
pub(crate) const HOLDINGS_NS: &str = "neuroshard/holdings/1";

/// Frames up to this size go inline in gossip; room is left for the announcement's own
/// namespace, signature and framing under the 64 KiB gossip limit.
pub(crate) const SMALL_FRAME: usize = neuroshard_p2p::MAX_ANNOUNCEMENT - 1024;

/// The gossip topic only `node` subscribes to: frames addressed to it.
pub(crate) fn inbox_topic(node: &NodeId) -> String {
    format!("inbox/{}", node.to_hex())
}

/// "Fetch the frame with this hash and length from me."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Offer {
    /// BLAKE3 of the frame.
    pub(crate) key: Hash,
    /// Its length in bytes (checked against the receiver's frame limit before fetching).
    pub(crate) len: u64,
}

/// What a node holds of the genesis dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holdings {
    /// BLAKE3 of its `manifest.json` (receivers check it against the genesis file's roots).
    pub(crate) manifest: Hash,
    /// Indices of the training shards it holds and serves.
    pub(crate) train: Vec<u32>,
    /// Whether it holds every validation shard.
    pub(crate) validation: bool,
}

/// Postcard bytes of a small wire struct; they always fit in gossip.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("wire structs always serialise")
}

/// Decodes untrusted bytes; never panics.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn offers_and_holdings_round_trip() {
        let offer = Offer {
            key: Hash::of(b"frame"),
            len: 1 << 30,
        };
        assert_eq!(decode::<Offer>(&encode(&offer)), Some(offer));
        let holdings = Holdings {
            manifest: Hash::of(b"manifest"),
            train: vec![0, 3, 7],
            validation: true,
        };
        assert_eq!(decode::<Holdings>(&encode(&holdings)), Some(holdings));
        assert_ne!(inbox_topic(&NodeId([1; 32])), inbox_topic(&NodeId([2; 32])));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Offer>(&bytes);
            let _ = decode::<Holdings>(&bytes);
        }
    }
}
