//! AdamW with decoupled weight decay and bias correction, over flat `f32` slices.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{CHUNK, Error, Result};

/// AdamW hyper-parameters (the learning rate comes per step, from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Decay of the first-moment average.
    pub beta1: f32,
    /// Decay of the second-moment average.
    pub beta2: f32,
    /// Added to the denominator so a zero second moment does not divide by zero.
    pub eps: f32,
    /// Decoupled weight decay: each step multiplies parameters by `1 - lr * weight_decay`.
    pub weight_decay: f32,
}

impl AdamWConfig {
    /// The values NeuroShard trains with: β₁ 0.9, β₂ 0.95, ε 1e-8, weight decay 0.1.
    pub const NEUROSHARD: Self = Self {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };

    /// Refuses betas outside `[0, 1)`, a non-positive ε or a negative weight decay.
    pub fn validate(&self) -> Result<()> {
        let beta_ok = |b: f32| (0.0..1.0).contains(&b);
        let ok = beta_ok(self.beta1)
            && beta_ok(self.beta2)
            && self.eps > 0.0
            && self.eps.is_finite()
            && self.weight_decay >= 0.0
            && self.weight_decay.is_finite();
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidHyperParameters(format!(
                "adamw needs betas in [0, 1), eps > 0 and weight decay >= 0, got {self:?}"
            )))
        }
    }
}

/// AdamW as in PyTorch's `torch.optim.AdamW`: moments `m`, `v` and the step count `t`.
///
/// Each element is updated independently, so splitting the work into fixed-size chunks gives
/// bit-identical results on any number of threads.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    config: AdamWConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    t: u64,
}

impl AdamW {
    /// A fresh optimizer for `n` parameters (zero moments, step 0).
    pub fn new(n: usize, config: AdamWConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        })
    }

    /// Rebuilds an optimizer from saved state, checking that both moments have the same length.
    pub fn from_state(config: AdamWConfig, m: Vec<f32>, v: Vec<f32>, t: u64) -> Result<Self> {
        config.validate()?;
        if m.len() != v.len() {
            return Err(Error::LengthMismatch {
                what: "adamw second moment",
                expected: m.len(),
                got: v.len(),
            });
        }
        Ok(Self { config, m, v, t })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Number of parameters this optimizer updates.
    pub fn len(&self) -> usize {
        self.m.len()
    }

    /// Whether it updates no parameters at all.
    pub fn is_empty(&self) -> bool {
        self.m.is_empty()
    }

    /// First-moment estimates, one per parameter.
    pub fn m(&self) -> &[f32] {
        &self.m
    }

    /// Second-moment estimates, one per parameter.
    pub fn v(&self) -> &[f32] {
        &self.v
    }

    /// Number of steps taken so far.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update of `params` from `grads` at learning rate `lr`.
    ///
    /// Panics if the slices are not as long as the optimizer (a programmer error: the model
    /// and its optimizer are built together).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f32) {
        assert_eq!(params.len(), self.m.len(), "adamw: params length");
        assert_eq!(grads.len(), self.m.len(), "adamw: grads length");
        self.t += 1;
        let cfg = self.config;
        let t = self.t as f64;
        let bias1 = 1.0 - f64::from(cfg.beta1).powf(t);
        let bias2 = 1.0 - f64::from(cfg.beta2).powf(t);
        let step_size = (f64::from(lr) / bias1) as f32;
        let bias2_sqrt = bias2.sqrt() as f32;
        let decay = 1.0 - lr * cfg.weight_decay;
        params
            .par_chunks_mut(CHUNK)
            .zip(grads.par_chunks(CHUNK))
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for i in 0..p.len() {
                    let gi = g[i];
                    m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * gi;
                    v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * gi * gi;
                    let denom = v[i].sqrt() / bias2_sqrt + cfg.eps;
                    p[i] = p[i] * decay - step_size * m[i] / denom;
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_step_moves_each_parameter_by_lr_against_the_gradient_sign() {
        // After one step m̂ = g and v̂ = g², so the update is lr * g / (|g| + eps) ≈ lr * sign(g),
        // on top of the decay p * (1 - lr * wd).
        let mut opt = AdamW::new(3, AdamWConfig::NEUROSHARD).unwrap();
        let mut params = vec![1.0_f32, -2.0, 0.5];
        opt.step(&mut params, &[0.5, -4.0, 0.0], 0.1);
        let expected = [
            1.0 * (1.0 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-8),
            -2.0 * (1.0 - 0.01) + 0.1 * 4.0 / (4.0 + 1e-8),
            0.5 * (1.0 - 0.01),
        ];
        for (got, want) in params.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(opt.steps(), 1);
        assert!((opt.m()[1] - -0.4).abs() < 1e-6);
        assert!((opt.v()[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn second_step_matches_hand_computation() {
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::NEUROSHARD
        };
        let mut opt = AdamW::new(1, cfg).unwrap();
        let mut p = vec![0.0_f32];
        opt.step(&mut p, &[1.0], 0.01);
        opt.step(&mut p, &[3.0], 0.01);
        // m = 0.9·0.1 + 0.1·3 = 0.39, v = 0.95·0.05 + 0.05·9 = 0.4975
        let m_hat = 0.39 / (1.0 - 0.81);
        let v_hat = 0.4975_f64 / (1.0 - 0.9025);
        let want = -0.01 - 0.01 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!((f64::from(p[0]) - want).abs() < 1e-6, "{} vs {want}", p[0]);
    }

    #[test]
    fn bad_hyper_parameters_are_refused() {
        let cfg = AdamWConfig {
            beta2: 1.0,
            ..AdamWConfig::NEUROSHARD
        };
        assert!(matches!(
            AdamW::new(1, cfg),
            Err(Error::InvalidHyperParameters(_))
        ));
        assert!(matches!(
            AdamW::from_state(AdamWConfig::NEUROSHARD, vec![0.0; 2], vec![0.0; 3], 0),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn thread_count_does_not_change_the_result() {
        let n = 3 * CHUNK + 17;
        let grads: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut opt = AdamW::new(n, AdamWConfig::NEUROSHARD).unwrap();
                let mut p = vec![0.25_f32; n];
                for _ in 0..3 {
                    opt.step(&mut p, &grads, 1e-3);
                }
                p
            })
        };
        assert_eq!(run(1), run(3));
    }

    proptest! {
        #[test]
        fn one_step_without_decay_moves_at_most_lr(
            grads in prop::collection::vec(-100.0_f32..100.0, 1..64),
            lr in 1e-5_f32..1.0,
        ) {
            let cfg = AdamWConfig { weight_decay: 0.0, ..AdamWConfig::NEUROSHARD };
            let mut opt = AdamW::new(grads.len(), cfg).unwrap();
            let mut p = vec![0.0_f32; grads.len()];
            opt.step(&mut p, &grads, lr);
            for (pi, gi) in p.iter().zip(&grads) {
                prop_assert!(pi.abs() <= lr * 1.0001);
                prop_assert!(*pi == 0.0 || pi.signum() == -gi.signum());
            }
        }
    }
}
