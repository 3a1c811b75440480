//! Training work: the job the node hands to its driver and the result the driver hands back.
//!
//! H inner steps of a real model take seconds to hours, so they never run inside
//! [`crate::Node::handle`]. The node emits [`crate::Output::Train`]; the driver runs the job
//! with a [`Worker`] (in the simulator, while accounting simulated compute time) and feeds the
//! result back as [`crate::Input::Trained`].

use neuroshard_primitives::Hash;

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
}

/// Runs training jobs; the driver owns one per node.
pub trait Worker {
    /// Why a job can fail (a corrupt shard, a model error).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Runs `job` starting from the parameters `start`.
    fn train(&mut self, job: &TrainingJob, start: &[f32]) -> Result<TrainingResult, Self::Error>;
}
