//! A workload without a model, for scenarios about the protocol rather than the learning: a
//! handful of parameters that each worker pulls towards a seeded target, so hundreds of rounds
//! take milliseconds.

use std::convert::Infallible;

use neuroshard_node::{
    MemoryCheckpoints, ReplayJob, Replayed, TrainingJob, TrainingResult, Verifier, Worker,
};
use neuroshard_primitives::NodeId;
use rand::Rng;

use crate::rng::RngTree;
use crate::{Result, Workload};

/// Parameters in the toy model.
const PARAMS: usize = 16;
/// Tokens one toy inner step stands for (it sets the simulated compute time).
const TOKENS_PER_STEP: u64 = 64;
/// The share of the distance to the target one inner step covers.
const STEP: f32 = 0.1;
/// The spread of each worker's error per round, relative to the distance it covers.
const SPREAD: f32 = 0.1;

/// Parameters start at zero; the validation loss is the mean squared distance to a target
/// drawn from the seed.
#[derive(Debug, Clone)]
pub struct ToyWorkload {
    tree: RngTree,
    target: Vec<f32>,
}

impl ToyWorkload {
    /// The toy problem for `seed`.
    pub fn new(seed: u64) -> Self {
        let tree = RngTree::new(seed);
        let mut rng = tree.stream("toy target", 0);
        let target = (0..PARAMS).map(|_| rng.random_range(-1.0..1.0)).collect();
        Self { tree, target }
    }
}

impl Workload for ToyWorkload {
    type Worker = ToyWorker;
    type Verifier = NoReplays;

    fn init_params(&self) -> Result<Vec<f32>> {
        Ok(vec![0.0; PARAMS])
    }

    fn verifier(&self, _ids: &[NodeId], _outer_lr: f32) -> Result<NoReplays> {
        Ok(NoReplays)
    }

    fn train_lazily(
        &self,
        worker: &mut ToyWorker,
        job: &TrainingJob,
        start: &[f32],
        _skip: &[bool],
    ) -> Result<TrainingResult> {
        let Ok(result) = worker.train(job, start);
        Ok(result)
    }

    fn worker(&self, index: usize, _id: NodeId, _store: MemoryCheckpoints) -> Result<ToyWorker> {
        Ok(ToyWorker {
            tree: RngTree::new(self.tree.seed_for("toy worker", index as u64)),
            target: self.target.clone(),
        })
    }

    fn val_loss(&mut self, params: &[f32]) -> Result<f32> {
        Ok(distance(params, &self.target))
    }

    fn tokens_per_step(&self) -> u64 {
        TOKENS_PER_STEP
    }
}

/// One node's toy trainer: H steps towards the target, plus an error of its own drawn from its
/// seed and the round, so replicas contribute different Δs and a restarted worker repeats them.
#[derive(Debug)]
pub struct ToyWorker {
    tree: RngTree,
    target: Vec<f32>,
}

impl Worker for ToyWorker {
    type Error = Infallible;

    fn train(&mut self, job: &TrainingJob, start: &[f32]) -> Result<TrainingResult, Infallible> {
        let covered = 1.0 - (1.0 - STEP).powi(job.steps as i32);
        let mut rng = self.tree.stream("toy delta", job.round);
        let end: Vec<f32> = start
            .iter()
            .zip(&self.target)
            .map(|(p, t)| {
                let error = SPREAD * rng.random_range(-1.0..1.0);
                p + (covered + error) * (t - p)
            })
            .collect();
        Ok(TrainingResult {
            round: job.round,
            start: job.start,
            delta: start.iter().zip(&end).map(|(s, e)| s - e).collect(),
            tokens: job.steps as u64 * TOKENS_PER_STEP,
            loss_start: distance(start, &self.target),
            loss_end: distance(&end, &self.target),
            chain: neuroshard_verify::Chain::new(),
        })
    }
}

/// The toy workload keeps no chains, so there is nothing to replay: its runs do not audit.
#[derive(Debug, Clone, Copy)]
pub struct NoReplays;

/// Why [`NoReplays`] refuses.
#[derive(Debug, thiserror::Error)]
#[error("the toy workload keeps no chains to replay; run it without audits")]
pub struct NothingToReplay;

impl Verifier for NoReplays {
    type Error = NothingToReplay;

    fn replay(&mut self, _job: &ReplayJob) -> Result<Replayed, NothingToReplay> {
        Err(NothingToReplay)
    }
}

/// Mean squared distance between `a` and `b`.
fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / a.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use neuroshard_primitives::Hash;

    use super::*;

    #[test]
    fn steps_towards_the_target_deterministically() {
        let workload = ToyWorkload::new(3);
        let start = workload.init_params().unwrap();
        let job = TrainingJob {
            round: 0,
            steps: 10,
            start: Hash::of_f32(&start),
            chain: None,
        };
        let id = NodeId([0; 32]);
        let worker = |i| {
            workload
                .worker(i, id, MemoryCheckpoints::default())
                .unwrap()
        };
        let first = worker(0).train(&job, &start).unwrap();
        let again = worker(0).train(&job, &start).unwrap();
        let other = worker(1).train(&job, &start).unwrap();
        assert_eq!(first, again);
        assert_ne!(first.delta, other.delta);
        assert!(first.loss_end < 0.5 * first.loss_start);
        assert_eq!(first.tokens, 640);
    }
}
