//! The one inner step: batch → loss and gradients → clip → AdamW at lr(step); with DP on,
//! per-example clipping and seeded Gaussian noise take the place of the global clip (`dp.rs`).
//!
//! Verification replays training, so the local trainer, a DiLoCo node's worker, the benchmark,
//! the simulator's data-parallel baseline and a verifier all step through [`InnerLoop`]; none of
//! them strings the parts together on its own.

use neuroshard_model::NeuroLlm;
use neuroshard_primitives::Batch;

use crate::dp::private_gradients;
use crate::{AdamW, AdamWConfig, DpConfig, Error, LrSchedule, Result, clip_grad_norm};

/// How a replica trains between outer steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InnerConfig {
    /// Sequences per inner step.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// The inner optimiser.
    pub adamw: AdamWConfig,
    /// Learning rate by global inner step.
    pub schedule: LrSchedule,
    /// Gradients are clipped to this global L2 norm (without DP).
    pub clip_norm: f32,
    /// DP-SGD, when on: per-example clipping and Gaussian noise instead of the global clip,
    /// which would only rescale the noise-dominated mean AdamW normalises anyway.
    pub dp: Option<DpConfig>,
}

impl InnerConfig {
    /// Tokens one inner step trains on.
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch_size * self.seq_len) as u64
    }
}

/// What one step did, for progress displays and logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Steps completed after this one: the 0-based index of the step plus one.
    pub step: u64,
    /// Mean cross-entropy of the batch, before the update.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f32,
    /// Global gradient norm before clipping (with DP, the mean per-example norm before clipping).
    pub grad_norm: f32,
    /// Tokens predicted in the batch.
    pub tokens: usize,
}

/// The half of a step that only reads the weights: the loss and the clipped gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Mean cross-entropy over the batches.
    pub loss: f32,
    /// Global gradient norm before clipping (with DP, the mean per-example norm before clipping).
    pub grad_norm: f32,
    /// Tokens predicted in the batches.
    pub tokens: usize,
    grads: Vec<f32>,
}

/// A model, its AdamW state and its weights, flat in canonical order; the model always holds
/// the flat weights.
#[derive(Debug)]
pub struct InnerLoop {
    config: InnerConfig,
    model: NeuroLlm,
    optimizer: AdamW,
    params: Vec<f32>,
}

impl InnerLoop {
    /// An inner loop on `model`'s weights with a fresh AdamW state.
    pub fn new(model: NeuroLlm, config: InnerConfig) -> Result<Self> {
        let optimizer = AdamW::new(model.n_params(), config.adamw)?;
        Self::from_parts(model, optimizer, config)
    }

    /// An inner loop from saved parts, checking that they fit together.
    pub fn from_parts(model: NeuroLlm, optimizer: AdamW, config: InnerConfig) -> Result<Self> {
        config.schedule.validate()?;
        if optimizer.len() != model.n_params() {
            return Err(Error::LengthMismatch {
                what: "optimizer state",
                expected: model.n_params(),
                got: optimizer.len(),
            });
        }
        let params = model.flat_params()?;
        Ok(Self {
            config,
            model,
            optimizer,
            params,
        })
    }

    /// The settings.
    pub fn config(&self) -> &InnerConfig {
        &self.config
    }

    /// The model, holding the current weights.
    pub fn model(&self) -> &NeuroLlm {
        &self.model
    }

    /// The optimizer state.
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// The current weights, flat in canonical order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Replaces the weights (flat, canonical order), keeping the optimizer state.
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.model.set_flat_params(params)?;
        self.params.copy_from_slice(params);
        Ok(())
    }

    /// Replaces the weights and the optimizer state (a checkpoint a verifier replays from),
    /// checking that they fit the model.
    pub fn restore(&mut self, params: &[f32], optimizer: AdamW) -> Result<()> {
        fits(&optimizer, self.params.len())?;
        self.set_params(params)?;
        self.optimizer = optimizer;
        Ok(())
    }

    /// One inner step at the 0-based global step `step`: loss and gradients of `batch`, clip,
    /// AdamW at the rate the schedule gives `step`.
    pub fn step_on(&mut self, batch: &Batch, step: u64) -> Result<StepStats> {
        let gradients = self.gradients(std::slice::from_ref(batch), step)?;
        self.descend(&gradients, step)
    }

    /// The loss and the gradients at the current weights for the 0-based global step `step`,
    /// averaged over `batches` (one batch for an inner step, one per node for a synchronous
    /// data-parallel step), clipped to the global norm; with DP, privatised instead (`dp.rs`).
    ///
    /// Panics on an empty slice (a programmer error).
    pub fn gradients(&self, batches: &[Batch], step: u64) -> Result<Gradients> {
        assert!(!batches.is_empty(), "gradients: need at least one batch");
        let tokens = batches.iter().map(Batch::n_tokens).sum();
        if let Some(dp) = &self.config.dp {
            let private = private_gradients(&self.model, batches, dp, step)?;
            return Ok(Gradients {
                loss: private.loss,
                grad_norm: private.mean_norm,
                tokens,
                grads: private.grads,
            });
        }
        let (mut loss, mut grads) = self.model.loss_and_grads(&batches[0])?;
        if batches.len() > 1 {
            for batch in &batches[1..] {
                let (more_loss, more) = self.model.loss_and_grads(batch)?;
                loss += more_loss;
                grads.iter_mut().zip(&more).for_each(|(g, m)| *g += m);
            }
            let n = batches.len() as f32;
            loss /= n;
            grads.iter_mut().for_each(|g| *g /= n);
        }
        Ok(clipped(self.config.clip_norm, loss, tokens, grads))
    }

    /// The gradients a pipeline of stages computed for a step at the current weights (the mean
    /// loss over `tokens` predicted tokens and the mean gradient, flat in the whole model's
    /// canonical order), clipped to the global norm as [`InnerLoop::gradients`] clips its own,
    /// for [`InnerLoop::descend`]. DP-SGD needs per-example gradients, which a pipeline does not
    /// return, so it is refused with DP on.
    pub fn pipeline_gradients(
        &self,
        loss: f32,
        tokens: usize,
        grads: Vec<f32>,
    ) -> Result<Gradients> {
        if self.config.dp.is_some() {
            return Err(Error::InvalidHyperParameters(
                "DP-SGD needs per-example gradients, which a pipeline does not return; train without --dp".into(),
            ));
        }
        if grads.len() != self.params.len() {
            return Err(Error::LengthMismatch {
                what: "pipeline gradients",
                expected: self.params.len(),
                got: grads.len(),
            });
        }
        Ok(clipped(self.config.clip_norm, loss, tokens, grads))
    }

    /// The half of a step that writes the weights: AdamW on `gradients` at the rate the
    /// schedule gives the 0-based global step `step`.
    pub fn descend(&mut self, gradients: &Gradients, step: u64) -> Result<StepStats> {
        let stats = adamw_descent(
            &self.config,
            &mut self.optimizer,
            &mut self.params,
            gradients,
            step,
        );
        self.model.set_flat_params(&self.params)?;
        Ok(stats)
    }
}

/// Checks that an optimizer state restored into a loop covers its `n` parameters.
pub(crate) fn fits(optimizer: &AdamW, n: usize) -> Result<()> {
    match optimizer.len() == n {
        true => Ok(()),
        false => Err(Error::LengthMismatch {
            what: "optimizer state",
            expected: n,
            got: optimizer.len(),
        }),
    }
}

/// `grads` clipped to the L2 norm `clip_norm`, with the loss and tokens they came from.
pub(crate) fn clipped(clip_norm: f32, loss: f32, tokens: usize, mut grads: Vec<f32>) -> Gradients {
    let grad_norm = clip_grad_norm(&mut grads, clip_norm);
    Gradients {
        loss,
        grad_norm,
        tokens,
        grads,
    }
}

/// The update of an inner step: AdamW on `gradients` at the rate `config`'s schedule gives the
/// 0-based global step `step` (the whole model's [`InnerLoop::descend`] and a pipeline stage's
/// [`crate::StageLoop::descend`] both take it).
pub(crate) fn adamw_descent(
    config: &InnerConfig,
    optimizer: &mut AdamW,
    params: &mut [f32],
    gradients: &Gradients,
    step: u64,
) -> StepStats {
    let lr = config.schedule.lr(step);
    optimizer.step(params, &gradients.grads, lr);
    StepStats {
        step: step + 1,
        loss: gradients.loss,
        lr,
        grad_norm: gradients.grad_norm,
        tokens: gradients.tokens,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::Device;
    use neuroshard_model::Config;
    use neuroshard_primitives::BatchSource;

    use super::*;
    use crate::InMemorySource;

    /// A small inner loop's settings clipping at `clip_norm` (the stage tests use it too).
    pub(crate) fn config(clip_norm: f32) -> InnerConfig {
        InnerConfig {
            batch_size: 2,
            seq_len: 8,
            adamw: AdamWConfig::NEUROSHARD,
            schedule: LrSchedule::new(2, 20, 3e-3, 3e-4).unwrap(),
            clip_norm,
            dp: None,
        }
    }

    fn model() -> NeuroLlm {
        NeuroLlm::new(&Config::preset("nano", 32).unwrap(), 5, &Device::Cpu).unwrap()
    }

    fn inner_loop(clip_norm: f32) -> InnerLoop {
        InnerLoop::new(model(), config(clip_norm)).unwrap()
    }

    fn batch(index: u64) -> Batch {
        let source = InMemorySource::new((0..500).map(|i| (i * 7) % 32).collect(), 1);
        source.batch(index, 2, 8).unwrap()
    }

    #[test]
    fn a_step_is_loss_and_gradients_then_clip_then_adamw_at_the_scheduled_rate() {
        let mut inner = inner_loop(0.5);
        let mut model = model();
        let mut params = inner.params().to_vec();
        let mut adamw = AdamW::new(params.len(), AdamWConfig::NEUROSHARD).unwrap();
        for step in [7, 8] {
            let stats = inner.step_on(&batch(step), step).unwrap();
            let (loss, mut grads) = model.loss_and_grads(&batch(step)).unwrap();
            let norm = clip_grad_norm(&mut grads, 0.5);
            let lr = config(0.5).schedule.lr(step);
            adamw.step(&mut params, &grads, lr);
            model.set_flat_params(&params).unwrap();
            assert_eq!((stats.step, stats.loss, stats.lr), (step + 1, loss, lr));
            assert_eq!((stats.grad_norm, stats.tokens), (norm, 16));
            assert_eq!(inner.params(), &params[..]);
        }
        assert_eq!(
            inner.model().param_hash().unwrap(),
            model.param_hash().unwrap()
        );
    }

    #[test]
    fn a_pipelines_gradients_descend_like_the_models_own() {
        let (mut own, mut piped) = (inner_loop(0.5), inner_loop(0.5));
        let (loss, grads) = model().loss_and_grads(&batch(3)).unwrap();
        let from_pipeline = piped.pipeline_gradients(loss, 16, grads).unwrap();
        assert_eq!(from_pipeline, own.gradients(&[batch(3)], 3).unwrap());
        assert_eq!(
            piped.descend(&from_pipeline, 3).unwrap(),
            own.step_on(&batch(3), 3).unwrap()
        );
        assert_eq!(piped.params(), own.params());
        assert!(piped.pipeline_gradients(loss, 16, vec![0.0; 3]).is_err());
    }

    #[test]
    fn gradients_over_several_batches_are_their_mean() {
        let inner = inner_loop(f32::MAX);
        let (a, b) = (batch(0), batch(1));
        let both = inner.gradients(&[a.clone(), b.clone()], 0).unwrap();
        let (ga, gb) = (
            inner.gradients(&[a], 0).unwrap(),
            inner.gradients(&[b], 0).unwrap(),
        );
        assert_eq!(both.loss, (ga.loss + gb.loss) / 2.0);
        assert_eq!(both.tokens, 32);
        let mean: Vec<f32> = ga
            .grads
            .iter()
            .zip(&gb.grads)
            .map(|(x, y)| (x + y) / 2.0)
            .collect();
        assert_eq!(both.grads, mean);
    }

    fn private(noise: f32) -> InnerLoop {
        let config = InnerConfig {
            dp: Some(DpConfig::new(0.01, noise, 3).unwrap()),
            ..config(f32::MAX)
        };
        InnerLoop::new(model(), config).unwrap()
    }

    #[test]
    fn without_noise_dp_is_the_mean_of_the_clipped_per_example_gradients() {
        let inner = private(0.0);
        let got = inner.gradients(&[batch(0)], 0).unwrap();
        let whole = batch(0);
        let rows = whole.tokens.chunks(9).map(|r| Batch::new(r.to_vec(), 1, 8));
        let mut mean = vec![0.0_f32; inner.params().len()];
        let mut losses = 0.0;
        for row in rows {
            let (loss, mut grads) = inner.model().loss_and_grads(&row).unwrap();
            clip_grad_norm(&mut grads, 0.01);
            losses += loss;
            mean.iter_mut().zip(&grads).for_each(|(m, g)| *m += g);
        }
        mean.iter_mut().for_each(|m| *m /= 2.0);
        assert_eq!(got.grads, mean);
        assert_eq!(got.loss, losses / 2.0);
        assert!(crate::l2_norm(&got.grads) <= 0.01 * 1.0001);
    }

    #[test]
    fn dp_noise_is_replayable_and_depends_on_the_step() {
        let (a, b) = (private(1.0), private(1.0));
        let one = a.gradients(&[batch(0)], 4).unwrap();
        assert_eq!(one, b.gradients(&[batch(0)], 4).unwrap());
        assert_ne!(one, a.gradients(&[batch(0)], 5).unwrap());
        let quiet = private(0.0).gradients(&[batch(0)], 4).unwrap();
        let spread = one.grads.iter().zip(&quiet.grads).map(|(x, y)| x - y);
        let std =
            (spread.map(|d| f64::from(d).powi(2)).sum::<f64>() / one.grads.len() as f64).sqrt();
        assert!((std - 0.01 / 2.0).abs() < 0.001, "std {std}");
    }
}
