//! Assignment: from the model and the members' capacity records to a [`Plan`] of stages, each
//! a contiguous layer range with its replica set. Deterministic: every node computes the same
//! plan from the same view, whatever order it learnt the records in.
//!
//! # The rule
//!
//! 1. Members are sorted by node id (a node listed twice counts once, its first entry in that
//!    order). A member whose budget cannot train one layer gets no stage
//!    ([`Unplaced::CannotHoldALayer`]).
//! 2. For each number of stages `k` (1 up to the layers, at most the members), a draft:
//!    the layers split evenly; coverage first, the stage needing the most memory first, each
//!    taking the smallest member that fits it (so big members stay free for big stages); then
//!    the same again, so that every stage has [`REDUNDANCY`] replicas where the members allow
//!    (one to fail over to); then every other member, fastest first, joins the stage it fits
//!    that leaves the fewest lanes idle ([`running_lanes`]), of those the one whose time per
//!    token (work over the replicas' summed speed) is highest; then the stage
//!    lengths are set by water-filling: each layer after the first of every stage goes to the
//!    stage whose time grows least, never past what its smallest replica can hold. That
//!    minimises the slowest stage's time for these replica sets.
//! 3. A draft's cost is its slowest stage's time times the 1F1B bubble `(m + k − 1) / m` for
//!    `m` micro-batches a step; the cheapest wins, ties to fewer stages. So when every member
//!    can hold the whole model the plan is one stage held by everyone: today's network.
//! 4. With a previous plan (same depth), the stable draft keeps it: every member stays in its
//!    stage, the stage lengths stay unless water-filling beats them by [`REBALANCE`]; new
//!    members join as in 2; a stage left empty, or with fewer than [`REDUNDANCY`] replicas,
//!    takes a new member or one from the stage with the most replicas. The stable draft wins
//!    unless the best fresh draft beats it by [`REPLAN`], or costs within [`REPLAN`] of it and
//!    moves fewer layers (a leaver's stage refilled by a donor whose old range is far from it,
//!    say). So a join usually moves only the joiner's layers, and a leave nothing unless it
//!    empties a stage or leaves it one replica.
//!
//! # Carrying a running plan over ([`carry`])
//!
//! A running pipeline re-plans with [`carry`], which moves no layer within a stage
//! (`docs/replan.md`): every replica keeps its stage, its range and its place in the stage's
//! replica order (so no lane changes hands but the ones joiners and leavers free). The members
//! that left (their records expired, or they said they leave) are dropped. Then, as the stable
//! draft does, every stage is brought back to a replica, then to [`REDUNDANCY`]: the smallest
//! joiner that fits it, else the smallest that fits from the stage with the most replicas (more
//! than it wants), which moves there whole; a stage no one can take keeps its leavers, as
//! replicas with no speed (its lanes fail over). A deeper model's new layers are then spread as
//! water-filling places layers: each at the end of the stage whose time per token grows least,
//! never past what the stage's smallest replica holds (a new layer starts as the identity, so
//! it can sit at the end of any stage; the stages after it only relabel their layers); when
//! they do not all fit, the depth stays. The other new members join as in 2 (fastest first,
//! where they leave the fewest lanes idle, then where the time per token is highest),
//! appended to the stage.

use std::ops::Range;

use neuroshard_primitives::NodeId;
use serde::{Deserialize, Serialize};

use crate::CapacityRecord;
use crate::footprint::{Footprint, Workload};

/// The stable lengths are kept unless their slowest stage takes more than 5/4 the time of the
/// water-filled lengths' slowest stage.
pub const REBALANCE: (u128, u128) = (5, 4);

/// Replicas every stage gets, where the members allow, before the others join by speed: one
/// to fail over to (`docs/pipeline.md`, "Failover").
pub const REDUNDANCY: usize = 2;

/// The stable draft is kept unless it costs more than 4/3 of the best fresh draft.
pub const REPLAN: (u128, u128) = (4, 3);

/// One member of the pool as assignment sees it (from its latest capacity record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The node.
    pub node: NodeId,
    /// Bytes it gives to training.
    pub memory_budget: u64,
    /// Its speed in parameter-tokens per second.
    pub work_per_sec: u64,
}

impl Member {
    /// The member a node's opened capacity record describes.
    pub fn from_record(node: NodeId, record: &CapacityRecord) -> Self {
        Self {
            node,
            memory_budget: record.memory_budget,
            work_per_sec: record.work_per_sec,
        }
    }
}

/// One stage of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagePlan {
    /// The layers it holds.
    pub layers: Range<usize>,
    /// Whether it holds the embedding (the first stage).
    pub embedding: bool,
    /// Whether it holds the final norm and the head (the last stage).
    pub head: bool,
    /// The nodes that hold it, in lane order: sorted by node id in a plan from [`assign`];
    /// [`carry`] keeps the replicas it carries over in their order and appends new ones.
    pub replicas: Vec<NodeId>,
}

/// Why a member holds no stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Unplaced {
    /// Its budget cannot train a single layer.
    CannotHoldALayer,
    /// It can hold a layer, but no stage of this plan fits its budget.
    NoStageFits,
}

/// Who holds what: stages in pipeline order and the members left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The model's depth the plan covers.
    pub n_layers: usize,
    /// The stages, in order; empty when the pool cannot cover the model.
    pub stages: Vec<StagePlan>,
    /// Members without a stage, sorted by node id, with the reason.
    pub unplaced: Vec<(NodeId, Unplaced)>,
}

impl Plan {
    /// The index of the stage `node` holds.
    pub fn stage_of(&self, node: &NodeId) -> Option<usize> {
        self.stages.iter().position(|s| s.replicas.contains(node))
    }

    /// Lanes of one replica of every stage: as many as the most replicas any stage has (0
    /// without stages). A stage with fewer replicas serves several lanes with each, in turn
    /// (`docs/pipeline.md`, "Roles"), so its replicas' summed speed is what it trains with, as
    /// the rule assumes.
    pub fn lanes(&self) -> usize {
        self.stages
            .iter()
            .map(|s| s.replicas.len())
            .max()
            .unwrap_or(0)
    }

    /// Lanes that can run at once with every member up: [`Plan::lanes`], at most
    /// [`running_lanes`] of its stages' replica counts.
    pub fn running_lanes(&self) -> usize {
        running_lanes(
            &self
                .stages
                .iter()
                .map(|s| s.replicas.len())
                .collect::<Vec<_>>(),
        )
    }

    /// Layers that nodes must fetch to go from `before` to this plan: for each node with a
    /// stage, the layers of its stage it did not hold before.
    pub fn moves_from(&self, before: &Plan) -> usize {
        let held = |node: &NodeId| {
            before
                .stage_of(node)
                .map_or(0..0, |s| before.stages[s].layers.clone())
        };
        let fetched = |stage: &StagePlan, node: &NodeId| {
            let old = held(node);
            stage.layers.clone().filter(|l| !old.contains(l)).count()
        };
        let per_stage = |s: &StagePlan| s.replicas.iter().map(|n| fetched(s, n)).sum::<usize>();
        self.stages.iter().map(per_stage).sum()
    }
}

/// Lanes that can run at once through stages of `replicas` replicas each, in pipeline order:
/// as many as the most replicas a stage has, but no more than any two neighbouring stages have
/// pairs of replicas (a frame names no lane, so two lanes through the same two nodes could not
/// be told apart; `docs/pipeline.md`, "Roles"). The lanes' routes reach it
/// (`neuroshard_daemon`'s `route::slots`).
pub fn running_lanes(replicas: &[usize]) -> usize {
    let lanes = replicas.iter().copied().max().unwrap_or(0);
    let pairs = replicas.windows(2).map(|w| w[0].saturating_mul(w[1]));
    pairs.fold(lanes, usize::min)
}

/// Assigns the members to stages of a model of `n_layers` layers whose parts need `footprint`
/// (see the module docs); `previous` is the plan in force, which the result stays close to.
pub fn assign(
    n_layers: usize,
    footprint: &Footprint,
    workload: Workload,
    members: &[Member],
    previous: Option<&Plan>,
) -> Plan {
    let pool = Pool::new(n_layers, footprint, workload, members);
    let fresh = (1..=n_layers.min(pool.members.len()))
        .filter_map(|k| pool.fresh(k))
        .min_by(|a, b| pool.cost(a).cmp_with(&pool.cost(b)));
    let stable = previous.and_then(|p| Some((p, pool.stable(p)?)));
    let (previous, s, f) = match (stable, fresh) {
        (Some((p, s)), Some(f)) => (p, s, f),
        (s, f) => return pool.plan(s.map(|(_, s)| s).or(f)),
    };
    let (cs, cf) = (pool.cost(&s), pool.cost(&f));
    let (s, f) = (pool.plan(Some(s)), pool.plan(Some(f)));
    // Within REPLAN of each other, the plan that moves fewer layers; ties to the stable one.
    let fewer = || f.moves_from(previous) < s.moves_from(previous);
    match cs.exceeds(&cf, REPLAN) || (!cf.exceeds(&cs, REPLAN) && fewer()) {
        true => f,
        false => s,
    }
}

/// The plan in force, `previous`, carried over to `members` and a model of `n_layers` without
/// moving a layer within a stage (module docs, "Carrying a running plan over"). The replicas in
/// `left` are dropped, and a stage they leave short takes a joiner or a replica of another
/// stage. A replica of `previous` that neither list holds (its record not on the roll yet) keeps
/// its place and counts with no speed and no known budget (so its stage does not grow over
/// it). The result's `n_layers` is `previous`'s when the model could not grow there. Without
/// stages in `previous`, this is [`assign`].
pub fn carry(
    previous: &Plan,
    n_layers: usize,
    footprint: &Footprint,
    workload: Workload,
    members: &[Member],
    left: &[NodeId],
) -> Plan {
    if previous.stages.is_empty() {
        return assign(n_layers, footprint, workload, members, None);
    }
    let kept_unknown = previous.stages.iter().flat_map(|s| &s.replicas);
    let mut all = members.to_vec();
    all.extend(
        kept_unknown
            .filter(|n| !members.iter().any(|m| m.node == **n))
            .map(|&node| Member {
                node,
                memory_budget: 0,
                work_per_sec: 0,
            }),
    );
    let grown = Pool::new(n_layers, footprint, workload, &all);
    let draft = grown.carried(previous, left);
    let mut plan = match draft {
        Some(draft) => grown.plan(Some(draft)),
        None => {
            let kept = Pool::new(previous.n_layers, footprint, workload, &all);
            let draft = kept.carried(previous, left);
            kept.plan(draft)
        }
    };
    plan.unplaced.retain(|(node, _)| !left.contains(node));
    plan
}

/// A ratio `num / den` compared by cross-multiplication, or as `f64` where the products would
/// overflow (speeds are a peer's numbers, so they may be absurd; `f64` division is the same on
/// every machine, so the comparison stays deterministic).
#[derive(Debug, Clone, Copy)]
struct Ratio {
    num: u128,
    den: u128,
}

impl Ratio {
    fn cmp_with(&self, other: &Ratio) -> std::cmp::Ordering {
        match (
            self.num.checked_mul(other.den),
            other.num.checked_mul(self.den),
        ) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.as_f64().total_cmp(&other.as_f64()),
        }
    }

    /// Whether `self > other × fnum / fden`.
    fn exceeds(&self, other: &Ratio, (fnum, fden): (u128, u128)) -> bool {
        let scaled = Ratio {
            num: self.num.saturating_mul(fden),
            den: self.den,
        };
        let bound = Ratio {
            num: other.num.saturating_mul(fnum),
            den: other.den,
        };
        scaled.cmp_with(&bound).is_gt()
    }

    fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// A candidate: stage lengths and replica sets (indices into the sorted members).
#[derive(Debug, Clone)]
struct Draft {
    lens: Vec<usize>,
    replicas: Vec<Vec<usize>>,
}

/// The sorted members and what the drafts share.
#[derive(Debug)]
struct Pool<'a> {
    n_layers: usize,
    footprint: &'a Footprint,
    workload: Workload,
    members: Vec<Member>,
}

impl<'a> Pool<'a> {
    fn new(
        n_layers: usize,
        footprint: &'a Footprint,
        workload: Workload,
        members: &[Member],
    ) -> Self {
        let mut members = members.to_vec();
        members.sort_by(|a, b| {
            (a.node, a.memory_budget, a.work_per_sec).cmp(&(
                b.node,
                b.memory_budget,
                b.work_per_sec,
            ))
        });
        members.dedup_by(|b, a| a.node == b.node);
        Self {
            n_layers,
            footprint,
            workload,
            members,
        }
    }

    /// Whether stage `s` of `k` is the first, the last.
    fn ends(s: usize, k: usize) -> (bool, bool) {
        (s == 0, s + 1 == k)
    }

    /// The most layers member `i` can hold as stage `s` of `k`.
    fn cap(&self, i: usize, s: usize, k: usize) -> usize {
        let (e, h) = Self::ends(s, k);
        self.footprint
            .max_layers(self.members[i].memory_budget, e, h)
    }

    /// Summed speed of a replica set.
    fn speed(&self, replicas: &[usize]) -> u128 {
        replicas
            .iter()
            .map(|&i| u128::from(self.members[i].work_per_sec))
            .sum()
    }

    /// Time per token of stage `s` of `k` with `len` layers and these replicas.
    fn time(&self, len: usize, s: usize, k: usize, replicas: &[usize]) -> Ratio {
        let head = Self::ends(s, k).1;
        Ratio {
            num: u128::from(self.footprint.work(len, head)),
            den: self.speed(replicas).max(1),
        }
    }

    /// The slowest stage's time times the bubble `(m + k − 1) / m`.
    fn cost(&self, draft: &Draft) -> Ratio {
        let k = draft.lens.len();
        let slowest = (0..k)
            .map(|s| self.time(draft.lens[s], s, k, &draft.replicas[s]))
            .max_by(|a, b| a.cmp_with(b))
            .expect("a draft has a stage");
        let m = self.workload.micro_batches.max(1) as u128;
        Ratio {
            num: slowest.num.saturating_mul(m + k as u128 - 1),
            den: slowest.den.saturating_mul(m),
        }
    }

    /// The best draft with `k` stages from nothing, if the members can cover them.
    fn fresh(&self, k: usize) -> Option<Draft> {
        let (l, k_) = (self.n_layers, k);
        let lens: Vec<usize> = (0..k).map(|s| l / k_ + usize::from(s < l % k_)).collect();
        let mut draft = Draft {
            replicas: vec![Vec::new(); k],
            lens,
        };
        let mut free: Vec<usize> = (0..self.members.len()).collect();
        self.cover_twice(&mut draft, &mut free)?;
        self.join(&mut draft, free);
        draft.lens = self.water_fill(&draft)?;
        Some(draft)
    }

    /// The previous plan kept as far as it can be (module docs, step 4).
    fn stable(&self, previous: &Plan) -> Option<Draft> {
        let k = previous.stages.len();
        if previous.n_layers != self.n_layers || k == 0 {
            return None;
        }
        let lens: Vec<usize> = previous.stages.iter().map(|s| s.layers.len()).collect();
        let mut draft = Draft {
            replicas: vec![Vec::new(); k],
            lens,
        };
        let mut free = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            match previous.stage_of(&m.node) {
                Some(s) if self.cap(i, s, k) >= draft.lens[s] => draft.replicas[s].push(i),
                _ => free.push(i),
            }
        }
        self.cover_twice(&mut draft, &mut free)?;
        self.join(&mut draft, free);
        // Every replica fits the kept lengths (checked on the way in), so they stay valid.
        let filled = Draft {
            lens: self.water_fill(&draft)?,
            replicas: draft.replicas.clone(),
        };
        match self.cost(&draft).exceeds(&self.cost(&filled), REBALANCE) {
            true => Some(filled),
            false => Some(draft),
        }
    }

    /// `previous` at this pool's depth with its replicas kept in place and order but those in
    /// `left`, every stage held again (a stage no one can take keeps its leavers) and then twice
    /// where the members allow, the new layers spread over the stages as water-filling places
    /// layers (each at the end of the stage whose time grows least, within what its replicas
    /// hold), the other members joined; `None` when the depth shrinks or the new layers do not
    /// fit.
    fn carried(&self, previous: &Plan, left: &[NodeId]) -> Option<Draft> {
        let extra = self.n_layers.checked_sub(previous.n_layers)?;
        let k = previous.stages.len();
        let lens: Vec<usize> = previous.stages.iter().map(|s| s.layers.len()).collect();
        let index = |n: &NodeId| self.members.iter().position(|m| m.node == *n);
        let replicas = |gone: bool| -> Vec<Vec<usize>> {
            let keep = |n: &&NodeId| left.contains(n) == gone;
            let stage = |s: &StagePlan| s.replicas.iter().filter(keep).filter_map(index).collect();
            previous.stages.iter().map(stage).collect()
        };
        let (kept, leavers) = (replicas(false), replicas(true));
        let mut draft = Draft {
            lens,
            replicas: kept,
        };
        let mut free: Vec<usize> = (0..self.members.len())
            .filter(|i| {
                !previous
                    .stages
                    .iter()
                    .any(|s| s.replicas.contains(&self.members[*i].node))
            })
            .collect();
        self.cover_from(&mut draft, &mut free, 1, true);
        for (s, gone) in leavers.into_iter().enumerate() {
            if draft.replicas[s].is_empty() {
                draft.replicas[s] = gone;
            }
        }
        self.cover_from(&mut draft, &mut free, REDUNDANCY, true);
        let caps: Vec<usize> = (0..k).map(|s| self.stage_cap(&draft, s)).collect();
        draft.lens = self.fill(&draft, draft.lens.clone(), extra, &caps)?;
        self.add_by_speed(&mut draft, free);
        Some(draft)
    }

    /// Brings every stage to `want` replicas where it can, the stage needing most memory first:
    /// the smallest free member that fits, else (with `donors`) the smallest that fits from the
    /// stage with the most replicas (more than `want`); whether every stage got there.
    fn cover_from(
        &self,
        draft: &mut Draft,
        free: &mut Vec<usize>,
        want: usize,
        donors: bool,
    ) -> bool {
        let k = draft.lens.len();
        let bytes = |s: usize| {
            let (e, h) = Self::ends(s, k);
            self.footprint.bytes(draft.lens[s], e, h)
        };
        let mut short: Vec<usize> = (0..k).filter(|&s| draft.replicas[s].len() < want).collect();
        short.sort_by_key(|&s| (std::cmp::Reverse(bytes(s)), s));
        let mut reached = true;
        for s in short {
            let fits = |i: &usize| self.members[*i].memory_budget >= bytes(s);
            let smallest = |c: &[usize]| {
                c.iter()
                    .copied()
                    .filter(fits)
                    .min_by_key(|&i| (self.members[i].memory_budget, i))
            };
            if let Some(i) = smallest(free) {
                free.retain(|&j| j != i);
                draft.replicas[s].push(i);
                continue;
            }
            if !donors {
                reached = false;
                continue;
            }
            let donor = (0..k)
                .filter(|&d| {
                    draft.replicas[d].len() > want && smallest(&draft.replicas[d]).is_some()
                })
                .max_by_key(|&d| (draft.replicas[d].len(), std::cmp::Reverse(d)));
            match donor.and_then(|d| Some((d, smallest(&draft.replicas[d])?))) {
                Some((d, i)) => {
                    draft.replicas[d].retain(|&j| j != i);
                    draft.replicas[s].push(i);
                }
                None => reached = false,
            }
        }
        reached
    }

    /// Every stage held, then every stage held twice where the members allow (a replica to
    /// fail over to, `docs/pipeline.md`), before the rest join by speed; `None` when a stage
    /// stays empty.
    fn cover_twice(&self, draft: &mut Draft, free: &mut Vec<usize>) -> Option<()> {
        self.cover_from(draft, free, 1, true).then_some(())?;
        self.cover_from(draft, free, REDUNDANCY, true);
        Some(())
    }

    /// Adds the `free` members as [`Pool::add_by_speed`] does, then sorts each stage's
    /// replicas (by node id: the members are sorted).
    fn join(&self, draft: &mut Draft, free: Vec<usize>) {
        self.add_by_speed(draft, free);
        draft.replicas.iter_mut().for_each(|r| r.sort_unstable());
    }

    /// Appends the `free` members, fastest first, each to the stage it fits that leaves the
    /// fewest lanes idle ([`running_lanes`]: a replica past what its neighbours' pairs can pair
    /// it with would serve no lane), of those the one whose time per token is highest (ties to
    /// the first).
    fn add_by_speed(&self, draft: &mut Draft, mut free: Vec<usize>) {
        let k = draft.lens.len();
        free.sort_by_key(|&i| (std::cmp::Reverse(self.members[i].work_per_sec), i));
        for i in free {
            let counts: Vec<usize> = draft.replicas.iter().map(Vec::len).collect();
            let idle_with: Vec<usize> = (0..k)
                .map(|s| {
                    let mut with = counts.clone();
                    with[s] += 1;
                    with.iter().max().unwrap_or(&0) - running_lanes(&with)
                })
                .collect();
            let target = (0..k)
                .filter(|&s| self.cap(i, s, k) >= draft.lens[s])
                .max_by(|&a, &b| {
                    let ta = self.time(draft.lens[a], a, k, &draft.replicas[a]);
                    let tb = self.time(draft.lens[b], b, k, &draft.replicas[b]);
                    (idle_with[b].cmp(&idle_with[a]))
                        .then(ta.cmp_with(&tb))
                        .then(b.cmp(&a))
                });
            if let Some(s) = target {
                draft.replicas[s].push(i);
            }
        }
    }

    /// The most layers stage `s` can take: what its smallest replica holds.
    fn stage_cap(&self, draft: &Draft, s: usize) -> usize {
        let k = draft.lens.len();
        let caps = draft.replicas[s].iter().map(|&i| self.cap(i, s, k));
        caps.min().unwrap_or(0).min(self.n_layers)
    }

    /// Stage lengths minimising the slowest stage's time for these replicas: one layer each,
    /// then each next layer where the time grows least, within the caps.
    fn water_fill(&self, draft: &Draft) -> Option<Vec<usize>> {
        let k = draft.lens.len();
        let caps: Vec<usize> = (0..k).map(|s| self.stage_cap(draft, s)).collect();
        if self.n_layers < k || caps.contains(&0) {
            return None;
        }
        self.fill(draft, vec![1; k], self.n_layers - k, &caps)
    }

    /// `lens` with `extra` more layers, each on the stage whose time grows least (ties to the
    /// first) and never past its cap in `caps`; `None` when they do not fit.
    fn fill(
        &self,
        draft: &Draft,
        mut lens: Vec<usize>,
        extra: usize,
        caps: &[usize],
    ) -> Option<Vec<usize>> {
        let k = lens.len();
        for _ in 0..extra {
            let s = (0..k).filter(|&s| lens[s] < caps[s]).min_by(|&a, &b| {
                let ta = self.time(lens[a] + 1, a, k, &draft.replicas[a]);
                let tb = self.time(lens[b] + 1, b, k, &draft.replicas[b]);
                ta.cmp_with(&tb).then(a.cmp(&b))
            })?;
            lens[s] += 1;
        }
        Some(lens)
    }

    /// The plan of the chosen draft, or of none (every member unplaced).
    fn plan(&self, draft: Option<Draft>) -> Plan {
        let draft = draft.unwrap_or(Draft {
            lens: Vec::new(),
            replicas: Vec::new(),
        });
        let k = draft.lens.len();
        let mut start = 0;
        let mut stages = Vec::with_capacity(k);
        for s in 0..k {
            let (embedding, head) = Self::ends(s, k);
            let replicas: Vec<NodeId> = draft.replicas[s]
                .iter()
                .map(|&i| self.members[i].node)
                .collect();
            stages.push(StagePlan {
                layers: start..start + draft.lens[s],
                embedding,
                head,
                replicas,
            });
            start += draft.lens[s];
        }
        let placed: Vec<usize> = draft.replicas.concat();
        let unplaced = (0..self.members.len())
            .filter(|i| !placed.contains(i))
            .map(|i| {
                let m = &self.members[i];
                let why = match self.footprint.max_layers(m.memory_budget, false, false) {
                    0 => Unplaced::CannotHoldALayer,
                    _ => Unplaced::NoStageFits,
                };
                (m.node, why)
            })
            .collect();
        Plan {
            n_layers: self.n_layers,
            stages,
            unplaced,
        }
    }
}
