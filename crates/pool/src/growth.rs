//! The growth rule: the model's depth as a function of the pool's total memory, applied at a
//! round boundary once the pool has stayed above a threshold long enough.
//!
//! Every node computes the same answer from the same history of pool sizes (one per round
//! boundary, as each saw the membership there), so all grow at the same boundary to the same
//! depth. Requiring the pool to stay above the threshold for `sustain_rounds` boundaries keeps
//! a node that joins and leaves at once from growing the model.

use serde::{Deserialize, Serialize};

use crate::assign::Member;
use crate::{Error, Result};

/// When the model grows: thresholds of pooled memory with the depth each brings, and how many
/// consecutive round boundaries the pool must stay above one first (the genesis file's
/// `[growth]` section; the rule is [`GrowthSchedule`], built from these numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowthSpec {
    /// Consecutive round boundaries the pool must stay at or above a threshold, at least 1.
    pub sustain_rounds: u64,
    /// The thresholds, increasing in both memory and depth (`[[growth.steps]]` tables).
    pub steps: Vec<GrowthStepSpec>,
}

/// One growth threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrowthStepSpec {
    /// The members' summed memory budgets, in bytes, from which this depth applies.
    pub min_pool_bytes: u64,
    /// The model's depth from then on.
    pub n_layers: usize,
}

impl GrowthSpec {
    /// Checks the ranges and the order; the error names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.sustain_rounds == 0 {
            return Err("field `growth.sustain_rounds` must be at least 1".into());
        }
        if self.steps.is_empty() {
            return Err("field `growth.steps` must hold at least one threshold".into());
        }
        if self
            .steps
            .iter()
            .any(|s| s.min_pool_bytes > i64::MAX as u64 || s.n_layers == 0)
        {
            return Err(
                "field `growth.steps` needs min_pool_bytes below 2^63 and n_layers of at least 1"
                    .into(),
            );
        }
        let increasing = self
            .steps
            .windows(2)
            .all(|w| w[0].min_pool_bytes < w[1].min_pool_bytes && w[0].n_layers < w[1].n_layers);
        if !increasing {
            return Err(
                "field `growth.steps` must increase in both min_pool_bytes and n_layers".into(),
            );
        }
        Ok(())
    }
}

/// A validated schedule: the genesis file's `[growth]` section, checked once by
/// [`GrowthSpec::validate`] (thresholds increasing in both memory and depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowthSchedule {
    steps: Vec<GrowthStepSpec>,
    sustain_rounds: usize,
}

impl GrowthSchedule {
    /// The schedule a genesis file's `[growth]` section gives, or why it is refused.
    pub fn new(spec: &GrowthSpec) -> Result<Self> {
        spec.validate().map_err(Error::BadSchedule)?;
        let sustain_rounds = usize::try_from(spec.sustain_rounds)
            .map_err(|_| Error::BadSchedule("field `growth.sustain_rounds` is too large".into()))?;
        Ok(Self {
            steps: spec.steps.clone(),
            sustain_rounds,
        })
    }

    /// The depths the schedule can grow to, shallowest first.
    pub fn depths(&self) -> impl Iterator<Item = usize> + '_ {
        self.steps.iter().map(|s| s.n_layers)
    }

    /// The depth the schedule gives a pool of `pool_bytes`, if it reaches the first threshold.
    pub fn layers_for(&self, pool_bytes: u64) -> Option<usize> {
        let reached = self
            .steps
            .iter()
            .take_while(|s| s.min_pool_bytes <= pool_bytes);
        reached.last().map(|s| s.n_layers)
    }

    /// Whether to grow at the round boundary that ends `history` (pool sizes at consecutive
    /// boundaries, oldest first) and to how many layers: to the depth of the lowest of the
    /// last `sustain_rounds` sizes, when that is deeper than `n_layers`. Growth never shrinks.
    pub fn decide(&self, n_layers: usize, history: &[u64]) -> Option<usize> {
        let recent = history.get(history.len().checked_sub(self.sustain_rounds)?..)?;
        let floor = recent.iter().copied().min()?;
        self.layers_for(floor).filter(|&target| target > n_layers)
    }
}

/// The pool's size: its members' summed memory budgets (saturating).
pub fn pool_bytes(members: &[Member]) -> u64 {
    members
        .iter()
        .fold(0u64, |sum, m| sum.saturating_add(m.memory_budget))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(min_pool_bytes: u64, n_layers: usize) -> GrowthStepSpec {
        GrowthStepSpec {
            min_pool_bytes,
            n_layers,
        }
    }

    fn spec(steps: Vec<GrowthStepSpec>, sustain_rounds: u64) -> GrowthSpec {
        GrowthSpec {
            sustain_rounds,
            steps,
        }
    }

    fn schedule() -> GrowthSchedule {
        GrowthSchedule::new(&spec(vec![step(100, 4), step(200, 6), step(400, 8)], 3)).unwrap()
    }

    #[test]
    fn the_depth_follows_the_thresholds() {
        let s = schedule();
        let got: Vec<Option<usize>> = [0, 99, 100, 199, 200, 399, 400, u64::MAX]
            .map(|b| s.layers_for(b))
            .into();
        assert_eq!(
            got,
            [
                None,
                None,
                Some(4),
                Some(4),
                Some(6),
                Some(6),
                Some(8),
                Some(8)
            ]
        );
    }

    #[test]
    fn growth_waits_until_the_pool_has_stayed_above_the_threshold() {
        let s = schedule();
        assert_eq!(s.decide(4, &[250, 250]), None, "too short a history");
        assert_eq!(s.decide(4, &[150, 250, 250]), None, "one boundary below");
        assert_eq!(s.decide(4, &[150, 250, 250, 250]), Some(6));
        assert_eq!(s.decide(6, &[250, 250, 250]), None, "already that deep");
        assert_eq!(
            s.decide(4, &[500, 450, 420]),
            Some(8),
            "straight to the deepest reached"
        );
        assert_eq!(s.decide(8, &[100, 100, 100]), None, "never shrinks");
        assert_eq!(
            s.decide(2, &[250, 900, 150]),
            Some(4),
            "the lowest recent size counts"
        );
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(GrowthSchedule::new(&spec(vec![], 1)).is_err());
        assert!(GrowthSchedule::new(&spec(vec![step(1, 2)], 0)).is_err());
        assert!(GrowthSchedule::new(&spec(vec![step(2, 2), step(1, 3)], 1)).is_err());
        assert!(GrowthSchedule::new(&spec(vec![step(1, 3), step(2, 3)], 1)).is_err());
    }
}
