//! Training work: the job the node hands to its driver and the result the driver hands back.
//!
//! H inner steps of a real model take seconds to hours, so they never run inside
//! [`crate::Node::handle`]. The node emits [`crate::Output::Train`]; the driver runs the job
//! with a [`Worker`] (in the simulator, while accounting simulated compute time) and feeds the
//! result back as [`crate::Input::Trained`]. Audits replay other nodes' segments the same way:
//! the node emits [`crate::Output::Replay`], the driver runs it with a [`Verifier`] and feeds
//! back [`crate::Input::Replayed`].

use neuroshard_primitives::{Hash, NodeId};
use neuroshard_verify::{Chain, Checkpoint, Fault, Opened, Segments, Usefulness};

use crate::Round;

/// H inner steps from the node's current parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingJob {
    /// The round being trained.
    pub round: Round,
    /// Inner steps to run.
    pub steps: usize,
    /// Hash of the parameters to start from (what [`crate::Node::params`] returns now).
    pub start: Hash,
    /// How to cut the job into a committed chain; `None` when the network does not audit.
    pub chain: Option<Segments>,
}

/// The outcome of a [`TrainingJob`].
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingResult {
    /// The round trained.
    pub round: Round,
    /// Hash of the parameters the job started from (the job's [`TrainingJob::start`]).
    pub start: Hash,
    /// The pseudo-gradient Δ = θ_start − θ_end, flat, in canonical parameter order.
    pub delta: Vec<f32>,
    /// Training tokens processed.
    pub tokens: u64,
    /// Mean loss over the first inner steps.
    pub loss_start: f32,
    /// Mean loss over the last inner steps.
    pub loss_end: f32,
    /// The job's chain (empty when the job asked for none); the worker keeps its checkpoints
    /// for [`Worker::checkpoint`].
    pub chain: Chain,
}

/// Runs training jobs; the driver owns one per node.
pub trait Worker {
    /// Why a job can fail (a corrupt shard, a model error).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Runs `job` starting from the parameters `start`.
    fn train(&mut self, job: &TrainingJob, start: &[f32]) -> Result<TrainingResult, Self::Error>;
}

/// Why a replay runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    /// This node's own audit; `usefulness` holds the round's start model and the contributor's
    /// decoded Δ, to score it.
    Audit {
        /// The round's start parameters and the contributor's Δ.
        usefulness: Option<(Vec<f32>, Vec<f32>)>,
    },
    /// Checking another node's fraud proof: if the replay passes, the accuser lied.
    Proof {
        /// Who sent the proof.
        accuser: NodeId,
    },
}

/// One segment of another node's chain to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayJob {
    /// The round the segment was trained in.
    pub round: Round,
    /// Whose segment.
    pub contributor: NodeId,
    /// The checked opening: where to start, what to compare with.
    pub opened: Opened,
    /// Why.
    pub purpose: Purpose,
}

/// What a replay computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// The checkpoint the replay reached.
    pub end: Checkpoint,
    /// Each replayed step's loss.
    pub losses: Vec<f32>,
    /// The contribution's usefulness, when the job asked for it.
    pub usefulness: Option<Usefulness>,
    /// For a pipeline stage: whether the frames it committed as sent are those the replay sent
    /// (`neuroshard_verify::stage::judge_frames`); `Ok` for a whole model's segment.
    pub frames: Result<(), Fault>,
}

/// Replays segments of other nodes' chains; the driver owns one per node and runs it beside
/// training.
pub trait Verifier {
    /// Why a replay can fail on this node (its data or model, not the contributor's fault).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Replays `job`'s segment on the contributor's assigned batches.
    fn replay(&mut self, job: &ReplayJob) -> Result<Replayed, Self::Error>;
}
