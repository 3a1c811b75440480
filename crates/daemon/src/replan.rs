//! Re-planning a running pipeline (`docs/replan.md`): each node puts its capacity record on the
//! ledger's pool roll and renews it there; at every plan boundary the ledger carries its latest
//! plan over to the roll (`role::Planner`, `neuroshard_pool::carry`: joiners placed, leavers
//! dropped, a stage they left short given a joiner or another stage's replica, the new layers
//! of a growth the genesis schedule asks for spread over the stages' ends, no stage's layers
//! moved), each node takes it as its next plan, and a stage node
//! switches to it at its job for the round the ledger fixed at the boundary, or, moved to
//! another stage, between two jobs; a node not
//! placed yet (starting, restarted, joining) takes the plan its peers say they train under.

use std::sync::PoisonError;
use std::time::Duration;

use neuroshard_ledger::{Action, MAX_POOL};
use neuroshard_primitives::NodeId;
use tokio::time::Instant;

use crate::Result;
use crate::chain::PoolBoundary;
use crate::driver::{Driver, finalized};
use crate::grow::{Layout, Target};
use crate::role::{self, Heard, InForce, Placement, PlanNotice, Role};
use crate::settings::Settings;
use crate::wire::{self, PLAN_NS, POOL_TOPIC, SMALL_FRAME};

/// A node renews its roll entry once it is this part of `Rules::pool_ttl_blocks` old, and submits
/// a record again (lost, or refused) once the last one is that old; so an entry is at most
/// about three quarters of the TTL old while its node runs.
const RENEW_AT: u64 = 2;
const RESUBMIT_AFTER: u64 = 4;

/// How long a node that stops cleanly waits for a block to carry its leave (a validator sees
/// it; a follower waits it out, so that the transaction's gossip goes out before the exit).
const LEAVE_WAIT: Duration = Duration::from_secs(3);

/// The plans a pipeline node knows of.
#[derive(Debug, Default)]
pub(crate) struct Plans {
    /// The plan the node placed itself under, or switched to last.
    pub(crate) in_force: Option<InForce>,
    /// The plan the latest boundary made, until the node switches to it.
    pub(crate) next: Option<InForce>,
    /// The round a plan made at a boundary takes effect in: the one after the round the ledger
    /// had open there.
    switch_round: u64,
    /// The height of the boundary that made the latest ledger plan this node took or found it
    /// held already: an older one (a ledger catching up replays them) changes nothing.
    ledger_height: u64,
    /// The plans peers said they train under, for a node not placed yet.
    pub(crate) heard: Heard,
    /// This node's plan notices so far.
    seq: u64,
    /// The ledger height at which this node last submitted its record to the roll.
    registered: Option<u64>,
    /// The depth the schedule asked for that the stages' replicas could not hold (said once).
    refused: Option<usize>,
    /// The latest boundary the ledger passed while this node was not in a pipeline: its plan
    /// is taken once the node places itself under a plan from a peer.
    unseen: Option<PoolBoundary>,
    /// The latest plan's depth and stage layers, for the stage's growth rule
    /// (`crate::grow::StageGrower`): its round core grows to its stage's length there at the
    /// end of its round.
    pub(crate) target: Target,
}

impl Plans {
    /// The latest plan decided: the next one, else the one in force.
    fn latest(&self) -> Option<&InForce> {
        self.next.as_ref().or(self.in_force.as_ref())
    }

    /// The model's depth under the plan in force (the genesis depth without one).
    pub(crate) fn depth(&self, settings: &Settings) -> usize {
        (self.in_force.as_ref()).map_or(settings.model.n_layers, |p| p.plan.n_layers)
    }
}

impl Driver {
    /// Whether this node runs a pipeline plan of several stages (a stage, or idle in one).
    fn in_pipeline(&self) -> bool {
        self.pipeline.role().is_some() || self.pipeline.is_idle()
    }

    /// The pool roll's size in this node's ledger (0 without one): what a peer's plan's quorum
    /// is taken over (`role::Heard`).
    pub(crate) fn roll_len(&self) -> usize {
        (self.chain.as_ref()).map_or(0, |c| c.view().pool_roll().len())
    }

    /// Whether this node may place itself now: it heard a plan in force from a peer and its
    /// ledger has reached that plan's boundary (so the boundaries after it come from its own
    /// ledger), or it heard none and its ledger holds a plan ([`Driver::ledger_plan`]), or
    /// nothing says a pipeline runs already (a node without a budget, or a pool roll still
    /// empty). Otherwise (records on the roll, no plan made yet) it waits for its peers' plan
    /// rather than compute one of its own, until the start rule's latest moment.
    pub(crate) fn plan_known(&self) -> bool {
        let (chain, roll) = (self.chain.as_ref(), self.roll_len());
        match self.pipeline.plans.heard.agreed(roll) {
            Some(plan) => chain.is_none_or(|c| c.head().height >= plan.height),
            None => self.pipeline.budget.is_none() || roll == 0 || self.ledger_plan().is_some(),
        }
    }

    /// The latest plan this node's own ledger holds (made at a boundary and agreed there): what
    /// a node that heard no peer's plan places itself under once the ledger made one. A whole
    /// network run again has nobody placed to say a plan; without this, every node would wait
    /// for the others' notices up to the start rule's latest moment (120 s).
    pub(crate) fn ledger_plan(&self) -> Option<InForce> {
        let record = self.chain.as_ref()?.view().plan()?;
        Some(InForce {
            height: record.height,
            plan: record.plan.clone(),
        })
    }

    /// Every second: this node's capacity record onto the roll when the roll does not hold it
    /// or holds it old; a node that the next plan places otherwise than in its stage (an idle
    /// node placed, a stage node moved to another stage or left out) takes its place in it
    /// while no job runs (a stage node once its stage has closed the round before the plan's
    /// switch round).
    pub(crate) async fn replan_tick(&mut self) {
        self.register_in_pool();
        if self.moves_at_next_plan() {
            let next = self.pipeline.plans.next.take();
            self.place(next).await;
        }
    }

    /// Whether the next plan places this node otherwise than in the stage it holds (idle, it
    /// may place it; a stage node it moves or leaves out), and no job runs (the trainer is in).
    /// A stage node moves once its round core is in the plan's switch round: until then it
    /// trains its old stage, whose mates count it (a mover that left at once, mid-round,
    /// announced that round in its new stage too, and its old mates penalised it for two
    /// announcements of one round).
    pub(crate) fn moves_at_next_plan(&self) -> bool {
        let Some(next) = &self.pipeline.plans.next else {
            return false;
        };
        match &self.pipeline.placement {
            Some(Placement::Idle(_)) => true,
            Some(Placement::Stage(old)) => {
                let placed = role::place(&next.plan, self.node.id());
                let due = self.node.round() >= self.pipeline.plans.switch_round;
                due && self.trainer.is_some()
                    && !matches!(placed, Placement::Stage(r) if r.same_stage(old))
            }
            _ => false,
        }
    }

    /// Submits `Action::Pool` with this node's record, unless the roll holds it younger than
    /// half the TTL or it was submitted within a quarter of it; a full roll, which would refuse
    /// it, is said in the log instead. A node whose leave is still pending (it stopped cleanly
    /// and started again before a boundary planned it out: a whole network run again) submits
    /// at once, placed or not, which cancels the leave; else the first boundary after a restart
    /// planned every such node out, and the nodes switched to that plan until a later one.
    fn register_in_pool(&mut self) {
        let me = self.node.id();
        let mine = *self.pipeline.records.mine();
        let figures = (mine.memory_budget, mine.work_per_sec);
        let in_pipeline = self.in_pipeline();
        let Some(chain) = &mut self.chain else {
            return;
        };
        let (height, ttl) = (chain.head().height, chain.rules().pool_ttl_blocks);
        let age = |at: u64| height.saturating_sub(at);
        let recent =
            (self.pipeline.plans.registered).is_some_and(|at| age(at) < ttl / RESUBMIT_AFTER);
        let roll = chain.view().pool_roll();
        let leaving = chain.view().meta.pool_leaving.contains(&me);
        let on_roll = roll.get(&me).is_some_and(|e| {
            (e.memory_budget, e.work_per_sec) == figures && age(e.height) < ttl / RENEW_AT
        });
        let due = leaving || (in_pipeline && !on_roll);
        if !due || recent {
            return;
        }
        self.pipeline.plans.registered = Some(height);
        if roll.len() >= MAX_POOL {
            return tracing::warn!(
                entries = roll.len(),
                "the ledger's pool roll is full: this node's record cannot join it, so no plan will place it (asked again in a minute)"
            );
        }
        tracing::info!(
            memory_budget = figures.0,
            work_per_sec = figures.1,
            "submitting this node's capacity record to the ledger's pool roll"
        );
        let effects = chain.push(Action::Pool {
            memory_budget: figures.0,
            work_per_sec: figures.1,
        });
        self.carry_out_ledger(effects);
    }

    /// Stopping cleanly: a pipeline node on the pool roll says it leaves (`Action::PoolLeave`),
    /// so that the next plan boundary plans it out instead of waiting for its entry to expire;
    /// waits up to [`LEAVE_WAIT`] for a block to carry it.
    pub(crate) async fn leave_pool(&mut self) {
        let me = self.node.id();
        let in_pipeline = self.in_pipeline();
        let Some(chain) = &mut self.chain else {
            return;
        };
        if !in_pipeline || !chain.view().pool_roll().contains_key(&me) {
            return;
        }
        tracing::info!("leaving the pool: the next plan boundary plans this node out");
        let effects = chain.push(Action::PoolLeave);
        self.carry_out_ledger(effects);
        let deadline = Instant::now() + LEAVE_WAIT;
        let left = |d: &Driver| {
            let view = d.chain.as_ref().map(|c| c.view());
            view.is_none_or(|v| {
                v.meta.pool_leaving.contains(&me) || !v.pool_roll().contains_key(&me)
            })
        };
        while !left(self) {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    return tracing::warn!("no block carried this node's leave in time: the plan drops it once its pool roll entry expires");
                }
                () = finalized(&mut self.chain) => {
                    if let Err(err) = self.on_ledger_block() {
                        return tracing::warn!(%err, "the ledger failed while this node left the pool");
                    }
                }
            }
        }
        tracing::info!("a block carried this node's leave from the pool");
    }

    /// A plan boundary of the ledger: its latest plan (`neuroshard_ledger::Work::plan`, made by
    /// [`role::Planner`]), unless this node saw it already, is the plan it trains under, or
    /// becomes its next plan when it places anyone otherwise or deepens the model; it takes
    /// effect in the round the ledger gave it.
    pub(crate) fn on_pool_boundary(&mut self, boundary: PoolBoundary) {
        if !self.in_pipeline() {
            self.pipeline.plans.unseen = Some(boundary);
            return;
        }
        let Some(latest) = self.pipeline.plans.latest().cloned() else {
            return;
        };
        let Some(record) = boundary.plan else {
            return;
        };
        let depth = latest.plan.n_layers;
        self.say_if_refused(depth, &boundary.sizes, record.plan.n_layers);
        let plans = &mut self.pipeline.plans;
        if record.height <= plans.ledger_height {
            return;
        }
        plans.ledger_height = record.height;
        if let Some(in_force) = &mut plans.in_force
            && !in_force.changed_by(&record.plan)
        {
            // The plan it trains under (taken at its start or from its peers) is the ledger's.
            in_force.height = record.height;
            plans.next = None;
            return;
        }
        if !latest.changed_by(&record.plan) {
            return;
        }
        let plan = record.plan;
        let replicas: Vec<usize> = plan.stages.iter().map(|s| s.replicas.len()).collect();
        let from = record.from_round;
        tracing::info!(height = record.height, from = depth, n_layers = plan.n_layers, ?replicas,
            pool = ?boundary.sizes.last(), from_round = from,
            "the ledger made a new plan: every node switches to it at round from_round");
        // A stage the plan lengthens grows at the end of the round before, before the vote, as
        // the whole model grows; its trainer takes on the length at the next job (`Lane::fit`).
        let target = &self.pipeline.plans.target;
        *target.lock().unwrap_or_else(PoisonError::into_inner) = Layout::of(&plan, from);
        self.pipeline.plans.switch_round = from;
        self.pipeline.plans.next = Some(InForce {
            height: record.height,
            plan,
        });
    }

    /// Says once that the growth schedule asks a model of `depth` layers to deepen after the
    /// pool `sizes`, and the ledger's plan (of `planned` layers) could not: the stages' replicas
    /// cannot hold the new layers.
    fn say_if_refused(&mut self, depth: usize, sizes: &[u64], planned: usize) {
        let wanted = self.pipeline.planner.wanted(depth, sizes);
        if planned < wanted && self.pipeline.plans.refused != Some(wanted) {
            tracing::warn!(
                depth,
                wanted,
                "the growth schedule deepens the model, but the stages' replicas cannot hold the new layers between them: the model keeps its depth (moving layers is not built, docs/replan.md)"
            );
            self.pipeline.plans.refused = Some(wanted);
        }
    }

    /// Once placed: the latest boundary the ledger passed before, with its plan.
    pub(crate) fn replay_unseen(&mut self) {
        if let Some(boundary) = self.pipeline.plans.unseen.take() {
            self.on_pool_boundary(boundary);
        }
    }

    /// This node's role in the next plan, if a boundary made one that keeps it in `old`'s stage.
    pub(crate) fn next_role(&self, old: &Role) -> Option<Role> {
        let next = self.pipeline.plans.next.as_ref()?;
        match role::place(&next.plan, self.node.id()) {
            Placement::Stage(role) if role.same_stage(old) => Some(role),
            _ => None,
        }
    }

    /// At the start of round `round`'s job: a stage node switches to the next plan, if a
    /// boundary made one that keeps it in its stage (carried plans move no stage's layers) and
    /// it takes effect in `round` or before ([`Plans::switch_round`]): it takes the new lanes
    /// and stage mates; its status shows the plan's depth (a stage the plan lengthens says so
    /// when its round core grows, at the end of the round before: [`Plans::target`]). A next
    /// plan that moves it is taken between jobs ([`Driver::replan_tick`]).
    pub(crate) fn switch_plan(&mut self, round: u64) {
        let Some(old) = self.pipeline.role().cloned() else {
            return;
        };
        if round < self.pipeline.plans.switch_round {
            return;
        }
        let Some(role) = self.next_role(&old) else {
            return;
        };
        let Some(next) = self.pipeline.plans.next.take() else {
            return;
        };
        if let Err(err) = self.take_role(&role) {
            return tracing::error!(%err, "could not switch to the next plan: it keeps the plan in force");
        }
        tracing::info!(
            height = next.height,
            lanes = role.lanes,
            replicas = role.replicas.len(),
            n_layers = next.plan.n_layers,
            "switched to the next plan"
        );
        if role.spec.layers.len() == old.spec.layers.len() {
            self.status
                .depth(self.node.round(), next.plan.n_layers, None);
        }
        self.pipeline.plans.in_force = Some(next);
        self.publish_plan();
    }

    /// Takes `role` in place of the current one of the same stage: the lanes' (members new to
    /// them are gone until they say they are on this node's round; the one step that can fail,
    /// so first), the trainer's, the status's and the round core's members (a stage's replayer
    /// takes it at its next replay).
    fn take_role(&mut self, role: &Role) -> Result<()> {
        if let Some(wires) = &mut self.pipeline.lane {
            wires.replan(role)?;
        }
        if let Some(trainer) = &mut self.trainer {
            trainer.replan(role.clone());
        }
        self.pipeline.placement = Some(Placement::Stage(role.clone()));
        let served = (self.pipeline.lane.as_ref()).map_or_else(Vec::new, |w| w.lanes());
        self.status.role(role, served);
        self.members_changed();
        Ok(())
    }

    /// Gossips the latest plan this node knows (the one it trains under, or the next one a
    /// boundary made) when it runs a pipeline of several stages and that plan gives it a stage,
    /// on placing itself, on each switch, and when a peer subscribes to the pool topic: a joiner
    /// or a restarted node learns it so, and does not miss a boundary its peers have passed.
    pub(crate) fn publish_plan(&mut self) {
        let me = self.node.id();
        let latest = self.pipeline.plans.latest().cloned();
        // Its peers take a notice only from a node the plan places in a stage.
        let placed = |p: &InForce| p.plan.stage_of(&me).is_some();
        let Some(in_force) = latest.filter(|p| self.in_pipeline() && placed(p)) else {
            return;
        };
        self.pipeline.plans.seq += 1;
        let notice = PlanNotice {
            seq: self.pipeline.plans.seq,
            in_force,
        };
        let bytes = wire::encode(&notice);
        if bytes.len() > SMALL_FRAME {
            tracing::warn!(bytes = bytes.len(), "the plan is too large to gossip");
            return;
        }
        (self.transport).gossip(POOL_TOPIC.to_owned(), PLAN_NS, &bytes, false);
    }

    /// A peer's plan notice: checked (its author must be one of its replicas) and tallied by a
    /// node not in a stage (`Heard`: a plan counts once a quorum of the pool roll said it). A node
    /// not placed yet places itself under the newest agreed plan; an idle node takes one newer
    /// than its own as its next plan. A stage node makes its plans from the ledger's
    /// boundaries itself.
    pub(crate) fn hear_plan(&mut self, author: NodeId, payload: &[u8]) {
        let Some(notice) = wire::decode::<PlanNotice>(payload) else {
            return self.penalize(author, "a plan notice that does not decode");
        };
        let in_force = notice.in_force;
        let depths = self.pipeline.settings.depths.layers();
        if let Err(why) = role::checked(&in_force.plan, depths) {
            return self.penalize(
                author,
                &format!("a plan that does not hold together: {why}"),
            );
        }
        if in_force.plan.stage_of(&author).is_none() {
            return self.penalize(author, "a plan notice from a node outside the plan");
        }
        let known = self.roll_len();
        let plans = &mut self.pipeline.plans;
        let placement = &self.pipeline.placement;
        if matches!(placement, Some(Placement::Whole | Placement::Stage(_))) {
            return;
        }
        plans.heard.hear(author, in_force);
        if matches!(placement, Some(Placement::Idle(_)))
            && let Some(agreed) = plans.heard.agreed(known)
            && agreed.newer_than(plans.latest())
        {
            plans.next = Some(agreed);
        }
    }
}
