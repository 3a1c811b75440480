//! The worker that trains a real NeuroLLM replica: H steps of the shared inner loop
//! (`neuroshard_train::InnerLoop`) on the node's batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use neuroshard_primitives::BatchSource;
use neuroshard_train::InnerLoop;

use crate::work::{TrainingJob, TrainingResult, Worker};
use crate::{Error, Result};

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
    inner: InnerLoop,
    data: S,
    gauge: LossGauge,
}

impl<S: BatchSource> ModelWorker<S> {
    /// A replica stepping `inner` on `data` (this node's assigned batches).
    pub fn new(inner: InnerLoop, data: S) -> Self {
        Self {
            inner,
            data,
            gauge: LossGauge::new(),
        }
    }

    /// A gauge that follows this worker's inner-step loss.
    pub fn loss_gauge(&self) -> LossGauge {
        self.gauge.clone()
    }

    /// One inner step at global step `step`, on batch `step` of the node's data.
    fn inner_step(&mut self, step: u64) -> Result<f32> {
        let config = self.inner.config();
        let batch = self
            .data
            .batch(step, config.batch_size, config.seq_len)
            .map_err(|err| Error::Data(Box::new(err)))?;
        let loss = self.inner.step_on(&batch, step)?.loss;
        self.gauge.set(loss);
        Ok(loss)
    }
}

impl<S: BatchSource> Worker for ModelWorker<S> {
    type Error = Error;

    /// H inner steps from `start`; batch `round × H + i` is step `i`'s, so a replay (or a
    /// verifier) sees the same data.
    fn train(&mut self, job: &TrainingJob, start: &[f32]) -> Result<TrainingResult> {
        self.inner.set_params(start)?;
        let first = job.round * job.steps as u64;
        let losses = (0..job.steps as u64)
            .map(|i| self.inner_step(first + i))
            .collect::<Result<Vec<f32>>>()?;
        let delta = start
            .iter()
            .zip(self.inner.params())
            .map(|(s, e)| s - e)
            .collect();
        // The first and last tenth of the steps (at least one each).
        let window = (losses.len() / 10).clamp(1, losses.len().max(1));
        let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len().max(1) as f32;
        Ok(TrainingResult {
            round: job.round,
            start: job.start,
            delta,
            tokens: job.steps as u64 * self.inner.config().tokens_per_step(),
            loss_start: mean(&losses[..window.min(losses.len())]),
            loss_end: mean(&losses[losses.len() - window.min(losses.len())..]),
        })
    }
}
