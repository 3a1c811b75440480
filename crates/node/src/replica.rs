//! The worker that trains a real NeuroLLM replica: H inner AdamW steps on the node's batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use neuroshard_model::NeuroLlm;
use neuroshard_primitives::BatchSource;
use neuroshard_train::{AdamW, AdamWConfig, LrSchedule, clip_grad_norm};

use crate::work::{TrainingJob, TrainingResult, Worker};
use crate::{Error, Result};

/// How a replica trains between outer steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InnerConfig {
    /// Sequences per inner step.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// The inner optimiser.
    pub adamw: AdamWConfig,
    /// Learning rate by global inner step (round × H + step).
    pub schedule: LrSchedule,
    /// Gradients are clipped to this global L2 norm.
    pub clip_norm: f32,
}

impl InnerConfig {
    /// Tokens one inner step trains on.
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.seq_len) as u64
    }
}

/// The latest inner-step loss of a worker, readable from other threads while it trains (for a
/// live display). Cheap to clone; every clone reads the same value.
#[derive(Debug, Clone)]
pub struct LossGauge(Arc<AtomicU32>);

impl LossGauge {
    fn new() -> Self {
        Self(Arc::new(AtomicU32::new(f32::NAN.to_bits())))
    }

    fn set(&self, loss: f32) {
        self.0.store(loss.to_bits(), Ordering::Relaxed);
    }

    /// The loss of the last inner step, `None` before the first.
    pub fn get(&self) -> Option<f32> {
        Some(f32::from_bits(self.0.load(Ordering::Relaxed))).filter(|l| !l.is_nan())
    }
}

/// A NeuroLLM replica with its own AdamW state, which persists across rounds as DiLoCo wants.
#[derive(Debug)]
pub struct ModelWorker<S> {
    model: NeuroLlm,
    adamw: AdamW,
    inner: InnerConfig,
    data: S,
    gauge: LossGauge,
}

impl<S: BatchSource> ModelWorker<S> {
    /// A replica of `model` training on `data` (this node's assigned batches).
    pub fn new(model: NeuroLlm, inner: InnerConfig, data: S) -> Result<Self> {
        let adamw = AdamW::new(model.n_params(), inner.adamw)?;
        inner.schedule.validate()?;
        Ok(Self {
            model,
            adamw,
            inner,
            data,
            gauge: LossGauge::new(),
        })
    }

    /// A gauge that follows this worker's inner-step loss.
    pub fn loss_gauge(&self) -> LossGauge {
        self.gauge.clone()
    }

    /// One inner step at global step `step`: loss, gradients, clip, AdamW.
    fn inner_step(&mut self, params: &mut [f32], step: u64) -> Result<f32> {
        let batch = self
            .data
            .batch(step, self.inner.batch_size, self.inner.seq_len)
            .map_err(|err| Error::Data(Box::new(err)))?;
        self.model.set_flat_params(params)?;
        let (loss, mut grads) = self.model.loss_and_grads(&batch)?;
        clip_grad_norm(&mut grads, self.inner.clip_norm);
        self.adamw
            .step(params, &grads, self.inner.schedule.lr(step));
        self.gauge.set(loss);
        Ok(loss)
    }
}

impl<S: BatchSource> Worker for ModelWorker<S> {
    type Error = Error;

    /// H inner steps from `start`; batch `round × H + i` is step `i`'s, so a replay (or a
    /// verifier) sees the same data.
    fn train(&mut self, job: &TrainingJob, start: &[f32]) -> Result<TrainingResult> {
        let mut params = start.to_vec();
        let first = job.round * job.steps as u64;
        let losses = (0..job.steps as u64)
            .map(|i| self.inner_step(&mut params, first + i))
            .collect::<Result<Vec<f32>>>()?;
        let delta = start.iter().zip(&params).map(|(s, e)| s - e).collect();
        // The first and last tenth of the steps (at least one each).
        let window = (losses.len() / 10).clamp(1, losses.len().max(1));
        let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len().max(1) as f32;
        Ok(TrainingResult {
            round: job.round,
            start: job.start,
            delta,
            tokens: job.steps as u64 * self.inner.tokens_per_step(),
            loss_start: mean(&losses[..window.min(losses.len())]),
            loss_end: mean(&losses[losses.len() - window.min(losses.len())..]),
        })
    }
}
