//! The 1F1B schedule: for S stages and M micro-batches, the order in which each stage runs its
//! forwards and backwards, and the timeline that order gives.
//!
//! Stage `s` (from 0) runs, in order:
//!
//! 1. warm-up: the forwards of micro-batches `0..w` with `w = min(S − 1 − s, M)`;
//! 2. steady state: for `j` in `0..M − w`, the forward of `w + j`, then the backward of `j`;
//! 3. cool-down: the backwards of the remaining micro-batches `M − w..M`.
//!
//! So stage `s` holds at most `w + 1 ≤ S − s` micro-batches between their forward and their
//! backward (PipeDream-Flush, Narayanan et al. 2021, <https://arxiv.org/abs/2104.04473>), instead
//! of all M as GPipe does; and with uniform stages the idle share of the step, the bubble, is
//! `(S − 1) / (M + S − 1)`.

use std::fmt;

use crate::{Error, Result};

/// One operation of a stage on one micro-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// The forward of micro-batch `m`: needs the previous stage's activation.
    Forward(u32),
    /// The backward of micro-batch `m`: needs the next stage's gradient.
    Backward(u32),
}

impl Op {
    /// The micro-batch this operation works on.
    pub fn micro_batch(self) -> u32 {
        match self {
            Op::Forward(m) | Op::Backward(m) => m,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Forward(m) => write!(f, "F{m}"),
            Op::Backward(m) => write!(f, "B{m}"),
        }
    }
}

/// The order of operations of every stage for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    micro_batches: u32,
    stages: Vec<Vec<Op>>,
}

impl Plan {
    /// The 1F1B plan for `stages` stages and `micro_batches` micro-batches (both at least 1).
    pub fn one_f_one_b(stages: usize, micro_batches: u32) -> Result<Self> {
        if stages == 0 || micro_batches == 0 {
            return Err(Error::BadPlan(format!(
                "need at least one stage and one micro-batch, got {stages} and {micro_batches}"
            )));
        }
        let per_stage = (0..stages)
            .map(|s| stage_order(stages, s, micro_batches))
            .collect();
        Ok(Self {
            micro_batches,
            stages: per_stage,
        })
    }

    /// Number of stages.
    pub fn n_stages(&self) -> usize {
        self.stages.len()
    }

    /// Number of micro-batches per step.
    pub fn micro_batches(&self) -> u32 {
        self.micro_batches
    }

    /// Stage `stage`'s operations in order; `None` past the last stage.
    pub fn ops(&self, stage: usize) -> Option<&[Op]> {
        self.stages.get(stage).map(Vec::as_slice)
    }

    /// Most micro-batches stage `stage` holds between their forward and backward.
    pub fn max_in_flight(&self, stage: usize) -> usize {
        let mut open = 0usize;
        let mut most = 0;
        for op in self.ops(stage).unwrap_or_default() {
            match op {
                Op::Forward(_) => open += 1,
                Op::Backward(_) => open = open.saturating_sub(1),
            }
            most = most.max(open);
        }
        most
    }

    /// Checks the plan: each stage runs every forward and backward exactly once, each forward
    /// before its backward, at most S micro-batches in flight, and the stages' orders together
    /// can run to the end without waiting on each other forever.
    pub fn validate(&self) -> Result<()> {
        let s_count = self.n_stages();
        for (s, ops) in self.stages.iter().enumerate() {
            let mut seen = std::collections::BTreeSet::new();
            for op in ops {
                let backward_early =
                    matches!(op, Op::Backward(m) if !seen.contains(&Op::Forward(*m)));
                if op.micro_batch() >= self.micro_batches || !seen.insert(*op) || backward_early {
                    return Err(Error::BadPlan(format!("stage {s}: {op} is out of place")));
                }
            }
            if seen.len() != 2 * self.micro_batches as usize {
                return Err(Error::BadPlan(format!("stage {s} misses operations")));
            }
            if self.max_in_flight(s) > s_count {
                return Err(Error::BadPlan(format!(
                    "stage {s} holds too much in flight"
                )));
            }
        }
        self.timeline(&Costs::uniform(s_count, 1, 2)).map(|_| ())
    }

    /// When each operation starts and ends if stage `s`'s forward takes `costs.forward[s]` and
    /// its backward `costs.backward[s]` time units, every stage starts an operation as soon as
    /// its input is there, and frames travel instantly. Fails if the plan deadlocks.
    pub fn timeline(&self, costs: &Costs) -> Result<Timeline> {
        if costs.forward.len() != self.n_stages() || costs.backward.len() != self.n_stages() {
            return Err(Error::BadPlan("one cost per stage".into()));
        }
        let mut end = std::collections::HashMap::<(usize, Op), u64>::new();
        let mut spans: Vec<Vec<Span>> = vec![Vec::new(); self.n_stages()];
        let mut progressed = true;
        while progressed {
            progressed = false;
            for (s, ops) in self.stages.iter().enumerate() {
                while let Some(&op) = ops.get(spans[s].len()) {
                    let Some(ready) = self.ready_at(s, op, &end) else {
                        break;
                    };
                    let free = spans[s].last().map_or(0, |span| span.end);
                    let start = ready.max(free);
                    let cost = match op {
                        Op::Forward(_) => costs.forward[s],
                        Op::Backward(_) => costs.backward[s],
                    };
                    spans[s].push(Span {
                        op,
                        start,
                        end: start + cost,
                    });
                    end.insert((s, op), start + cost);
                    progressed = true;
                }
            }
        }
        if spans
            .iter()
            .zip(&self.stages)
            .any(|(done, ops)| done.len() != ops.len())
        {
            return Err(Error::BadPlan(
                "the stages wait on each other forever".into(),
            ));
        }
        Ok(Timeline { spans })
    }

    /// When `op`'s inputs are ready on stage `s`, or `None` while one is not computed yet.
    fn ready_at(
        &self,
        s: usize,
        op: Op,
        end: &std::collections::HashMap<(usize, Op), u64>,
    ) -> Option<u64> {
        let last = self.n_stages() - 1;
        match op {
            Op::Forward(_) if s == 0 => Some(0),
            Op::Forward(m) => end.get(&(s - 1, Op::Forward(m))).copied(),
            Op::Backward(m) if s == last => end.get(&(s, Op::Forward(m))).copied(),
            Op::Backward(m) => {
                let own = end.get(&(s, Op::Forward(m)))?;
                let next = end.get(&(s + 1, Op::Backward(m)))?;
                Some(*own.max(next))
            }
        }
    }
}

/// Stage `s`'s 1F1B order (see the module docs).
fn stage_order(stages: usize, s: usize, micro_batches: u32) -> Vec<Op> {
    let warmup = ((stages - 1 - s) as u32).min(micro_batches);
    let mut ops: Vec<Op> = (0..warmup).map(Op::Forward).collect();
    for j in 0..micro_batches - warmup {
        ops.push(Op::Forward(warmup + j));
        ops.push(Op::Backward(j));
    }
    ops.extend((micro_batches - warmup..micro_batches).map(Op::Backward));
    ops
}

/// Time units per operation, per stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Costs {
    /// A forward's duration on each stage.
    pub forward: Vec<u64>,
    /// A backward's duration on each stage.
    pub backward: Vec<u64>,
}

impl Costs {
    /// The same costs on every one of `stages` stages.
    pub fn uniform(stages: usize, forward: u64, backward: u64) -> Self {
        Self {
            forward: vec![forward; stages],
            backward: vec![backward; stages],
        }
    }
}

/// One operation placed in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The operation.
    pub op: Op,
    /// When it starts.
    pub start: u64,
    /// When it ends.
    pub end: u64,
}

/// Every stage's operations placed in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Per stage, its operations in the order they run.
    pub spans: Vec<Vec<Span>>,
}

impl Timeline {
    /// When the last operation ends.
    pub fn makespan(&self) -> u64 {
        self.spans
            .iter()
            .flatten()
            .map(|s| s.end)
            .max()
            .unwrap_or(0)
    }

    /// The share of the step stage `s` spends computing.
    pub fn busy_fraction(&self, s: usize) -> f64 {
        let busy: u64 = self
            .spans
            .get(s)
            .into_iter()
            .flatten()
            .map(|x| x.end - x.start)
            .sum();
        busy as f64 / self.makespan().max(1) as f64
    }

    /// The share of stage-time spent idle over the step: 1 − Σ busy / (S · makespan).
    pub fn bubble_fraction(&self) -> f64 {
        let n = self.spans.len().max(1);
        let busy: f64 = (0..n).map(|s| self.busy_fraction(s)).sum();
        1.0 - busy / n as f64
    }

    /// The span of `op` on stage `s`.
    pub fn span(&self, s: usize, op: Op) -> Option<Span> {
        self.spans.get(s)?.iter().copied().find(|x| x.op == op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_stages_four_micro_batches_in_1f1b_order() {
        let plan = Plan::one_f_one_b(3, 4).unwrap();
        let names = |s| {
            plan.ops(s)
                .unwrap()
                .iter()
                .map(|op| op.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(names(0), "F0 F1 F2 B0 F3 B1 B2 B3");
        assert_eq!(names(1), "F0 F1 B0 F2 B1 F3 B2 B3");
        assert_eq!(names(2), "F0 B0 F1 B1 F2 B2 F3 B3");
    }

    #[test]
    fn plans_are_valid_and_respect_every_dependency() {
        for stages in 1..=6 {
            for m in 1..=10 {
                let plan = Plan::one_f_one_b(stages, m).unwrap();
                plan.validate().unwrap();
                let t = plan.timeline(&Costs::uniform(stages, 1, 2)).unwrap();
                for s in 0..stages {
                    assert!(
                        plan.max_in_flight(s) <= stages - s,
                        "S={stages} M={m} s={s}"
                    );
                    for mb in 0..m {
                        let f = t.span(s, Op::Forward(mb)).unwrap();
                        let b = t.span(s, Op::Backward(mb)).unwrap();
                        assert!(f.end <= b.start);
                        if s > 0 {
                            assert!(t.span(s - 1, Op::Forward(mb)).unwrap().end <= f.start);
                        }
                        if s + 1 < stages {
                            assert!(t.span(s + 1, Op::Backward(mb)).unwrap().end <= b.start);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_bubble_is_the_textbook_one_for_uniform_stages() {
        for (stages, m) in [(3, 8), (4, 4), (2, 16), (1, 3)] {
            let t = Plan::one_f_one_b(stages, m)
                .unwrap()
                .timeline(&Costs::uniform(stages, 1, 2))
                .unwrap();
            let want = (stages as f64 - 1.0) / (m as f64 + stages as f64 - 1.0);
            assert!(
                (t.bubble_fraction() - want).abs() < 1e-12,
                "S={stages} M={m}: {}",
                t.bubble_fraction()
            );
        }
    }

    #[test]
    fn broken_plans_are_refused() {
        assert!(Plan::one_f_one_b(0, 4).is_err());
        assert!(Plan::one_f_one_b(3, 0).is_err());
        let mut plan = Plan::one_f_one_b(3, 4).unwrap();
        plan.stages[1].swap(0, 2); // B0 before F0
        assert!(plan.validate().is_err());
        let mut plan = Plan::one_f_one_b(3, 4).unwrap();
        plan.stages[2].pop();
        assert!(plan.validate().is_err());
        // Stage 1 wants F1 first, which stage 0 sends only after B0: a deadlock.
        let mut plan = Plan::one_f_one_b(2, 2).unwrap();
        plan.stages[0] = vec![
            Op::Forward(0),
            Op::Backward(0),
            Op::Forward(1),
            Op::Backward(1),
        ];
        plan.stages[1] = vec![
            Op::Forward(1),
            Op::Backward(1),
            Op::Forward(0),
            Op::Backward(0),
        ];
        assert!(plan.validate().is_err());
    }
}
