//! What one stage's step received and sent: the frames a stage's work commitment names, so an
//! auditor can replay the step from what came in and compare what went out
//! (`docs/verification.md`, "Stage work").
//!
//! Frames are kept as their encoded bytes, keyed by kind and micro-batch, so the record is the
//! same whatever order the network delivered them in. A frame's bytes name its step, its
//! receiving stage and its micro-batch, so the record of one step cannot pass for another's.

use std::collections::BTreeMap;

use neuroshard_primitives::Hash;
use serde::{Deserialize, Serialize};

use crate::frame::FrameKind;

/// Encoded frames by (kind, micro-batch).
pub type Frames = BTreeMap<(FrameKind, u32), Vec<u8>>;

/// The frames of one stage's step on one lane, by (kind, micro-batch).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Activations from the previous stage and gradients from the next, as they arrived.
    pub received: Frames,
    /// Activations to the next stage and gradients to the previous, as they were sent.
    pub sent: Frames,
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
