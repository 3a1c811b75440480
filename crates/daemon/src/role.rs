//! The node's place in a pipeline: the capacity records it heard, the plan
//! `neuroshard_pool::assign` gives over them, and this node's role in it (`docs/pipeline.md`,
//! "Training in the node"). Pure: the driver feeds it records and asks for the placement.

use std::collections::BTreeMap;

use neuroshard_ledger::{Part, PoolEntry};
use neuroshard_model::{Config, StageSpec};
use neuroshard_pool::{
    CapacityRecord, Footprint, GrowthSchedule, Member, Plan, Workload, assign, carry,
};
use neuroshard_primitives::{Hash, Keypair, NodeId};
use serde::{Deserialize, Serialize};

use crate::grow::Depths;
use crate::route;
use crate::settings::Settings;

/// Most micro-batches a lane splits a step's batch into.
const MAX_MICRO_BATCHES: usize = 4;

/// How a lane splits a step's batch of `batch_size` sequences: the largest number of
/// micro-batches up to [`MAX_MICRO_BATCHES`] that divides it.
pub(crate) fn workload(batch_size: usize) -> Workload {
    let micro_batches = (1..=MAX_MICRO_BATCHES.min(batch_size.max(1)))
        .rev()
        .find(|m| batch_size.is_multiple_of(*m))
        .unwrap_or(1);
    Workload {
        micro_batch: batch_size / micro_batches,
        micro_batches,
    }
}

/// This node's record and the latest record heard from each peer.
#[derive(Debug)]
pub(crate) struct Records {
    network_id: Hash,
    mine: CapacityRecord,
    heard: BTreeMap<NodeId, CapacityRecord>,
}

impl Records {
    /// This node's record: `memory_budget` bytes (`None`: unbounded) at `work_per_sec`
    /// parameter-tokens per second (measured or pinned, `crate::speed`).
    pub(crate) fn new(network_id: Hash, memory_budget: Option<u64>, work_per_sec: u64) -> Self {
        let mine = CapacityRecord {
            network_id,
            epoch: 0,
            memory_budget: memory_budget.unwrap_or(u64::MAX),
            work_per_sec,
        };
        Self {
            network_id,
            mine,
            heard: BTreeMap::new(),
        }
    }

    /// This node's record, sealed under a new epoch (gossip drops a repeated message, so each
    /// announcement is new).
    pub(crate) fn seal_next(&mut self, key: &Keypair) -> Vec<u8> {
        self.mine.epoch += 1;
        self.mine.seal(key)
    }

    /// A record `author` gossiped: opened, and kept if it is its newest. A record signed by
    /// someone else than its author, or one that does not open, is an error.
    pub(crate) fn hear(&mut self, author: NodeId, frame: &[u8]) -> Result<(), String> {
        let (signer, record) =
            CapacityRecord::open(frame, &self.network_id).map_err(|err| err.to_string())?;
        if signer != author {
            return Err(format!(
                "a capacity record of {signer} gossiped by {author}"
            ));
        }
        let newest = self
            .heard
            .get(&signer)
            .is_none_or(|r| r.epoch < record.epoch);
        if newest {
            self.heard.insert(signer, record);
        }
        Ok(())
    }

    /// This node's own record.
    pub(crate) fn mine(&self) -> &CapacityRecord {
        &self.mine
    }

    /// Whether a record of every one of `peers` is in.
    pub(crate) fn has_all<'a>(&self, mut peers: impl Iterator<Item = &'a NodeId>) -> bool {
        peers.all(|p| self.heard.contains_key(p))
    }

    /// The pool: `me` and each of `peers` whose record is in.
    pub(crate) fn members<'a>(
        &self,
        me: NodeId,
        peers: impl Iterator<Item = &'a NodeId>,
    ) -> Vec<Member> {
        let mut members = vec![Member::from_record(me, &self.mine)];
        members.extend(peers.filter_map(|p| self.heard.get(p).map(|r| Member::from_record(*p, r))));
        members
    }
}

/// The plan a pipeline trains under, and the ledger height of the plan boundary that made it
/// (0 for the plan training started with, which the nodes made among themselves from the
/// records they heard: every plan of the ledger's is newer; `docs/replan.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InForce {
    /// The boundary's height.
    pub(crate) height: u64,
    /// The plan.
    pub(crate) plan: Plan,
}

impl InForce {
    /// Whether `next` places anyone otherwise or deepens the model (the list of members left
    /// out aside).
    pub(crate) fn changed_by(&self, next: &Plan) -> bool {
        self.plan.n_layers != next.n_layers || self.plan.stages != next.stages
    }

    /// Orders plans newest first: the higher boundary, and at one boundary the lower hash, so
    /// that every node keeps the same of two.
    fn key(&self) -> (std::cmp::Reverse<u64>, Hash) {
        let hash = Hash::of(&crate::wire::encode(&self.plan));
        (std::cmp::Reverse(self.height), hash)
    }

    /// Whether this plan is newer than `held` (or nothing is held).
    pub(crate) fn newer_than(&self, held: Option<&InForce>) -> bool {
        held.is_none_or(|h| self.key() < h.key())
    }
}

/// The plans peers said they train under, one per author (its latest), for a node not in a
/// stage: a plan counts once [`quorum`] of the pool roll (the agreed membership) vouch for it
/// from within it, so that fewer than a third of the roll cannot hand a joiner a plan of their
/// making (a plan's own size would let a forger shrink the quorum by naming fewer nodes). Its
/// authors may give it different heights (a node that has not adopted the ledger's copy of the
/// plan it trains under still says 0): it counts at the quorum-th highest, a height one of
/// them at least vouches for.
#[derive(Debug, Default)]
pub(crate) struct Heard {
    by_author: BTreeMap<NodeId, InForce>,
}

/// Authors kept at most: one per entry the pool roll can hold.
const HEARD_KEPT: usize = neuroshard_ledger::MAX_POOL;

/// The matching notices a roll of `n` nodes asks for: more than the faulty nodes it tolerates,
/// `⌊(n − 1) / 3⌋ + 1`.
pub(crate) fn quorum(n: usize) -> usize {
    n.saturating_sub(1) / 3 + 1
}

impl Heard {
    /// `author`'s latest plan (checked by [`checked`], and `author` one of its nodes).
    pub(crate) fn hear(&mut self, author: NodeId, in_force: InForce) {
        if self.by_author.len() < HEARD_KEPT || self.by_author.contains_key(&author) {
            self.by_author.insert(author, in_force);
        }
    }

    /// The newest plan that [`quorum`] of `known` nodes (the pool roll's size in this node's
    /// ledger; one author without a roll) among its own said they train under.
    pub(crate) fn agreed(&self, known: usize) -> Option<InForce> {
        let mut heights: BTreeMap<Hash, (&Plan, Vec<u64>)> = BTreeMap::new();
        for said in self.by_author.values() {
            let hash = Hash::of(&crate::wire::encode(&said.plan));
            let entry = heights.entry(hash).or_insert((&said.plan, Vec::new()));
            entry.1.push(said.height);
        }
        let vouched = heights.into_values().filter_map(|(plan, mut at)| {
            at.sort_unstable_by(|a, b| b.cmp(a));
            let height = *at.get(quorum(known) - 1)?;
            let plan = plan.clone();
            Some(InForce { height, plan })
        });
        vouched.min_by_key(InForce::key)
    }

    /// The agreed plan ([`Heard::agreed`]), forgetting what was heard.
    pub(crate) fn take(&mut self, known: usize) -> Option<InForce> {
        let agreed = self.agreed(known);
        self.by_author.clear();
        agreed
    }
}

/// What a placed node gossips on the pool topic: the plan it trains under, numbered so that
/// gossip never drops a repeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanNotice {
    /// Counts this node's notices.
    pub(crate) seq: u64,
    /// Its plan.
    pub(crate) in_force: InForce,
}

/// Checks a plan from a peer before anything indexes it: a depth the network's model can have
/// (`depths`), at least two stages (a pipeline's; a whole-model network gossips no plan) that
/// hold the layers `0..n_layers` contiguously, the embedding on the first and the head on the
/// last, each held by at least one node, no node twice.
pub(crate) fn checked(plan: &Plan, depths: &[usize]) -> Result<(), String> {
    if !depths.contains(&plan.n_layers) {
        return Err(format!("a depth of {} layers", plan.n_layers));
    }
    let k = plan.stages.len();
    if k < 2 {
        return Err(format!("{k} stages"));
    }
    let mut next = 0;
    let mut seen = std::collections::BTreeSet::new();
    for (s, stage) in plan.stages.iter().enumerate() {
        let ends = (stage.embedding, stage.head) == (s == 0, s + 1 == k);
        if stage.layers.start != next || stage.layers.is_empty() || !ends {
            return Err(format!("stage {s} does not continue the layers"));
        }
        next = stage.layers.end;
        if stage.replicas.is_empty() || !stage.replicas.iter().all(|n| seen.insert(*n)) {
            return Err(format!("stage {s} has no replica, or one held twice"));
        }
    }
    match next == plan.n_layers {
        true => Ok(()),
        false => Err(format!("layers up to {next} of {}", plan.n_layers)),
    }
}

/// A node's part in a pipeline of several stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Role {
    /// Its stage's index.
    pub(crate) stage: usize,
    /// Stages in the pipeline.
    pub(crate) stages: usize,
    /// What the stage holds.
    pub(crate) spec: StageSpec,
    /// The model's depth under the plan.
    pub(crate) n_layers: usize,
    /// Its first lane: its index among its stage's replicas (it serves `lane + j · replicas`
    /// too, below `lanes`: `crate::route::member`).
    pub(crate) lane: usize,
    /// Lanes in the pipeline: the most replicas of any stage.
    pub(crate) lanes: usize,
    /// The stage's replicas, this node included: the members of its round core.
    pub(crate) replicas: Vec<NodeId>,
    /// Its first lane's previous and next stage holders.
    pub(crate) prev: Option<NodeId>,
    /// See `prev`.
    pub(crate) next: Option<NodeId>,
    /// The node whose data assignment its first lane reads (`crate::route::data_node`).
    pub(crate) data_node: NodeId,
    /// Every stage's replicas, stage by stage: the lanes through them, and who stands in for a
    /// lost member (`crate::route`).
    pub(crate) grid: Vec<Vec<NodeId>>,
}

impl Role {
    /// Whether `other` holds the same stage: the same index in as many stages (a carried plan
    /// keeps the stages and every layer of each; a growth may lengthen a stage, and shift the
    /// stages after it, which only relabels their layers: `docs/replan.md`).
    pub(crate) fn same_stage(&self, other: &Role) -> bool {
        self.part() == other.part()
    }

    /// What its stage checkpoint says it holds (`checkpoint::STAGE_CHECKPOINT_FILE`): a node
    /// resumes from it only under a role that gives the same.
    pub(crate) fn checkpoint_tag(&self) -> String {
        let spec = &self.spec;
        let ends = match (spec.embedding, spec.head) {
            (true, true) => " with the embedding and the head",
            (true, false) => " with the embedding",
            (false, true) => " with the head",
            (false, false) => "",
        };
        format!(
            "{} of {}: layers {}..{}{ends} of {}",
            self.stage, self.stages, spec.layers.start, spec.layers.end, self.n_layers
        )
    }

    /// The part of the model its work claims name on the ledger: its stage of as many.
    pub(crate) fn part(&self) -> Part {
        let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        Part {
            stage: index(self.stage),
            stages: index(self.stages),
        }
    }
}

/// What the plan makes of this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// One stage: the node trains the whole model, as it always did.
    Whole,
    /// A stage of a lane.
    Stage(Role),
    /// No stage for it (unplaced): it trains nothing; why.
    Idle(String),
}

/// The plan for `members` on `model`, each stage training batches of `batch_size`.
pub(crate) fn plan(model: &Config, batch_size: usize, members: &[Member]) -> Plan {
    let workload = workload(batch_size);
    let footprint = Footprint::of(model, workload);
    assign(model.n_layers, &footprint, workload, members, None)
}

/// The pipeline's planner, which the ledger runs at its plan boundaries
/// (`neuroshard_ledger::Work::plan`; `docs/replan.md`, "The plan on the ledger"): every node's
/// ledger must make the same plans, so it reads the genesis alone (the model's depths, the
/// growth schedule, the batch size of its `[inner]` section, at which every stage trains).
#[derive(Debug, Clone)]
pub(crate) struct Planner {
    depths: Depths,
    growth: Option<GrowthSchedule>,
    batch_size: usize,
}

impl Planner {
    /// The planner of the network `settings` were resolved from.
    pub(crate) fn new(settings: &Settings) -> Self {
        Self {
            depths: settings.depths.clone(),
            growth: settings.growth.clone(),
            batch_size: settings.inner.batch_size,
        }
    }

    /// `latest` carried over to the pool roll `roll` without the accounts that `left`
    /// (`neuroshard_pool::carry`: no stage's layers move; a stage a leaver left short takes a
    /// joiner or another stage's replica) at the depth the schedule gives the pool `sizes`;
    /// without `latest` (or with one of no stages), the first plan: [`plan`] over the roll, as
    /// each node made it over the records it heard at its start.
    pub(crate) fn plan(
        &self,
        latest: Option<&Plan>,
        roll: &BTreeMap<NodeId, PoolEntry>,
        left: &[NodeId],
        sizes: &[u64],
    ) -> Plan {
        let members: Vec<Member> = (roll.iter())
            .map(|(node, e)| Member {
                node: *node,
                memory_budget: e.memory_budget,
                work_per_sec: e.work_per_sec,
            })
            .collect();
        let Some(latest) = latest.filter(|p| !p.stages.is_empty()) else {
            let genesis = self.depths.at(self.depths.layers()[0]);
            return plan(&genesis, self.batch_size, &members);
        };
        let n_layers = self.wanted(latest.n_layers, sizes);
        let workload = workload(self.batch_size);
        let footprint = Footprint::of(&self.depths.at(n_layers), workload);
        carry(latest, n_layers, &footprint, workload, &members, left)
    }

    /// The depth the growth schedule asks of a model of `depth` layers after the pool `sizes`.
    pub(crate) fn wanted(&self, depth: usize, sizes: &[u64]) -> usize {
        (self.growth.as_ref())
            .and_then(|g| g.decide(depth, sizes))
            .unwrap_or(depth)
    }
}

/// What `nodes` nodes of equal speed, each giving `budget` bytes to training, make of the
/// genesis model at `batch_size`: the plan, and the bytes the whole model needs to train.
/// `neuroshard up --memory-budget` shows it before it starts the nodes; the real plan uses each
/// node's measured speed, so it may balance the layers differently, never cover fewer.
pub fn preview(model: &Config, batch_size: usize, nodes: usize, budget: u64) -> (Plan, u64) {
    let members: Vec<Member> = (0..nodes)
        .map(|i| {
            let mut id = [0; 32];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            Member {
                node: NodeId(id),
                memory_budget: budget,
                work_per_sec: 1,
            }
        })
        .collect();
    let whole = Footprint::of(model, workload(batch_size)).bytes(model.n_layers, true, true);
    (plan(model, batch_size, &members), whole)
}

/// `me`'s placement in `plan`.
pub(crate) fn place(plan: &Plan, me: NodeId) -> Placement {
    if plan.stages.len() == 1 && plan.stages[0].replicas.contains(&me) {
        return Placement::Whole;
    }
    let Some(stage) = plan.stage_of(&me) else {
        let listed = plan.unplaced.iter().any(|(n, _)| *n == me);
        return Placement::Idle(match (plan.stages.is_empty(), listed) {
            (true, _) => "the pool cannot hold the model".into(),
            (false, true) => "no stage of the plan fits this node's budget".into(),
            (false, false) => "not in the plan in force: it is placed at a plan boundary once its capacity record is on the ledger".into(),
        });
    };
    let held = &plan.stages[stage];
    let lane = held.replicas.iter().position(|n| *n == me).unwrap_or(0);
    let grid: Vec<Vec<NodeId>> = plan.stages.iter().map(|s| s.replicas.clone()).collect();
    let holder = |s: usize| route::member(&grid, s, lane);
    Placement::Stage(Role {
        stage,
        stages: plan.stages.len(),
        spec: StageSpec {
            embedding: held.embedding,
            layers: held.layers.clone(),
            head: held.head,
        },
        n_layers: plan.n_layers,
        lane,
        lanes: plan.lanes(),
        replicas: held.replicas.clone(),
        prev: stage.checked_sub(1).and_then(holder),
        next: (stage + 1 < plan.stages.len())
            .then(|| holder(stage + 1))
            .flatten(),
        data_node: route::data_node(&grid, lane).unwrap_or(me),
        grid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One speed for every member: `assign` then balances by layers and memory alone.
    const SPEED: u64 = 1_000_000_000;

    fn nano() -> Config {
        Config::preset("nano", 384).unwrap()
    }

    fn members(n: u8, budget: u64) -> Vec<Member> {
        (0..n)
            .map(|i| Member {
                node: NodeId([i; 32]),
                memory_budget: budget,
                work_per_sec: SPEED,
            })
            .collect()
    }

    #[test]
    fn the_workload_splits_the_batch_into_at_most_four() {
        let shape = |b| {
            let w = workload(b);
            (w.micro_batches, w.micro_batch)
        };
        assert_eq!(shape(8), (4, 2));
        assert_eq!(shape(6), (3, 2));
        assert_eq!(shape(5), (1, 5));
        assert_eq!(shape(2), (2, 1));
    }

    #[test]
    fn the_preview_shows_what_a_budget_makes() {
        let cfg = nano();
        let (whole_plan, whole) = preview(&cfg, 8, 3, u64::MAX);
        assert_eq!(whole_plan.stages.len(), 1);
        assert_eq!(whole_plan.stages[0].replicas.len(), 3);
        let (split, again) = preview(&cfg, 8, 6, whole * 2 / 3);
        assert_eq!(again, whole);
        assert!(split.stages.len() >= 2, "{split:?}");
        assert!(
            split.stages.iter().all(|s| s.replicas.len() >= 2),
            "{split:?}"
        );
        let (none, _) = preview(&cfg, 8, 6, 1000);
        assert!(none.stages.is_empty(), "1 kB holds no layer");
    }

    /// The ledger's planner: its first plan over a roll is the plan the nodes make over the
    /// same records at their start, and a later boundary carries it over (a joiner placed,
    /// every replica kept in its stage); a leaver is dropped.
    #[test]
    fn the_ledgers_first_plan_is_the_start_plan_and_later_ones_carry_it() {
        let cfg = nano();
        let planner = Planner {
            depths: Depths::new(&cfg, None),
            growth: None,
            batch_size: 8,
        };
        let whole = Footprint::of(&cfg, workload(8)).bytes(cfg.n_layers, true, true);
        let roll = |members: &[Member]| -> BTreeMap<NodeId, PoolEntry> {
            let entry = |m: &Member| PoolEntry {
                memory_budget: m.memory_budget,
                work_per_sec: m.work_per_sec,
                height: 1,
            };
            members.iter().map(|m| (m.node, entry(m))).collect()
        };
        let six = members(6, whole * 2 / 3);
        let first = planner.plan(None, &roll(&six), &[], &[]);
        assert_eq!(first, plan(&cfg, 8, &six));
        let seven = members(7, whole * 2 / 3);
        let joined = planner.plan(Some(&first), &roll(&seven), &[], &[]);
        let joiner = NodeId([6; 32]);
        assert!(joined.stage_of(&joiner).is_some(), "{joined:?}");
        for node in &six {
            assert_eq!(joined.stage_of(&node.node), first.stage_of(&node.node));
        }
        let left = planner.plan(Some(&joined), &roll(&six), &[joiner], &[]);
        assert_eq!(left.stage_of(&joiner), None, "{left:?}");
    }

    #[test]
    fn unbounded_budgets_give_the_whole_model_to_everyone() {
        let plan = plan(&nano(), 8, &members(3, u64::MAX));
        for i in 0..3 {
            assert_eq!(place(&plan, NodeId([i; 32])), Placement::Whole);
        }
    }

    #[test]
    fn six_nodes_under_the_whole_footprint_all_train_in_lanes_through_every_stage() {
        let cfg = nano();
        let w = workload(8);
        let whole = Footprint::of(&cfg, w).bytes(cfg.n_layers, true, true);
        let plan = plan(&cfg, 8, &members(6, whole * 2 / 3));
        assert!(plan.stages.len() >= 2, "{plan:?}");
        let roles: Vec<Role> = (0..6)
            .filter_map(|i| match place(&plan, NodeId([i; 32])) {
                Placement::Stage(role) => Some(role),
                _ => None,
            })
            .collect();
        assert_eq!(roles.len(), 6, "every node trains: {plan:?}");
        let (grid, lanes) = (&roles[0].grid, roles[0].lanes);
        assert_eq!(
            lanes,
            plan.stages.iter().map(|s| s.replicas.len()).max().unwrap()
        );
        // Each lane is a chain of one holder per stage, and reads its own data.
        for lane in 0..lanes {
            for stage in 0..plan.stages.len() {
                let holder = route::member(grid, stage, lane).unwrap();
                assert_eq!(plan.stage_of(&holder), Some(stage));
            }
        }
        let data: std::collections::BTreeSet<NodeId> = (0..lanes)
            .filter_map(|l| route::data_node(grid, l))
            .collect();
        assert_eq!(data.len(), lanes, "a data node per lane");
        for role in &roles {
            let me = role.replicas[role.lane];
            assert_eq!(plan.stage_of(&me), Some(role.stage));
            assert_eq!(route::member(grid, role.stage, role.lane), Some(me));
            // The neighbours are the first lane's, one stage either side.
            let beside = |s: usize| route::member(grid, s, role.lane);
            assert_eq!(role.next, beside(role.stage + 1));
            assert_eq!(role.prev, role.stage.checked_sub(1).and_then(beside));
            assert_eq!(Some(role.data_node), route::data_node(grid, role.lane));
        }
    }

    #[test]
    fn a_peers_plan_is_checked_before_use() {
        let cfg = nano();
        let whole = Footprint::of(&cfg, workload(8)).bytes(cfg.n_layers, true, true);
        let good = plan(&cfg, 8, &members(6, whole * 2 / 3));
        let depths = [cfg.n_layers, cfg.n_layers + 2];
        assert_eq!(checked(&good, &depths), Ok(()));
        let spoil = |f: &dyn Fn(&mut Plan)| {
            let mut bad = good.clone();
            f(&mut bad);
            checked(&bad, &depths)
        };
        assert!(
            spoil(&|p| p.n_layers = 7).is_err(),
            "a depth the network never has"
        );
        assert!(spoil(&|p| p.stages.truncate(1)).is_err(), "one stage");
        assert!(
            spoil(&|p| p.stages[0].replicas.clear()).is_err(),
            "a stage held by none"
        );
        let twice = good.stages[0].replicas[0];
        assert!(
            spoil(&|p| p.stages[1].replicas.push(twice)).is_err(),
            "a node twice"
        );
        assert!(
            spoil(&|p| p.stages[1].layers.end += 1).is_err(),
            "past the depth"
        );
        assert!(
            spoil(&|p| p.stages[1].layers.start = 0).is_err(),
            "overlapping stages"
        );
        assert!(
            spoil(&|p| p.stages[0].head = true).is_err(),
            "a head in the middle"
        );
    }

    #[test]
    fn a_plan_counts_once_more_than_a_third_of_its_nodes_said_it() {
        let cfg = nano();
        let whole = Footprint::of(&cfg, workload(8)).bytes(cfg.n_layers, true, true);
        let honest = plan(&cfg, 8, &members(6, whole * 2 / 3));
        assert_eq!(
            honest
                .stages
                .iter()
                .map(|s| s.replicas.len())
                .sum::<usize>(),
            6
        );
        assert_eq!(
            (quorum(1), quorum(3), quorum(4), quorum(6), quorum(7)),
            (1, 1, 2, 2, 3)
        );
        let at = |height, plan: &Plan| InForce {
            height,
            plan: plan.clone(),
        };
        // Node 5 makes up a newer plan of a node per stage (3 nodes or fewer: a quorum of 1 by its own size)
        // that gives it the head stage alone.
        let mut forged = honest.clone();
        let k = forged.stages.len();
        assert!(k <= 3, "{honest:?}");
        for (i, stage) in forged.stages.iter_mut().enumerate() {
            let who = if i + 1 == k { 5 } else { i as u8 };
            stage.replicas = vec![NodeId([who; 32])];
        }
        let mut heard = Heard::default();
        heard.hear(NodeId([5; 32]), at(40, &forged));
        assert_eq!(
            heard.agreed(0),
            Some(at(40, &forged)),
            "without a roll, one vouches"
        );
        assert_eq!(heard.agreed(6), None, "one of a roll of six is no quorum");
        heard.hear(NodeId([0; 32]), at(20, &honest));
        assert_eq!(heard.agreed(6), None);
        heard.hear(NodeId([5; 32]), at(40, &forged));
        assert_eq!(heard.agreed(6), None, "a repeat counts once");
        // The honest nodes placed themselves at their own ledger heads, 20 and 24.
        heard.hear(NodeId([1; 32]), at(24, &honest));
        assert_eq!(
            heard.agreed(6),
            Some(at(20, &honest)),
            "the second highest of 24, 20"
        );
        heard.hear(NodeId([2; 32]), at(26, &honest));
        assert_eq!(heard.agreed(6), Some(at(24, &honest)));
        assert_eq!(
            heard.agreed(7),
            Some(at(20, &honest)),
            "a roll of seven asks three"
        );
        // A node that says the same plan at a height past everyone's moves it no further.
        heard.hear(NodeId([3; 32]), at(u64::MAX, &honest));
        assert_eq!(heard.agreed(6), Some(at(26, &honest)));
        assert!(at(60, &honest).newer_than(Some(&at(20, &honest))));
        assert!(!at(20, &honest).newer_than(Some(&at(60, &honest))));
        assert_eq!(heard.take(6), Some(at(26, &honest)));
        assert_eq!(heard.agreed(0), None, "forgotten once taken");
    }

    #[test]
    fn records_keep_the_newest_of_their_signer_and_refuse_a_relayed_one() {
        let net = Hash::of(b"net");
        let key = Keypair::from_seed([1; 32]);
        let mut theirs = Records::new(net, Some(1 << 20), 77);
        let first = theirs.seal_next(&key);
        let second = theirs.seal_next(&key);
        let mut mine = Records::new(net, None, SPEED);
        let author = key.node_id();
        mine.hear(author, &second).unwrap();
        mine.hear(author, &first).unwrap();
        assert_eq!(mine.heard[&author].epoch, 2);
        assert!(mine.hear(NodeId([9; 32]), &first).is_err());
        assert!(mine.hear(author, b"junk").is_err());
        assert!(mine.has_all([author].iter()));
        assert!(!mine.has_all([author, NodeId([9; 32])].iter()));
        let pool = mine.members(NodeId([0; 32]), [author, NodeId([9; 32])].iter());
        assert_eq!(pool.len(), 2);
        assert_eq!(
            (pool[0].memory_budget, pool[1].memory_budget),
            (u64::MAX, 1 << 20)
        );
        assert_eq!((pool[0].work_per_sec, pool[1].work_per_sec), (SPEED, 77));
    }
}
