//! What the simulated nodes train: the genesis parameters, one worker per node, and the
//! validation loss the report tracks; [`ModelWorkload`] does it with real NeuroLLM replicas.

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_node::{ModelWorker, Worker};
use neuroshard_primitives::{Batch, BatchSource, NodeId};
use neuroshard_train::{InnerConfig, InnerLoop, mean_loss};

use crate::{Error, Result};

/// The model-and-data side of a simulation.
pub trait Workload {
    /// The worker that runs one node's inner steps.
    type Worker: Worker;

    /// The genesis parameters every node starts from.
    fn init_params(&self) -> Result<Vec<f32>>;

    /// The worker for node number `index`, whose id is `id` (its data assignment depends on it).
    fn worker(&self, index: usize, id: NodeId) -> Result<Self::Worker>;

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

impl<D: DataPlan> Workload for ModelWorkload<D> {
    type Worker = ModelWorker<D::Source>;

    fn init_params(&self) -> Result<Vec<f32>> {
        Ok(self.eval.flat_params()?)
    }

    fn worker(&self, index: usize, id: NodeId) -> Result<Self::Worker> {
        let source = self.data.source(index, id)?;
        let inner = InnerLoop::new(self.genesis_model()?, self.inner)?;
        Ok(ModelWorker::new(inner, source))
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
