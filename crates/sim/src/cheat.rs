//! Cheaters against Proof of Neural Work: nodes that run the honest protocol core but lie about
//! their training, withhold what they committed, or accuse honest nodes.
//!
//! Training cheats rewrite the job (its Δ, its chain, the checkpoints the node serves); serving
//! and accusing cheats lie where the driver meets the core (a withheld checkpoint, a replay result
//! that did not happen). The core, its keys and its messages stay the honest ones, so every
//! cheat is caught, or not, by the real verification path.

use std::fmt;
use std::str::FromStr;

use std::collections::BTreeMap;

use neuroshard_node::{
    CheckpointStore, MemoryCheckpoints, ReplayJob, Replayed, Round, TrainingJob, TrainingResult,
    Worker,
};
use neuroshard_verify::{Chain, Checkpoint, Leaf};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::ponw::Tally;
use crate::rng::RngTree;
use crate::{Error, Result, SimConfig, Workload};

/// The cheaters of a run, what they remember, and the work-proof tally.
#[derive(Debug)]
pub(crate) struct Cheats {
    cheat: Option<Cheat>,
    cheaters: Vec<usize>,
    rng: ChaCha8Rng,
    /// Honest Δs of recent rounds, newest last, for copying and replaying.
    honest: BTreeMap<Round, Vec<Vec<f32>>>,
    pub(crate) tally: Tally,
}

impl Cheats {
    /// The cheaters `config` names, with their randomness from the run's tree.
    pub(crate) fn for_config(config: &SimConfig, tree: &RngTree) -> Self {
        Self {
            cheat: config.cheat.filter(|_| config.cheaters > 0),
            cheaters: config.cheaters(),
            rng: tree.stream("cheat", 0),
            honest: BTreeMap::new(),
            tally: Tally::new(
                config
                    .cheat
                    .is_some_and(|c| c.kind == CheatKind::FalseAccuse),
            ),
        }
    }

    /// The cheat, if anybody cheats.
    pub(crate) fn cheat(&self) -> Option<Cheat> {
        self.cheat
    }

    /// The cheating nodes, ascending.
    pub(crate) fn cheaters(&self) -> &[usize] {
        &self.cheaters
    }

    /// Whether node `i` cheats.
    pub(crate) fn is_cheater(&self, i: usize) -> bool {
        self.cheat.is_some() && self.cheaters.contains(&i)
    }

    /// An honest node trained `delta` in `round` (a copier's or replayer's material).
    pub(crate) fn honest_delta(&mut self, round: Round, delta: &[f32]) {
        if matches!(self.kind(), Some(CheatKind::Copy | CheatKind::Replay)) {
            self.honest.entry(round).or_default().push(delta.to_vec());
            self.honest.retain(|r, _| r + 2 >= round);
        }
    }

    /// Whether cheater `node` withholds the checkpoints a challenge asks for.
    pub(crate) fn withholds(&mut self, node: usize) -> bool {
        self.is_cheater(node)
            && self.kind() == Some(CheatKind::Withhold)
            && this_time(self.strength(), &mut self.rng)
    }

    /// Whether cheater `node` reports its audit of `round` as failed whatever the replay.
    pub(crate) fn accuses(&mut self, node: usize, round: Round) -> bool {
        let accuses = self.is_cheater(node)
            && self.kind() == Some(CheatKind::FalseAccuse)
            && this_time(self.strength(), &mut self.rng);
        if accuses {
            self.tally.cheated(round, node);
        }
        accuses
    }

    /// Cheater `node`'s training job, cheating as its kind says; a wrong-data cheater trains on
    /// the shards of node `other` (index and id).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn train<W: Workload>(
        &mut self,
        workload: &W,
        worker: &mut W::Worker,
        store: &mut MemoryCheckpoints,
        node: usize,
        other: (usize, neuroshard_primitives::NodeId),
        job: &TrainingJob,
        start: &[f32],
    ) -> Result<TrainingResult> {
        let (kind, strength) = (
            self.kind().expect("only cheaters train here"),
            self.strength(),
        );
        let honest = |worker: &mut W::Worker| {
            worker.train(job, start).map_err(|err| Error::Worker {
                node,
                round: job.round,
                source: Box::new(err),
            })
        };
        let cheats = match kind {
            CheatKind::Lazy | CheatKind::Copy | CheatKind::ForgeLoss => {
                strength > 0.0 || kind == CheatKind::Copy
            }
            CheatKind::Fabricate | CheatKind::Replay | CheatKind::WrongData => {
                this_time(strength, &mut self.rng)
            }
            // A withholder's every contribution is one it will not stand behind when challenged.
            CheatKind::Withhold => {
                self.tally.cheated(job.round, node);
                false
            }
            CheatKind::FalseAccuse => false,
        };
        if !cheats {
            return honest(worker);
        }
        self.tally.cheated(job.round, node);
        let mut result = match (kind, job.chain) {
            (CheatKind::Lazy, Some(plan)) => {
                let skip = skipped(strength, plan.count(), &mut self.rng);
                workload.train_lazily(worker, job, start, &skip)?
            }
            (CheatKind::WrongData, _) => {
                honest(&mut workload.worker(other.0, other.1, store.clone())?)?
            }
            _ => honest(worker)?,
        };
        let fake = match kind {
            CheatKind::Fabricate => Some(made_up(&result.delta, &mut self.rng)),
            CheatKind::Copy => {
                let source = self
                    .latest_honest(job.round)
                    .unwrap_or_else(|| result.delta.clone());
                Some(with_noise(&source, strength, &mut self.rng))
            }
            CheatKind::Replay => Some(
                self.latest_honest(job.round.saturating_sub(1))
                    .unwrap_or_else(|| made_up(&result.delta, &mut self.rng)),
            ),
            CheatKind::ForgeLoss => {
                forge_losses(&mut result, strength);
                None
            }
            _ => None,
        };
        if let Some(delta) = fake {
            fake_chain(job, start, &delta, &mut result, store)?;
        }
        Ok(result)
    }

    /// The newest honest Δ of `round` or earlier.
    fn latest_honest(&self, round: Round) -> Option<Vec<f32>> {
        self.honest.range(..=round).next_back()?.1.last().cloned()
    }

    fn kind(&self) -> Option<CheatKind> {
        self.cheat.map(|c| c.kind)
    }

    fn strength(&self) -> f64 {
        self.cheat.map_or(0.0, |c| c.strength)
    }
}

/// What a false accuser says its replay computed: the committed end, moved.
pub(crate) fn false_replay(job: &ReplayJob) -> Replayed {
    let mut end = job.opened.end.clone();
    end.params.iter_mut().for_each(|p| *p += 1.0);
    Replayed {
        end,
        losses: job.opened.losses.clone(),
        usefulness: None,
        frames: Ok(()),
    }
}

/// The ways a node can cheat the work proof, with their names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheatKind {
    /// Skips a share of its segments (strength: the share) and fakes their checkpoints.
    Lazy,
    /// Announces a made-up Δ with a made-up chain (strength: the share of rounds).
    Fabricate,
    /// Announces another node's Δ of the round, plus noise (strength: the noise, relative to the
    /// Δ's RMS), with a made-up chain.
    Copy,
    /// Announces an earlier round's Δ, its own or another's (strength: the share of rounds).
    Replay,
    /// Trains honestly, on another node's shards (strength: the share of rounds).
    WrongData,
    /// Trains honestly and claims lower losses (strength: how much lower, relative).
    ForgeLoss,
    /// Reports honest contributions it audited as failed (strength: the share of its audits).
    FalseAccuse,
    /// Does not serve challenged checkpoints (strength: the share of challenges).
    Withhold,
}

impl CheatKind {
    /// Every kind, in command-line order.
    pub const ALL: [CheatKind; 8] = [
        CheatKind::Lazy,
        CheatKind::Fabricate,
        CheatKind::Copy,
        CheatKind::Replay,
        CheatKind::WrongData,
        CheatKind::ForgeLoss,
        CheatKind::FalseAccuse,
        CheatKind::Withhold,
    ];

    /// The name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            CheatKind::Lazy => "lazy",
            CheatKind::Fabricate => "fabricate",
            CheatKind::Copy => "copy",
            CheatKind::Replay => "replay",
            CheatKind::WrongData => "wrong-data",
            CheatKind::ForgeLoss => "forge-loss",
            CheatKind::FalseAccuse => "false-accuse",
            CheatKind::Withhold => "withhold",
        }
    }

    /// The strength "full strength" means for this kind.
    pub fn full(&self) -> f64 {
        match self {
            CheatKind::Copy => 0.0,
            CheatKind::ForgeLoss => 0.1,
            _ => 1.0,
        }
    }
}

impl fmt::Display for CheatKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cheat and its strength: `KIND[:STRENGTH]` on the command line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cheat {
    /// What the cheaters do.
    pub kind: CheatKind,
    /// How much (see each [`CheatKind`]).
    pub strength: f64,
}

impl FromStr for Cheat {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (name, strength) = text.split_once(':').unwrap_or((text, ""));
        let kind = CheatKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = CheatKind::ALL.iter().map(CheatKind::name).collect();
                Error::InvalidConfig(format!(
                    "unknown cheat `{name}`; use one of {}",
                    names.join(", ")
                ))
            })?;
        let strength = if strength.is_empty() {
            kind.full()
        } else {
            strength
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "cheat strength `{strength}` is not a number >= 0"
                    ))
                })?
        };
        Ok(Self { kind, strength })
    }
}

impl fmt::Display for Cheat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.strength)
    }
}

/// Whether a cheat that works round by round cheats this time.
pub(crate) fn this_time(strength: f64, rng: &mut ChaCha8Rng) -> bool {
    rng.random::<f64>() < strength
}

/// The segments a lazy node skips in a job of `count` segments: round(strength × count) of
/// them (at least one for any strength above zero), drawn at random.
pub(crate) fn skipped(strength: f64, count: u64, rng: &mut ChaCha8Rng) -> Vec<bool> {
    let n = if strength > 0.0 {
        ((strength * count as f64).round() as u64).clamp(1, count)
    } else {
        0
    };
    let mut skip = vec![false; count as usize];
    let mut order: Vec<usize> = (0..count as usize).collect();
    rand::seq::SliceRandom::shuffle(&mut order[..], rng);
    order
        .into_iter()
        .take(n as usize)
        .for_each(|j| skip[j] = true);
    skip
}

/// Replaces `result`'s Δ by `delta` and its chain by a made-up one that walks in a straight line
/// from `start` to `start − delta` with zero moments and the honest losses, storing its
/// checkpoints where the honest ones were.
pub(crate) fn fake_chain(
    job: &TrainingJob,
    start: &[f32],
    delta: &[f32],
    result: &mut TrainingResult,
    store: &mut MemoryCheckpoints,
) -> Result<()> {
    let Some(plan) = job.chain else {
        result.delta = delta.to_vec();
        return Ok(());
    };
    let first = job.round * job.steps as u64;
    // The honest chain's first checkpoint holds the AdamW step count the job started at.
    let adam = store
        .get(job.round, 0)
        .and_then(|bytes| Checkpoint::from_bytes(&bytes, start.len()).ok())
        .map_or(0, |c| c.adam_steps);
    let losses: Vec<Vec<f32>> = result
        .chain
        .leaves()
        .iter()
        .map(|l| l.losses.clone())
        .collect();
    let mut chain = Chain::new();
    let count = plan.count();
    let mut end = start.to_vec();
    for j in 0..=count {
        // Segment `count` starts where the job ends.
        let at = plan.segment(j).0;
        let share = at as f32 / job.steps as f32;
        end = start
            .iter()
            .zip(delta)
            .map(|(s, d)| s - share * d)
            .collect();
        let checkpoint = Checkpoint {
            step: first + at,
            adam_steps: adam + at,
            params: end.clone(),
            m: vec![0.0; start.len()],
            v: vec![0.0; start.len()],
        };
        store
            .keep(job.round, j, checkpoint.to_bytes())
            .map_err(|err| Error::InvalidConfig(err.to_string()))?;
        chain.push(
            &checkpoint,
            losses.get(j as usize).cloned().unwrap_or_default(),
            neuroshard_primitives::Hash::default(),
        );
    }
    result.delta = start.iter().zip(&end).map(|(s, e)| s - e).collect();
    result.chain = chain;
    Ok(())
}

/// Lowers every committed loss (and the reported ones) by `strength`, relative; the checkpoints
/// stay the honest ones.
pub(crate) fn forge_losses(result: &mut TrainingResult, strength: f64) {
    let factor = (1.0 - strength) as f32;
    let leaves: Vec<Leaf> = result
        .chain
        .leaves()
        .iter()
        .map(|leaf| Leaf {
            checkpoint: leaf.checkpoint,
            losses: leaf.losses.iter().map(|l| l * factor).collect(),
            work: leaf.work,
        })
        .collect();
    result.chain = Chain::from_leaves(leaves);
    result.loss_start *= factor;
    result.loss_end *= factor;
}

/// `delta` plus Gaussian noise of `relative` × its RMS.
pub(crate) fn with_noise(delta: &[f32], relative: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let scale = relative * rms(delta);
    delta
        .iter()
        .map(|d| d + (scale * normal(rng)) as f32)
        .collect()
}

/// A made-up Δ: Gaussian, with the RMS of the honest one.
pub(crate) fn made_up(honest: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let scale = rms(honest);
    (0..honest.len())
        .map(|_| (scale * normal(rng)) as f32)
        .collect()
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

fn rms(values: &[f32]) -> f64 {
    let sum: f64 = values.iter().map(|v| f64::from(*v).powi(2)).sum();
    (sum / values.len().max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheats_parse_with_and_without_strength() {
        let lazy: Cheat = "lazy:0.25".parse().unwrap();
        assert_eq!((lazy.kind, lazy.strength), (CheatKind::Lazy, 0.25));
        let copy: Cheat = "copy".parse().unwrap();
        assert_eq!((copy.kind, copy.strength), (CheatKind::Copy, 0.0));
        assert!("lazzy".parse::<Cheat>().is_err());
        assert!("lazy:-1".parse::<Cheat>().is_err());
        assert!("lazy:x".parse::<Cheat>().is_err());
        for kind in CheatKind::ALL {
            assert_eq!(kind.name().parse::<Cheat>().unwrap().kind, kind);
        }
    }

    #[test]
    fn a_lazy_node_skips_the_share_it_is_told() {
        let mut rng = crate::RngTree::new(1).stream("t", 0);
        assert_eq!(
            skipped(0.25, 40, &mut rng).iter().filter(|s| **s).count(),
            10
        );
        assert_eq!(
            skipped(0.001, 40, &mut rng).iter().filter(|s| **s).count(),
            1
        );
        assert_eq!(skipped(0.0, 40, &mut rng).iter().filter(|s| **s).count(), 0);
    }
}
