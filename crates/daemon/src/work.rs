//! The training side of the node: its round-aware batch source, the replica that runs H inner
//! steps, and the validation loss, all run on a blocking thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::Device;
use neuroshard_data::{GenesisDir, TrainBatches, assign};
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_node::{LossGauge, ModelWorker, TrainingJob, TrainingResult, Worker};
use neuroshard_primitives::{Batch, BatchSource, NodeId};
use neuroshard_train::{InnerConfig, InnerLoop, mean_loss};

use crate::audit::DiskCheckpoints;
use crate::grow::Depths;
use crate::lane::Lane;
use crate::{Error, Result};

/// What the driver and the training thread share: which round is wanted, how far the job is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// The round the driver wants trained; a job for an earlier round stops at its next step.
    pub(crate) wanted: Arc<AtomicU64>,
    /// Inner steps done in the running job.
    pub(crate) step: Arc<AtomicU64>,
    /// Global index of the inner step running now (round × H + step): the steps done before it.
    pub(crate) global: Arc<AtomicU64>,
}

/// Where the node's shards are and how it is assigned them.
#[derive(Debug, Clone)]
pub(crate) struct Assignment {
    /// The local genesis directory (holding at least this round's shards when a job starts).
    pub(crate) dir: PathBuf,
    /// This node.
    pub(crate) node: NodeId,
    /// Shards per node per round.
    pub(crate) per_node: usize,
    /// Inner steps per round (batch `i` belongs to round `i / H`).
    pub(crate) inner_steps: u64,
}

impl Assignment {
    /// The training shards of `round`, as `neuroshard_data::assign` gives them.
    pub(crate) fn shards(&self, dir: &GenesisDir, round: u64) -> Vec<usize> {
        let n = dir.manifest().shards.len();
        assign(dir.network_id(), round, self.node, n, self.per_node)
    }
}

/// Batches of the round's assigned shards, loaded once per round, stopping early when the driver
/// has moved on to a later round (the node resynced while this job ran).
#[derive(Debug)]
pub(crate) struct RoundSource {
    assignment: Assignment,
    progress: Progress,
    loaded: Mutex<Option<(u64, TrainBatches)>>,
}

impl RoundSource {
    pub(crate) fn new(assignment: Assignment, progress: Progress) -> Self {
        Self {
            assignment,
            progress,
            loaded: Mutex::new(None),
        }
    }

    fn load(&self, round: u64) -> Result<TrainBatches> {
        let dir = GenesisDir::open(&self.assignment.dir)?;
        let shards = self.assignment.shards(&dir, round);
        let id_bits =
            u64::from_le_bytes(self.assignment.node.0[..8].try_into().expect("32-byte id"));
        Ok(dir.train_batches(Some(&shards), dir.genesis().seed ^ id_bits)?)
    }
}

impl BatchSource for RoundSource {
    type Error = Error;

    fn batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch> {
        let h = self.assignment.inner_steps;
        let round = index / h;
        if round < self.progress.wanted.load(Ordering::Relaxed) {
            return Err(Error::Worker(format!(
                "round {round} was overtaken by a resync"
            )));
        }
        self.progress.step.store(index % h + 1, Ordering::Relaxed);
        self.progress.global.store(index, Ordering::Relaxed);
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if loaded.as_ref().is_none_or(|(at, _)| *at != round) {
            *loaded = Some((round, self.load(round)?));
        }
        let (_, batches) = loaded.as_ref().expect("loaded above");
        Ok(batches.batch(index, batch, seq)?)
    }
}

/// The batches of each lane a pipeline stage serves: a lane reads the assignment of its
/// first-stage member (`crate::route::LanePath::data_node`), a stand-in's second lane included.
#[derive(Debug)]
pub(crate) struct LaneSources {
    assignment: Assignment,
    progress: Progress,
    by_node: BTreeMap<NodeId, RoundSource>,
}

impl LaneSources {
    pub(crate) fn new(assignment: Assignment, progress: Progress) -> Self {
        Self {
            assignment,
            progress,
            by_node: BTreeMap::new(),
        }
    }

    /// Batch `index` of the lane whose data node is `node`.
    pub(crate) fn batch(
        &mut self,
        node: NodeId,
        index: u64,
        batch: usize,
        seq: usize,
    ) -> Result<Batch> {
        let (assignment, progress) = (&self.assignment, &self.progress);
        let source = self.by_node.entry(node).or_insert_with(|| {
            let assignment = Assignment {
                node,
                ..assignment.clone()
            };
            RoundSource::new(assignment, progress.clone())
        });
        source.batch(index, batch, seq)
    }
}

/// What trains: the whole model's replica with an evaluation copy, or one stage of a pipeline
/// lane with the lane's batches.
#[derive(Debug)]
enum Engine {
    Whole {
        worker: Box<ModelWorker<RoundSource, DiskCheckpoints>>,
        eval: NeuroLlm,
    },
    Stage {
        lane: Box<Lane>,
        sources: LaneSources,
        gauge: LossGauge,
    },
}

/// The engine and the held-out batches; moved onto a blocking thread for each job.
#[derive(Debug)]
pub(crate) struct Trainer {
    engine: Engine,
    val: Option<Vec<Batch>>,
    val_batches: usize,
    inner: InnerConfig,
    dir: PathBuf,
    /// The depths the model can have, and the seed new models are drawn from (a stage's
    /// are built from its start model's weights: 0).
    depths: (Depths, u64),
    #[cfg(feature = "cheat")]
    pub(crate) cheat: Option<crate::Cheat>,
}

/// The replica changed depth: the depth before, and the validation loss of the start model
/// cut back to it (when it grew and the node measures one).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refit {
    pub(crate) from: usize,
    pub(crate) val_before: Option<f32>,
}

/// One finished job: the training result (or why it failed) and how long it trained.
#[derive(Debug)]
pub(crate) struct JobOutcome {
    /// The job that ran.
    pub(crate) job: TrainingJob,
    /// H inner steps, or why they stopped.
    pub(crate) result: Result<TrainingResult>,
    /// Wall time of the inner steps, seconds.
    pub(crate) train_secs: f64,
}

impl Trainer {
    /// A replica of `model` (initialised from `seed`) over the assigned shards.
    pub(crate) fn new(
        model: &Config,
        seed: u64,
        inner: InnerConfig,
        assignment: Assignment,
        progress: Progress,
        val_batches: usize,
        chains: DiskCheckpoints,
        depths: Depths,
    ) -> Result<Self> {
        let dir = assignment.dir.clone();
        let source = RoundSource::new(assignment, progress);
        let replica = InnerLoop::new(NeuroLlm::new(model, seed, &Device::Cpu)?, inner)?;
        let worker = ModelWorker::new(replica, source, chains);
        let eval = NeuroLlm::new(model, seed, &Device::Cpu)?;
        Ok(Self {
            engine: Engine::Whole {
                worker: Box::new(worker),
                eval,
            },
            val: None,
            val_batches,
            inner,
            dir,
            depths: (depths, seed),
            #[cfg(feature = "cheat")]
            cheat: None,
        })
    }

    /// A stage of a pipeline lane, reading the batches `assignment` (with another node) gives
    /// each served lane's first-stage member, with the whole-model trainer's validation settings.
    pub(crate) fn stage(
        lane: Lane,
        assignment: Assignment,
        progress: Progress,
        val_batches: usize,
        inner: InnerConfig,
        depths: Depths,
    ) -> Self {
        let dir = assignment.dir.clone();
        Self {
            engine: Engine::Stage {
                lane: Box::new(lane),
                sources: LaneSources::new(assignment, progress),
                gauge: LossGauge::new(),
            },
            val: None,
            val_batches,
            inner,
            dir,
            depths: (depths, 0),
            #[cfg(feature = "cheat")]
            cheat: None,
        }
    }

    /// A pipeline stage takes the role of a new plan that keeps its stage (`Lane::replan`);
    /// a whole-model trainer has no role and ignores it.
    pub(crate) fn replan(&mut self, role: crate::role::Role) {
        if let Engine::Stage { lane, .. } = &mut self.engine {
            lane.replan(role);
        }
    }

    /// Brings the replica (its AdamW state carried over) and the evaluation model to the depth
    /// of `params`, when the network's model grew (or the node installed a state of another
    /// depth). Returns the new depth, and when it changed the old one with the validation loss
    /// of `round`'s start model cut back to it: the model right before growth, since growth
    /// only adds layers. A pipeline stage (`Lane::fit`) reports its depth only when it changed,
    /// without the loss before (its validation runs through the whole lane).
    pub(crate) fn fit(
        &mut self,
        round: u64,
        params: &[f32],
    ) -> Result<Option<(usize, Option<Refit>)>> {
        let (depths, seed) = &self.depths;
        let (worker, eval) = match &mut self.engine {
            Engine::Whole { worker, eval } => (worker, eval),
            Engine::Stage { lane, .. } => {
                let fitted = lane.fit(params.len(), depths)?;
                let refit = |(from, to)| {
                    (
                        to,
                        Some(Refit {
                            from,
                            val_before: None,
                        }),
                    )
                };
                return Ok(fitted.map(refit));
            }
        };
        let from = eval.config().n_layers;
        if eval.n_params() == params.len() {
            return Ok(Some((from, None)));
        }
        let config = depths.config_for(params.len()).ok_or_else(|| {
            Error::Worker(format!(
                "no depth of the model has {} parameters",
                params.len()
            ))
        })?;
        let refit = crate::grow::refit(worker.inner(), &config, *seed)?;
        worker.set_inner(refit.ok_or_else(|| Error::Worker("the sizes differ".into()))?);
        let grown = NeuroLlm::new(&config, *seed, &Device::Cpu)?;
        let before = eval.carry_from(&grown, params)?;
        let val_before = match config.n_layers > from {
            true => self.val_loss(round, &before)?,
            false => None,
        };
        if let Engine::Whole { eval, .. } = &mut self.engine {
            *eval = grown;
        }
        Ok(Some((config.n_layers, Some(Refit { from, val_before }))))
    }

    /// A gauge that follows the inner-step loss while jobs run.
    pub(crate) fn loss_gauge(&self) -> LossGauge {
        match &self.engine {
            Engine::Whole { worker, .. } => worker.loss_gauge(),
            Engine::Stage { gauge, .. } => gauge.clone(),
        }
    }

    /// The validation loss of `round`'s start model, `None` when the node measures none or
    /// cannot (logged), or is a pipeline stage without the head. Blocking: call it on a
    /// blocking thread.
    pub(crate) fn validate(&mut self, round: u64, start: &[f32]) -> Option<f32> {
        self.val_loss(round, start).unwrap_or_else(|err| {
            tracing::warn!(%err, "cannot measure the validation loss");
            None
        })
    }

    /// Runs the job's inner steps. Blocking: call it on a blocking thread.
    pub(crate) fn run(&mut self, job: TrainingJob, start: &[f32]) -> JobOutcome {
        #[allow(clippy::disallowed_methods)] // the driver's training thread: wall time for tokens/s
        let started = std::time::Instant::now();
        let result = self
            .train(&job, start)
            .map_err(|err| Error::Worker(err.to_string()));
        JobOutcome {
            job,
            result,
            train_secs: started.elapsed().as_secs_f64(),
        }
    }

    /// The job's inner steps (a lazy cheater's test build skips them all).
    fn train(
        &mut self,
        job: &TrainingJob,
        start: &[f32],
    ) -> neuroshard_node::Result<TrainingResult> {
        let worker = match &mut self.engine {
            Engine::Whole { worker, .. } => worker,
            Engine::Stage {
                lane,
                sources,
                gauge,
            } => {
                return lane
                    .train(job, start, sources, gauge)
                    .map_err(|err| neuroshard_node::Error::Data(Box::new(err)));
            }
        };
        #[cfg(feature = "cheat")]
        if self.cheat == Some(crate::Cheat::Lazy) {
            return worker.train_lazily(job, start, |_| true);
        }
        worker.train(job, start)
    }

    /// Mean loss of `params` on the held-out batches (loaded on first use); `None` when the
    /// node measures none.
    fn val_loss(&mut self, round: u64, params: &[f32]) -> Result<Option<f32>> {
        if self.val_batches == 0 {
            return Ok(None);
        }
        if self.val.is_none() {
            let shape = (self.inner.batch_size, self.inner.seq_len);
            self.val = Some(val_batches(&self.dir, shape, self.val_batches)?);
        }
        let batches = self.val.as_deref().unwrap_or_default();
        if batches.is_empty() {
            return Ok(None);
        }
        match &mut self.engine {
            Engine::Whole { eval, .. } => {
                eval.set_flat_params(params)?;
                Ok(Some(mean_loss(eval, batches)?))
            }
            Engine::Stage { lane, .. } => {
                let batches = &batches[..batches.len().min(crate::lane::VAL_BATCHES)];
                lane.validate(round, params, batches)
            }
        }
    }
}

/// Up to `count` held-out batches of `shape` (sequences, tokens) from the genesis directory.
pub(crate) fn val_batches(dir: &Path, shape: (usize, usize), count: usize) -> Result<Vec<Batch>> {
    let val = GenesisDir::open(dir)?.validation_batches()?;
    let (batch, seq) = shape;
    let count = val.n_batches(batch, seq).min(count as u64);
    Ok((0..count)
        .map(|i| val.batch(i, batch, seq))
        .collect::<Result<Vec<_>, _>>()?)
}
