//! Which lanes a stage node serves, and through which neighbours (`docs/pipeline.md`, "Roles"
//! and "Failover"): a stage with fewer replicas than there are lanes serves several with each,
//! and a lane member that is down is stood in for by the first other replica of its stage that
//! is up, which then serves its lanes too. Pure: every party computes the same routes from the
//! same plan and the same members up, without a message; [`LaneWires`] keeps a stage node's
//! served lanes from them, fed by the driver.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use neuroshard_p2p::PeerId;
use neuroshard_pipeline::Direction;
use neuroshard_primitives::NodeId;

use crate::Result;
use crate::lane::{LaneRounds, Notice};
use crate::link::{LaneLink, Routes};
use crate::role::Role;

/// One lane this node serves at its stage, and its neighbours on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LanePath {
    /// The lane.
    pub(crate) lane: usize,
    /// Its holder of the previous stage (none on the first stage).
    pub(crate) prev: Option<NodeId>,
    /// Its holder of the next stage (none on the last stage).
    pub(crate) next: Option<NodeId>,
    /// The lane's first-stage member in the plan, whose data assignment every holder of the
    /// lane reads, a stand-in included.
    pub(crate) data_node: NodeId,
}

/// Lanes through `grid` (stage by stage, each stage's replicas in order): as many as the most
/// replicas any stage has.
pub(crate) fn lane_count(grid: &[Vec<NodeId>]) -> usize {
    grid.iter().map(Vec::len).max().unwrap_or(0)
}

/// The replica of stage `stage` that lane `lane` belongs to, its member ([`slots`]).
pub(crate) fn member(grid: &[Vec<NodeId>], stage: usize, lane: usize) -> Option<NodeId> {
    let slot = *slots(grid).get(stage)?.get(lane)?;
    grid[stage].get(slot).copied()
}

/// Each stage's replica index for every lane (`docs/pipeline.md`, "Roles"). Replica `i` of a
/// stage with `n` replicas serves lane `i`. Frames name no lane, so two lanes through the same
/// two nodes of neighbouring stages cannot both run ([`lanes`]); the later lanes of a stage
/// with fewer replicas than lanes take, of these candidates, the first that leaves the most
/// lanes running with the stages before it: each turn `k` (lane `l ≥ n` to replica
/// `(l + k·⌊l / n⌋) mod n`: each run of `n` lanes takes every replica once, turned by `k` more
/// than the run before), then [`paired`]. With every member up that runs every lane wherever
/// the pool's bound allows (`neuroshard_pool::running_lanes`; with `k = 0` for all, two stages
/// of 2 replicas before one of 4 ran 2 lanes of 4; the turns alone left 4, 2 and 5 at 4 of 5).
fn slots(grid: &[Vec<NodeId>]) -> Vec<Vec<usize>> {
    let n_lanes = lane_count(grid);
    let turned = |n: usize, k: usize| -> Vec<usize> {
        (0..n_lanes).map(|l| (l % n + k * (l / n)) % n).collect()
    };
    let mut slots: Vec<Vec<usize>> = Vec::with_capacity(grid.len());
    let mut running: Vec<usize> = (0..n_lanes).collect();
    for stage in grid {
        let n = stage.len();
        if n == 0 {
            slots.push(Vec::new());
            running.clear();
            continue;
        }
        let Some(prev) = slots.last().filter(|p| !p.is_empty() && n < n_lanes) else {
            slots.push(turned(n, 0));
            continue;
        };
        let keep = |now: &[usize]| -> Vec<usize> {
            let mut pairs = BTreeSet::new();
            (running.iter().copied())
                .filter(|&l| pairs.insert((prev[l], now[l])))
                .collect()
        };
        // The first of the candidates that keeps the most lanes running.
        let best = (0..n)
            .map(|k| turned(n, k))
            .chain(std::iter::once(paired(n, prev, &running)))
            .min_by_key(|now| std::cmp::Reverse(keep(now).len()))
            .unwrap_or_default();
        running = keep(&best);
        slots.push(best);
    }
    slots
}

/// A stage of `n` replicas' replica for every lane, after a stage whose replica for lane `l`
/// is `prev[l]`, chosen lane by lane: replica `i` keeps lane `i`; then the `running` lanes, the
/// ones whose previous replica serves most of them first, each take the least loaded replica
/// not yet paired with that previous one (at most `⌈lanes / n⌉` lanes a replica); then the
/// lanes that do not run take what is left. Where the turns pair a lane's previous replica
/// with one it already has (4, 2 and 5 replicas: lane 4 meets lane 0's pair), this spreads them.
fn paired(n: usize, prev: &[usize], running: &[usize]) -> Vec<usize> {
    let n_lanes = prev.len();
    let most = n_lanes.div_ceil(n);
    let runs = |l: usize| running.contains(&l);
    let mut load = vec![0usize; n];
    let mut pairs = BTreeSet::new();
    let mut now: Vec<usize> = (0..n_lanes).collect();
    for l in 0..n.min(n_lanes) {
        load[l] += 1;
        if runs(l) {
            pairs.insert((prev[l], l));
        }
    }
    let sharing = |l: usize| running.iter().filter(|&&r| prev[r] == prev[l]).count();
    let mut rest: Vec<usize> = (n..n_lanes).collect();
    rest.sort_by_key(|&l| (!runs(l), std::cmp::Reverse(runs(l).then(|| sharing(l))), l));
    for l in rest {
        let open = |r: &usize| load[*r] < most;
        let unpaired = |r: &usize| !runs(l) || !pairs.contains(&(prev[l], *r));
        let least = |r: &usize| (load[*r], *r);
        let pick = (0..n)
            .filter(|r| open(r) && unpaired(r))
            .min_by_key(least)
            .or_else(|| (0..n).filter(open).min_by_key(least))
            .unwrap_or(0);
        load[pick] += 1;
        now[l] = pick;
        if runs(l) {
            pairs.insert((prev[l], pick));
        }
    }
    now
}

/// The node whose data assignment lane `lane` reads: its member of the first stage with the
/// most replicas, which belongs to no other lane.
pub(crate) fn data_node(grid: &[Vec<NodeId>], lane: usize) -> Option<NodeId> {
    let widest = grid.iter().position(|s| s.len() == lane_count(grid))?;
    member(grid, widest, lane)
}

/// Who holds a stage whose replicas are `replicas` for a lane whose member there is `member`:
/// the member when up, else the stand-in, the stage's first other replica that is up; `None`
/// when no replica of the stage is up.
fn holder(replicas: &[NodeId], member: NodeId, up: &impl Fn(&NodeId) -> bool) -> Option<NodeId> {
    if up(&member) {
        return Some(member);
    }
    replicas.iter().copied().find(|n| *n != member && up(n))
}

/// Each lane's holders, stage by stage; `None` for a lane that cannot run: a stage with no
/// replica up, or two neighbouring holders that another lane already joins (frames name no
/// lane, so two lanes through the same pair of nodes could not be told apart; with every member
/// up that happens only where two neighbouring stages have fewer pairs of replicas than there
/// are lanes, or [`slots`] found no turn that avoids it). Lanes with fewer stand-ins take their
/// pairs first, then the lower lane: a lane on its own members keeps them.
pub(crate) fn lanes(
    grid: &[Vec<NodeId>],
    up: &impl Fn(&NodeId) -> bool,
) -> Vec<Option<Vec<NodeId>>> {
    let slots = slots(grid);
    let member = |stage: usize, lane: usize| Some(grid[stage][*slots[stage].get(lane)?]);
    let mut chains: Vec<Option<Vec<NodeId>>> = (0..lane_count(grid))
        .map(|lane| {
            (0..grid.len())
                .map(|s| holder(&grid[s], member(s, lane)?, up))
                .collect()
        })
        .collect();
    let stand_ins = |lane: usize, chain: &[NodeId]| {
        let home = (chain.iter().enumerate()).filter(|(s, n)| member(*s, lane) == Some(**n));
        chain.len() - home.count()
    };
    let mut order: Vec<(usize, usize)> = (chains.iter().enumerate())
        .filter_map(|(lane, chain)| Some((stand_ins(lane, chain.as_deref()?), lane)))
        .collect();
    order.sort_unstable();
    let mut joined = BTreeSet::new();
    for (_, lane) in order {
        let chain = chains[lane].as_deref().unwrap_or_default();
        let pairs: Vec<(NodeId, NodeId)> = chain.windows(2).map(|w| (w[0], w[1])).collect();
        if pairs.iter().any(|p| joined.contains(p)) {
            chains[lane] = None;
        } else {
            joined.extend(pairs);
        }
    }
    chains
}

/// The lanes `me`, a replica of stage `stage`, serves, in lane order: its own while it runs,
/// and each lane it stands in for.
pub(crate) fn paths(
    grid: &[Vec<NodeId>],
    stage: usize,
    me: NodeId,
    up: &impl Fn(&NodeId) -> bool,
) -> Vec<LanePath> {
    let chains = lanes(grid, up);
    let served = chains.into_iter().enumerate().filter_map(|(lane, chain)| {
        let chain = chain?;
        (chain.get(stage) == Some(&me)).then(|| LanePath {
            lane,
            prev: stage.checked_sub(1).map(|s| chain[s]),
            next: chain.get(stage + 1).copied(),
            data_node: data_node(grid, lane).unwrap_or(me),
        })
    });
    served.collect()
}

/// A stage node's lanes: the members that are gone, the lanes it serves now with each one's
/// neighbours' rounds and cuts, and the routes its training thread reads. The driver feeds it
/// disconnections, notices and this node's rounds (`base`: its own, with no neighbour).
#[derive(Debug)]
pub(crate) struct LaneWires {
    grid: Vec<Vec<NodeId>>,
    stage: usize,
    me: NodeId,
    /// Every member of the plan's lanes, by peer.
    members: BTreeMap<PeerId, NodeId>,
    /// Members that disconnected and have not said since that they are on this node's round.
    gone: BTreeSet<NodeId>,
    /// The lanes served now, by lane.
    served: BTreeMap<usize, Served>,
    /// What the training thread reads.
    routes: Arc<Routes>,
}

/// One lane served: its link, and its neighbours' rounds.
#[derive(Debug)]
struct Served {
    link: LaneLink,
    rounds: LaneRounds,
}

impl Served {
    fn sides(&self) -> impl Iterator<Item = (Direction, PeerId)> + '_ {
        let prev = self.link.prev.map(|p| (Direction::Prev, p));
        prev.into_iter()
            .chain(self.link.next.map(|p| (Direction::Next, p)))
    }
}

impl LaneWires {
    /// The lanes of `role`'s plan as seen by `me`, every member up; the routes go to `routes`.
    pub(crate) fn new(role: &Role, me: NodeId, routes: Arc<Routes>) -> Result<Self> {
        let nodes = role.grid.iter().flatten().copied();
        let members = nodes
            .map(|n| Ok((neuroshard_p2p::identity::peer_id(&n)?, n)))
            .collect::<Result<_>>()?;
        Ok(Self {
            grid: role.grid.clone(),
            stage: role.stage,
            me,
            members,
            gone: BTreeSet::new(),
            served: BTreeMap::new(),
            routes,
        })
    }

    /// The lanes of a new plan in which this node keeps its stage (`docs/replan.md`): the
    /// members and the grid are the new role's; a member new to the lanes (a joiner, placed
    /// long before it has resynced its stage) is gone until it says it is on this node's round,
    /// as a restarted one is, and the members gone stay gone. The next
    /// [`LaneWires::reroute`] keeps each served lane whose neighbours did not change.
    pub(crate) fn replan(&mut self, role: &Role) -> Result<()> {
        let fresh = Self::new(role, self.me, Arc::clone(&self.routes))?;
        let known = |n: &NodeId| self.members.values().any(|m| m == n);
        let new: Vec<NodeId> = fresh
            .members
            .values()
            .filter(|n| !known(n))
            .copied()
            .collect();
        self.gone.extend(new);
        self.gone.retain(|n| fresh.members.values().any(|m| m == n));
        self.members = fresh.members;
        self.grid = fresh.grid;
        Ok(())
    }

    /// Whether `peer` holds a place in the plan's lanes (its frames are filed: it may be, or
    /// become at a job's start, a neighbour).
    pub(crate) fn accepts(&self, peer: PeerId) -> bool {
        self.members.contains_key(&peer)
    }

    /// The lanes served through `connected` members (this node always counts as up), each
    /// lane whose neighbours did not change kept as it was; whether the lanes served changed.
    pub(crate) fn reroute(
        &mut self,
        base: &LaneRounds,
        connected: impl Fn(&NodeId) -> bool,
    ) -> bool {
        let (me, gone) = (self.me, &self.gone);
        let up = |n: &NodeId| *n == me || (connected(n) && !gone.contains(n));
        let peer = |n: NodeId| self.members.iter().find(|(_, m)| **m == n).map(|(p, _)| *p);
        let before: Vec<(usize, Option<PeerId>, Option<PeerId>)> = (self.served.values())
            .map(|s| (s.link.lane, s.link.prev, s.link.next))
            .collect();
        let mut served = BTreeMap::new();
        for path in paths(&self.grid, self.stage, me, &up) {
            let link = LaneLink {
                lane: path.lane,
                prev: path.prev.and_then(peer),
                next: path.next.and_then(peer),
                data_node: path.data_node,
                cut: Arc::default(),
            };
            let kept = (self.served.remove(&path.lane)).filter(|s| s.link.same_path(&link));
            let rounds = base.fresh();
            served.insert(path.lane, kept.unwrap_or(Served { link, rounds }));
        }
        self.served = served;
        self.routes
            .set(self.served.values().map(|s| s.link.clone()).collect());
        let after = self
            .served
            .values()
            .map(|s| (s.link.lane, s.link.prev, s.link.next));
        !before.into_iter().eq(after)
    }

    /// The lanes served now.
    pub(crate) fn lanes(&self) -> Vec<usize> {
        self.served.keys().copied().collect()
    }

    /// `peer` disconnected: a member of the lanes is gone until it says it is on this node's
    /// round, and a lane it was a neighbour on is broken ([`LaneRounds::lose`]); whether it was
    /// a member (the lanes must be routed again).
    pub(crate) fn lose(&mut self, peer: PeerId) -> bool {
        let Some(node) = self.members.get(&peer) else {
            return false;
        };
        self.gone.insert(*node);
        for served in self.served.values_mut() {
            if let Some(side) = served.link.side(peer) {
                served.rounds.lose(side);
            }
        }
        true
    }

    /// `peer` said `notice`: a gone member on this node's round is back (it holds its lane
    /// again from this node's next job); a neighbour's notice goes to its lane. Whether a
    /// lane's rounds changed.
    pub(crate) fn hear(&mut self, base: &LaneRounds, peer: PeerId, notice: Notice) -> bool {
        if let Some(node) = self.members.get(&peer)
            && base.on_my_round(notice.needs)
            && self.gone.remove(node)
        {
            tracing::info!(%peer, round = notice.needs, "a lost lane member is back: its lane goes back to it at this node's next job");
        }
        let mut changed = false;
        for served in self.served.values_mut() {
            if let Some(side) = served.link.side(peer) {
                changed |= served.rounds.hear(side, notice);
            }
        }
        changed
    }

    /// Applies `update` to every served lane's rounds; whether any changed.
    pub(crate) fn update(&mut self, update: impl Fn(&mut LaneRounds) -> bool) -> bool {
        (self.served.values_mut()).fold(false, |changed, s| update(&mut s.rounds) | changed)
    }

    /// The lowest round any served lane still trains ([`LaneRounds::wanted`]).
    pub(crate) fn wanted(&self, base: &LaneRounds) -> u64 {
        (self.served.values()).fold(base.own(), |w, s| w.min(s.rounds.wanted()))
    }

    /// Sets every served lane's cuts; whether a lane's neighbour was lost or came back.
    pub(crate) fn set_cuts(&self) -> bool {
        let flipped = self
            .served
            .values()
            .map(|s| s.link.cut.set(&s.rounds) != s.rounds.broken());
        flipped.fold(false, |a, b| a | b)
    }

    /// Whether a served lane has a lost neighbour.
    pub(crate) fn broken(&self) -> bool {
        self.served.values().any(|s| s.rounds.broken())
    }

    /// Every job stops at its next wait or send (the node is stopping).
    pub(crate) fn stop(&self) {
        self.served.values().for_each(|s| s.link.cut.all());
        self.routes.set(Vec::new());
    }

    /// The notices to send: each served lane's neighbours theirs ([`LaneRounds::notice_for`]),
    /// and every other member of the lanes this node's rounds (so a stand-in, and the neighbours
    /// of this node's lane, learn that it is back after a restart).
    pub(crate) fn notices(&self, base: &LaneRounds) -> Vec<(PeerId, Notice)> {
        let mut notices: BTreeMap<PeerId, Notice> = BTreeMap::new();
        for served in self.served.values() {
            for (side, peer) in served.sides() {
                notices.insert(peer, served.rounds.notice_for(side));
            }
        }
        for (peer, node) in &self.members {
            if *node != self.me {
                notices
                    .entry(*peer)
                    .or_insert(base.notice_for(Direction::Next));
            }
        }
        notices.into_iter().collect()
    }

    /// A job starts on the lanes served now: their data nodes.
    pub(crate) fn start_job(&self) -> Vec<NodeId> {
        let lanes = self.routes.start_job();
        lanes.iter().map(|l| l.data_node).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `stages` × `lanes` members, node `10 · stage + lane`.
    fn grid(stages: u8, lanes: u8) -> Vec<Vec<NodeId>> {
        (0..stages)
            .map(|s| (0..lanes).map(|l| n(s, l)).collect())
            .collect()
    }

    fn n(stage: u8, lane: u8) -> NodeId {
        NodeId([10 * stage + lane; 32])
    }

    fn all_but(down: &[NodeId]) -> impl Fn(&NodeId) -> bool + use<> {
        let down = down.to_vec();
        move |node| !down.contains(node)
    }

    /// Every lane `me` serves, with its neighbours, as (lane, prev, next).
    fn served(
        grid: &[Vec<NodeId>],
        stage: u8,
        lane: u8,
        down: &[NodeId],
    ) -> Vec<(usize, Option<NodeId>, Option<NodeId>)> {
        paths(grid, stage as usize, n(stage, lane), &all_but(down))
            .into_iter()
            .map(|p| (p.lane, p.prev, p.next))
            .collect()
    }

    #[test]
    fn with_every_member_up_each_serves_its_own_lane() {
        let g = grid(3, 2);
        assert_eq!(
            served(&g, 1, 0, &[]),
            vec![(0, Some(n(0, 0)), Some(n(2, 0)))]
        );
        assert_eq!(served(&g, 0, 1, &[]), vec![(1, None, Some(n(1, 1)))]);
        assert_eq!(served(&g, 2, 1, &[]), vec![(1, Some(n(1, 1)), None)]);
    }

    #[test]
    fn the_lost_members_neighbours_and_its_stand_in_agree_on_the_detour() {
        let g = grid(3, 2);
        let down = [n(1, 0)];
        // The stand-in serves both lanes; each neighbour of the lost member routes through it.
        assert_eq!(
            served(&g, 1, 1, &down),
            vec![
                (0, Some(n(0, 0)), Some(n(2, 0))),
                (1, Some(n(0, 1)), Some(n(2, 1)))
            ]
        );
        assert_eq!(served(&g, 0, 0, &down), vec![(0, None, Some(n(1, 1)))]);
        assert_eq!(served(&g, 2, 0, &down), vec![(0, Some(n(1, 1)), None)]);
        // The other lane is unchanged, and the lane keeps its data.
        assert_eq!(served(&g, 0, 1, &down), vec![(1, None, Some(n(1, 1)))]);
        let path = &paths(&g, 1, n(1, 1), &all_but(&down))[0];
        assert_eq!(path.data_node, n(0, 0));
        // A first-stage member lost: its lane still reads its data.
        let path = &paths(&g, 0, n(0, 1), &all_but(&[n(0, 0)]))[0];
        assert_eq!((path.lane, path.data_node), (0, n(0, 0)));
    }

    #[test]
    fn the_lowest_other_lane_up_stands_in_and_none_left_leaves_the_lane_idle() {
        let g = grid(2, 3);
        let holder = |lane: usize, down: &[NodeId]| lanes(&g, &all_but(down))[lane].clone();
        assert_eq!(holder(0, &[n(1, 0)]), Some(vec![n(0, 0), n(1, 1)]));
        let down = [n(1, 0), n(1, 1)];
        assert_eq!(holder(0, &down), Some(vec![n(0, 0), n(1, 2)]));
        assert_eq!(holder(1, &down), Some(vec![n(0, 1), n(1, 2)]));
        assert_eq!(served(&g, 1, 2, &down).len(), 3);
        // Every replica of stage 1 down: no lane runs, and nobody serves one.
        let down = [n(1, 0), n(1, 1), n(1, 2)];
        assert_eq!(lanes(&g, &all_but(&down)), vec![None, None, None]);
        assert!(served(&g, 0, 0, &down).is_empty());
    }

    /// `count` nodes with real keys (their peer ids are derived from them).
    fn keyed(count: u8) -> Vec<NodeId> {
        let key = |i| neuroshard_primitives::Keypair::from_seed([i; 32]).node_id();
        (1..=count).map(key).collect()
    }

    /// The role of the first replica of stage 0 of 2 over `grid`.
    fn first_of_two(grid: Vec<Vec<NodeId>>) -> Role {
        Role {
            stage: 0,
            stages: 2,
            spec: neuroshard_model::StageSpec {
                embedding: true,
                layers: 0..1,
                head: false,
            },
            n_layers: 2,
            lane: 0,
            lanes: grid.iter().map(Vec::len).max().unwrap(),
            replicas: grid[0].clone(),
            prev: None,
            next: Some(grid[1][0]),
            data_node: grid[0][0],
            grid,
        }
    }

    /// Stage 0 of lane 0 in 2 stages × 2 lanes: its next neighbour X dies, the stand-in takes
    /// X's place from the next job, and X gets it back once it says it is on this node's round.
    #[test]
    fn a_lost_neighbour_is_routed_around_and_back_once_it_is_on_our_round() {
        let ids = keyed(4);
        let role = first_of_two(vec![vec![ids[0], ids[1]], vec![ids[2], ids[3]]]);
        let routes = Arc::new(Routes::default());
        let mut wires = LaneWires::new(&role, ids[0], Arc::clone(&routes)).unwrap();
        let mut base = LaneRounds::default();
        base.set_own(5);
        let peer = |n: NodeId| neuroshard_p2p::identity::peer_id(&n).unwrap();
        let next = || routes.start_job().first().and_then(|l| l.next);
        let mut up: BTreeSet<NodeId> = ids.iter().copied().collect();
        assert!(wires.reroute(&base, |n| up.contains(n)));
        assert_eq!(next(), Some(peer(ids[2])));
        assert_eq!(
            wires.notices(&base).len(),
            3,
            "every other member hears this node"
        );
        up.remove(&ids[2]);
        assert!(wires.lose(peer(ids[2])));
        assert!(wires.reroute(&base, |n| up.contains(n)));
        assert_eq!(next(), Some(peer(ids[3])), "stage 1 of lane 1 stands in");
        // X is restarted: it connects, then says round 0 until it has resynced.
        up.insert(ids[2]);
        assert!(
            !wires.reroute(&base, |n| up.contains(n)),
            "gone until it says so"
        );
        let says = |round| Notice {
            needs: round,
            serves: round,
        };
        wires.hear(&base, peer(ids[2]), says(0));
        assert!(!wires.reroute(&base, |n| up.contains(n)));
        wires.hear(&base, peer(ids[2]), says(5));
        assert!(wires.reroute(&base, |n| up.contains(n)));
        assert_eq!(
            next(),
            Some(peer(ids[2])),
            "back on this node's round: its lane again"
        );
        assert!(!wires.lose(PeerId::random()), "not a member of the lanes");
    }

    /// 2 stages × 2 lanes, then a joiner J as a third replica of stage 1 (a third lane): the
    /// first-stage replica that now serves lane 2 too does not route it through J until J says
    /// it is on this node's round, as for a restarted member.
    #[test]
    fn a_joiner_holds_its_lane_only_once_it_is_on_our_round() {
        let ids = keyed(5);
        let role = first_of_two;
        let before = vec![vec![ids[0], ids[1]], vec![ids[2], ids[3]]];
        let routes = Arc::new(Routes::default());
        let mut wires = LaneWires::new(&role(before), ids[0], Arc::clone(&routes)).unwrap();
        let mut base = LaneRounds::default();
        base.set_own(5);
        let everyone = |_: &NodeId| true;
        assert!(wires.reroute(&base, everyone));
        assert_eq!(wires.lanes(), vec![0]);
        let joined = vec![vec![ids[0], ids[1]], vec![ids[2], ids[3], ids[4]]];
        wires.replan(&role(joined)).unwrap();
        let peer = |n: NodeId| neuroshard_p2p::identity::peer_id(&n).unwrap();
        assert!(wires.accepts(peer(ids[4])), "the joiner's frames are filed");
        // Lane 2 is this replica's too, but until J is on our round its only stand-in would
        // join this node to its lane-0 neighbour again: the lane stays idle.
        assert!(!wires.reroute(&base, everyone));
        assert_eq!(wires.lanes(), vec![0]);
        let says = |round| Notice {
            needs: round,
            serves: round,
        };
        wires.hear(&base, peer(ids[4]), says(0));
        assert!(
            !wires.reroute(&base, everyone),
            "J says round 0 while it resyncs"
        );
        wires.hear(&base, peer(ids[4]), says(5));
        assert!(wires.reroute(&base, everyone));
        assert_eq!(wires.lanes(), vec![0, 2]);
        let lane_2 = routes
            .start_job()
            .into_iter()
            .find(|l| l.lane == 2)
            .unwrap();
        assert_eq!(
            lane_2.next,
            Some(peer(ids[4])),
            "J's lane from the next job on"
        );
    }

    /// Stage s with `counts[s]` replicas, node `10 · s + i`.
    fn uneven(counts: &[u8]) -> Vec<Vec<NodeId>> {
        (0..counts.len())
            .map(|s| (0..counts[s]).map(|i| n(s as u8, i)).collect())
            .collect()
    }

    #[test]
    fn a_stage_with_fewer_replicas_serves_several_lanes_with_each() {
        // 4 replicas of stage 0, 2 of stage 1: 4 lanes, each stage-1 replica in two of them.
        let g = uneven(&[4, 2]);
        assert_eq!(lane_count(&g), 4);
        assert_eq!(
            served(&g, 1, 0, &[]),
            vec![(0, Some(n(0, 0)), None), (2, Some(n(0, 2)), None)]
        );
        assert_eq!(served(&g, 0, 3, &[]), vec![(3, None, Some(n(1, 1)))]);
        // Each lane reads the data of its own member of the widest stage, wherever it is.
        let data: Vec<Option<NodeId>> = (0..4).map(|l| data_node(&g, l)).collect();
        assert_eq!(data, (0..4).map(|l| Some(n(0, l))).collect::<Vec<_>>());
        assert_eq!(data_node(&uneven(&[2, 3]), 2), Some(n(1, 2)));
        // One of stage 1 down: the other serves all four lanes.
        assert_eq!(served(&g, 1, 1, &[n(1, 0)]).len(), 4);
        assert_eq!(member(&g, 1, 3), Some(n(1, 1)));
        assert_eq!(member(&[vec![]], 0, 1), None, "a stage without replicas");
    }

    /// Lanes that cannot run with every member up: no two lanes may join the same two nodes.
    fn idle(counts: &[u8]) -> usize {
        let chains = lanes(&uneven(counts), &all_but(&[]));
        chains.iter().filter(|c| c.is_none()).count()
    }

    #[test]
    fn a_stage_turns_its_later_lanes_so_that_no_two_lanes_join_the_same_two_nodes() {
        // 2, 2 and 4 replicas: with replica i in lanes i and i + 2 at both stages, lanes 0 and 2
        // both joined n(0,0) to n(1,0), and lanes 2 and 3 idled; stage 1 turns its second two.
        let g = uneven(&[2, 2, 4]);
        assert_eq!(
            slots(&g),
            vec![vec![0, 1, 0, 1], vec![0, 1, 1, 0], vec![0, 1, 2, 3]]
        );
        assert_eq!(idle(&[2, 2, 4]), 0);
        assert_eq!(idle(&[2, 2, 2, 3]), 0, "tiny's 4 stages over 9 nodes");
        assert_eq!(idle(&[2, 3, 2]), 0);
        // Two neighbouring stages with fewer pairs of replicas than there are lanes: a lane
        // idles whatever the turns (3 of 5 did before).
        assert_eq!(idle(&[2, 2, 2, 2, 2, 2, 2, 5]), 1);
        assert_eq!(idle(&[1, 1, 1, 2]), 1);
        // Where no turn keeps lane 4 off lane 0's pair of nodes, the lanes are paired one by
        // one (the turns alone ran 4 of 5).
        assert_eq!(slots(&uneven(&[4, 2, 5]))[1], vec![0, 1, 0, 0, 1]);
        assert_eq!(idle(&[4, 2, 5]), 0);
    }

    /// Over every plan of 2 to 5 stages of 1 to 7 replicas, with every member up, exactly as
    /// many lanes run as the pool's planner counts on (`neuroshard_pool::running_lanes`: no
    /// more than two neighbouring stages have pairs of replicas).
    #[test]
    fn every_lane_the_pairs_of_replicas_allow_runs() {
        let mut plans: Vec<Vec<u8>> = (1..=7).map(|n| vec![n]).collect();
        let mut checked = 0;
        for _ in 1..5 {
            plans = plans
                .iter()
                .flat_map(|p| (1..=7).map(|n| [&p[..], &[n]].concat()))
                .collect();
            for counts in &plans {
                let wide: Vec<usize> = counts.iter().map(|&c| usize::from(c)).collect();
                let running = lane_count(&uneven(counts)) - idle(counts);
                assert_eq!(running, neuroshard_pool::running_lanes(&wide), "{counts:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 49 + 343 + 2401 + 16807);
    }

    /// Over every plan of 2 to 4 stages of 1 to 5 replicas: each replica serves its own lane
    /// first and as many lanes as any other of its stage, give or take one, and no fewer lanes
    /// run with every member up than with replica i in lanes i, i + n, … at every stage.
    #[test]
    fn turned_lanes_are_balanced_and_run_no_fewer_than_plain_ones() {
        let mut plans: Vec<Vec<u8>> = (1..=5).map(|n| vec![n]).collect();
        for _ in 1..4 {
            let longer = plans
                .iter()
                .flat_map(|p| (1..=5).map(|n| [&p[..], &[n]].concat()));
            plans = plans.iter().cloned().chain(longer).collect();
        }
        for counts in plans.iter().filter(|p| p.len() >= 2) {
            let g = uneven(counts);
            let n_lanes = lane_count(&g);
            for (stage, slots) in slots(&g).iter().enumerate() {
                let n = g[stage].len();
                assert_eq!(&slots[..n], &(0..n).collect::<Vec<_>>()[..], "{counts:?}");
                for replica in 0..n {
                    let lanes = slots.iter().filter(|&&r| r == replica).count();
                    assert!(lanes.abs_diff(n_lanes / n) <= 1, "{counts:?}");
                }
            }
            let mut joined = BTreeSet::new();
            let plain = (0..n_lanes).filter(|lane| {
                let pairs: Vec<_> = (1..g.len())
                    .map(|s| (s, lane % g[s - 1].len(), lane % g[s].len()))
                    .collect();
                let free = pairs.iter().all(|p| !joined.contains(p));
                free && {
                    joined.extend(pairs);
                    true
                }
            });
            assert!(n_lanes - idle(counts) >= plain.count(), "{counts:?}");
        }
    }

    #[test]
    fn a_lane_that_would_join_the_same_two_nodes_as_an_earlier_one_stays_idle() {
        // Both members of lane 0 in a 2-stage pipeline down: lane 0's detour is lane 1 itself,
        // which keeps its members.
        let g = grid(2, 2);
        let down = [n(0, 0), n(1, 0)];
        assert_eq!(
            lanes(&g, &all_but(&down)),
            vec![None, Some(vec![n(0, 1), n(1, 1)])]
        );
        assert_eq!(served(&g, 0, 1, &down), vec![(1, None, Some(n(1, 1)))]);
    }
}
