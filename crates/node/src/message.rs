//! The messages nodes exchange, their signing namespaces, size limits and wire form.
//!
//! On the wire a message is a postcard-encoded [`Signed`] envelope whose payload is the
//! postcard-encoded [`Message`]. The namespace a signature is checked under is chosen by the
//! decoded message's kind, so a signature made for one kind never verifies as another.
//! Decoding checks the frame's size first, never panics, and never allocates more than the
//! frame holds.

use neuroshard_primitives::{Hash, Keypair, NodeId, Signed};
use neuroshard_verify::{Commitment, Opening, Verdict};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The largest announcement, model-hash or request frame: it must fit a gossip message.
pub const MAX_SMALL_FRAME: usize = 64 * 1024;

/// A training round number, counting from 0.
pub type Round = u64;

/// A node's signed claim: "my Δ for `round` has this hash and size".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// The round the Δ belongs to.
    pub round: Round,
    /// Hash of the model the contributor started the round from.
    pub base: Hash,
    /// Hash of the encoded Δ (the payload peers fetch).
    pub delta: Hash,
    /// Length of the encoded Δ in bytes.
    pub delta_len: u64,
    /// Training tokens the contributor claims to have processed this round.
    pub tokens: u64,
    /// Mean training loss over the first inner steps, as the contributor reports it.
    pub loss_start: f32,
    /// Mean training loss over the last inner steps, as the contributor reports it.
    pub loss_end: f32,
    /// What the contributor's training commits to (`None` when the network does not audit).
    pub commitment: Option<Commitment>,
    /// The contributor's memory budget in bytes (`u64::MAX`: unbounded): summed over a round's
    /// included contributors, the pool size the growth schedule reads (`docs/pool.md`).
    pub memory_budget: u64,
}

/// Every message of the round protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// A contribution announcement, gossiped to everyone.
    Announce(Announcement),
    /// A request for the encoded Δ with hash `delta` of `round`.
    Fetch {
        /// The round.
        round: Round,
        /// The announced hash.
        delta: Hash,
    },
    /// The encoded Δ for `round`, answering a [`Message::Fetch`].
    Delta {
        /// The round.
        round: Round,
        /// The compressed pseudo-gradient, checked against the announced hash.
        payload: Vec<u8>,
    },
    /// The hash of the model a node holds after applying `round`'s outer step.
    ModelHash {
        /// The round just finished.
        round: Round,
        /// Hash of the flat parameters.
        hash: Hash,
    },
    /// A request for the full model state after `round` or a later round (a node found itself
    /// out of sync).
    SyncRequest {
        /// The earliest round whose end state will do.
        round: Round,
    },
    /// The full model state after `round` (the sender's last closed round), answering a
    /// [`Message::SyncRequest`].
    SyncState {
        /// The round whose end state this is.
        round: Round,
        /// Flat parameters, little-endian f32.
        params: Vec<u8>,
        /// The outer optimiser's state, as its owner serialises it.
        outer: Vec<u8>,
        /// Members the sender's rounds have stopped waiting for (they missed a deadline), so the
        /// installing node waits for the same members as the network.
        missed: Vec<NodeId>,
        /// The pool sizes at the sender's last round boundaries, oldest first (at most
        /// [`crate::POOL_HISTORY`]), so the receiver grows at the same boundary as the sender.
        pool: Vec<u64>,
    },
    /// An audit: serve segment `segment` of your chain for `round`.
    Challenge {
        /// The round audited.
        round: Round,
        /// Whose chain.
        contributor: NodeId,
        /// The segment the ticket draws.
        segment: u64,
        /// The auditor's ticket: its signature over the round, the contributor's commitment
        /// root and the contributor (see `neuroshard_verify::audit`).
        ticket: Vec<u8>,
    },
    /// The challenged segment, answering a [`Message::Challenge`].
    Opening {
        /// The round audited.
        round: Round,
        /// Both checkpoints with their Merkle proofs.
        opening: Opening,
    },
    /// An auditor's conclusion about one contribution.
    Verdict(Verdict),
    /// Proof that `contributor`'s work for `round` is false: its own signed announcement and
    /// signed opening, which any node can check and replay.
    FraudProof {
        /// The round.
        round: Round,
        /// The accused.
        contributor: NodeId,
        /// The accused's sealed [`Message::Announce`] frame.
        announcement: Vec<u8>,
        /// The accused's sealed [`Message::Opening`] frame.
        opening: Vec<u8>,
    },
    /// A request for the recipient's latest [`Message::ModelHash`] vote, from a member built
    /// from scratch at `round` that holds no round's model: it trains once it has the network's.
    VoteRequest {
        /// The round the asker is about to train.
        round: Round,
    },
}

impl Message {
    /// The signing namespace of this message's kind.
    pub fn namespace(&self) -> &'static [u8] {
        match self {
            Message::Announce(_) => b"_NEUROSHARD_ROUND_ANNOUNCE",
            Message::Fetch { .. } => b"_NEUROSHARD_ROUND_FETCH",
            Message::Delta { .. } => b"_NEUROSHARD_ROUND_DELTA",
            Message::ModelHash { .. } => b"_NEUROSHARD_ROUND_MODEL_HASH",
            Message::SyncRequest { .. } => b"_NEUROSHARD_ROUND_SYNC_REQUEST",
            Message::SyncState { .. } => b"_NEUROSHARD_ROUND_SYNC_STATE",
            Message::Challenge { .. } => b"_NEUROSHARD_AUDIT_CHALLENGE",
            Message::Opening { .. } => b"_NEUROSHARD_AUDIT_OPENING",
            Message::Verdict(_) => b"_NEUROSHARD_AUDIT_VERDICT",
            Message::FraudProof { .. } => b"_NEUROSHARD_AUDIT_FRAUD_PROOF",
            Message::VoteRequest { .. } => b"_NEUROSHARD_ROUND_VOTE_REQUEST",
        }
    }

    /// The round the message is about.
    pub fn round(&self) -> Round {
        match self {
            Message::Announce(a) => a.round,
            Message::Verdict(v) => v.round,
            Message::Fetch { round, .. }
            | Message::Delta { round, .. }
            | Message::ModelHash { round, .. }
            | Message::SyncRequest { round }
            | Message::VoteRequest { round }
            | Message::SyncState { round, .. }
            | Message::Challenge { round, .. }
            | Message::Opening { round, .. }
            | Message::FraudProof { round, .. } => *round,
        }
    }

    /// Whether this kind carries a large payload; the others must fit [`MAX_SMALL_FRAME`].
    fn is_bulk(&self) -> bool {
        matches!(
            self,
            Message::Delta { .. }
                | Message::SyncState { .. }
                | Message::Opening { .. }
                | Message::FraudProof { .. }
        )
    }

    /// Signs and encodes the message for the wire.
    pub fn seal(&self, key: &Keypair) -> Vec<u8> {
        let payload = postcard::to_allocvec(self).expect("messages always serialise");
        let signed = key.sign(self.namespace(), &payload);
        postcard::to_allocvec(&signed).expect("envelopes always serialise")
    }

    /// Decodes and verifies a frame of at most `max_frame` bytes: the message and who signed it.
    pub fn open(frame: &[u8], max_frame: usize) -> Result<(NodeId, Message)> {
        if frame.len() > max_frame {
            return Err(Error::FrameTooLarge {
                len: frame.len(),
                max: max_frame,
            });
        }
        let signed: Signed = postcard::from_bytes(frame).map_err(Error::Malformed)?;
        let message: Message = postcard::from_bytes(&signed.payload).map_err(Error::Malformed)?;
        if !message.is_bulk() && frame.len() > MAX_SMALL_FRAME {
            return Err(Error::FrameTooLarge {
                len: frame.len(),
                max: MAX_SMALL_FRAME,
            });
        }
        signed.verify(message.namespace())?;
        Ok((signed.signer, message))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn announce() -> Message {
        Message::Announce(Announcement {
            round: 3,
            base: Hash::of(b"model"),
            delta: Hash::of(b"delta"),
            delta_len: 10,
            tokens: 4096,
            loss_start: 5.0,
            loss_end: 4.0,
            commitment: None,
            memory_budget: u64::MAX,
        })
    }

    #[test]
    fn seal_then_open_round_trips() {
        let key = Keypair::from_seed([9; 32]);
        for message in [
            announce(),
            Message::Delta {
                round: 1,
                payload: vec![1, 2, 3],
            },
            Message::SyncRequest { round: 2 },
            Message::VoteRequest { round: 3 },
        ] {
            let frame = message.seal(&key);
            let (signer, opened) = Message::open(&frame, 1 << 20).unwrap();
            assert_eq!(signer, key.node_id());
            assert_eq!(opened, message);
        }
    }

    #[test]
    fn tampering_and_oversize_are_rejected() {
        let key = Keypair::from_seed([9; 32]);
        let mut frame = announce().seal(&key);
        assert!(matches!(
            Message::open(&frame, 8),
            Err(Error::FrameTooLarge { .. })
        ));
        let last = frame.len() - 70;
        frame[last] ^= 1;
        assert!(Message::open(&frame, 1 << 20).is_err());
    }

    #[test]
    fn a_signature_for_one_kind_does_not_verify_as_another() {
        let key = Keypair::from_seed([9; 32]);
        let hash = Message::ModelHash {
            round: 1,
            hash: Hash::of(b"x"),
        };
        let payload = postcard::to_allocvec(&hash).unwrap();
        let forged = key.sign(b"_NEUROSHARD_ROUND_ANNOUNCE", &payload);
        let frame = postcard::to_allocvec(&forged).unwrap();
        assert!(matches!(
            Message::open(&frame, 1 << 20),
            Err(Error::Signature(_))
        ));
    }

    #[test]
    fn small_kinds_are_size_bounded() {
        let key = Keypair::from_seed([9; 32]);
        let mut padded = key.sign(
            Message::SyncRequest { round: 1 }.namespace(),
            &postcard::to_allocvec(&Message::SyncRequest { round: 1 }).unwrap(),
        );
        padded.signature.resize(MAX_SMALL_FRAME, 0);
        let frame = postcard::to_allocvec(&padded).unwrap();
        assert!(matches!(
            Message::open(&frame, 1 << 20),
            Err(Error::FrameTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Message::open(&bytes, 1 << 20);
        }

        #[test]
        fn truncated_frames_are_errors(cut in 0usize..100) {
            let frame = announce().seal(&Keypair::from_seed([1; 32]));
            let cut = cut.min(frame.len() - 1);
            prop_assert!(Message::open(&frame[..cut], 1 << 20).is_err());
        }
    }
}
