//! The driver's pipeline side (`docs/pipeline.md`, "Training in the node"): capacity records on
//! the pool topic, the placement when training starts, and for a stage its round core over the
//! stage's parameters, its lane, and which round messages and frames it takes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use candle_core::Device;
use neuroshard_ledger::Part;
use neuroshard_model::{Stage, StageSpec};
use neuroshard_node::{Snapshot, TrainingJob};
use neuroshard_p2p::PeerId;
use neuroshard_pipeline::Layout;
use neuroshard_primitives::{Hash, Keypair, NodeId};
use neuroshard_train::StageLoop;

use crate::audit::{Replayer, StageReplayer};
use crate::checkpoint::{self, STAGE_CHECKPOINT_FILE};
use crate::driver::Driver;
use crate::grow::StageGrower;
use crate::lane::{Lane, LaneRounds, Notice};
use crate::link::{LaneInbox, Link, Routes};
use crate::role::{self, InForce, Placement, Records, Role};
use crate::route::LaneWires;
use crate::settings::Settings;
use crate::wire::{Offer, POOL_NS, POOL_TOPIC};
use crate::work::{Assignment, Trainer};
use crate::{Error, Result, round_core};

/// What the driver needs to place the node and to build its stage.
#[derive(Debug)]
pub(crate) struct Pipeline {
    /// The node's key, for a stage's round core.
    pub(crate) key: Keypair,
    /// The model, the protocol and the inner loop's settings.
    pub(crate) settings: Settings,
    /// The pipeline's planner, as the ledger runs it (the depth the growth schedule asks for).
    pub(crate) planner: role::Planner,
    /// The network seed (the stage's tensors are built from it, then given the round's weights).
    pub(crate) seed: u64,
    /// The genesis network id (a checkpoint must carry it).
    pub(crate) network_id: Hash,
    /// Where the node keeps its checkpoint.
    pub(crate) data_dir: PathBuf,
    /// `--memory-budget`: with one, the node builds nothing model-sized before its placement.
    pub(crate) budget: Option<u64>,
    /// Held-out batches the trainer validates on.
    pub(crate) val_batches: usize,
    /// This node's data assignment; a stage reads its lane's first-stage holder's instead.
    pub(crate) assignment: Assignment,
    /// Test builds only: how the whole model's trainer, or a stage's lanes, cheat.
    #[cfg(feature = "cheat")]
    pub(crate) cheat: Option<crate::Cheat>,
    /// The capacity records heard.
    pub(crate) records: Records,
    /// `None` until training starts.
    pub(crate) placement: Option<Placement>,
    /// The lane's inbox: frames that come before the placement wait there (a neighbour that
    /// placed itself first may already be sending).
    pub(crate) inbox: Arc<LaneInbox>,
    /// A stage's lanes: the ones it serves, through which neighbours.
    pub(crate) lane: Option<LaneWires>,
    /// The rounds this node is in, its lanes' neighbours aside (a stage's only).
    pub(crate) rounds: LaneRounds,
    /// Round messages heard before the placement, for a stage's new round core (at most
    /// [`EARLY_KEPT`]).
    pub(crate) early: Vec<Early>,
    /// Re-planning (`docs/replan.md`, `crate::replan`): the plan this node placed itself under,
    /// the next one a plan boundary made, and the latest a peer said it trains under.
    pub(crate) plans: crate::replan::Plans,
}

/// Round messages kept before the placement, at most: a round's announcements and offers from
/// every peer, many times over.
const EARLY_KEPT: usize = 256;

/// A round message heard before the placement. A stage node, and a node with a memory budget,
/// builds its round core when it places itself; its stage's replicas (or peers) that placed
/// themselves first may have announced their round-0 Δs already, and announce them once, so the
/// new core is handed what was heard before (else it waits for those Δs until the round's
/// deadline; a peer's greeting, its latest vote, would be lost too).
#[derive(Debug)]
pub(crate) enum Early {
    /// A round frame from its signer.
    Frame(NodeId, Vec<u8>),
    /// An offer of a large round frame: the peer that offered it, its signer, the offer.
    Offer(PeerId, NodeId, Offer),
}

impl Pipeline {
    /// The role this node trains, if it is a pipeline stage.
    pub(crate) fn role(&self) -> Option<&Role> {
        match &self.placement {
            Some(Placement::Stage(role)) => Some(role),
            _ => None,
        }
    }

    /// The part of the model this node's round core trains: its stage, or the whole model
    /// (also before the placement, and idle: such a core claims nothing).
    pub(crate) fn part(&self) -> Part {
        self.role().map_or(Part::WHOLE, Role::part)
    }

    /// Keeps a round message heard before the placement.
    pub(crate) fn keep_early(&mut self, message: Early) {
        if self.placement.is_none() && self.early.len() < EARLY_KEPT {
            self.early.push(message);
        }
    }

    /// Whether this node trains nothing.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.placement, Some(Placement::Idle(_)))
    }

    /// Whether the round core hears round messages signed by `author`: in a stage, only its
    /// stage's replicas (each stage runs its own DiLoCo); idle, or before the placement of a node
    /// with a budget (its core is a placeholder), no one; otherwise everyone.
    pub(crate) fn hears(&self, author: &NodeId) -> bool {
        match &self.placement {
            Some(Placement::Stage(role)) => role.replicas.contains(author),
            Some(Placement::Idle(_)) => false,
            Some(Placement::Whole) => true,
            None => self.budget.is_none(),
        }
    }

    /// Whether the round core was built at the placement (a stage's, or a budgeted node's whole
    /// model): it has not heard the round messages kept before.
    fn core_built_at_placement(&self) -> bool {
        match &self.placement {
            Some(Placement::Stage(_)) => true,
            Some(Placement::Whole) => self.budget.is_some(),
            Some(Placement::Idle(_)) | None => false,
        }
    }

    /// The members of the round core among `me` and the connected `peers`: a stage's replicas
    /// that are connected; `None` when idle, or before the placement of a node with a budget
    /// (its core is not run).
    pub(crate) fn core_members<'a>(
        &self,
        me: NodeId,
        peers: impl Iterator<Item = &'a NodeId>,
    ) -> Option<BTreeSet<NodeId>> {
        let everyone = peers.copied().chain([me]);
        match &self.placement {
            Some(Placement::Stage(role)) => {
                Some(everyone.filter(|n| role.replicas.contains(n)).collect())
            }
            Some(Placement::Idle(_)) => None,
            None if self.budget.is_some() => None,
            Some(Placement::Whole) | None => Some(everyone.collect()),
        }
    }

    /// A job starts: whose assigned batches it trains on (in a stage, each lane it serves
    /// reads its first-stage member's; none when it serves no lane).
    pub(crate) fn start_job(&self, me: NodeId) -> Vec<NodeId> {
        match &self.lane {
            Some(wires) => wires.start_job(),
            None => vec![me],
        }
    }

    /// Files a pipeline frame from `peer` if it is a member of the lanes (or may be one: before
    /// the placement); `false` when it is not taken.
    fn lane_frame(&self, peer: PeerId, bytes: Vec<u8>) -> bool {
        let member = match (&self.placement, &self.lane) {
            (None, _) => true,
            (Some(_), Some(lane)) => lane.accepts(peer),
            (Some(_), None) => false,
        };
        member && self.inbox.push(peer, bytes)
    }
}

impl Driver {
    /// A frame from `peer` on the frame protocol: a lane neighbour's notice of the rounds its
    /// side needs and serves, or a pipeline frame for the lane's inbox.
    pub(crate) fn on_lane_frame(&mut self, peer: PeerId, bytes: Vec<u8>) {
        if let Some(notice) = Notice::decode(&bytes) {
            let pipeline = &mut self.pipeline;
            if let Some(wires) = &mut pipeline.lane
                && wires.hear(&pipeline.rounds, peer, notice)
            {
                self.lane_rounds_changed(true);
            }
            return;
        }
        if !self.pipeline.lane_frame(peer, bytes) {
            tracing::debug!(%peer, "ignored a pipeline frame: not from a lane neighbour");
        }
    }

    /// The round core asked for a job of `round`: the round the training thread serves is the
    /// lane's lowest (a stage's, [`LaneRounds::wanted`]), or `round` for a whole-model node.
    pub(crate) fn want(&mut self, round: u64) {
        if self.pipeline.role().is_none() {
            self.progress.wanted.store(round, Ordering::Relaxed);
        } else {
            let changed = self.pipeline.rounds.set_own(round);
            let lanes = self
                .pipeline
                .lane
                .as_mut()
                .map(|w| w.update(|r| r.set_own(round)));
            self.lane_rounds_changed(changed | lanes.unwrap_or(false));
        }
    }

    /// The training thread started a job of `round` (`Some`), or its job ended or was dropped
    /// (`None`): a stage tells its lane neighbours what it serves now ([`LaneRounds::serving`]).
    pub(crate) fn lane_job(&mut self, round: Option<u64>) {
        if self.pipeline.role().is_some() {
            let changed = self.pipeline.rounds.set_running(round);
            let lanes = (self.pipeline.lane.as_mut()).map(|w| w.update(|r| r.set_running(round)));
            self.lane_rounds_changed(changed | lanes.unwrap_or(false));
        }
    }

    fn lane_rounds_changed(&mut self, tell: bool) {
        let Some(wires) = &self.pipeline.lane else {
            return;
        };
        let wanted = wires.wanted(&self.pipeline.rounds);
        self.progress.wanted.store(wanted, Ordering::Relaxed);
        if wires.set_cuts() {
            tracing::info!(
                broken = wires.broken(),
                "a lane neighbour was lost, or is back on this node's round"
            );
        }
        if tell {
            self.tell_lane();
        }
    }

    /// `peer` left: if it is a member of the lanes, it is gone until it says it is back on this
    /// node's round; a lane it was a neighbour on is broken at once ([`LaneRounds::lose`]), and
    /// the lanes are routed again: a stand-in takes its place (`docs/pipeline.md`, "Failover").
    pub(crate) fn lane_peer_left(&mut self, peer: PeerId) {
        if self.pipeline.lane.as_mut().is_some_and(|w| w.lose(peer)) {
            self.lane_rounds_changed(false);
            self.reroute_lanes();
        }
    }

    /// Routes the lanes over the members connected and not gone; logs a change, and tells the
    /// neighbours. At a disconnection, and before each job starts (a member back since holds
    /// its lane again from the next job on: a job's frames all travel one path).
    pub(crate) fn reroute_lanes(&mut self) {
        let Some(wires) = &mut self.pipeline.lane else {
            return;
        };
        let peers = &self.peers;
        let connected = |n: &NodeId| peers.values().any(|p| p == n);
        if wires.reroute(&self.pipeline.rounds, connected) {
            say_routes(&wires.lanes());
            self.status.served(wires.lanes());
            self.lane_rounds_changed(true);
        }
    }

    /// Stopping: the running lane job ends at its next wait (with the Δ it trained) instead of
    /// waiting for frames up to the round deadline, which would hold the node's exit (the
    /// runtime waits for the training thread) and leave an orphaned node behind `up`.
    pub(crate) fn stop_lane_jobs(&self) {
        if let Some(wires) = &self.pipeline.lane {
            wires.stop();
        }
    }

    /// Tells each lane neighbour the round this node's side of the lane needs (on every change,
    /// and every second in case a notice was lost or the neighbour restarted).
    pub(crate) fn tell_lane(&self) {
        let Some(wires) = &self.pipeline.lane else {
            return;
        };
        for (peer, notice) in wires.notices(&self.pipeline.rounds) {
            let notice = notice.encode();
            let net = self.net.clone();
            tokio::spawn(async move {
                if let Err(err) = net.send_frame(peer, notice).await {
                    tracing::debug!(%peer, %err, "a lane notice did not go through");
                }
            });
        }
    }

    /// Gossips this node's capacity record (a new epoch each time, so gossip never drops it as
    /// a repeat).
    pub(crate) fn publish_capacity(&mut self) {
        let frame = self.pipeline.records.seal_next(&self.pipeline.key);
        self.transport
            .gossip(POOL_TOPIC.to_owned(), POOL_NS, &frame, false);
    }

    /// Whether every connected peer's capacity record is in.
    pub(crate) fn heard_every_capacity(&self) -> bool {
        self.pipeline.records.has_all(self.peers.values())
    }

    /// Takes this node's place in `in_force` (a plan its peers train under, or the next one a
    /// boundary made), or, without one, in the plan it computes over the records heard, building
    /// what it holds: its stage, or (a node with a budget, which built nothing before) the whole
    /// model. A node that cannot build it trains nothing (logged). A stage node that the next
    /// plan moves to another stage comes here too: it builds the new stage as a starting node
    /// does, and resyncs it from its new stage mates.
    pub(crate) async fn place(&mut self, in_force: Option<InForce>) {
        let me = self.node.id();
        let settings = &self.pipeline.settings;
        let in_force = in_force.unwrap_or_else(|| InForce {
            height: 0,
            plan: role::plan(
                &settings.model,
                settings.inner.batch_size,
                &self.pipeline.records.members(me, self.peers.values()),
            ),
        });
        let plan = in_force.plan.clone();
        let members =
            plan.unplaced.len() + plan.stages.iter().map(|s| s.replicas.len()).sum::<usize>();
        self.pipeline.plans.in_force = Some(in_force);
        let placement = match role::place(&plan, me) {
            Placement::Stage(role) => match self.become_stage(&role).await {
                Ok(()) => Placement::Stage(role),
                Err(err) => Placement::Idle(format!("cannot build its stage: {err}")),
            },
            Placement::Whole if self.pipeline.budget.is_some() => match self.become_whole().await {
                Ok(()) => Placement::Whole,
                Err(err) => Placement::Idle(format!("cannot build the whole model: {err}")),
            },
            other => other,
        };
        let params = self.node.params().len();
        match &placement {
            Placement::Whole => tracing::info!(
                params,
                members,
                "training the whole model: a pipeline of one stage"
            ),
            Placement::Stage(role) => tracing::info!(
                stage = role.stage, stages = role.stages, layers = ?role.spec.layers,
                lane = role.lane, lanes = role.lanes, members, params,
                "training one stage of a pipeline (docs/pipeline.md)"
            ),
            Placement::Idle(why) => {
                tracing::warn!(why, "no pipeline lane for this node: it trains nothing");
                self.trainer = None;
                self.replayer = None;
                // A stage node a plan left out drops its lanes too.
                self.pipeline.lane = None;
                self.status.no_role();
            }
        }
        self.pipeline.placement = Some(placement);
        self.members_changed();
        self.replay_early();
        self.replay_unseen();
        self.publish_plan();
    }

    /// Hands a round core built at the placement the round messages it would have heard before
    /// (a whole-model node without a budget heard them already).
    fn replay_early(&mut self) {
        let early = std::mem::take(&mut self.pipeline.early);
        if !self.pipeline.core_built_at_placement() {
            return;
        }
        for message in early {
            match message {
                Early::Frame(node, frame) if self.pipeline.hears(&node) => {
                    self.input(neuroshard_node::Input::Message(node, frame));
                }
                Early::Offer(peer, node, offer) if self.pipeline.hears(&node) => {
                    self.fetch_offer(peer, node, offer);
                }
                _ => {}
            }
        }
    }

    /// After a resync: a stage node whose round core now observes a round it asked no job for
    /// runs that round's lane job all the same ([`lane_round_after_resync`]); its Δ counts
    /// nowhere (the core drops a result while it observes), but its lane neighbours train the
    /// round and need this stage's frames. Wanting the round also stops a job of an earlier
    /// round at once (once the lane's other members have left it too), instead of at the end of
    /// its patience. A core that installed the start of the round it is in (one built from
    /// scratch, which waited for it) trains that round itself: its own job is the lane's.
    pub(crate) fn follow_in_lane(&mut self) {
        if self.pipeline.role().is_none() || !self.node.is_observing() {
            return;
        }
        let asked = self.pipeline.rounds.own();
        let Some(round) = lane_round_after_resync(asked, self.node.round()) else {
            return;
        };
        tracing::info!(
            round,
            "observing a round: its lane job runs for the lane's sake"
        );
        self.want(round);
        self.pending = Some(TrainingJob {
            round,
            steps: self.pipeline.settings.protocol.inner_steps,
            start: self.node.model_hash(),
            chain: None,
        });
        self.start_job();
    }

    /// Builds the stage's round core and trainer in place of what the node held (nothing
    /// model-sized, with a budget): the core over the stage's slice of round 0's model, built
    /// from scratch (`round_core::fresh`: at the ledger's round), with the stage's replicas as
    /// members; the trainer a lane stage. A node that resumed a whole
    /// model's checkpoint does not start its stage from it: its stage peers' state comes by
    /// resync, as it does for a restarted stage replica.
    async fn become_stage(&mut self, role: &Role) -> Result<()> {
        let n_layers = self.pipeline.plans.depth(&self.pipeline.settings);
        let stage = self.genesis_stage(role.spec.clone(), n_layers).await?;
        let params = stage.flat_params()?;
        let protocol = self.pipeline.settings.protocol.clone();
        let patience = protocol.round_timeout;
        let key = Keypair::from_seed(self.pipeline.key.secret_bytes());
        let node = match self.stage_checkpoint(role, params.len()) {
            Some(state) => round_core::resumed(&self.chain, key, protocol, state)?,
            None => round_core::fresh(&self.chain, key, protocol, params)?,
        };
        self.replace_core(node);
        self.chains.restore_own(&mut self.node);
        let settings = &self.pipeline.settings;
        let (depths, seed) = (settings.depths.clone(), self.pipeline.seed);
        let target = Arc::clone(&self.pipeline.plans.target);
        let rule = StageGrower::new(depths, role.stage, &role.spec, seed, target);
        let budget = self.pipeline.budget.unwrap_or(u64::MAX);
        self.node.set_pool(budget, Some(Box::new(rule)));
        let routes = Arc::new(Routes::default());
        let mut wires = LaneWires::new(role, self.node.id(), Arc::clone(&routes))?;
        let peers = &self.peers;
        wires.reroute(&self.pipeline.rounds, |n| peers.values().any(|p| p == n));
        say_routes(&wires.lanes());
        let link = Link {
            net: self.net.clone(),
            runtime: tokio::runtime::Handle::current(),
            inbox: Arc::clone(&self.pipeline.inbox),
            patience,
            wanted: Arc::clone(&self.progress.wanted),
            routes,
            key: Keypair::from_seed(self.pipeline.key.secret_bytes()),
            #[cfg(feature = "cheat")]
            cheat: self.pipeline.cheat,
        };
        let inner = settings.inner;
        let micro_batches = role::workload(inner.batch_size).micro_batches;
        let replayer = settings.protocol.audit.is_some().then(|| {
            let copy = Stage::new(stage.config(), stage.spec().clone(), 0, &Device::Cpu)?;
            let copy = StageLoop::new(copy, inner, role.stages)?;
            let schedule = Lane::schedule(role, stage.config(), inner, micro_batches)?;
            let depths = settings.depths.clone();
            let template = self.pipeline.assignment.clone();
            let copy = (copy, template);
            Ok::<_, Error>(StageReplayer::new(copy, role.clone(), schedule, depths))
        });
        let chains = self.chains.clone();
        let lane = Lane::new(role.clone(), stage, inner, micro_batches, (link, chains))?;
        let assignment = Assignment {
            node: role.data_node,
            ..self.pipeline.assignment.clone()
        };
        let trainer = Trainer::stage(
            lane,
            assignment,
            self.progress.clone(),
            self.pipeline.val_batches,
            inner,
            settings.depths.clone(),
        );
        self.loss = trainer.loss_gauge();
        self.trainer = Some(Box::new(trainer));
        self.replayer = replayer.transpose()?.map(|r| Box::new(Replayer::Stage(r)));
        self.status.role(role, wires.lanes());
        self.pipeline.lane = Some(wires);
        self.status.depth(0, n_layers, None);
        // A node without a budget built the whole model at start: its state is dropped too (the
        // API serves no completions from a stage), and the writer is not told.
        self.checkpoints.send_if_modified(|state| {
            *state = None;
            false
        });
        self.learn_decided(role.part());
        Ok(())
    }

    /// The round-start state of `role`'s stage of `n_params` parameters that this node saved, if
    /// it saved one of that very stage (a node the plan moved, or that grew since, builds its
    /// stage afresh and takes its stage mates' state); a checkpoint that does not load is said
    /// and left.
    fn stage_checkpoint(&self, role: &Role, n_params: usize) -> Option<Snapshot> {
        let pipeline = &self.pipeline;
        let path = pipeline.data_dir.join(STAGE_CHECKPOINT_FILE);
        let tag = role.checkpoint_tag();
        let admits = |n: usize| n == n_params;
        match checkpoint::load(&path, pipeline.network_id, admits, Some(&tag)) {
            Ok(Some(state)) => {
                let round = state.round;
                tracing::info!(round, stage = tag, "resuming the stage from its checkpoint");
                Some(state)
            }
            Ok(None) => None,
            Err(err) => {
                tracing::info!(%err, "the stage starts afresh: its checkpoint does not serve");
                None
            }
        }
    }

    /// The stage `spec` of the model at `n_layers` with round 0's weights: seeded as the whole
    /// model is (a stage built from the network seed holds the same weights as those layers of
    /// the whole model), or its slice of the genesis init file, when the genesis names one (read
    /// whole, then dropped) and the model has the genesis depth. A stage of a grown model gets
    /// its weights from its stage peers (a resync) in any case.
    async fn genesis_stage(&self, spec: StageSpec, n_layers: usize) -> Result<Stage> {
        let settings = &self.pipeline.settings;
        let (model, seed) = (&settings.depths.at(n_layers), self.pipeline.seed);
        let mut stage = Stage::new(model, spec, seed, &Device::Cpu)?;
        let genesis_depth = n_layers == settings.model.n_layers;
        let init = match genesis_depth {
            true => self.data.initial_params(model.n_params()).await?,
            false => None,
        };
        if let Some(whole) = init {
            let layout = Layout::new(&StageSpec::full(model).param_shapes(model)?);
            stage.set_flat_params(&layout.scatter(&stage.param_shapes(), &whole)?)?;
        }
        Ok(stage)
    }
}

/// The round a stage node's lane job must run after its round core resynced and now stands in
/// round `current`, when the last job it asked for was `asked`'s: `current` when it asked for
/// none (the core observes `current`: it installed a later state than the one it trained), none
/// when it did (it resynced within a round it trains, after a lost split).
///
/// Every member of a lane thus runs a job for every round its core enters, trained or observed.
/// Were an observed round left without one, the members of a lane could take turns for good:
/// A observes round r, so B's job for r waits for frames that never come and fails; B's core,
/// which then never contributed to r, resyncs and observes r + 1, whose job A waits for in vain;
/// and so on (`docs/pipeline.md`, "Lanes").
pub(crate) fn lane_round_after_resync(asked: u64, current: u64) -> Option<u64> {
    (current > asked).then_some(current)
}

/// Logs the lanes this node serves now, or that it stands by (`docs/pipeline.md`, "Standing
/// by").
fn say_routes(lanes: &[usize]) {
    match lanes.is_empty() {
        true => tracing::info!(
            "lane routes: this node serves no lane and stands by, a replica to fail over to"
        ),
        false => tracing::info!(?lanes, "lane routes: this node serves the lanes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane of two stage members over `rounds` rounds, from member 0 observing the first
    /// (it resynced: a restart, a late start) while member 1 trains it. Each round a member
    /// trains (its core asked for a job) or observes (it asked none); an observing member runs a
    /// job only if `follow` and [`lane_round_after_resync`] says so. A lane job completes only
    /// when both members run one; a member whose trained round's job did not complete never
    /// contributed, so its core resyncs and observes the next round, as `neuroshard_node`'s
    /// does. Returns, per round, how many members contributed a Δ.
    fn lane(rounds: u64, follow: bool) -> Vec<usize> {
        let mut observing = [true, false];
        let mut asked = [0u64, 0];
        (1..=rounds)
            .map(|round| {
                let mut runs = [false; 2];
                for m in 0..2 {
                    runs[m] = match observing[m] {
                        false => true,
                        true => follow && lane_round_after_resync(asked[m], round).is_some(),
                    };
                    if runs[m] {
                        asked[m] = round;
                    }
                }
                let completed = runs[0] && runs[1];
                let contributed = observing.iter().filter(|o| completed && !**o).count();
                observing = observing.map(|o| !o && !completed);
                contributed
            })
            .collect()
    }

    #[test]
    fn an_observing_member_runs_its_lane_job_so_the_lane_realigns() {
        // Without it the members take turns observing, and the lane never trains again.
        assert_eq!(lane(8, false), vec![0; 8]);
        // With it the lane completes the first round (member 1's Δ counts) and both members
        // contribute from the next one on.
        assert_eq!(lane(8, true), [vec![1], vec![2; 7]].concat());
    }

    #[test]
    fn a_resync_within_a_trained_round_asks_for_no_second_job() {
        assert_eq!(lane_round_after_resync(6, 9), Some(9), "observes round 9");
        assert_eq!(
            lane_round_after_resync(9, 9),
            None,
            "a lost split: job 9 runs already"
        );
        assert_eq!(lane_round_after_resync(0, 0), None);
    }
}
