//! Every stage of a pipeline in one thread: the same [`StageStep`]s and the same encoded frames
//! as across processes, handed over in memory. The reference the multi-process run is checked
//! against, and how an experiment measures what a frame precision costs in loss.

use std::borrow::Borrow;

use neuroshard_model::{Config, Stage, StageSpec};
use neuroshard_primitives::Batch;

use crate::frame::{FrameLimit, Precision};
use crate::step::{Direction, StageOutcome, StageStep};
use crate::{Error, Layout, Plan, Result};

/// What one step of an in-process pipeline produced.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalStep {
    /// Each stage's outcome, in stage order.
    pub outcomes: Vec<StageOutcome>,
    /// Frame bytes sent forward (activations) and backward (gradients).
    pub bytes: [u64; 2],
}

impl LocalStep {
    /// The mean loss over the step's micro-batches.
    pub fn loss(&self) -> Option<f32> {
        self.outcomes.last().and_then(|o| o.loss)
    }
}

/// `n_stages` contiguous specs over `cfg`'s layers, as even as the layer count allows, the
/// embedding on the first and the head on the last: a fixed split for benchmarks and tests.
pub fn even_split(cfg: &Config, n_stages: usize) -> Result<Vec<StageSpec>> {
    if n_stages == 0 || n_stages > cfg.n_layers.max(1) {
        return Err(Error::BadPlan(format!(
            "{n_stages} stages over {} layers",
            cfg.n_layers
        )));
    }
    let bounds: Vec<usize> = (1..n_stages).map(|s| s * cfg.n_layers / n_stages).collect();
    split_at(cfg, &bounds)
}

/// The stages that end at the layer indices `bounds` (one fewer than the stages, rising, at most
/// `n_layers`; the last stage ends at `n_layers`), the embedding on the first and the head on the
/// last. A stage may hold no layer only if it holds the embedding or the head.
pub fn split_at(cfg: &Config, bounds: &[usize]) -> Result<Vec<StageSpec>> {
    let ends: Vec<usize> = bounds.iter().copied().chain([cfg.n_layers]).collect();
    let n = ends.len();
    let mut start = 0;
    let mut specs = Vec::with_capacity(n);
    for (s, &end) in ends.iter().enumerate() {
        let spec = StageSpec {
            embedding: s == 0,
            layers: start..end,
            head: s + 1 == n,
        };
        if end < start
            || end > cfg.n_layers
            || (spec.layers.is_empty() && !spec.embedding && !spec.head)
        {
            return Err(Error::BadPlan(format!(
                "stage bounds {bounds:?} over {} layers",
                cfg.n_layers
            )));
        }
        specs.push(spec);
        start = end;
    }
    Ok(specs)
}

/// Runs one step of `plan` over `stages` (owned or borrowed) on `batch` split into the plan's
/// micro-batches, frames encoded at `precision` and decoded under the limit for that micro-batch
/// size; each stage's outcome carries its traffic.
pub fn run_step<S: Borrow<Stage>>(
    stages: &[S],
    plan: &Plan,
    step: u64,
    batch: &Batch,
    precision: Precision,
) -> Result<LocalStep> {
    let micro = crate::split(batch, plan.micro_batches() as usize)?;
    let cfg = stages
        .first()
        .ok_or_else(|| Error::BadPlan("no stages".into()))?
        .borrow()
        .config();
    let limit = FrameLimit::for_model(cfg, micro[0].batch);
    let n = stages.len();
    let mut steps = stages
        .iter()
        .enumerate()
        .map(|(s, stage)| {
            let ops = plan
                .ops(s)
                .ok_or_else(|| Error::BadPlan(format!("no plan for stage {s}")))?;
            StageStep::new(
                stage.borrow(),
                (s, n),
                step,
                ops,
                micro.clone(),
                precision,
                limit,
            )
            .map(StageStep::recording)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut bytes = [0u64; 2];
    while steps.iter().any(|s| !s.is_done()) {
        let mut progressed = false;
        for s in 0..n {
            while steps[s].is_ready() {
                progressed = true;
                let Some(out) = steps[s].run_next(stages[s].borrow())? else {
                    continue;
                };
                let (to, lane) = match out.to {
                    Direction::Next => (s + 1, 0),
                    Direction::Prev => (s - 1, 1),
                };
                bytes[lane] += out.bytes.len() as u64;
                steps[to].deliver(&out.bytes)?;
            }
        }
        if !progressed {
            return Err(Error::BadPlan(
                "the stages wait on each other forever".into(),
            ));
        }
    }
    let outcomes = steps
        .into_iter()
        .map(StageStep::finish)
        .collect::<Result<_>>()?;
    Ok(LocalStep { outcomes, bytes })
}

/// The stages' gradients written into the whole model's canonical order (`layout`); every
/// parameter must come from exactly one stage.
pub fn whole_gradients(
    layout: &Layout,
    stages: &[Stage],
    outcomes: &[StageOutcome],
) -> Result<Vec<f32>> {
    let mut whole = vec![0.0; layout.len()];
    let mut covered = 0;
    for (stage, outcome) in stages.iter().zip(outcomes) {
        layout.gather(&stage.param_shapes(), &outcome.grads, &mut whole)?;
        covered += outcome.grads.len();
    }
    match covered == layout.len() && stages.len() == outcomes.len() {
        true => Ok(whole),
        false => Err(Error::Layout(format!(
            "the stages cover {covered} of {} parameters",
            layout.len()
        ))),
    }
}

/// ‖got − want‖ / ‖want‖, in `f64`: how far a pipeline's gradient lands from the whole model's
/// (the one measure the tests and `neuroshard bench pipeline` report).
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let square = |x: f32| f64::from(x).powi(2);
    let diff: f64 = got.iter().zip(want).map(|(a, b)| square(a - b)).sum();
    let norm: f64 = want.iter().copied().map(square).sum();
    diff.sqrt() / norm.sqrt().max(1e-30)
}
