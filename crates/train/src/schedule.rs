//! The learning-rate schedule: linear warm-up, then cosine decay to a floor.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Linear warm-up from `max_lr / warmup_steps` to `max_lr`, then cosine decay to `min_lr` at
/// `total_steps`, and `min_lr` after that.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Steps of linear warm-up (0 starts at `max_lr`).
    pub warmup_steps: u64,
    /// The step at which the cosine reaches `min_lr`.
    pub total_steps: u64,
    /// Peak learning rate, reached at the end of warm-up.
    pub max_lr: f32,
    /// Floor the cosine decays to.
    pub min_lr: f32,
}

impl LrSchedule {
    /// A schedule, refusing non-finite or negative rates, `min_lr > max_lr`, and a warm-up
    /// longer than the whole run.
    pub fn new(warmup_steps: u64, total_steps: u64, max_lr: f32, min_lr: f32) -> Result<Self> {
        let schedule = Self {
            warmup_steps,
            total_steps,
            max_lr,
            min_lr,
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// The schedule of a network's inner steps: `warmup_steps` (at most the whole span less one)
    /// of warm-up to `max_lr`, then a cosine to a tenth of it over `rounds` rounds of
    /// `inner_steps` each. The node and the simulator both take their schedule from here.
    pub fn over_rounds(
        warmup_steps: u64,
        rounds: u64,
        inner_steps: u64,
        max_lr: f32,
    ) -> Result<Self> {
        let total = rounds.saturating_mul(inner_steps);
        Self::new(
            warmup_steps.min(total.saturating_sub(1)),
            total,
            max_lr,
            max_lr / 10.0,
        )
    }

    /// Checks the invariants [`LrSchedule::new`] enforces (for schedules read from a file).
    pub fn validate(&self) -> Result<()> {
        let rates_ok = self.max_lr.is_finite()
            && self.min_lr.is_finite()
            && self.min_lr >= 0.0
            && self.min_lr <= self.max_lr;
        if !rates_ok {
            return Err(Error::InvalidHyperParameters(format!(
                "learning rates need 0 <= min lr ({}) <= max lr ({}), both finite",
                self.min_lr, self.max_lr
            )));
        }
        if self.warmup_steps > self.total_steps {
            return Err(Error::InvalidHyperParameters(format!(
                "warm-up ({} steps) is longer than the run ({} steps); lower --warmup",
                self.warmup_steps, self.total_steps
            )));
        }
        Ok(())
    }

    /// The learning rate for the step with 0-based index `step`.
    pub fn lr(&self, step: u64) -> f32 {
        if step < self.warmup_steps {
            return self.max_lr * (step + 1) as f32 / self.warmup_steps as f32;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        let range = f64::from(self.max_lr - self.min_lr);
        (f64::from(self.min_lr) + range * cosine) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_points() {
        let s = LrSchedule::new(10, 110, 1e-3, 1e-4).unwrap();
        assert!((s.lr(0) - 1e-4).abs() < 1e-9);
        assert!((s.lr(4) - 5e-4).abs() < 1e-9);
        assert!((s.lr(9) - 1e-3).abs() < 1e-9);
        assert!((s.lr(10) - 1e-3).abs() < 1e-9);
        // Half-way through the decay the cosine is at the mid-point of max and min.
        assert!((s.lr(60) - 5.5e-4).abs() < 1e-8);
        assert!((s.lr(110) - 1e-4).abs() < 1e-9);
        assert!((s.lr(10_000) - 1e-4).abs() < 1e-9);
    }

    #[test]
    fn no_warmup_starts_at_max() {
        let s = LrSchedule::new(0, 5, 2.0, 0.0).unwrap();
        assert_eq!(s.lr(0), 2.0);
        assert_eq!(s.lr(5), 0.0);
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(LrSchedule::new(10, 5, 1e-3, 0.0).is_err());
        assert!(LrSchedule::new(0, 5, 1e-3, 1e-2).is_err());
        assert!(LrSchedule::new(0, 5, f32::NAN, 0.0).is_err());
        assert!(LrSchedule::new(0, 5, 1e-3, -1.0).is_err());
    }

    proptest! {
        #[test]
        fn stays_within_bounds_and_decays_monotonically(
            warmup in 0_u64..50, extra in 0_u64..500, max_lr in 1e-5_f32..1.0, frac in 0.0_f32..1.0,
        ) {
            let s = LrSchedule::new(warmup, warmup + extra, max_lr, max_lr * frac).unwrap();
            let mut previous = f32::INFINITY;
            for step in 0..warmup + extra + 5 {
                let lr = s.lr(step);
                prop_assert!(lr > 0.0 && lr <= max_lr * 1.000_001);
                if step >= warmup {
                    prop_assert!(lr >= s.min_lr * 0.999_999);
                    prop_assert!(lr <= previous * 1.000_001);
                    previous = lr;
                }
            }
        }
    }
}
