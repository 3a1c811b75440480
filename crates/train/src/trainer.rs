//! The local trainer, stepping the shared inner loop, and the run description that makes a run
//! reproducible.

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_primitives::{Batch, BatchSource, Hash};
use serde::{Deserialize, Serialize};

use crate::{
    AdamW, AdamWConfig, Error, InnerConfig, InnerLoop, LossEstimate, LrSchedule, Result, StepStats,
    evaluate,
};

/// Everything that fixes a run's trajectory: with the same spec and data, every step's loss is
/// the same to the bit. Stored in each checkpoint's `meta.json` and checked on resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The model's sizes.
    pub model: Config,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Rows per batch.
    pub batch: usize,
    /// Tokens per row the model sees.
    pub seq: usize,
    /// Learning rate per step; its `total_steps` is the length of the run.
    pub schedule: LrSchedule,
    /// Optimizer hyper-parameters.
    pub adamw: AdamWConfig,
    /// Gradients are clipped to this global L2 norm (without DP).
    pub max_grad_norm: f32,
    /// DP-SGD settings; absent in checkpoints written before DP existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<crate::DpConfig>,
    /// Hash of the tokenizer the token ids come from.
    pub tokenizer_hash: Hash,
    /// Identity of the training data (a manifest root, or the hash of an in-memory corpus).
    pub data_id: Hash,
}

impl RunSpec {
    /// Checks the parts a trainer relies on: model config, schedule, optimizer, sizes.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        self.adamw.validate()?;
        if self.batch == 0 || self.seq == 0 {
            return Err(Error::InvalidHyperParameters(format!(
                "batch ({}) and seq ({}) must both be at least 1",
                self.batch, self.seq
            )));
        }
        if !(self.max_grad_norm > 0.0 && self.max_grad_norm.is_finite()) {
            return Err(Error::InvalidHyperParameters(format!(
                "max grad norm {} must be positive and finite",
                self.max_grad_norm
            )));
        }
        Ok(())
    }

    /// The inner loop's settings this run trains with.
    pub fn inner(&self) -> InnerConfig {
        InnerConfig {
            batch_size: self.batch,
            seq_len: self.seq,
            adamw: self.adamw,
            schedule: self.schedule,
            clip_norm: self.max_grad_norm,
            dp: self.dp,
        }
    }
}

/// A model, its optimizer and the step counter: `step` reads batch `step` from the source, so
/// a trainer restored from a checkpoint continues exactly where the saved one was.
#[derive(Debug)]
pub struct Trainer {
    spec: RunSpec,
    inner: InnerLoop,
    step: u64,
}

impl Trainer {
    /// A fresh run: weights from `spec.seed`, zeroed optimizer, step 0.
    pub fn new(spec: RunSpec, device: &Device) -> Result<Self> {
        spec.validate()?;
        let model = NeuroLlm::new(&spec.model, spec.seed, device)?;
        let inner = InnerLoop::new(model, spec.inner())?;
        Ok(Self {
            spec,
            inner,
            step: 0,
        })
    }

    /// A trainer from saved parts (see `checkpoint::load`), checking they fit together.
    pub fn from_parts(spec: RunSpec, model: NeuroLlm, optimizer: AdamW, step: u64) -> Result<Self> {
        spec.validate()?;
        if model.config() != &spec.model {
            return Err(Error::SpecMismatch {
                field: "model",
                checkpoint: format!("{:?}", model.config()),
                requested: format!("{:?}", spec.model),
            });
        }
        let inner = InnerLoop::from_parts(model, optimizer, spec.inner())?;
        Ok(Self { spec, inner, step })
    }

    /// The run description.
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// The model as of the last step.
    pub fn model(&self) -> &NeuroLlm {
        self.inner.model()
    }

    /// The optimizer state.
    pub fn optimizer(&self) -> &AdamW {
        self.inner.optimizer()
    }

    /// Steps completed: the index of the next batch.
    pub fn step_index(&self) -> u64 {
        self.step
    }

    /// Whether the schedule's `total_steps` have all been taken.
    pub fn is_done(&self) -> bool {
        self.step >= self.spec.schedule.total_steps
    }

    /// One step: batch `step` → loss and gradients → clip → AdamW at the scheduled rate.
    ///
    /// A non-finite loss or gradient norm stops with an error before the weights change.
    pub fn step<S: BatchSource>(&mut self, source: &S) -> Result<StepStats> {
        let batch = source
            .batch(self.step, self.spec.batch, self.spec.seq)
            .map_err(Error::data)?;
        self.step_on(&batch)
    }

    /// One step on the given batch, at the learning rate the schedule gives the current step.
    pub fn step_on(&mut self, batch: &Batch) -> Result<StepStats> {
        let gradients = self
            .inner
            .gradients(std::slice::from_ref(batch), self.step)?;
        if !gradients.loss.is_finite() || !gradients.grad_norm.is_finite() {
            return Err(Error::NonFinite {
                step: self.step,
                loss: gradients.loss,
                grad_norm: gradients.grad_norm,
            });
        }
        let stats = self.inner.descend(&gradients, self.step)?;
        self.step += 1;
        Ok(stats)
    }

    /// The current parameters, flat in canonical order.
    pub fn params(&self) -> &[f32] {
        self.inner.params()
    }

    /// Replaces the parameters (flat, canonical order), keeping the optimizer state and step.
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.inner.set_params(params)
    }

    /// The loss over batches `0..n_batches` of `source` with its standard error, without
    /// changing anything (see [`crate::loss_estimate`]).
    pub fn evaluate<S: BatchSource>(&self, source: &S, n_batches: u64) -> Result<LossEstimate> {
        evaluate(
            self.inner.model(),
            source,
            n_batches,
            self.spec.batch,
            self.spec.seq,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemorySource;

    fn spec() -> RunSpec {
        RunSpec {
            model: Config::preset("nano", 16).unwrap(),
            seed: 2,
            batch: 1,
            seq: 8,
            schedule: LrSchedule::new(0, 3, 1e-3, 0.0).unwrap(),
            adamw: AdamWConfig::NEUROSHARD,
            max_grad_norm: 1.0,
            dp: None,
            tokenizer_hash: Hash::of(b"t"),
            data_id: Hash::of(b"d"),
        }
    }

    #[test]
    fn a_failing_source_stops_the_step_without_touching_the_weights() {
        let mut trainer = Trainer::new(spec(), &Device::Cpu).unwrap();
        let before = trainer.model().param_hash().unwrap();
        let short = InMemorySource::new(vec![1, 2, 3], 0);
        assert!(matches!(trainer.step(&short), Err(Error::Data(_))));
        assert_eq!(trainer.step_index(), 0);
        assert_eq!(trainer.model().param_hash().unwrap(), before);
    }

    #[test]
    fn steps_count_up_to_the_schedule_and_report_their_rate() {
        let mut trainer = Trainer::new(spec(), &Device::Cpu).unwrap();
        let source = InMemorySource::new((0..100).map(|i| i % 16).collect(), 0);
        let stats = trainer.step(&source).unwrap();
        assert_eq!((stats.step, stats.tokens), (1, 8));
        assert_eq!(stats.lr, 1e-3);
        assert!(stats.grad_norm > 0.0 && stats.loss > 0.0);
        trainer.step(&source).unwrap();
        trainer.step(&source).unwrap();
        assert!(trainer.is_done());
        assert!(trainer.evaluate(&source, 2).unwrap().mean.is_finite());
    }

    #[test]
    fn invalid_specs_are_refused() {
        let zero_batch = RunSpec { batch: 0, ..spec() };
        assert!(matches!(
            Trainer::new(zero_batch, &Device::Cpu),
            Err(Error::InvalidHyperParameters(_))
        ));
        let bad_clip = RunSpec {
            max_grad_norm: 0.0,
            dp: None,
            ..spec()
        };
        assert!(bad_clip.validate().is_err());
    }
}
