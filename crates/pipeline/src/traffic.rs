//! What one stage's step received and sent: the frames a stage's work commitment names, so an
//! auditor can replay the step from what came in and compare what went out
//! (`docs/verification.md`, "Stage work").
//!
//! Frames are kept as their encoded bytes, keyed by kind and micro-batch, so the record is the
//! same whatever order the network delivered them in. A frame's bytes name its step, its
//! receiving stage and its micro-batch, so the record of one step cannot pass for another's.
//! Between nodes every frame travels with its sender's [`Seal`], kept beside it, so a stage
//! cannot name inputs none of its neighbours sent it.

use std::collections::BTreeMap;

use neuroshard_primitives::{Hash, Keypair, NodeId, Signed};
use serde::{Deserialize, Serialize};

use crate::frame::FrameKind;

/// Encoded frames by (kind, micro-batch).
pub type Frames = BTreeMap<(FrameKind, u32), Vec<u8>>;

/// The namespace a lane neighbour signs the frames it sends under.
pub const SEAL_NAMESPACE: &[u8] = b"_NEUROSHARD_PIPELINE_FRAME";

/// Bytes of a seal's signature, which a sealed frame carries after the frame.
pub const SEAL_BYTES: usize = 64;

/// A sender's signature on a frame it sent to one receiver: the receiver's id and the frame's
/// hash under [`SEAL_NAMESPACE`]. The frame's bytes name its step, stage and micro-batch, so a
/// seal vouches for exactly one frame of one step, sent to one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    /// Who sent the frame.
    pub from: NodeId,
    /// Its signature (a `Vec` so hostile input of the wrong length decodes, then fails).
    pub signature: Vec<u8>,
}

impl Seal {
    /// `key`'s seal on `frame`, sent to `to`.
    pub fn sign(key: &Keypair, to: &NodeId, frame: &[u8]) -> Self {
        let signed = key.sign(SEAL_NAMESPACE, &seal_payload(to, frame));
        Seal {
            from: signed.signer,
            signature: signed.signature,
        }
    }

    /// Whether this seal is its sender's signature on `frame`, sent to `to`.
    pub fn holds(&self, to: &NodeId, frame: &[u8]) -> bool {
        Signed {
            signer: self.from,
            payload: seal_payload(to, frame),
            signature: self.signature.clone(),
        }
        .verify(SEAL_NAMESPACE)
        .is_ok()
    }

    /// A frame as it travels: its bytes, then this seal's signature (the sender is the peer it
    /// came from).
    pub fn onto(&self, frame: Vec<u8>) -> Vec<u8> {
        let mut sealed = frame;
        sealed.extend_from_slice(&self.signature);
        sealed
    }

    /// A frame that came from `from` as it travelled, split into the frame and its seal;
    /// `None` when it is too short to carry one. The seal is not checked ([`Seal::holds`]).
    pub fn off(from: NodeId, mut sealed: Vec<u8>) -> Option<(Vec<u8>, Seal)> {
        let at = sealed.len().checked_sub(SEAL_BYTES)?;
        let signature = sealed.split_off(at);
        Some((sealed, Seal { from, signature }))
    }
}

fn seal_payload(to: &NodeId, frame: &[u8]) -> Vec<u8> {
    [to.0, Hash::of(frame).0].concat()
}

/// The frames of one stage's step on one lane, by (kind, micro-batch).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Activations from the previous stage and gradients from the next, as they arrived.
    pub received: Frames,
    /// Activations to the next stage and gradients to the previous, as they were sent.
    pub sent: Frames,
    /// The senders' seals on the received frames, under the same keys (none in one process).
    pub seals: BTreeMap<(FrameKind, u32), Seal>,
}

impl Traffic {
    /// The hash a commitment names: every frame's hash under its key, received then sent.
    pub fn hash(&self) -> Hash {
        let mut bytes = b"neuroshard-pipeline/traffic".to_vec();
        for frames in [&self.received, &self.sent] {
            bytes.extend_from_slice(&(frames.len() as u64).to_le_bytes());
            for ((kind, m), frame) in frames {
                bytes.push(*kind as u8);
                bytes.extend_from_slice(&m.to_le_bytes());
                bytes.extend_from_slice(&Hash::of(frame).0);
            }
        }
        bytes.extend_from_slice(&(self.seals.len() as u64).to_le_bytes());
        for ((kind, m), seal) in &self.seals {
            bytes.push(*kind as u8);
            bytes.extend_from_slice(&m.to_le_bytes());
            bytes.extend_from_slice(&seal.from.0);
            bytes.extend_from_slice(&Hash::of(&seal.signature).0);
        }
        Hash::of(&bytes)
    }

    /// Whether two neighbours' records of one step agree: every activation this stage sent is
    /// what `next` received, and every gradient `next` sent is what this stage received, byte
    /// for byte. A stage that names inputs its neighbour never sent fails this against the
    /// neighbour's own record.
    pub fn agrees_with_next(&self, next: &Traffic) -> bool {
        of_kind(&self.sent, FrameKind::Activation) == of_kind(&next.received, FrameKind::Activation)
            && of_kind(&next.sent, FrameKind::Gradient)
                == of_kind(&self.received, FrameKind::Gradient)
    }
}

/// The frames of one kind, in key order.
fn of_kind(frames: &Frames, kind: FrameKind) -> Vec<(u32, &[u8])> {
    frames
        .iter()
        .filter(|((k, _), _)| *k == kind)
        .map(|((_, m), bytes)| (*m, bytes.as_slice()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_holds_for_its_frame_and_receiver_only() {
        let (sender, to) = (
            Keypair::from_seed([1; 32]),
            Keypair::from_seed([2; 32]).node_id(),
        );
        let frame = b"a frame".to_vec();
        let seal = Seal::sign(&sender, &to, &frame);
        assert!(seal.holds(&to, &frame));
        assert!(!seal.holds(&sender.node_id(), &frame), "another receiver");
        assert!(!seal.holds(&to, b"another frame"));
        let forged = Seal {
            from: to,
            ..seal.clone()
        };
        assert!(!forged.holds(&to, &frame), "another sender");

        let (back, off) = Seal::off(sender.node_id(), seal.onto(frame.clone())).unwrap();
        assert_eq!((back, &off), (frame, &seal));
        assert!(Seal::off(to, vec![0; SEAL_BYTES - 1]).is_none());
    }

    #[test]
    fn a_seal_enters_the_hash() {
        let mut traffic = Traffic::default();
        traffic
            .received
            .insert((FrameKind::Activation, 0), b"f".to_vec());
        let unsealed = traffic.hash();
        let key = Keypair::from_seed([3; 32]);
        let seal = Seal::sign(&key, &key.node_id(), b"f");
        traffic.seals.insert((FrameKind::Activation, 0), seal);
        assert_ne!(traffic.hash(), unsealed);
    }
}
