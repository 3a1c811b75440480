//! What an audit concludes: the outcome, why a segment failed, and how useful the contribution
//! was.

use serde::{Deserialize, Serialize};

/// Why a contribution failed its audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum Fault {
    /// The opening does not match the commitment (leaves, hashes, sizes, step counters, base).
    #[error("bad opening: {0}")]
    Opening(String),
    /// The replay landed farther from the committed checkpoint than honest replays do.
    #[error("replay diverged: distance {distance} from the committed checkpoint")]
    Diverged {
        /// Relative distance (see `Tolerance::state`).
        distance: f32,
    },
    /// A committed loss is not the one the replay computed.
    #[error("step {step}: committed loss {claimed}, replayed {replayed}")]
    Losses {
        /// The global inner step.
        step: u64,
        /// What the chain committed.
        claimed: f32,
        /// What the replay computed.
        replayed: f32,
    },
    /// The last checkpoint does not encode to the announced Δ.
    #[error("encoding: {0}")]
    Encoding(String),
    /// A pipeline stage's work does not hold at a step: it sent frames its replay does not send
    /// (`crate::stage::judge_frames`), names received frames no neighbour sealed for it
    /// (`check_seals`), or trained a lane on other tokens than its data node's (`check_batches`).
    #[error("step {step}: {reason}")]
    Frames {
        /// The global inner step.
        step: u64,
        /// What differs.
        reason: String,
    },
}

/// The outcome of one audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The replay matched, at this relative state distance.
    Passed {
        /// See `Tolerance::state`.
        distance: f32,
    },
    /// The segment failed (the fraud proof travels with this verdict).
    Failed(Fault),
    /// The contributor did not serve the challenged segment in time.
    Withheld,
}

/// How much a contribution helps: losses before and after applying its Δ alone at the outer
/// learning rate, on held-out data and on the contributor's assigned data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Usefulness {
    /// Held-out loss of the round's start model.
    pub val_before: f32,
    /// Held-out loss after the Δ.
    pub val_after: f32,
    /// Loss on the audited segment's batches, before.
    pub own_before: f32,
    /// The same, after.
    pub own_after: f32,
}

impl Usefulness {
    /// How much the held-out loss fell (negative when the Δ hurt).
    pub fn val_gain(&self) -> f32 {
        self.val_before - self.val_after
    }
}

/// A verifier's signed conclusion about one contribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The round audited.
    pub round: u64,
    /// The contributor audited.
    pub contributor: neuroshard_primitives::NodeId,
    /// The segment replayed.
    pub segment: u64,
    /// What the audit found.
    pub outcome: Outcome,
    /// The contribution's usefulness, when the segment could be replayed.
    pub usefulness: Option<Usefulness>,
}
