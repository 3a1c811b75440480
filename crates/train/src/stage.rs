//! One pipeline stage's inner step: the stage's share of a batch's gradient (computed by the
//! pipeline's 1F1B step), clipped to the stage's share of the global norm, then the same AdamW
//! update [`crate::InnerLoop::descend`] takes.
//!
//! A stage sees only its own gradient, so it cannot clip to the whole model's norm without the
//! other stages' squared norms. Each of S stages clips its own to `clip_norm / √S` instead: the
//! whole gradient then stays within `clip_norm`, as the global clip guarantees, but the stages are
//! rescaled separately (`docs/pipeline.md`).

use std::ops::Range;

use neuroshard_model::Stage;

use crate::inner::{adamw_descent, clipped, fits};
use crate::{AdamW, Error, Gradients, InnerConfig, Result, StepStats};

/// A stage, its AdamW state and its weights, flat in the stage's canonical order; the stage
/// always holds the flat weights.
#[derive(Debug)]
pub struct StageLoop {
    config: InnerConfig,
    stage: Stage,
    optimizer: AdamW,
    params: Vec<f32>,
    clip_norm: f32,
}

impl StageLoop {
    /// An inner loop on `stage`'s weights, one of `n_stages`, with a fresh AdamW state. DP-SGD
    /// needs per-example gradients, which a pipeline does not return, so it is refused.
    pub fn new(stage: Stage, config: InnerConfig, n_stages: usize) -> Result<Self> {
        config.schedule.validate()?;
        if config.dp.is_some() || n_stages == 0 {
            return Err(Error::InvalidHyperParameters(format!(
                "a pipeline stage of {n_stages} trains without DP-SGD and with at least one stage"
            )));
        }
        let optimizer = AdamW::new(stage.n_params(), config.adamw)?;
        let params = stage.flat_params()?;
        Ok(Self {
            clip_norm: config.clip_norm / (n_stages as f32).sqrt(),
            config,
            stage,
            optimizer,
            params,
        })
    }

    /// This loop with its stage grown to hold `layers` of the model at `n_layers`
    /// (`Stage::grown_to`, new layers drawn from `seed`): the grown stage's weights, the AdamW
    /// moments laid over its order (zeros for the new layers) and the step count kept, the same
    /// clip. A pipeline's stage grows so when the plan deepens the model (`docs/replan.md`).
    pub fn grown_to(&self, n_layers: usize, layers: Range<usize>, seed: u64) -> Result<Self> {
        let stage = self.stage.grown_to(n_layers, layers, seed)?;
        let m = stage.carry_from(&self.stage, self.optimizer.m())?;
        let v = stage.carry_from(&self.stage, self.optimizer.v())?;
        let optimizer = AdamW::from_state(*self.optimizer.config(), m, v, self.optimizer.steps())?;
        Ok(Self {
            config: self.config,
            params: stage.flat_params()?,
            stage,
            optimizer,
            clip_norm: self.clip_norm,
        })
    }

    /// The settings.
    pub fn config(&self) -> &InnerConfig {
        &self.config
    }

    /// The stage, holding the current weights.
    pub fn stage(&self) -> &Stage {
        &self.stage
    }

    /// The norm this stage clips its gradient to: `clip_norm / √S`.
    pub fn clip_norm(&self) -> f32 {
        self.clip_norm
    }

    /// The current weights, flat in the stage's canonical order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The AdamW state.
    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    /// Replaces the weights and the optimizer state (a checkpoint a verifier replays from),
    /// checking that they fit the stage.
    pub fn restore(&mut self, params: &[f32], optimizer: AdamW) -> Result<()> {
        fits(&optimizer, self.params.len())?;
        self.set_params(params)?;
        self.optimizer = optimizer;
        Ok(())
    }

    /// Replaces the weights, keeping the optimizer state.
    pub fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.stage.set_flat_params(params)?;
        self.params.copy_from_slice(params);
        Ok(())
    }

    /// The stage's mean gradient of a step (`loss` is the step's mean loss where this stage
    /// knows it, over `tokens` predicted tokens), clipped to [`StageLoop::clip_norm`].
    pub fn gradients(&self, loss: f32, tokens: usize, grads: Vec<f32>) -> Result<Gradients> {
        if grads.len() != self.params.len() {
            return Err(Error::LengthMismatch {
                what: "stage gradients",
                expected: self.params.len(),
                got: grads.len(),
            });
        }
        Ok(clipped(self.clip_norm, loss, tokens, grads))
    }

    /// One inner step of the stage, as its trainer and its auditors take it: the step's mean
    /// gradient `grads` over `tokens` predicted tokens, clipped ([`StageLoop::gradients`], the loss
    /// `NaN` where this stage does not know it), then AdamW at the 0-based global step `step`.
    pub fn step_on(
        &mut self,
        grads: Vec<f32>,
        loss: Option<f32>,
        tokens: usize,
        step: u64,
    ) -> Result<StepStats> {
        let gradients = self.gradients(loss.unwrap_or(f32::NAN), tokens, grads)?;
        self.descend(&gradients, step)
    }

    /// AdamW on `gradients` at the rate the schedule gives the 0-based global step `step`.
    pub fn descend(&mut self, gradients: &Gradients, step: u64) -> Result<StepStats> {
        let stats = adamw_descent(
            &self.config,
            &mut self.optimizer,
            &mut self.params,
            gradients,
            step,
        );
        self.stage.set_flat_params(&self.params)?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use neuroshard_model::{Config, NeuroLlm, StageSpec};

    use super::*;
    use crate::InnerLoop;
    use crate::inner::tests::config;

    #[test]
    fn one_stage_descends_exactly_as_the_whole_model() {
        let cfg = Config::preset("nano", 32).unwrap();
        let whole = NeuroLlm::new(&cfg, 5, &Device::Cpu).unwrap();
        let stage = Stage::new(&cfg, StageSpec::full(&cfg), 5, &Device::Cpu).unwrap();
        let mut inner = InnerLoop::new(whole, config(0.5)).unwrap();
        let mut staged = StageLoop::new(stage, config(0.5), 1).unwrap();
        assert_eq!(staged.params(), inner.params());
        let grads: Vec<f32> = (0..inner.params().len())
            .map(|i| ((i % 13) as f32 - 6.0) * 1e-3)
            .collect();
        for step in [3, 4] {
            let a = inner.pipeline_gradients(2.0, 16, grads.clone()).unwrap();
            let b = staged.gradients(2.0, 16, grads.clone()).unwrap();
            assert_eq!(a, b);
            assert_eq!(
                inner.descend(&a, step).unwrap(),
                staged.descend(&b, step).unwrap()
            );
            assert_eq!(inner.params(), staged.params());
        }
        assert_eq!(
            staged.stage().flat_params().unwrap(),
            inner.params().to_vec()
        );
        assert!(staged.gradients(2.0, 16, vec![0.0; 3]).is_err());
    }

    #[test]
    fn a_grown_stage_keeps_its_moments_and_its_function() {
        let cfg = Config::preset("nano", 32).unwrap();
        let spec = StageSpec {
            embedding: false,
            layers: 1..cfg.n_layers,
            head: true,
        };
        let stage = Stage::new(&cfg, spec, 5, &Device::Cpu).unwrap();
        let mut staged = StageLoop::new(stage, config(0.5), 2).unwrap();
        let grads: Vec<f32> = (0..staged.params().len())
            .map(|i| (i % 7) as f32 * 1e-3)
            .collect();
        let g = staged.gradients(2.0, 16, grads).unwrap();
        staged.descend(&g, 0).unwrap();
        // The first stage grew by one layer before it: this one relabels, then grows by one.
        let grown = (staged.grown_to(cfg.n_layers + 2, 2..cfg.n_layers + 2, 9)).unwrap();
        assert_eq!(grown.stage().spec().layers, 2..cfg.n_layers + 2);
        assert!(grown.params().len() > staged.params().len());
        assert_eq!(grown.clip_norm(), staged.clip_norm());
        assert_eq!(grown.optimizer.steps(), 1);
        let kept = |v: &[f32]| v.iter().filter(|x| **x != 0.0).count();
        assert_eq!(
            kept(grown.optimizer.m()),
            kept(staged.optimizer.m()),
            "old moments kept, new ones zero"
        );
        assert_eq!(
            grown.stage().flat_params().unwrap(),
            grown.params().to_vec()
        );
    }

    #[test]
    fn each_of_four_stages_clips_to_half_the_norm() {
        let cfg = Config::preset("nano", 32).unwrap();
        let spec = StageSpec {
            embedding: true,
            layers: 0..1,
            head: false,
        };
        let stage = Stage::new(&cfg, spec, 5, &Device::Cpu).unwrap();
        let staged = StageLoop::new(stage, config(1.0), 4).unwrap();
        assert_eq!(staged.clip_norm(), 0.5);
        let n = staged.params().len();
        let g = staged.gradients(1.0, 16, vec![1.0; n]).unwrap();
        assert!((g.grad_norm - (n as f32).sqrt()).abs() < 1e-2 * g.grad_norm);
        let dp = InnerConfig {
            dp: Some(crate::DpConfig::new(0.01, 1.0, 3).unwrap()),
            ..config(1.0)
        };
        let stage = Stage::new(&cfg, StageSpec::full(&cfg), 5, &Device::Cpu).unwrap();
        assert!(StageLoop::new(stage, dp, 2).is_err());
    }
}
