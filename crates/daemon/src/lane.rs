//! One stage of a pipeline lane, run on the training thread: each inner step is the stage's
//! share of a 1F1B step (`neuroshard_pipeline::StageStep`) whose frames travel to and from the
//! lane's neighbours over the p2p frame protocol, then the stage's clip and AdamW
//! (`neuroshard_train::StageLoop`). The driver files the neighbours' frames in the
//! [`LaneInbox`](crate::link::LaneInbox) by step and sender; the step waits there for the frames it needs. A replica that
//! stands in for a lost member of its stage serves two lanes (or more) in each step, one
//! `StageStep` per lane on the same weights, and merges their gradients into one descent
//! (`docs/pipeline.md`, "Failover"). When the network audits, a job records its chain
//! ([`StageChain`]): the stage's checkpoints and each step's batches and frames.

use std::time::Duration;

use neuroshard_model::{Stage, StageSpec};
use neuroshard_node::{TrainingJob, TrainingResult, loss_ends};
use neuroshard_pipeline::{Direction, FrameLimit, Plan, Precision, StageOutcome, StageStep, split};
use neuroshard_primitives::Batch;
use neuroshard_train::{InnerConfig, StageLoop, pseudo_gradient};
use neuroshard_verify::Chain;
use neuroshard_verify::stage::LaneWork;

use crate::audit::DiskCheckpoints;
use crate::grow::{Depths, stage_len};
use crate::link::{LaneLink, Link};
use crate::role::Role;
use crate::stage_chain::StageChain;
use crate::work::LaneSources;
use crate::{Error, Result};

/// The top bit marks a validation step: `VALIDATION | round << 20 | i` never meets a training
/// step (`round · H + i`).
pub(crate) const VALIDATION: u64 = 1 << 63;

/// Held-out batches a lane runs through the pipeline at each round's start, at most: each
/// costs a whole 1F1B step of every stage of the lane.
pub(crate) const VAL_BATCHES: usize = 8;

/// A lane notice: `"NSLR" | needs u64 | serves u64` (little-endian), what the sender's side of
/// the lane needs ([`LaneRounds::notice_for`]) and the lowest round its training thread may
/// still run a job for ([`LaneRounds::serving`]). Never a pipeline frame, which opens with
/// `"NSPF"`.
const NOTICE: &[u8; 4] = b"NSLR";

/// What a lane neighbour says in a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Notice {
    /// The lowest round the sender's side of the lane needs trained.
    pub(crate) needs: u64,
    /// The lowest round the sender's training thread may still run a job for: its thread runs
    /// jobs in increasing rounds, so it never serves an earlier one again.
    pub(crate) serves: u64,
}

impl Notice {
    /// The notice's bytes.
    pub(crate) fn encode(self) -> Vec<u8> {
        [
            NOTICE.as_slice(),
            &self.needs.to_le_bytes(),
            &self.serves.to_le_bytes(),
        ]
        .concat()
    }

    /// The notice `bytes` hold; `None` when they are not one (a pipeline frame, or junk).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(NOTICE.as_slice())?;
        let (needs, serves) = (rest.get(..8)?, rest.get(8..)?);
        Some(Self {
            needs: u64::from_le_bytes(needs.try_into().ok()?),
            serves: u64::from_le_bytes(serves.try_into().ok()?),
        })
    }
}

/// Which round a stage node's lane job must serve. Its round core moves on alone (its stage's
/// other replicas close rounds without it when they no longer wait for it), but a lane's job
/// completes only if every member of the lane runs it. So a job is stopped, not when this
/// node's core has left its round, but once every member has: the round the driver wants
/// trained ([`Self::wanted`]) is the lowest of this node's core round and the rounds its
/// neighbours say their side of the lane needs, a neighbour's counting only while it is at most
/// one round behind (a neighbour further behind resyncs past it: a job for its round cannot
/// help it). Each neighbour is told the lowest over this node and its *other* side
/// ([`Self::notice_for`]), so along a lane of any length every member learns the lane's lowest
/// round, and no notice echoes back to where it came from.
///
/// A job also stops, with the Δ of the steps it trained, once the lane cannot complete it
/// ([`Self::cut`]): a neighbour that disconnected is *lost* until a notice of it says it is back
/// on a round this node's job can serve (at most one behind; a restarted neighbour connects
/// again long before it has placed itself and resynced its stage), and a neighbour whose
/// training thread has passed the job's round (it skipped it: a restarted member that installed
/// a later state, or whose observed round closed before its job started) never sends that
/// round's frames. Pure: the driver feeds it the core's rounds, this node's jobs, the
/// neighbours' notices and their disconnections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LaneRounds {
    /// The round this node's core asked the latest job for (trained or observed).
    own: u64,
    /// The round of the job this node's training thread runs, if one runs.
    running: Option<u64>,
    /// The round of the latest job that ended.
    ended: Option<u64>,
    /// What the previous and the next neighbour last said.
    prev: Option<Notice>,
    next: Option<Notice>,
    /// Whether the previous and the next neighbour are lost.
    lost: [bool; 2],
}

impl LaneRounds {
    /// This node's rounds and none of its neighbours': for a lane it starts to serve, or whose
    /// neighbours changed.
    pub(crate) fn fresh(&self) -> Self {
        Self {
            prev: None,
            next: None,
            lost: [false; 2],
            ..*self
        }
    }

    /// Whether a member that says `needs` serves this node's round or the one before: it is on
    /// this node's round (a restarted member says round 0 until it resynced).
    pub(crate) fn on_my_round(&self, needs: u64) -> bool {
        needs <= self.own && needs.saturating_add(1) >= self.own
    }

    /// The round of the core's latest job.
    pub(crate) fn own(&self) -> u64 {
        self.own
    }

    /// The core asked for a job of `round`; whether anything changed.
    pub(crate) fn set_own(&mut self, round: u64) -> bool {
        let changed = round != self.own;
        self.own = round;
        self.find_lost();
        changed
    }

    /// The training thread started a job of `round` (`Some`), or its job ended (`None`);
    /// whether what this node serves changed.
    pub(crate) fn set_running(&mut self, round: Option<u64>) -> bool {
        let before = self.serving();
        if round.is_none() {
            self.ended = self.running.max(self.ended);
        }
        self.running = round;
        self.serving() != before
    }

    /// The lowest round this node's training thread may still run a job for: the running
    /// job's; else the core's latest, unless that job already ended (the next one is later).
    pub(crate) fn serving(&self) -> u64 {
        let after_ended = self.ended.map_or(0, |r| r.saturating_add(1));
        self.running.unwrap_or(self.own.max(after_ended))
    }

    /// The neighbour on side `from` said `notice`; whether anything changed.
    pub(crate) fn hear(&mut self, from: Direction, notice: Notice) -> bool {
        let slot = match from {
            Direction::Prev => &mut self.prev,
            Direction::Next => &mut self.next,
        };
        let changed = *slot != Some(notice);
        *slot = Some(notice);
        self.find_lost();
        changed
    }

    /// A lost neighbour is back once it says a round this node's job can serve: this node's, or
    /// the one before (it comes to this one next). One that says a later round skipped this
    /// node's (it installed a later state after its restart): still lost, until this node's
    /// core reaches its round.
    fn find_lost(&mut self) {
        let back = [self.prev, self.next].map(|n| n.is_some_and(|n| self.on_my_round(n.needs)));
        self.lost[0] &= !back[0];
        self.lost[1] &= !back[1];
    }

    /// The neighbour on side `side` disconnected.
    pub(crate) fn lose(&mut self, side: Direction) {
        match side {
            Direction::Prev => (self.prev, self.lost[0]) = (None, true),
            Direction::Next => (self.next, self.lost[1]) = (None, true),
        }
    }

    /// Whether a neighbour is lost: no job of this node's can complete.
    pub(crate) fn broken(&self) -> bool {
        self.lost.contains(&true)
    }

    /// Jobs of rounds before this one cannot complete and stop with what they trained: every
    /// job while a neighbour is lost, else those of rounds a neighbour's thread has passed.
    pub(crate) fn cut(&self) -> u64 {
        match self.broken() {
            true => u64::MAX,
            false => [self.prev, self.next]
                .into_iter()
                .flatten()
                .map(|n| n.serves)
                .fold(0, u64::max),
        }
    }

    /// Frames of jobs of rounds before this one are not sent to the neighbour on side `to`: it
    /// is lost, or its thread has passed their round. Only that side counts: a neighbour that
    /// finished its job of round r has sent every frame it owed this node (a frame's send
    /// returns once the receiver holds it, before its notice), but this node may still owe the
    /// other side its last frames (in a lane of three, the middle stage's last gradients to the
    /// first stage go out after the last stage's job ended).
    pub(crate) fn cut_sends(&self, to: Direction) -> u64 {
        let (heard, lost) = match to {
            Direction::Prev => (self.prev, self.lost[0]),
            Direction::Next => (self.next, self.lost[1]),
        };
        match lost {
            true => u64::MAX,
            false => heard.map_or(0, |n| n.serves),
        }
    }

    /// A neighbour's round, if it still needs this node's job: at most one round behind.
    fn needs(&self, heard: Option<Notice>) -> Option<u64> {
        heard
            .map(|n| n.needs)
            .filter(|r| r.saturating_add(1) >= self.own)
    }

    /// The lowest round the lane still trains: a job of an earlier round stops.
    pub(crate) fn wanted(&self) -> u64 {
        [self.needs(self.prev), self.needs(self.next)]
            .into_iter()
            .flatten()
            .fold(self.own, u64::min)
    }

    /// What to tell the neighbour on side `to`: the lowest round this node's side needs, and
    /// what this node serves.
    pub(crate) fn notice_for(&self, to: Direction) -> Notice {
        let other = match to {
            Direction::Prev => self.next,
            Direction::Next => self.prev,
        };
        Notice {
            needs: self.needs(other).map_or(self.own, |r| r.min(self.own)),
            serves: self.serving(),
        }
    }
}

/// A stage of one lane: its weights and optimizer, its 1F1B order, its link.
#[derive(Debug)]
pub(crate) struct Lane {
    role: Role,
    inner: StageLoop,
    plan: Plan,
    limit: FrameLimit,
    link: Link,
    /// Where a job's chain keeps its checkpoints and work, when the network audits.
    chains: DiskCheckpoints,
    /// Time the running job spent waiting for a neighbour's frames.
    waited: Duration,
    /// The round whose job the lane could not complete ([`Error::NeighbourGone`]): the job's
    /// later steps (its validation's, then its training's) stop at once too. A neighbour back
    /// meanwhile would otherwise meet this job at another step and wait for it (one validating
    /// while the other trains) until the deadline.
    given_up: Option<u64>,
}

impl Lane {
    /// Stage `role` of its lane, holding `stage` (at the round's start weights), trained with
    /// `config` (each step's batch split into `micro_batches`), its chains kept in `chains`.
    pub(crate) fn new(
        role: Role,
        stage: Stage,
        config: InnerConfig,
        micro_batches: usize,
        (link, chains): (Link, DiskCheckpoints),
    ) -> Result<Self> {
        let (plan, limit) = Self::schedule(&role, stage.config(), config, micro_batches)?;
        let inner = StageLoop::new(stage, config, role.stages)?;
        Ok(Self {
            role,
            inner,
            plan,
            limit,
            link,
            chains,
            waited: Duration::ZERO,
            given_up: None,
        })
    }

    /// The 1F1B plan a stage of `role` runs its steps on, and the limit its frames are read
    /// under, for a model `model` trained with `config` in `micro_batches`.
    pub(crate) fn schedule(
        role: &Role,
        model: &neuroshard_model::Config,
        config: InnerConfig,
        micro_batches: usize,
    ) -> Result<(Plan, FrameLimit)> {
        let plan = Plan::one_f_one_b(role.stages, micro_batches as u32)?;
        let limit = FrameLimit::for_model(model, config.batch_size / micro_batches);
        Ok((plan, limit))
    }

    /// The role of a new plan that keeps this node's stage (`docs/replan.md`).
    pub(crate) fn replan(&mut self, role: Role) {
        self.role = role;
    }

    /// Takes on the length of a start stage of `n_params` parameters when the round core's
    /// differs (its stage grew at a round's end, or it installed a state of another length), at
    /// the place and depth of its role's plan: longer, the stage grows with its AdamW moments
    /// carried over (`StageLoop::grown_to`); shorter, it is rebuilt with a fresh AdamW state.
    /// The model's depths before and after, when the stage changed.
    pub(crate) fn fit(
        &mut self,
        n_params: usize,
        depths: &Depths,
    ) -> Result<Option<(usize, usize)>> {
        let Some(layers) = fitted_layers(&self.inner, &self.role, n_params, depths)? else {
            return Ok(None);
        };
        let (from, to) = (self.inner.stage().config().n_layers, self.role.n_layers);
        self.inner = match layers.len() > self.inner.stage().spec().layers.len() {
            true => self.inner.grown_to(to, layers, 0)?,
            false => fresh_stage(&self.inner, &self.role, layers, depths)?,
        };
        Ok(Some((from, to)))
    }

    /// Whether this stage computes the loss (it holds the head).
    pub(crate) fn is_last(&self) -> bool {
        self.role.stage + 1 == self.role.stages
    }

    /// The stage's share of one 1F1B step of `round`'s job on each of `lanes` (lane i's batch
    /// is `batches[i]`), merged into one mean gradient ([`StageOutcome::merge`]; its traffic is
    /// the lanes', in order), and the mean loss on the last stage. A lane that cannot complete
    /// the step is dropped from it, from `lanes` (the job's later steps) and from `batches`, the
    /// others go on: a stand-in whose second lane broke keeps training its own. With `record`
    /// the outcome carries each lane's traffic, for the job's chain.
    /// [`Error::NeighbourGone`] once no lane is left.
    fn step(
        &mut self,
        round: u64,
        step: u64,
        lanes: &mut Vec<LaneLink>,
        batches: &mut Vec<Batch>,
        record: bool,
    ) -> Result<StageOutcome> {
        if self.given_up == Some(round) || lanes.is_empty() {
            return Err(Error::NeighbourGone);
        }
        let outcome = self.run_step(round, step, lanes, batches, record);
        if let Err(Error::NeighbourGone) = outcome {
            self.given_up = Some(round);
        }
        outcome
    }

    /// Runs one [`StageStep`] per lane on the same weights, each through its own neighbours:
    /// every ready operation of every live lane, then a wait for the frames of any of them.
    fn run_step(
        &mut self,
        round: u64,
        step: u64,
        lanes: &mut Vec<LaneLink>,
        batches: &mut Vec<Batch>,
        record: bool,
    ) -> Result<StageOutcome> {
        let ops = self.plan.ops(self.role.stage).unwrap_or_default();
        let stage = self.inner.stage();
        let at = (self.role.stage, self.role.stages);
        let mut steps = Vec::with_capacity(lanes.len());
        for batch in batches.iter() {
            let micro = split(batch, self.plan.micro_batches() as usize)?;
            let running = StageStep::new(stage, at, step, ops, micro, Precision::Bf16, self.limit)?;
            steps.push(Some(if record { running.recording() } else { running }));
        }
        loop {
            for (slot, lane) in steps.iter_mut().zip(lanes.iter()) {
                while let Some(running) = slot.as_mut().filter(|s| s.is_ready()) {
                    let Some(out) = running.run_next(stage)? else {
                        continue;
                    };
                    match self.link.send(out, round, lane) {
                        Err(Error::NeighbourGone) => *slot = None,
                        sent => sent?,
                    }
                }
            }
            if steps.iter().all(Option::is_none) {
                return Err(Error::NeighbourGone);
            }
            let waiting: Vec<LaneLink> = (lanes.iter().zip(&steps))
                .filter(|(_, s)| s.as_ref().is_some_and(|s| !s.is_done()))
                .map(|(l, _)| l.clone())
                .collect();
            if waiting.is_empty() {
                break;
            }
            #[allow(clippy::disallowed_methods)] // the training thread: wall time for the bubble
            let started = std::time::Instant::now();
            let frames = self.link.wait_for(step, round, &waiting);
            self.waited += started.elapsed();
            let frames = match frames {
                Err(Error::NeighbourGone) => {
                    // Only the lanes that still wait and cannot complete are dropped.
                    for (slot, lane) in steps.iter_mut().zip(lanes.iter()) {
                        let waits = slot.as_ref().is_some_and(|s| !s.is_done());
                        if waits && self.link.lane_cut(round, lane) {
                            *slot = None;
                        }
                    }
                    continue;
                }
                frames => frames?,
            };
            for (peer, sealed) in frames {
                let i = lanes.iter().position(|l| l.side(peer).is_some());
                let Some(running) = i.and_then(|i| steps[i].as_mut()) else {
                    tracing::debug!(%peer, step, "a frame from no live lane of this job");
                    continue;
                };
                let Some((frame, seal)) = self.link.unseal(peer, sealed) else {
                    tracing::warn!(%peer, step, "refused a lane neighbour's frame: its seal does not hold");
                    continue;
                };
                #[cfg(feature = "cheat")]
                let frame = match self.link.cheat {
                    Some(crate::Cheat::ForgeInputs) => crate::cheat::forged(frame, &self.limit),
                    _ => frame,
                };
                if let Err(err) = running.deliver_sealed(&frame, seal) {
                    tracing::warn!(step, %err, "refused a lane neighbour's frame");
                }
            }
        }
        let before = lanes.len();
        let live: Vec<bool> = steps.iter().map(Option::is_some).collect();
        keep_live(lanes, &live);
        keep_live(batches, &live);
        if lanes.len() < before {
            let left: Vec<usize> = lanes.iter().map(|l| l.lane).collect();
            tracing::warn!(
                round,
                step,
                ?left,
                "a lane of this job cannot complete the round: the job goes on with the others"
            );
        }
        let outcomes = steps.into_iter().flatten().map(StageStep::finish);
        Ok(StageOutcome::merge(outcomes.collect::<Result<_, _>>()?)?)
    }

    /// The lanes a job serves, taken when the driver started it (its frames all travel these
    /// paths), and a log line when it stands in for another lane.
    fn lanes(&self, round: u64) -> Vec<LaneLink> {
        let lanes = self.link.routes.job();
        let me = self.role.replicas.get(self.role.lane).copied();
        let own = |lane: usize| crate::route::member(&self.role.grid, self.role.stage, lane) == me;
        if lanes.iter().any(|l| !own(l.lane)) {
            let served: Vec<usize> = lanes.iter().map(|l| l.lane).collect();
            tracing::info!(
                round,
                lane = self.role.lane,
                ?served,
                "standing in: this job serves the lanes"
            );
        }
        lanes
    }

    /// The mean loss of the round's start weights `start` on `batches`, each run through every
    /// lane the stage serves as a step whose gradients are dropped; `None` except on the last
    /// stage.
    pub(crate) fn validate(
        &mut self,
        round: u64,
        start: &[f32],
        batches: &[Batch],
    ) -> Result<Option<f32>> {
        self.inner.set_params(start)?;
        let mut lanes = self.lanes(round);
        let mut losses = Vec::with_capacity(batches.len());
        for (i, batch) in batches.iter().enumerate() {
            let step = VALIDATION | (round << 20) | i as u64;
            let mut copies = vec![batch.clone(); lanes.len()];
            losses.extend(self.step(round, step, &mut lanes, &mut copies, false)?.loss);
        }
        let mean = losses.iter().sum::<f32>() / losses.len().max(1) as f32;
        Ok((self.is_last() && !losses.is_empty()).then_some(mean))
    }

    /// The job's H inner steps from the stage weights `start`, on each served lane's batches
    /// (`data`, batch `round · H + i` of the lane's data node for step i), each a 1F1B step per
    /// lane, one clip and one AdamW step. When the lane cannot complete the job (a neighbour
    /// disconnected, or its thread passed the job's round: [`LaneRounds::cut`]) the job stops
    /// and returns the Δ of the steps it trained, none perhaps: a Δ of fewer steps, or zero, so
    /// that its stage's round closes with it instead of waiting for it until the deadline.
    pub(crate) fn train(
        &mut self,
        job: &TrainingJob,
        start: &[f32],
        data: &mut LaneSources,
        gauge: &neuroshard_node::LossGauge,
    ) -> Result<TrainingResult> {
        self.link.inbox.forget_before(job.round, job.steps as u64);
        self.inner.set_params(start)?;
        #[allow(clippy::disallowed_methods)] // the training thread: wall time for the bubble
        let started = std::time::Instant::now();
        self.waited = Duration::ZERO;
        let config = *self.inner.config();
        let mut lanes = self.lanes(job.round);
        let first = job.round * job.steps as u64;
        let mut losses = Vec::with_capacity(job.steps);
        let mut tokens = 0;
        let mut chain = (job.chain)
            .map(|plan| StageChain::start(self.chains.clone(), job.round, plan, &self.inner, first))
            .transpose()?;
        for step in first..first + job.steps as u64 {
            #[cfg(feature = "cheat")]
            let step_read = match self.link.cheat {
                Some(crate::Cheat::OtherBatch) => first + (step - first + 1) % job.steps as u64,
                _ => step,
            };
            #[cfg(not(feature = "cheat"))]
            let step_read = step;
            let mut batches = (lanes.iter())
                .map(|l| data.batch(l.data_node, step_read, config.batch_size, config.seq_len))
                .collect::<Result<Vec<Batch>>>()?;
            let record = chain.is_some();
            let outcome = match self.step(job.round, step, &mut lanes, &mut batches, record) {
                Err(Error::NeighbourGone) => {
                    tracing::warn!(
                        round = job.round,
                        trained = losses.len(),
                        "the lane cannot complete the round: the job stops with the steps it trained"
                    );
                    break;
                }
                outcome => outcome?,
            };
            let step_tokens = batches.iter().map(Batch::n_tokens).sum();
            tokens += config.tokens_per_step() * lanes.len() as u64;
            self.inner
                .step_on(outcome.grads, outcome.loss, step_tokens, step)?;
            let loss = outcome.loss.unwrap_or(f32::NAN);
            if let Some(chain) = &mut chain {
                let work = (lanes.iter().zip(batches).zip(outcome.traffic))
                    .map(|((lane, batch), traffic)| LaneWork {
                        data_node: lane.data_node,
                        batch,
                        traffic,
                    })
                    .collect();
                chain.step(&self.inner, step + 1, loss, work)?;
            }
            if outcome.loss.is_some() {
                gauge.set(loss);
            }
            losses.push(loss);
        }
        let next = first + losses.len() as u64;
        let chain = match chain {
            Some(chain) => chain.finish(&self.inner, next)?,
            None => Chain::new(),
        };
        let delta = pseudo_gradient(start, self.inner.params());
        let (loss_start, loss_end) = match losses.is_empty() {
            true => (f32::NAN, f32::NAN),
            false => loss_ends(&losses),
        };
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            round = job.round,
            stage = self.role.stage,
            lanes = lanes.len(),
            secs,
            waiting = self.waited.as_secs_f64() / secs.max(1e-9),
            "lane job done (waiting: its share spent waiting for the neighbours' frames)"
        );
        Ok(TrainingResult {
            round: job.round,
            start: job.start,
            delta,
            tokens,
            loss_start,
            loss_end,
            chain,
        })
    }
}

/// The layers a stage of `inner`'s kind (embedding, head) holds at `n_params` parameters, placed
/// at `role`'s start; `None` when `inner` has that size already. A size no stage of the network
/// has is an error.
pub(crate) fn fitted_layers(
    inner: &StageLoop,
    role: &Role,
    n_params: usize,
    depths: &Depths,
) -> Result<Option<std::ops::Range<usize>>> {
    let spec = inner.stage().spec();
    if inner.stage().n_params() == n_params {
        return Ok(None);
    }
    let len = stage_len(depths, spec.embedding, spec.head, n_params).ok_or_else(|| {
        Error::Grow(format!(
            "no stage of this network has {n_params} parameters"
        ))
    })?;
    let start = role.spec.layers.start;
    Ok(Some(start..start + len))
}

/// A loop of `inner`'s kind of stage holding `layers` of the model at `role`'s depth, with
/// fresh weights and AdamW state.
pub(crate) fn fresh_stage(
    inner: &StageLoop,
    role: &Role,
    layers: std::ops::Range<usize>,
    depths: &Depths,
) -> Result<StageLoop> {
    let spec = StageSpec {
        layers,
        ..inner.stage().spec().clone()
    };
    let stage = Stage::new(
        &depths.at(role.n_layers),
        spec,
        0,
        &candle_core::Device::Cpu,
    )?;
    Ok(StageLoop::new(stage, *inner.config(), role.stages)?)
}

/// Keeps the entries of `items` whose lane is still `live` (one flag per entry, in order).
fn keep_live<T>(items: &mut Vec<T>, live: &[bool]) {
    let mut flags = live.iter();
    items.retain(|_| flags.next().copied().unwrap_or(false));
}

#[cfg(test)]
pub(crate) mod tests {
    use neuroshard_pipeline::{Frame, FrameKind};

    use super::*;

    /// A small activation frame of `step`.
    pub(crate) fn frame(step: u64) -> Vec<u8> {
        Frame {
            kind: FrameKind::Activation,
            step,
            micro_batch: 0,
            stage: 1,
            shape: [1, 1, 2],
            values: vec![0.5, -0.5],
        }
        .encode(Precision::Bf16)
        .unwrap()
    }

    /// A notice from a member whose core and thread are both on `round`.
    fn says(round: u64) -> Notice {
        Notice {
            needs: round,
            serves: round,
        }
    }

    #[test]
    fn a_notice_round_trips_and_no_frame_reads_as_one() {
        let notice = Notice {
            needs: 1 << 40,
            serves: 7,
        };
        assert_eq!(Notice::decode(&notice.encode()), Some(notice));
        assert_eq!(Notice::decode(&frame(7)), None);
        assert_eq!(Notice::decode(b"NSLR12345678"), None, "too short");
        assert_eq!(Notice::decode(&[says(3).encode(), vec![0]].concat()), None);
    }

    /// A lane of `n` stages, each member's core at `cores[i]`: every member's wanted round once
    /// the notices have gone back and forth (each member tells its neighbours, n rounds of it).
    fn settle(cores: &[u64]) -> Vec<u64> {
        let mut lane: Vec<LaneRounds> = cores
            .iter()
            .map(|&own| LaneRounds {
                own,
                ..LaneRounds::default()
            })
            .collect();
        for _ in 0..cores.len() {
            let before = lane.clone();
            for (i, member) in lane.iter_mut().enumerate() {
                if let Some(prev) = i.checked_sub(1) {
                    member.hear(Direction::Prev, before[prev].notice_for(Direction::Next));
                }
                if let Some(next) = before.get(i + 1) {
                    member.hear(Direction::Next, next.notice_for(Direction::Prev));
                }
            }
        }
        lane.iter().map(LaneRounds::wanted).collect()
    }

    #[test]
    fn a_job_runs_on_until_every_member_of_the_lane_has_left_its_round() {
        // Two stages: stage 0's core closed round 4 without its lane partner, which still
        // trains it; stage 0's job for round 4 must run on, or the partner's never completes.
        assert_eq!(settle(&[5, 4]), vec![4, 4]);
        assert_eq!(
            settle(&[5, 5]),
            vec![5, 5],
            "both left: the job of round 4 stops"
        );
        // Three stages: the last one still needs round 4, the first hears it through the middle.
        assert_eq!(settle(&[5, 5, 4]), vec![4, 4, 4]);
        assert_eq!(settle(&[4, 5, 5]), vec![4, 4, 4]);
        // A member two or more rounds behind (restarted, resyncing past us) holds nobody back.
        assert_eq!(settle(&[9, 3]), vec![9, 3]);
        assert_eq!(settle(&[9, 9, 2]), vec![9, 9, 2]);
    }

    #[test]
    fn a_lost_neighbour_breaks_the_lane_until_it_says_it_is_back_on_our_round() {
        let mut lane = LaneRounds {
            own: 7,
            ..LaneRounds::default()
        };
        lane.hear(Direction::Next, says(7));
        assert!(!lane.broken());
        lane.lose(Direction::Next);
        assert!(lane.broken());
        assert_eq!(lane.wanted(), 7, "a lost neighbour holds no job back");
        // Restarted: it connects and places itself at round 0, then resyncs to round 7.
        lane.hear(Direction::Next, says(0));
        assert!(
            lane.broken(),
            "round 0 is no round this node's job can serve"
        );
        assert!(lane.hear(Direction::Next, says(6)));
        assert!(!lane.broken());
        // Back, it stays back when it runs ahead (its job of this node's round may still run).
        lane.hear(Direction::Next, says(8));
        assert!(!lane.broken());
        // Lost again, it comes back a round ahead: it skipped this node's round 7, so this
        // node's job for it stops, until this node's core reaches round 8.
        lane.lose(Direction::Next);
        lane.hear(Direction::Next, says(8));
        assert!(lane.broken());
        lane.set_own(8);
        assert!(!lane.broken());
    }

    /// Whether a job of `round` waits on (neither rule stops it: the lane has not left its
    /// round, and no neighbour is lost or past it), as `Link::wait_for` decides.
    fn waits(lane: &LaneRounds, round: u64) -> bool {
        lane.wanted() <= round && lane.cut() <= round
    }

    /// The wedge of a restart (issue 15), step by step: stage 0's replica V of a lane was killed
    /// and restarted; its partner P (stage 1) lost it and has contributed zero Δs since.
    #[test]
    fn a_restarted_member_that_skips_a_round_stops_its_partners_job_for_it() {
        let r = 40;
        let mut p = LaneRounds {
            own: r - 1,
            ..LaneRounds::default()
        };
        p.lose(Direction::Prev);
        let mut v = LaneRounds::default();
        v.set_running(Some(0)); // V placed itself: its round-0 job waits for frames.
        // V resyncs into round r (follow_in_lane asks r's job; the thread is still busy).
        v.set_own(r);
        p.hear(Direction::Prev, v.notice_for(Direction::Next));
        assert!(p.broken(), "P is still on round r - 1");
        // P's core enters round r: V says r, so P is back in the lane and P's job of r starts.
        p.set_own(r);
        p.set_running(Some(r));
        assert!(!p.broken());
        v.hear(Direction::Next, p.notice_for(Direction::Prev));
        assert!(!waits(&v, 0), "V's round-0 job is overtaken");
        v.set_running(None);
        // V observes round r, and the other replicas' Δs of r are in: its core closes r before
        // r's job started and asks for r + 1, which replaces it: V's thread skips round r.
        v.set_own(r + 1);
        v.set_running(Some(r + 1));
        p.hear(Direction::Prev, v.notice_for(Direction::Next));
        v.hear(Direction::Next, p.notice_for(Direction::Prev));
        // V's job of r + 1 waits for P (P's side needs r: V's job may run on for it)...
        assert!(waits(&v, r + 1));
        // ... and P's job of r must not wait for V, whose thread is past r: P's job stops with
        // what it trained, its stage closes r, and P meets V in r + 1. Without `cut` it waited
        // (the lane's lowest round is r), P's stage with it, until the round deadline.
        assert_eq!(
            p.wanted(),
            r,
            "the wanted round alone keeps P's job of r waiting"
        );
        assert!(!waits(&p, r), "V serves r + 1: P's job of r stops");
        p.set_running(None);
        p.set_own(r + 1);
        p.set_running(Some(r + 1));
        v.hear(Direction::Next, p.notice_for(Direction::Prev));
        p.hear(Direction::Prev, v.notice_for(Direction::Next));
        assert!(
            waits(&p, r + 1) && waits(&v, r + 1),
            "the lane trains r + 1 together"
        );
    }

    /// A lane of three on round r: the last stage's job ends first (its last backward is the
    /// lane's first to finish), and its notice says it serves r + 1 while the middle stage still
    /// owes the first stage its last gradients. Those must still go out: the middle's job stopped
    /// at its last send in every round of a 3-stage pipeline (its Δ and the first stage's lost
    /// their last step; measured with `bench/pipeline-kill.sh`, tiny, 3 stages × 2 lanes).
    #[test]
    fn a_last_stage_done_with_its_job_leaves_the_middle_stage_its_last_sends() {
        let r = 9;
        let mut lane: Vec<LaneRounds> = (0..3)
            .map(|_| LaneRounds {
                own: r,
                running: Some(r),
                ..LaneRounds::default()
            })
            .collect();
        lane[2].set_running(None);
        let (first, last) = (lane[0], lane[2]);
        lane[1].hear(Direction::Prev, first.notice_for(Direction::Next));
        lane[1].hear(Direction::Next, last.notice_for(Direction::Prev));
        let middle = &lane[1];
        assert!(
            middle.cut_sends(Direction::Prev) <= r,
            "the first stage still waits for round r's gradients"
        );
        assert!(
            middle.cut_sends(Direction::Next) > r,
            "the last stage is done"
        );
        assert!(
            middle.cut() > r,
            "no frame of r is owed to the middle any more"
        );
        // A lost side cuts the sends to it, and only to it.
        let mut lost = *middle;
        lost.lose(Direction::Prev);
        assert_eq!(lost.cut_sends(Direction::Prev), u64::MAX);
        assert_eq!(lost.cut_sends(Direction::Next), r + 1);
    }

    #[test]
    fn a_member_serves_its_running_job_else_its_core_round_unless_that_job_ended() {
        let mut lane = LaneRounds {
            own: 5,
            ..LaneRounds::default()
        };
        assert_eq!(lane.serving(), 5, "round 5's job is pending");
        assert!(!lane.set_running(Some(5)));
        // The core moves on while the job of 5 runs on for the lane: it still serves 5.
        lane.set_own(6);
        assert_eq!(lane.serving(), 5);
        assert!(lane.set_running(None));
        assert_eq!(lane.serving(), 6);
        lane.set_running(Some(6));
        lane.set_running(None);
        assert_eq!(
            lane.serving(),
            7,
            "round 6's job ended: its thread never runs 6 again"
        );
        assert_eq!(lane.cut(), 0, "no neighbour heard");
    }

    #[test]
    fn a_notice_never_echoes_back_to_its_sender() {
        let mut middle = LaneRounds {
            own: 5,
            ..LaneRounds::default()
        };
        middle.hear(Direction::Prev, says(4));
        assert_eq!(middle.wanted(), 4);
        assert_eq!(middle.notice_for(Direction::Next).needs, 4);
        // The previous stage is told only what the middle and the next stage need.
        assert_eq!(middle.notice_for(Direction::Prev).needs, 5);
        assert!(!middle.hear(Direction::Prev, says(4)), "nothing changed");
        assert!(middle.hear(Direction::Prev, says(5)));
        assert_eq!(middle.wanted(), 5);
    }
}
