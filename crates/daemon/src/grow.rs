//! The model's depths on a growing network: which sizes a model can have (the genesis depth and
//! the `[growth]` schedule's), the config for a flat parameter vector of each, and the round
//! core's [`Growth`] rule over NeuroLLM (`docs/pool.md`, "Growth on a running network").

use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm, Stage, StageSpec};
use neuroshard_node::{Growth, Round};
use neuroshard_pool::{Footprint, GrowthSchedule, Plan, Workload};
use neuroshard_train::{AdamW, InnerLoop};

use crate::Result;

/// The depths a network's model can have: the genesis model's and, deeper, the schedule's.
#[derive(Debug, Clone)]
pub struct Depths {
    model: Config,
    depths: Vec<usize>,
}

impl Depths {
    /// `model` at its own depth and at each deeper one of `schedule`.
    pub(crate) fn new(model: &Config, schedule: Option<&GrowthSchedule>) -> Self {
        let deeper = schedule
            .into_iter()
            .flat_map(GrowthSchedule::depths)
            .filter(|&d| d > model.n_layers);
        Self {
            model: model.clone(),
            depths: std::iter::once(model.n_layers).chain(deeper).collect(),
        }
    }

    /// The model at `n_layers` layers.
    pub(crate) fn at(&self, n_layers: usize) -> Config {
        Config {
            n_layers,
            ..self.model.clone()
        }
    }

    /// The layer counts, the genesis model's first.
    pub fn layers(&self) -> &[usize] {
        &self.depths
    }

    /// The config of a model of `n_params` parameters, if one of the depths has that many.
    pub fn config_for(&self, n_params: usize) -> Option<Config> {
        self.depths
            .iter()
            .map(|&d| self.at(d))
            .find(|c| c.n_params() == n_params)
    }

    /// The deepest model's parameter count (what frames and checkpoints must hold).
    pub(crate) fn max_params(&self) -> usize {
        self.depths
            .iter()
            .map(|&d| self.at(d).n_params())
            .max()
            .unwrap_or_else(|| self.model.n_params())
    }
}

/// The round core's growth rule: the genesis schedule over NeuroLLM, new layers seeded from the
/// network seed and the round (the same on every node).
#[derive(Debug)]
pub(crate) struct Grower {
    depths: Depths,
    schedule: GrowthSchedule,
    seed: u64,
}

impl Grower {
    /// The rule for a network of `depths` growing by `schedule`, with network seed `seed`.
    pub(crate) fn new(depths: Depths, schedule: GrowthSchedule, seed: u64) -> Self {
        Self {
            depths,
            schedule,
            seed,
        }
    }

    /// A model of `n_params` parameters holding `params` (zeros when `None`).
    fn model(&self, n_params: usize, params: Option<&[f32]>) -> Result<NeuroLlm, String> {
        let config = self
            .depths
            .config_for(n_params)
            .ok_or_else(|| format!("no depth of this network has {n_params} parameters"))?;
        let mut model = NeuroLlm::new(&config, self.seed, &Device::Cpu).map_err(text)?;
        if let Some(params) = params {
            model.set_flat_params(params).map_err(text)?;
        }
        Ok(model)
    }
}

impl Growth for Grower {
    fn decide(&self, n_params: usize, history: &[u64], _closed: Round) -> Option<usize> {
        let n_layers = self.depths.config_for(n_params)?.n_layers;
        self.schedule.decide(n_layers, history)
    }

    fn admits(&self, n_params: usize) -> bool {
        self.depths.config_for(n_params).is_some()
    }

    fn grow(&self, params: &[f32], n_layers: usize, round: Round) -> Result<Vec<f32>, String> {
        let seed = growth_seed(self.seed, round);
        let grown = self
            .model(params.len(), Some(params))?
            .grown(n_layers, seed);
        grown.and_then(|m| m.flat_params()).map_err(text)
    }

    fn carry(&self, values: &[f32], n_params: usize) -> Result<Vec<f32>, String> {
        let before = self.model(values.len(), None)?;
        let after = self.model(n_params, None)?;
        after.carry_from(&before, values).map_err(text)
    }
}

/// What the latest plan asks of a pipeline's stages (`docs/replan.md`): the model's depth and
/// each stage's layers, stage by stage (no stages before a plan), from which round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The model's depth.
    pub(crate) n_layers: usize,
    /// Each stage's layers, in pipeline order.
    pub(crate) stages: Vec<Range<usize>>,
    /// The round the plan takes effect in: a stage grows at the end of the round before.
    pub(crate) from_round: Round,
}

impl Layout {
    /// The layout of `plan`, in force from round `from_round`.
    pub(crate) fn of(plan: &Plan, from_round: Round) -> Self {
        Self {
            n_layers: plan.n_layers,
            stages: plan.stages.iter().map(|s| s.layers.clone()).collect(),
            from_round,
        }
    }
}

/// The latest plan's [`Layout`], shared by the driver (which sets it at a plan boundary) and
/// the stage's growth rule (which reads it at a round's end).
pub(crate) type Target = Arc<Mutex<Layout>>;

/// A pipeline stage's growth rule: the core grows its stage at a round's end, before the vote,
/// as the whole model grows, but to the length the latest plan gives the stage (`docs/replan.md`:
/// the driver sets [`Target`] at a plan boundary that deepens the model; the new layers go at
/// the stage's end), not by the pool sizes its included contributors announce. It admits a
/// stage peer's state of any length (a replica that grew a round late installs its mates'
/// grown state).
#[derive(Debug)]
pub(crate) struct StageGrower {
    depths: Depths,
    /// The stage's index in the pipeline.
    stage: usize,
    /// Whether it holds the embedding, the head.
    ends: (bool, bool),
    seed: u64,
    target: Target,
}

impl StageGrower {
    /// The rule for stage `stage` (holding what `spec` says at either end) on a network of
    /// `depths` with seed `seed`, growing to what `target` says.
    pub(crate) fn new(
        depths: Depths,
        stage: usize,
        spec: &StageSpec,
        seed: u64,
        target: Target,
    ) -> Self {
        Self {
            depths,
            stage,
            ends: (spec.embedding, spec.head),
            seed,
            target,
        }
    }

    /// The layers the latest plan gives this stage, the model's depth there, and the round the
    /// plan takes effect in.
    fn target(&self) -> Option<(Range<usize>, usize, Round)> {
        let layout = self.target.lock().unwrap_or_else(PoisonError::into_inner);
        let layers = layout.stages.get(self.stage)?.clone();
        Some((layers, layout.n_layers, layout.from_round))
    }

    /// The stage holding `params` (zeros when `None`) as `layers` of the model at `n_layers`.
    fn stage(
        &self,
        n_layers: usize,
        layers: Range<usize>,
        params: Option<&[f32]>,
    ) -> Result<Stage, String> {
        let (embedding, head) = self.ends;
        let spec = StageSpec {
            embedding,
            layers,
            head,
        };
        let config = self.depths.at(n_layers);
        let mut stage = Stage::new(&config, spec, self.seed, &Device::Cpu).map_err(text)?;
        if let Some(params) = params {
            stage.set_flat_params(params).map_err(text)?;
        }
        Ok(stage)
    }

    /// This stage's length with `n_params` parameters.
    fn len_for(&self, n_params: usize) -> Result<usize, String> {
        let (embedding, head) = self.ends;
        stage_len(&self.depths, embedding, head, n_params)
            .ok_or_else(|| format!("no stage of this network has {n_params} parameters here"))
    }
}

/// The number of layers of a stage holding the embedding and the head as `embedding` and
/// `head` say, with `n_params` parameters, counted as `neuroshard_pool::Footprint` counts them
/// (no tensor is built): at least one, at most the deepest model's depth (`depths`).
pub(crate) fn stage_len(
    depths: &Depths,
    embedding: bool,
    head: bool,
    n_params: usize,
) -> Option<usize> {
    // Parameter counts do not depend on the batch shape, nor on the model's depth.
    let shape = Workload {
        micro_batch: 1,
        micro_batches: 1,
    };
    let deepest = depths.layers().iter().copied().max()?;
    let footprint = Footprint::of(&depths.at(deepest), shape);
    let params = |len: usize| usize::try_from(footprint.params(len, embedding, head)).ok();
    (1..=deepest).find(|&len| params(len) == Some(n_params))
}

impl Growth for StageGrower {
    /// Grows at the end of the round before the plan's: every replica then starts that round at
    /// the plan's length, whichever round it is in when it learns of the plan.
    fn decide(&self, n_params: usize, _history: &[u64], closed: Round) -> Option<usize> {
        let len = self.len_for(n_params).ok()?;
        let (layers, n_layers, from) = self.target()?;
        (closed.saturating_add(1) >= from && layers.len() > len).then_some(n_layers)
    }

    fn admits(&self, n_params: usize) -> bool {
        self.len_for(n_params).is_ok()
    }

    fn grow(&self, params: &[f32], n_layers: usize, round: Round) -> Result<Vec<f32>, String> {
        let (layers, planned, _) = self.target().ok_or("no plan gives this stage layers")?;
        if planned != n_layers {
            return Err(format!("the plan's depth is {planned}, not {n_layers}"));
        }
        let len = self.len_for(params.len())?;
        let start = layers.start;
        let stage = self.stage(n_layers, start..start + len, Some(params))?;
        let seed = growth_seed(self.seed, round);
        stage
            .grown_to(n_layers, layers, seed)
            .and_then(|s| s.flat_params())
            .map_err(text)
    }

    fn carry(&self, values: &[f32], n_params: usize) -> Result<Vec<f32>, String> {
        // Where the stage sits does not change its parameters' order: both from layer 0.
        let deepest = self.depths.layers().iter().copied().max().unwrap_or(0);
        let at = |n: usize| Ok::<_, String>(0..self.len_for(n)?);
        let before = self.stage(deepest, at(values.len())?, None)?;
        let after = self.stage(deepest, at(n_params)?, None)?;
        after.carry_from(&before, values).map_err(text)
    }
}

/// `inner` rebuilt at `config`'s depth when its model has another size: the model's weights
/// are the caller's to set, the AdamW moments are laid over the new order (zeros for new
/// layers) and its step count kept. `None` when the size already fits.
pub(crate) fn refit(inner: &InnerLoop, config: &Config, seed: u64) -> Result<Option<InnerLoop>> {
    if inner.model().n_params() == config.n_params() {
        return Ok(None);
    }
    let model = NeuroLlm::new(config, seed, &Device::Cpu)?;
    let before = inner.model();
    let adam = inner.optimizer();
    let m = model.carry_from(before, adam.m())?;
    let v = model.carry_from(before, adam.v())?;
    let adam = AdamW::from_state(*adam.config(), m, v, adam.steps())?;
    Ok(Some(InnerLoop::from_parts(model, adam, *inner.config())?))
}

/// Mixes the round into the network seed for a growth's new layers (an odd constant, so every
/// round draws differently).
const GROWTH_SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// The seed of the new layers of a growth at the end of `round`, the same on every node.
fn growth_seed(seed: u64, round: Round) -> u64 {
    seed ^ round.wrapping_mul(GROWTH_SEED_MIX)
}

fn text(err: impl std::fmt::Display) -> String {
    err.to_string()
}

#[cfg(test)]
mod tests {
    use neuroshard_data::{GrowthSpec, GrowthStepSpec};

    use super::*;

    fn grower() -> Grower {
        let model = Config::preset("nano", 64).unwrap();
        let spec = GrowthSpec {
            sustain_rounds: 2,
            steps: vec![GrowthStepSpec {
                min_pool_bytes: 300,
                n_layers: model.n_layers + 2,
            }],
        };
        let schedule = GrowthSchedule::new(&spec).unwrap();
        Grower::new(Depths::new(&model, Some(&schedule)), schedule, 7)
    }

    #[test]
    fn a_stage_rule_grows_to_the_plans_length_and_admits_each_length() {
        let g = grower();
        let base = g.depths.model.n_layers;
        let target = Target::default();
        let middle = StageSpec {
            embedding: false,
            layers: 1..2,
            head: false,
        };
        let head = StageSpec {
            embedding: false,
            layers: 2..base,
            head: true,
        };
        let rule = StageGrower::new(g.depths.clone(), 1, &middle, 7, Arc::clone(&target));
        let last = StageGrower::new(g.depths.clone(), 2, &head, 7, Arc::clone(&target));
        let params = rule.stage(base, 1..2, None).unwrap().flat_params().unwrap();
        let head_params = last.stage(base, 2..base, None).unwrap().n_params();
        assert_eq!(
            rule.decide(params.len(), &[u64::MAX; 4], 9),
            None,
            "no plan yet"
        );
        // The plan spreads two new layers: one on the first stage, one on the middle one; the
        // head stage only relabels. It takes effect in round 5: a replica still closing round 3
        // when it learns of it waits a round.
        *target.lock().unwrap() = Layout {
            n_layers: base + 2,
            stages: vec![0..2, 2..4, 4..base + 2],
            from_round: 5,
        };
        assert_eq!(rule.decide(params.len(), &[], 3), None, "not yet");
        assert_eq!(rule.decide(params.len(), &[], 4), Some(base + 2));
        assert_eq!(last.decide(head_params, &[], 4), None, "relabelled only");
        assert!(
            rule.grow(&params, base + 1, 3).is_err(),
            "not the plan's depth"
        );
        let grown = rule.grow(&params, base + 2, 3).unwrap();
        assert_eq!(grown.len(), 2 * params.len(), "one layer more");
        assert_eq!(&grown[..params.len()], &params[..], "the old layer first");
        assert_eq!(rule.decide(grown.len(), &[], 5), None, "grown already");
        assert!(rule.admits(grown.len()) && rule.admits(params.len()));
        assert!(!rule.admits(grown.len() + 1));
        assert_eq!(
            rule.grow(&params, base + 2, 3).unwrap(),
            grown,
            "deterministic"
        );
        let carried = rule.carry(&vec![1.0; params.len()], grown.len()).unwrap();
        assert_eq!(carried.iter().filter(|v| **v == 1.0).count(), params.len());
    }

    #[test]
    fn the_rule_grows_by_the_schedule_and_keeps_the_function() {
        let g = grower();
        let base = g.depths.at(g.depths.model.n_layers);
        let params = NeuroLlm::new(&base, 1, &Device::Cpu)
            .unwrap()
            .flat_params()
            .unwrap();
        assert_eq!(g.decide(params.len(), &[200, 300], 0), None);
        let to = g.decide(params.len(), &[300, 300], 0).unwrap();
        assert_eq!(to, base.n_layers + 2);
        let grown = g.grow(&params, to, 5).unwrap();
        assert!(g.admits(grown.len()) && g.admits(params.len()));
        assert!(!g.admits(grown.len() + 1), "a size no depth has is refused");
        assert_eq!(g.grow(&params, to, 5).unwrap(), grown, "deterministic");
        assert_eq!(g.decide(grown.len(), &[300, 300], 0), None, "already grown");
        let carried = g.carry(&vec![1.0; params.len()], grown.len()).unwrap();
        let kept = carried.iter().filter(|v| **v == 1.0).count();
        assert_eq!(kept, params.len(), "old values kept, new ones zero");
    }
}
