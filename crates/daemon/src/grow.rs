//! The model's depths on a growing network: which sizes a model can have (the genesis depth and
//! the `[growth]` schedule's), the config for a flat parameter vector of each, and the round
//! core's [`Growth`] rule over NeuroLLM (`docs/pool.md`, "Growth on a running network").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm, Stage, StageSpec};
use neuroshard_node::{Growth, Round};
use neuroshard_pool::{Footprint, GrowthSchedule, Workload};
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
    fn decide(&self, n_params: usize, history: &[u64]) -> Option<usize> {
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

/// A pipeline head stage's growth rule: the core grows its stage at a round's end, before the
/// vote, as the whole model grows, but to the depth the plan asks for (`docs/replan.md`: the
/// driver sets `target` when a plan boundary deepens the model), not by the pool sizes its
/// included contributors announce. It admits a stage peer's state at any depth of the network
/// (a replica that grew a round late installs its mates' grown state).
#[derive(Debug)]
pub(crate) struct StageGrower {
    depths: Depths,
    /// The first layer the head stage holds (its range runs to the model's depth).
    first: usize,
    /// Whether it holds the embedding too (a pipeline of one stage never gets here).
    embedding: bool,
    seed: u64,
    /// The depth the plan asks for (0: none yet).
    target: Arc<AtomicUsize>,
}

impl StageGrower {
    /// The rule for the head stage from layer `first` on (with the embedding if `embedding`),
    /// on a network of `depths` with seed `seed`, growing to what `target` says.
    pub(crate) fn new(
        depths: Depths,
        first: usize,
        embedding: bool,
        seed: u64,
        target: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            depths,
            first,
            embedding,
            seed,
            target,
        }
    }

    /// The head stage of the model at `n_layers`.
    fn spec(&self, n_layers: usize) -> StageSpec {
        StageSpec {
            embedding: self.embedding,
            layers: self.first..n_layers,
            head: true,
        }
    }

    /// The depth at which the head stage has `n_params` parameters.
    fn depth_for(&self, n_params: usize) -> Option<usize> {
        head_stage_depth(&self.depths, self.spec(0), n_params)
    }

    /// The head stage holding `params` (zeros when `None`) at the depth `n_params` gives.
    fn stage(&self, n_params: usize, params: Option<&[f32]>) -> Result<Stage, String> {
        let depth = self.depth_for(n_params).ok_or_else(|| {
            format!("no depth of this network gives the head stage {n_params} parameters")
        })?;
        let config = self.depths.at(depth);
        let mut stage =
            Stage::new(&config, self.spec(depth), self.seed, &Device::Cpu).map_err(text)?;
        if let Some(params) = params {
            stage.set_flat_params(params).map_err(text)?;
        }
        Ok(stage)
    }
}

/// The depth of the network's model (`depths`) at which the head stage `head` (its first layer
/// and whether it holds the embedding; its end is the depth) has `n_params` parameters,
/// counted as `neuroshard_pool::Footprint` counts them (no tensor is built).
pub(crate) fn head_stage_depth(depths: &Depths, head: StageSpec, n_params: usize) -> Option<usize> {
    // Parameter counts do not depend on the batch shape.
    let shape = Workload {
        micro_batch: 1,
        micro_batches: 1,
    };
    let params_at = |n_layers: usize| {
        let layers = n_layers.checked_sub(head.layers.start)?;
        let footprint = Footprint::of(&depths.at(n_layers), shape);
        usize::try_from(footprint.params(layers, head.embedding, true)).ok()
    };
    (depths.layers().iter().copied()).find(|&d| params_at(d) == Some(n_params))
}

impl Growth for StageGrower {
    fn decide(&self, n_params: usize, _history: &[u64]) -> Option<usize> {
        let target = self.target.load(Ordering::Relaxed);
        (target > self.depth_for(n_params)?).then_some(target)
    }

    fn admits(&self, n_params: usize) -> bool {
        self.depth_for(n_params).is_some()
    }

    fn grow(&self, params: &[f32], n_layers: usize, round: Round) -> Result<Vec<f32>, String> {
        let seed = growth_seed(self.seed, round);
        let stage = self.stage(params.len(), Some(params))?;
        stage
            .grown(n_layers, seed)
            .and_then(|s| s.flat_params())
            .map_err(text)
    }

    fn carry(&self, values: &[f32], n_params: usize) -> Result<Vec<f32>, String> {
        let before = self.stage(values.len(), None)?;
        let after = self.stage(n_params, None)?;
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
    fn the_head_stage_rule_grows_to_the_plans_depth_and_admits_each_depth() {
        let g = grower();
        let base = g.depths.model.n_layers;
        let target = Arc::new(AtomicUsize::new(0));
        let rule = StageGrower::new(g.depths.clone(), 1, false, 7, Arc::clone(&target));
        let spec = rule.spec(base);
        let shapes = spec.param_shapes(&g.depths.at(base)).unwrap();
        let n_params = shapes
            .iter()
            .map(|(_, d)| d.iter().product::<usize>())
            .sum();
        let params = rule.stage(n_params, None).unwrap().flat_params().unwrap();
        assert_eq!(
            rule.decide(params.len(), &[u64::MAX; 4]),
            None,
            "the plan decides"
        );
        target.store(base + 2, Ordering::Relaxed);
        assert_eq!(rule.decide(params.len(), &[]), Some(base + 2));
        let grown = rule.grow(&params, base + 2, 3).unwrap();
        assert_eq!(rule.decide(grown.len(), &[]), None, "grown already");
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
        assert_eq!(g.decide(params.len(), &[200, 300]), None);
        let to = g.decide(params.len(), &[300, 300]).unwrap();
        assert_eq!(to, base.n_layers + 2);
        let grown = g.grow(&params, to, 5).unwrap();
        assert!(g.admits(grown.len()) && g.admits(params.len()));
        assert!(!g.admits(grown.len() + 1), "a size no depth has is refused");
        assert_eq!(g.grow(&params, to, 5).unwrap(), grown, "deterministic");
        assert_eq!(g.decide(grown.len(), &[300, 300]), None, "already grown");
        let carried = g.carry(&vec![1.0; params.len()], grown.len()).unwrap();
        let kept = carried.iter().filter(|v| **v == 1.0).count();
        assert_eq!(kept, params.len(), "old values kept, new ones zero");
    }
}
