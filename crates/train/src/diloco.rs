//! DiLoCo: replicas train H inner steps alone, then share a pseudo-gradient that an outer
//! Nesterov step applies to the common starting point.
//!
//! One round, as in [DiLoCo (Douillard et al., 2023)](https://arxiv.org/abs/2311.08105):
//!
//! 1. Every replica starts from the same θ_start.
//! 2. Each runs H inner AdamW steps on its own batches ([`Replica::inner_steps`]); its AdamW
//!    state carries over from round to round.
//! 3. Each returns Δ = θ_start − θ_end ([`Replica::pseudo_gradient`]), flat in canonical order.
//! 4. The Δs are aggregated elsewhere (mean, or a robust rule) into one Δ̄.
//! 5. Every replica applies Δ̄ to θ_start with the outer optimizer ([`Replica::apply_outer`]):
//!    the same Δ̄, the same θ_start and the same momentum give bit-identical new weights, which
//!    become the next θ_start.

use candle_core::Device;
use neuroshard_primitives::BatchSource;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{CHUNK, Error, Result, RunSpec, StepStats, Trainer};

/// Outer optimizer hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OuterConfig {
    /// Outer learning rate.
    pub lr: f32,
    /// Nesterov momentum coefficient.
    pub momentum: f32,
}

impl OuterConfig {
    /// The DiLoCo paper's values: lr 0.7, Nesterov momentum 0.9.
    pub const DILOCO: Self = Self {
        lr: 0.7,
        momentum: 0.9,
    };

    /// An outer config, refusing what [`OuterConfig::validate`] refuses.
    pub fn new(lr: f32, momentum: f32) -> Result<Self> {
        let config = Self { lr, momentum };
        config.validate()?;
        Ok(config)
    }

    /// Refuses a non-positive or non-finite lr and a momentum outside `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        if self.lr > 0.0 && self.lr.is_finite() && (0.0..1.0).contains(&self.momentum) {
            Ok(())
        } else {
            Err(Error::InvalidHyperParameters(format!(
                "outer optimizer needs lr > 0 and momentum in [0, 1), got {self:?}"
            )))
        }
    }
}

/// SGD with Nesterov momentum over a pseudo-gradient, as PyTorch's
/// `SGD(lr, momentum, nesterov=True)`: `b ← μ·b + Δ`, then `θ ← θ − lr·(Δ + μ·b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct OuterOptimizer {
    config: OuterConfig,
    momentum: Vec<f32>,
}

impl OuterOptimizer {
    /// A fresh optimizer for `n` parameters (zero momentum).
    pub fn new(n: usize, config: OuterConfig) -> Result<Self> {
        Self::from_state(config, vec![0.0; n])
    }

    /// Rebuilds an optimizer from its saved momentum buffer.
    pub fn from_state(config: OuterConfig, momentum: Vec<f32>) -> Result<Self> {
        config.validate()?;
        Ok(Self { config, momentum })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &OuterConfig {
        &self.config
    }

    /// The momentum buffer, one value per parameter.
    pub fn momentum(&self) -> &[f32] {
        &self.momentum
    }

    /// Applies the aggregated pseudo-gradient `delta` to `theta` in place.
    ///
    /// Element-wise, in fixed-size chunks: the result does not depend on the thread count.
    /// Panics if the lengths differ from the optimizer's (a programmer error).
    pub fn step(&mut self, theta: &mut [f32], delta: &[f32]) {
        assert_eq!(theta.len(), self.momentum.len(), "outer step: theta length");
        assert_eq!(delta.len(), self.momentum.len(), "outer step: delta length");
        let OuterConfig { lr, momentum: mu } = self.config;
        theta
            .par_chunks_mut(CHUNK)
            .zip(delta.par_chunks(CHUNK))
            .zip(self.momentum.par_chunks_mut(CHUNK))
            .for_each(|((t, d), b)| {
                for i in 0..t.len() {
                    b[i] = mu * b[i] + d[i];
                    t[i] -= lr * (d[i] + mu * b[i]);
                }
            });
    }
}

/// One DiLoCo replica: a trainer whose AdamW state persists across rounds, the round's starting
/// weights θ_start, and the outer optimizer every replica runs identically.
///
/// The inner learning rate follows `spec.schedule` over the replica's cumulative inner steps.
#[derive(Debug)]
pub struct Replica {
    trainer: Trainer,
    theta_start: Vec<f32>,
    outer: OuterOptimizer,
}

impl Replica {
    /// A replica with weights from `spec.seed`: replicas built from the same spec start equal.
    pub fn new(spec: RunSpec, outer: OuterConfig, device: &Device) -> Result<Self> {
        Self::from_trainer(Trainer::new(spec, device)?, outer)
    }

    /// A replica around an existing trainer, whose current weights become θ_start.
    pub fn from_trainer(trainer: Trainer, outer: OuterConfig) -> Result<Self> {
        let theta_start = trainer.params().to_vec();
        let outer = OuterOptimizer::new(theta_start.len(), outer)?;
        Ok(Self {
            trainer,
            theta_start,
            outer,
        })
    }

    /// The inner trainer (model, AdamW state, inner step count).
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// The weights this round started from, flat in canonical order.
    pub fn theta_start(&self) -> &[f32] {
        &self.theta_start
    }

    /// The outer optimizer's state.
    pub fn outer(&self) -> &OuterOptimizer {
        &self.outer
    }

    /// Runs one inner step per index, on batch `index` of `source`, and returns each step's
    /// stats. Stops at the first error; the steps before it stay applied.
    pub fn inner_steps<S: BatchSource>(
        &mut self,
        source: &S,
        indices: impl IntoIterator<Item = u64>,
    ) -> Result<Vec<StepStats>> {
        let (batch, seq) = (self.trainer.spec().batch, self.trainer.spec().seq);
        indices
            .into_iter()
            .map(|index| {
                let b = source.batch(index, batch, seq).map_err(Error::data)?;
                self.trainer.step_on(&b)
            })
            .collect()
    }

    /// Δ = θ_start − θ_now, flat in canonical order.
    pub fn pseudo_gradient(&self) -> Vec<f32> {
        pseudo_gradient(&self.theta_start, self.trainer.params())
    }

    /// Ends the round: applies the aggregated Δ̄ to θ_start with the outer optimizer, loads the
    /// result into the model and makes it the next round's θ_start.
    pub fn apply_outer(&mut self, aggregated: &[f32]) -> Result<()> {
        if aggregated.len() != self.theta_start.len() {
            return Err(Error::LengthMismatch {
                what: "aggregated pseudo-gradient",
                expected: self.theta_start.len(),
                got: aggregated.len(),
            });
        }
        self.outer.step(&mut self.theta_start, aggregated);
        self.trainer.set_params(&self.theta_start)
    }
}

/// A round's pseudo-gradient Δ = `start` − `now` (the weights at the round's start and after its
/// inner steps), coordinate by coordinate: the one Δ the whole model, a stage and the replica take.
pub fn pseudo_gradient(start: &[f32], now: &[f32]) -> Vec<f32> {
    let mut delta = start.to_vec();
    delta
        .par_chunks_mut(CHUNK)
        .zip(now.par_chunks(CHUNK))
        .for_each(|(d, p)| d.iter_mut().zip(p).for_each(|(d, p)| *d -= p));
    delta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdamWConfig, InMemorySource, LrSchedule};
    use neuroshard_model::Config;
    use neuroshard_primitives::Hash;

    #[test]
    fn nesterov_steps_match_hand_computation() {
        let mut outer = OuterOptimizer::new(1, OuterConfig::DILOCO).unwrap();
        let mut theta = vec![0.0_f32];
        outer.step(&mut theta, &[1.0]);
        // b = 1, update 0.7 · (1 + 0.9 · 1) = 1.33
        assert!((theta[0] + 1.33).abs() < 1e-6, "{}", theta[0]);
        outer.step(&mut theta, &[1.0]);
        // b = 0.9 + 1 = 1.9, update 0.7 · (1 + 0.9 · 1.9) = 1.897
        assert!((theta[0] + 3.227).abs() < 1e-5, "{}", theta[0]);
        assert!((outer.momentum()[0] - 1.9).abs() < 1e-6);
    }

    #[test]
    fn bad_outer_settings_are_refused() {
        let bad = OuterConfig {
            lr: 0.7,
            momentum: 1.0,
        };
        assert!(OuterOptimizer::new(1, bad).is_err());
        assert!(OuterConfig::new(0.0, 0.9).is_err());
        assert!(OuterConfig::new(f32::NAN, 0.9).is_err());
        assert_eq!(OuterConfig::new(0.7, 0.9).unwrap(), OuterConfig::DILOCO);
    }

    fn spec() -> RunSpec {
        RunSpec {
            model: Config::preset("nano", 32).unwrap(),
            seed: 4,
            batch: 2,
            seq: 8,
            schedule: LrSchedule::new(0, 100, 3e-3, 3e-4).unwrap(),
            adamw: AdamWConfig::NEUROSHARD,
            max_grad_norm: 1.0,
            dp: None,
            tokenizer_hash: Hash::of(b"t"),
            data_id: Hash::of(b"d"),
        }
    }

    fn source() -> InMemorySource {
        InMemorySource::new((0..2000u32).map(|i| (i * 5 + i / 7) % 32).collect(), 2)
    }

    #[test]
    fn replicas_applying_the_same_aggregate_end_bit_identical() {
        let data = source();
        let mut a = Replica::new(spec(), OuterConfig::DILOCO, &Device::Cpu).unwrap();
        let mut b = Replica::new(spec(), OuterConfig::DILOCO, &Device::Cpu).unwrap();
        for round in 0..2_u64 {
            a.inner_steps(&data, (0..3).map(|i| round * 100 + i))
                .unwrap();
            b.inner_steps(&data, (0..3).map(|i| round * 100 + 50 + i))
                .unwrap();
            let (da, db) = (a.pseudo_gradient(), b.pseudo_gradient());
            assert_ne!(da, db, "different data gives different deltas");
            let mean: Vec<f32> = da.iter().zip(&db).map(|(x, y)| 0.5 * (x + y)).collect();
            a.apply_outer(&mean).unwrap();
            b.apply_outer(&mean).unwrap();
            assert_eq!(a.trainer().params(), b.trainer().params());
            assert_eq!(
                a.trainer().model().param_hash().unwrap(),
                b.trainer().model().param_hash().unwrap()
            );
            assert_eq!(a.theta_start(), a.trainer().params());
        }
        // The inner optimizers kept their own state across both rounds.
        assert_eq!(a.trainer().optimizer().steps(), 6);
        assert_ne!(a.trainer().optimizer().m(), b.trainer().optimizer().m());
    }

    #[test]
    fn outer_sgd_at_lr_one_without_momentum_lands_where_the_inner_steps_did() {
        let plain = OuterConfig {
            lr: 1.0,
            momentum: 0.0,
        };
        let mut replica = Replica::new(spec(), plain, &Device::Cpu).unwrap();
        replica.inner_steps(&source(), 0..2).unwrap();
        let end = replica.trainer().params().to_vec();
        let delta = replica.pseudo_gradient();
        assert!(delta.iter().any(|d| *d != 0.0));
        replica.apply_outer(&delta).unwrap();
        for (got, want) in replica.trainer().params().iter().zip(&end) {
            assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0));
        }
        assert!(matches!(
            replica.apply_outer(&[0.0]),
            Err(Error::LengthMismatch { .. })
        ));
    }
}
