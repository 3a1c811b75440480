//! A pipeline stage's training chain as its job runs: a checkpoint every segment, each step's
//! batches and frames, and the leaves that name them (`docs/verification.md`, "Stage work").
//!
//! The checkpoints and each segment's work go to the node's chain store as they are made, so an
//! opening can serve them after the round; the chain itself goes back with the job's result and
//! its root into the stage's announcement. A job that stops early (its lane broke) ends its chain
//! with the steps it trained, the last segment shorter.

use neuroshard_node::CheckpointStore;
use neuroshard_primitives::Hash;
use neuroshard_train::StageLoop;
use neuroshard_verify::stage::{LaneWork, segment_hash};
use neuroshard_verify::{Chain, Checkpoint, Segments};

use crate::audit::DiskCheckpoints;
use crate::{Error, Result};

/// A chain being recorded (see the module docs).
#[derive(Debug)]
pub(crate) struct StageChain {
    store: DiskCheckpoints,
    round: u64,
    len: u64,
    chain: Chain,
    losses: Vec<f32>,
    work: Vec<Vec<LaneWork>>,
}

impl StageChain {
    /// Starts `round`'s chain cut as `segments`, at `inner`'s state before global step `step`.
    pub(crate) fn start(
        store: DiskCheckpoints,
        round: u64,
        segments: Segments,
        inner: &StageLoop,
        step: u64,
    ) -> Result<Self> {
        let mut chain = Self {
            store,
            round,
            len: segments.len.max(1),
            chain: Chain::new(),
            losses: Vec::new(),
            work: Vec::new(),
        };
        chain.leaf(inner, step)?;
        Ok(chain)
    }

    /// Records a step that `inner` just took (its next step is `next`) with its loss (`NaN` off
    /// the last stage) and its lanes' work; a leaf when the step ends a segment.
    pub(crate) fn step(
        &mut self,
        inner: &StageLoop,
        next: u64,
        loss: f32,
        work: Vec<LaneWork>,
    ) -> Result<()> {
        self.losses.push(loss);
        self.work.push(work);
        match self.losses.len() as u64 % self.len {
            0 => self.leaf(inner, next),
            _ => Ok(()),
        }
    }

    /// The chain, with a last leaf for a segment the job left short (`inner`'s next step is
    /// `next`).
    pub(crate) fn finish(mut self, inner: &StageLoop, next: u64) -> Result<Chain> {
        if !self.work.is_empty() {
            self.leaf(inner, next)?;
        }
        Ok(self.chain)
    }

    /// Pushes the leaf of the checkpoint before step `next` and of the steps since the last one,
    /// and keeps both in the store.
    fn leaf(&mut self, inner: &StageLoop, next: u64) -> Result<()> {
        let checkpoint = Checkpoint::capture_stage(inner, next);
        let index = self.chain.leaves().len() as u64;
        let work = std::mem::take(&mut self.work);
        let hash = match index {
            0 => Hash::default(),
            _ => segment_hash(&work),
        };
        self.chain
            .push(&checkpoint, std::mem::take(&mut self.losses), hash);
        if index > 0 {
            self.store.keep_work(self.round, index - 1, &work)?;
        }
        self.store
            .keep(self.round, index, checkpoint.to_bytes())
            .map_err(|err| Error::Worker(format!("keeping a chain checkpoint: {err}")))
    }
}
