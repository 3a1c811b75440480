//! What the simulated nodes train: the genesis parameters, one worker per node, and the
//! validation loss the report tracks; [`ModelWorkload`] does it with real NeuroLLM replicas.

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_node::{
    Assignments, MemoryCheckpoints, ModelVerifier, ModelWorker, TrainingJob, TrainingResult,
    Verifier, Worker,
};
use neuroshard_primitives::{Batch, BatchSource, NodeId};
use neuroshard_train::{InnerConfig, InnerLoop, mean_loss};

use crate::{Error, Result};

/// The model-and-data side of a simulation.
pub trait Workload {
    /// The worker that runs one node's inner steps.
    type Worker: Worker;
    /// What replays audited segments (one for the whole run: a replay's result does not depend
    /// on who runs it).
    type Verifier: Verifier;

    /// The genesis parameters every node starts from.
    fn init_params(&self) -> Result<Vec<f32>>;

    /// The worker for node number `index`, whose id is `id` (its data assignment depends on
    /// it), keeping its checkpoints in `store`.
    fn worker(&self, index: usize, id: NodeId, store: MemoryCheckpoints) -> Result<Self::Worker>;

    /// The verifier, for nodes with these `ids` (in index order), scoring usefulness at outer
    /// learning rate `outer_lr`.
    fn verifier(&self, ids: &[NodeId], outer_lr: f32) -> Result<Self::Verifier>;

    /// A lazy node's job: `worker` trains `job` but skips the segments `skip` marks.
    fn train_lazily(
        &self,
        worker: &mut Self::Worker,
        job: &TrainingJob,
        start: &[f32],
        skip: &[bool],
    ) -> Result<TrainingResult>;

    /// Mean loss of `params` on the held-out validation batches.
    fn val_loss(&mut self, params: &[f32]) -> Result<f32>;

    /// Tokens one inner step trains on (for compute time and per-token figures).
    fn tokens_per_step(&self) -> u64;
}

/// Where each node's training batches and the validation batches come from.
pub trait DataPlan {
    /// One node's batches.
    type Source: BatchSource;

    /// The batches node number `node` (id `id`) is assigned.
    fn source(&self, node: usize, id: NodeId) -> Result<Self::Source>;

    /// `count` held-out batches of `batch` rows of `seq + 1` tokens.
    fn val_batches(&self, count: usize, batch: usize, seq: usize) -> Result<Vec<Batch>>;
}

/// Real NeuroLLM replicas on the CPU, each training on its node's share of `data`.
#[derive(Debug)]
pub struct ModelWorkload<D> {
    config: Config,
    seed: u64,
    inner: InnerConfig,
    data: D,
    val: Vec<Batch>,
    eval: NeuroLlm,
}

impl<D: DataPlan> ModelWorkload<D> {
    /// Models of shape `config` initialised from `seed`, trained with `inner`, validated on
    /// `val_batches` (at least one) held-out batches of the inner batch shape.
    pub fn new(
        config: Config,
        seed: u64,
        inner: InnerConfig,
        data: D,
        val_batches: usize,
    ) -> Result<Self> {
        if val_batches == 0 {
            return Err(Error::InvalidConfig(
                "the validation loss needs at least one held-out batch; use --val-batches 1 or more"
                    .into(),
            ));
        }
        let val = data.val_batches(val_batches, inner.batch_size, inner.seq_len)?;
        let eval = NeuroLlm::new(&config, seed, &Device::Cpu)?;
        Ok(Self {
            config,
            seed,
            inner,
            data,
            val,
            eval,
        })
    }

    /// A copy with its own evaluation model, for another run on the same settings.
    pub fn fresh(&self) -> Result<Self>
    where
        D: Clone,
    {
        Ok(Self {
            config: self.config.clone(),
            seed: self.seed,
            inner: self.inner,
            data: self.data.clone(),
            val: self.val.clone(),
            eval: self.genesis_model()?,
        })
    }

    /// The model's shape.
    pub fn model_config(&self) -> &Config {
        &self.config
    }

    /// The inner-loop settings.
    pub fn inner(&self) -> &InnerConfig {
        &self.inner
    }

    /// The data plan.
    pub fn data(&self) -> &D {
        &self.data
    }

    /// A fresh model with the genesis weights.
    pub fn genesis_model(&self) -> Result<NeuroLlm> {
        Ok(NeuroLlm::new(&self.config, self.seed, &Device::Cpu)?)
    }
}

impl<D: DataPlan + Clone> Workload for ModelWorkload<D> {
    type Worker = ModelWorker<D::Source, MemoryCheckpoints>;
    type Verifier = ModelVerifier<PlanAssignments<D>>;

    fn init_params(&self) -> Result<Vec<f32>> {
        Ok(self.eval.flat_params()?)
    }

    fn worker(&self, index: usize, id: NodeId, store: MemoryCheckpoints) -> Result<Self::Worker> {
        let source = self.data.source(index, id)?;
        let inner = InnerLoop::new(self.genesis_model()?, self.inner)?;
        Ok(ModelWorker::new(inner, source, store))
    }

    fn verifier(&self, ids: &[NodeId], outer_lr: f32) -> Result<Self::Verifier> {
        let inner = InnerLoop::new(self.genesis_model()?, self.inner)?;
        let data = PlanAssignments {
            plan: self.data.clone(),
            ids: ids.to_vec(),
        };
        Ok(ModelVerifier::new(inner, data, self.val.clone(), outer_lr))
    }

    fn train_lazily(
        &self,
        worker: &mut Self::Worker,
        job: &TrainingJob,
        start: &[f32],
        skip: &[bool],
    ) -> Result<TrainingResult> {
        worker
            .train_lazily(job, start, |j| skip.get(j as usize) == Some(&true))
            .map_err(|err| Error::InvalidConfig(err.to_string()))
    }

    fn val_loss(&mut self, params: &[f32]) -> Result<f32> {
        if params.iter().any(|p| !p.is_finite()) {
            return Ok(f32::NAN);
        }
        self.eval.set_flat_params(params)?;
        Ok(mean_loss(&self.eval, &self.val)?)
    }

    fn tokens_per_step(&self) -> u64 {
        self.inner.tokens_per_step()
    }
}

/// A data plan as a verifier sees it: batches by node id.
#[derive(Debug)]
pub struct PlanAssignments<D> {
    plan: D,
    ids: Vec<NodeId>,
}

impl<D: DataPlan> Assignments for PlanAssignments<D> {
    type Source = D::Source;

    fn source(&self, node: NodeId) -> neuroshard_node::Result<D::Source> {
        let index = self.ids.iter().position(|id| *id == node).ok_or_else(|| {
            neuroshard_node::Error::InvalidConfig(format!("{node} is not a node of this run"))
        })?;
        self.plan
            .source(index, node)
            .map_err(|err| neuroshard_node::Error::Data(Box::new(err)))
    }
}
