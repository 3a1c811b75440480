//! The round state machine driven by hand: three nodes, instant delivery, a fake worker.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use neuroshard_aggregate::{Rule, RuleKind};
use neuroshard_compress::{Codec, CompressConfig};
use neuroshard_node::{
    Agreement, Announcement, DeadlineAgreement, Growth, Input, LedgerAgreement, Message, Node,
    NodeConfig, Output, Round, RoundSummary, Snapshot, Timestamp, TrainingJob, TrainingResult,
};
use neuroshard_primitives::{Hash, Keypair, NodeId};
use neuroshard_train::OuterConfig;
use neuroshard_verify::{AuditConfig, Chain, Leaf};

const PARAMS: usize = 8;

/// How long a node built from scratch waits for its members' state.
const PATIENCE: Duration = Duration::from_secs(3);

/// Nodes, a queue of frames in flight and the training jobs handed out; `drop` filters frames
/// out (a lossy link).
struct Net {
    nodes: Vec<Node>,
    in_flight: VecDeque<(usize, NodeId, Vec<u8>)>,
    jobs: Vec<(usize, TrainingJob)>,
    closed: Vec<(usize, RoundSummary)>,
    penalties: Vec<(usize, NodeId)>,
    resyncs: usize,
    /// Work claims for the ledger: (node, round, Δ hash).
    claims: Vec<(usize, Round, Hash)>,
    now: Timestamp,
    /// Whether the nodes audit: jobs then come back with a chain of their one step.
    auditing: bool,
}

/// The protocol settings of a test network of `n` nodes.
fn config(n: usize) -> NodeConfig {
    NodeConfig {
        inner_steps: 1,
        round_timeout: Duration::from_secs(10),
        compress: CompressConfig::new(Codec::None),
        aggregator: Rule::for_attackers(RuleKind::Mean, n, 0).unwrap(),
        outer: OuterConfig::DILOCO,
        max_frame: 1 << 20,
        audit: None,
    }
}

/// The settings of [`config`] for nodes that audit each other: every member challenges every
/// other's contribution.
fn auditing(n: usize) -> NodeConfig {
    let audit = AuditConfig {
        auditors: (n - 1) as f64,
        segments: 1,
        ..AuditConfig::DEFAULT
    };
    NodeConfig {
        audit: Some(audit),
        ..config(n)
    }
}

impl Net {
    fn new(n: usize) -> Self {
        Self::agreeing(n, || Box::new(DeadlineAgreement))
    }

    fn agreeing(n: usize, agreement: impl Fn() -> Box<dyn Agreement>) -> Self {
        Self::with(config(n), n, agreement)
    }

    /// `n` nodes that audit each other: every member challenges every other's contribution.
    fn auditing(n: usize) -> Self {
        Self::with(auditing(n), n, || Box::new(DeadlineAgreement))
    }

    fn with(config: NodeConfig, n: usize, agreement: impl Fn() -> Box<dyn Agreement>) -> Self {
        let keys: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_seed([i as u8 + 1; 32]))
            .collect();
        let members: BTreeSet<NodeId> = keys.iter().map(Keypair::node_id).collect();
        let auditing = config.audit.is_some();
        let nodes = keys
            .into_iter()
            .map(|key| {
                Node::new(
                    key,
                    config.clone(),
                    members.clone(),
                    vec![1.0; PARAMS],
                    agreement(),
                )
                .unwrap()
            })
            .collect();
        Self {
            nodes,
            in_flight: VecDeque::new(),
            jobs: Vec::new(),
            closed: Vec::new(),
            penalties: Vec::new(),
            resyncs: 0,
            claims: Vec::new(),
            now: Timestamp::ZERO,
            auditing,
        }
    }

    fn index(&self, id: NodeId) -> usize {
        self.nodes.iter().position(|n| n.id() == id).unwrap()
    }

    /// Feeds `input` to node `i` and carries out its outputs; training jobs wait for
    /// [`Net::train`].
    fn feed(&mut self, i: usize, input: Input) {
        let outputs = self.nodes[i].handle(self.now, input);
        for output in outputs {
            let from = self.nodes[i].id();
            match output {
                Output::Broadcast(frame) => {
                    for j in (0..self.nodes.len()).filter(|j| *j != i) {
                        self.in_flight.push_back((j, from, frame.clone()));
                    }
                }
                Output::Send(to, frame) => {
                    let j = self.index(to);
                    self.in_flight.push_back((j, from, frame));
                }
                Output::Train(job) => self.jobs.push((i, job)),
                Output::Penalize { peer, .. } => self.penalties.push((i, peer)),
                Output::Resynced { .. } => self.resyncs += 1,
                Output::Closed(summary) => self.closed.push((i, summary)),
                Output::Claim { round, delta, .. } => self.claims.push((i, round, delta)),
                Output::WakeAt(_)
                | Output::Checkpoints { .. }
                | Output::Replay(_)
                | Output::Audited(_)
                | Output::Excluded { .. } => {}
            }
        }
    }

    /// Starts round 0 on every node and finishes its training jobs.
    fn start(&mut self) {
        for i in 0..self.nodes.len() {
            self.feed(i, Input::Tick);
        }
        self.train();
    }

    /// The model hash every node holds at `round`; panics if they are not all there.
    fn agreed_at(&self, round: Round) -> Hash {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.agreed_at_among(&all, round)
    }

    /// The model hash the nodes of `group` hold at `round`; panics if they are not all there.
    fn agreed_at_among(&self, group: &[usize], round: Round) -> Hash {
        let hash = self.nodes[group[0]].model_hash();
        assert!(
            group
                .iter()
                .all(|i| self.nodes[*i].round() == round && self.nodes[*i].model_hash() == hash),
            "nodes {group:?} at round {round} on one model"
        );
        hash
    }

    /// Finishes every job handed out so far: node `i` trains a Δ of `(i + 1) / 10` everywhere.
    fn train(&mut self) {
        for (i, job) in std::mem::take(&mut self.jobs) {
            let leaf = |losses| Leaf {
                checkpoint: Hash::of(&[i as u8]),
                losses,
                work: Hash::default(),
            };
            let chain = if self.auditing {
                Chain::from_leaves(vec![leaf(Vec::new()), leaf(vec![1.0])])
            } else {
                Chain::new()
            };
            let result = TrainingResult {
                round: job.round,
                start: job.start,
                delta: vec![(i as f32 + 1.0) / 10.0; self.nodes[i].params().len()],
                tokens: 1,
                loss_start: 2.0,
                loss_end: 1.0,
                chain,
            };
            self.feed(i, Input::Trained(result));
        }
    }

    /// The ledger's list of `round`: the claims of `listed`, in that order, handed to each of
    /// `to`; then delivers what follows.
    fn decide(&mut self, round: Round, listed: &[usize], to: &[usize]) {
        let list: Vec<(NodeId, Hash)> = (listed.iter())
            .map(|&i| {
                let claim = self
                    .claims
                    .iter()
                    .rev()
                    .find(|(n, r, _)| (*n, *r) == (i, round));
                (self.nodes[i].id(), claim.expect("a claim").2)
            })
            .collect();
        for &i in to {
            let list = list.clone();
            self.feed(i, Input::Decided { round, list });
        }
        self.settle(|_, _, _| false);
    }

    /// Delivers frames until none is left, skipping those `drop(to, from, message)` rejects.
    fn settle(&mut self, drop: impl Fn(usize, usize, &Message) -> bool) {
        while let Some((to, from, frame)) = self.in_flight.pop_front() {
            let (_, message) = Message::open(&frame, 1 << 20).unwrap();
            if !drop(to, self.index(from), &message) {
                self.feed(to, Input::Message(from, frame));
            }
        }
    }
}

#[test]
fn honest_nodes_apply_the_same_outer_step() {
    let mut net = Net::new(3);
    net.start();
    net.settle(|_, _, _| false);
    net.agreed_at(1);
    // Mean Δ 0.2, first Nesterov step: θ − 0.7 · (0.2 + 0.9 · 0.2).
    let expected = 1.0 - 0.7 * (0.2 + 0.9 * 0.2);
    assert!(
        net.nodes[0]
            .params()
            .iter()
            .all(|p| (p - expected).abs() < 1e-6)
    );
    assert!(net.penalties.is_empty());
}

#[test]
fn under_the_ledger_every_node_applies_its_list_in_its_order() {
    let mut net = Net::agreeing(3, || Box::new(LedgerAgreement::default()));
    net.start();
    net.settle(|_, _, _| false);
    assert!(
        net.closed.is_empty(),
        "nobody closes before the ledger decides"
    );
    assert_eq!(net.claims.len(), 3, "every node claims its work");
    // The ledger lists node 2, then node 0; node 1's claim came too late.
    let ids: Vec<NodeId> = net.nodes.iter().map(Node::id).collect();
    net.decide(0, &[2, 0], &[0, 1, 2]);
    net.agreed_at(1);
    assert_eq!(net.closed.len(), 3);
    assert!(
        net.closed
            .iter()
            .all(|(_, s)| s.included == vec![ids[2], ids[0]])
    );
    // Mean Δ of nodes 2 and 0: (0.3 + 0.1) / 2.
    let expected = 1.0 - 0.7 * (0.2 + 0.9 * 0.2);
    assert!(
        net.nodes[1]
            .params()
            .iter()
            .all(|p| (p - expected).abs() < 1e-6)
    );
    assert_eq!(net.resyncs, 0);
}

#[test]
fn a_node_missing_a_delta_closes_at_the_deadline_then_resyncs() {
    let mut net = Net::new(3);
    net.start();
    // Node 2 never receives the others' Δs: it must wait for its deadline.
    net.settle(|to, _, m| to == 2 && matches!(m, Message::Delta { .. }));
    assert_eq!(net.nodes[2].round(), 0);
    net.now = Timestamp::from_secs_f64(10.0);
    net.feed(2, Input::Tick);
    net.settle(|_, _, _| false);
    // It applied only its own Δ, was outvoted and installed the majority's model.
    assert_eq!(net.resyncs, 1);
    net.agreed_at(1);
}

/// A Δ lost on the way is asked for again a tenth of the deadline after the node first missed
/// it (at a tick), and the round closes on it long before the deadline: no split, no resync.
#[test]
fn a_delta_lost_on_the_way_is_asked_for_again_and_the_round_closes_before_its_deadline() {
    let mut net = Net::new(3);
    net.start();
    net.settle(|to, _, m| to == 2 && matches!(m, Message::Delta { .. }));
    let tick = |net: &mut Net, secs: f64| {
        net.now = Timestamp::from_secs_f64(secs);
        net.feed(2, Input::Tick);
        net.in_flight.len()
    };
    assert_eq!(
        tick(&mut net, 1.0),
        0,
        "missed since this tick: asked for once already"
    );
    assert_eq!(
        tick(&mut net, 1.5),
        0,
        "not yet a tenth of the 10 s deadline"
    );
    assert_eq!(tick(&mut net, 2.0), 2, "both Δs asked for again");
    net.settle(|_, _, _| false);
    net.agreed_at(1);
    assert_eq!(net.resyncs, 0);
    assert!(net.closed.iter().all(|(_, s)| s.included.len() == 3));
    assert_eq!(tick(&mut net, 3.0), 0, "nothing is missing any more");
}

#[test]
fn a_delta_of_another_size_than_the_model_counts_nowhere_and_the_round_goes_on() {
    let mut net = Net::new(3);
    for i in 0..3 {
        net.feed(i, Input::Tick);
    }
    // Node 0's job trained the model at another size (its stage grew while the job ran).
    let (_, job) = net.jobs.remove(0);
    let result = TrainingResult {
        round: job.round,
        start: job.start,
        delta: vec![0.1; PARAMS + 5],
        tokens: 1,
        loss_start: 2.0,
        loss_end: 1.0,
        chain: neuroshard_verify::Chain::new(),
    };
    net.feed(0, Input::Trained(result));
    net.train();
    net.settle(|_, _, _| false);
    net.now = Timestamp::from_secs_f64(10.0);
    for i in 0..3 {
        net.feed(i, Input::Tick);
    }
    net.settle(|_, _, _| false);
    net.agreed_at(1);
    let included: Vec<usize> = net.closed.iter().map(|(_, s)| s.included.len()).collect();
    assert_eq!(included, vec![2; 3], "nodes 1 and 2's Δs, on every node");
}

#[test]
fn garbage_and_equivocation_are_penalised() {
    let mut net = Net::new(3);
    let stranger = Keypair::from_seed([9; 32]).node_id();
    net.feed(0, Input::Message(stranger, vec![0xff; 40]));
    assert_eq!(net.penalties, vec![(0, stranger)]);

    net.feed(0, Input::Tick);
    net.feed(1, Input::Tick);
    let liar = Keypair::from_seed([2; 32]);
    let announce = |len| {
        Message::Announce(neuroshard_node::Announcement {
            round: 0,
            base: net.nodes[0].model_hash(),
            delta: neuroshard_primitives::Hash::of(b"x"),
            delta_len: len,
            tokens: 1,
            loss_start: 1.0,
            loss_end: 1.0,
            commitment: None,
            memory_budget: u64::MAX,
        })
    };
    let (first, second) = (announce(1).seal(&liar), announce(2).seal(&liar));
    net.feed(0, Input::Message(liar.node_id(), first));
    net.feed(0, Input::Message(liar.node_id(), second));
    assert_eq!(net.penalties.last(), Some(&(0, liar.node_id())));
}

#[test]
fn a_late_joiner_catches_up_from_the_votes() {
    let mut net = Net::new(4);
    // Nodes 0 to 2 run round 0 among themselves; node 3 has not started.
    let three: BTreeSet<NodeId> = net.nodes[..3].iter().map(Node::id).collect();
    for i in 0..3 {
        let outputs = net.nodes[i].set_members(net.now, three.clone());
        assert!(outputs.is_empty());
        net.feed(i, Input::Tick);
    }
    net.train();
    net.settle(|to, _, _| to == 3);
    assert!(net.nodes[..3].iter().all(|n| n.round() == 1));
    // Node 3 hears the three votes (as a joining node's driver would be greeted), asks for the
    // state and installs it.
    for i in 0..3 {
        let vote = Message::ModelHash {
            round: 0,
            hash: net.nodes[i].model_hash(),
        };
        let frame = vote.seal(&Keypair::from_seed([i as u8 + 1; 32]));
        net.feed(3, Input::Message(net.nodes[i].id(), frame));
    }
    net.settle(|_, _, _| false);
    assert_eq!(net.resyncs, 1);
    assert_eq!(net.nodes[3].round(), 1);
    assert_eq!(net.nodes[3].model_hash(), net.nodes[0].model_hash());
    assert_eq!(net.nodes[3].snapshot(), net.nodes[0].snapshot());
}

#[test]
fn an_even_split_heals_on_the_lowest_hash_and_the_stale_deltas_count_nowhere() {
    let mut net = Net::new(4);
    net.start();
    // Node 3's Δ reaches nodes 1 and 2 only after their deadline: nodes 0 and 3 apply four Δs
    // (at 5 s), nodes 1 and 2 three (at 10 s). Two against two: no majority.
    net.now = Timestamp::from_secs_f64(5.0);
    net.settle(|to, from, m| from == 3 && to != 0 && matches!(m, Message::Delta { .. }));
    net.now = Timestamp::from_secs_f64(10.0);
    for i in 1..3 {
        net.feed(i, Input::Tick);
    }
    net.settle(|_, _, _| false);
    let split: BTreeSet<Hash> = net.closed.iter().map(|(_, s)| s.model_hash).collect();
    assert_eq!(split.len(), 2);
    assert_eq!(net.resyncs, 2, "the pair with the higher hash resyncs");
    assert_eq!(Some(&net.agreed_at(1)), split.first());

    // The resynced pair's round-1 jobs started from the model it replaced: their Δs are announced
    // but neither waited for nor applied, on either side.
    net.closed.clear();
    net.train();
    net.settle(|_, _, _| false);
    net.agreed_at(2);
    assert_eq!(net.closed.len(), 4);
    assert!(net.closed.iter().all(|(_, s)| s.included.len() == 2));
    assert!(net.penalties.is_empty());
}

impl Net {
    /// Four nodes of which 0 to 2 ran `rounds` rounds among themselves; node 3 has not started.
    fn three_of_four_ran(rounds: usize) -> Self {
        let mut net = Net::new(4);
        net.partition(&[0, 1, 2]);
        for i in 0..3 {
            net.feed(i, Input::Tick);
        }
        net.run_group(&[0, 1, 2], rounds);
        net
    }

    /// Node `i` restarted from genesis with its key (no checkpoint, as a pipeline stage
    /// restarts), every node of the net its member; its jobs are gone.
    fn restart(&mut self, i: usize) {
        let key = Keypair::from_seed([i as u8 + 1; 32]);
        let members: BTreeSet<NodeId> = self.nodes.iter().map(Node::id).collect();
        let n = self.nodes.len();
        let agreement = Box::new(DeadlineAgreement);
        self.nodes[i] = Node::new(key, config(n), members, vec![1.0; PARAMS], agreement).unwrap();
        self.jobs.retain(|(j, _)| *j != i);
    }

    /// Node `i` built again from genesis at `round` under the ledger, with `config`, that trains
    /// its first round at once from genesis (`Node::resume` of a seed snapshot): what a stage
    /// replica built from scratch does when no mate answered within its patience, or a member
    /// that does not wait at all. The daemon's own build is [`Net::rebuild`]. Its jobs are
    /// dropped.
    fn restart_fresh(&mut self, i: usize, round: Round, config: NodeConfig) {
        let fresh = Snapshot {
            round,
            params: vec![1.0; PARAMS],
            outer: vec![0; PARAMS * size_of::<f32>()],
            excluded: BTreeMap::new(),
            pool: Vec::new(),
        };
        let key = Keypair::from_seed([i as u8 + 1; 32]);
        let members: BTreeSet<NodeId> = self.nodes.iter().map(Node::id).collect();
        let agreement = Box::new(LedgerAgreement::default());
        self.nodes[i] = Node::resume(key, config, members, fresh, agreement).unwrap();
        self.jobs.retain(|(j, _)| *j != i);
    }

    /// Node `i` built from scratch at `round` under the ledger, as the daemon builds a stage's
    /// round core (`Node::from_scratch`, its own key its only member); its jobs are dropped.
    fn rebuild(&mut self, i: usize, round: Round) {
        let key = Keypair::from_seed([i as u8 + 1; 32]);
        let members = BTreeSet::from([key.node_id()]);
        let agreement = Box::new(LedgerAgreement::default());
        let start = (round, vec![1.0; PARAMS]);
        let config = config(self.nodes.len());
        self.nodes[i] =
            Node::from_scratch(key, config, members, start, agreement, PATIENCE).unwrap();
        self.jobs.retain(|(j, _)| *j != i);
    }

    /// Sets the members of each node in `group` to that group.
    fn partition(&mut self, group: &[usize]) {
        let ids: BTreeSet<NodeId> = group.iter().map(|i| self.nodes[*i].id()).collect();
        for &i in group {
            let outputs = self.nodes[i].set_members(self.now, ids.clone());
            self.push(i, outputs);
        }
    }

    /// Carries out outputs of node `i` that a test produced outside [`Net::feed`].
    fn push(&mut self, i: usize, outputs: Vec<Output>) {
        let from = self.nodes[i].id();
        for output in outputs {
            match output {
                Output::Send(to, frame) => {
                    let j = self.index(to);
                    self.in_flight.push_back((j, from, frame));
                }
                Output::Broadcast(frame) => {
                    for j in (0..self.nodes.len()).filter(|j| *j != i) {
                        self.in_flight.push_back((j, from, frame.clone()));
                    }
                }
                Output::Train(job) => self.jobs.push((i, job)),
                _ => {}
            }
        }
    }

    /// Runs `rounds` rounds among `group` only: frames to and from others are dropped, their
    /// jobs wait.
    fn run_group(&mut self, group: &[usize], rounds: usize) {
        for _ in 0..rounds {
            let (mine, others) = std::mem::take(&mut self.jobs)
                .into_iter()
                .partition(|(i, _)| group.contains(i));
            self.jobs = mine;
            self.train();
            self.jobs.extend(others);
            self.settle(|to, from, _| !group.contains(&to) || !group.contains(&from));
        }
    }
}

#[test]
fn a_node_joining_at_round_300_holds_the_model_within_one_round_and_nobody_waits() {
    let mut net = Net::three_of_four_ran(300);
    assert_eq!(net.nodes[0].round(), 300);
    // Node 3 connects with the genesis model: the others greet it with their votes for round
    // 299, it asks for the state and installs it before it has trained anything.
    net.partition(&[0, 1, 2, 3]);
    net.settle(|_, _, _| false);
    net.feed(3, Input::Tick);
    assert_eq!(net.resyncs, 1);
    assert_eq!(net.nodes[3].round(), 300);
    assert_eq!(net.nodes[3].model_hash(), net.nodes[0].model_hash());
    assert!(
        net.jobs.iter().all(|(i, _)| *i != 3) && net.nodes[3].is_observing(),
        "it observes round 300"
    );
    // Round 300 closes among the three without waiting for it (no deadline tick is ever fed),
    // and it applies the same Δs; from round 301 it contributes and is waited for.
    net.closed.clear();
    net.run_group(&[0, 1, 2, 3], 2);
    net.agreed_at(302);
    let by_round = |r: Round| net.closed.iter().filter(move |(_, s)| s.round == r);
    assert!(by_round(300).all(|(_, s)| s.included.len() == 3 && s.missed.is_empty()));
    assert_eq!(by_round(300).count(), 4);
    assert!(by_round(301).all(|(_, s)| s.included.len() == 4 && s.missed.is_empty()));
    assert!(net.penalties.is_empty());
}

/// A member killed in round r after it voted r − 1 and restarted from genesis (no checkpoint, as
/// a pipeline stage runs) that connects again before its mates close r: its old vote for r − 1
/// must not give it standing in r, or they wait for a Δ the new process never trains until the
/// deadline (the kill test of `bin/neuroshard/tests/pipeline_up.rs` wedged so under load).
#[test]
fn a_member_that_left_and_restarted_is_not_waited_for_until_it_votes_again() {
    let mut net = Net::new(3);
    net.start();
    net.settle(|_, _, _| false);
    net.agreed_at(1);
    // Node 2 dies in round 1: its mates drop it, then it comes back from genesis and connects
    // before they have closed round 1; they greet it with their votes for round 0.
    net.partition(&[0, 1]);
    net.restart(2);
    net.partition(&[0, 1, 2]);
    net.settle(|_, _, _| false);
    assert_eq!(net.nodes[2].round(), 1, "it installed round 0's state");
    // Round 1 closes among the two that train it, without a deadline (no tick is fed).
    net.closed.clear();
    net.train();
    net.settle(|_, _, _| false);
    net.agreed_at(2);
    let closed = net.closed.iter().filter(|(i, _)| *i != 2);
    assert!(
        closed
            .clone()
            .all(|(_, s)| s.round == 1 && s.included.len() == 2)
    );
    assert_eq!(closed.count(), 2);
}

/// A replica restarted from scratch at the ledger's round (a stage keeps no checkpoint) that
/// trains that round before it resyncs claims a Δ of another model, and the ledger lists it: its
/// mates, which refuse that Δ, must not wait for it until the deadline (the kill test of
/// `bin/neuroshard/tests/pipeline_up.rs` held a stage so for 200 s in one CI run).
#[test]
fn a_listed_delta_from_another_model_is_not_waited_for() {
    let mut net = Net::agreeing(3, || Box::new(LedgerAgreement::default()));
    net.start();
    net.settle(|_, _, _| false);
    net.decide(0, &[0, 1, 2], &[0, 1, 2]);
    net.agreed_at(1);
    // Node 2 restarts from genesis at round 1 and trains it at once.
    net.restart_fresh(2, 1, config(3));
    net.feed(2, Input::Tick);
    net.closed.clear();
    net.train();
    net.settle(|_, _, _| false);
    net.decide(1, &[0, 1, 2], &[0, 1]);
    // Round 1 closes on nodes 0 and 1 without a deadline (no tick is fed), on their two Δs.
    assert_eq!(net.nodes[0].round(), 2, "{:?}", net.closed);
    net.agreed_at_among(&[0, 1], 2);
    let closed = net.closed.iter().filter(|(i, _)| *i != 2);
    assert!(closed.clone().all(|(_, s)| s.included.len() == 2));
    assert_eq!(closed.count(), 2);
}

/// In a network that audits, a member's Δ without a commitment to the chain plan is refused by
/// its peers. An honest node never announces one: the restarted replica's job that stopped
/// before its chain held even its start (a lane neighbour gone) is neither announced nor claimed
/// (in CI one was, its mates refused it and penalised it, the ledger listed its claim, and they
/// waited 600 s for it). A member that announces one all the same, and whose claim the ledger
/// lists, is not waited for either.
#[test]
fn a_delta_without_a_commitment_is_not_claimed_and_not_waited_for() {
    let mut net = Net::with(auditing(3), 3, || Box::new(LedgerAgreement::default()));
    net.start();
    net.settle(|_, _, m| is_challenge(m));
    net.decide(0, &[0, 1, 2], &[0, 1, 2]);
    net.agreed_at(1);
    net.restart_fresh(2, 1, auditing(3));
    net.feed(2, Input::Tick);
    let (_, job) = net.jobs.iter().find(|(i, _)| *i == 2).cloned().unwrap();
    net.jobs.retain(|(i, _)| *i != 2);
    let stopped = TrainingResult {
        round: job.round,
        start: job.start,
        delta: vec![0.0; PARAMS],
        tokens: 0,
        loss_start: f32::NAN,
        loss_end: f32::NAN,
        chain: Chain::new(),
    };
    net.in_flight.clear();
    net.feed(2, Input::Trained(stopped));
    assert!(net.in_flight.is_empty(), "nothing announced");
    assert!(!net.claims.iter().any(|(i, r, _)| (*i, *r) == (2, 1)));

    // Node 2 announces such a Δ anyway, and the ledger lists its claim.
    let bare = Announcement {
        round: 1,
        base: net.nodes[0].model_hash(),
        delta: Hash::of(b"a delta nobody will fetch"),
        delta_len: 8,
        tokens: 1,
        loss_start: 2.0,
        loss_end: 1.0,
        commitment: None,
        memory_budget: u64::MAX,
    };
    let frame = Message::Announce(bare.clone()).seal(&Keypair::from_seed([3; 32]));
    for i in 0..2 {
        net.feed(i, Input::Message(net.nodes[2].id(), frame.clone()));
    }
    net.claims.push((2, 1, bare.delta));
    net.closed.clear();
    net.train();
    net.settle(|_, _, m| is_challenge(m));
    assert!(
        net.penalties
            .iter()
            .any(|(i, p)| *i == 0 && *p == net.nodes[2].id())
    );
    net.decide(1, &[0, 1, 2], &[0, 1]);
    // Round 1 closes on nodes 0 and 1 without a deadline (no tick is fed), on their two Δs.
    assert_eq!(net.nodes[0].round(), 2, "{:?}", net.closed);
    net.agreed_at_among(&[0, 1], 2);
    let closed = net.closed.iter().filter(|(i, _)| *i != 2);
    assert!(closed.clone().all(|(_, s)| s.included.len() == 2));
}

#[test]
fn a_silent_member_costs_one_deadline() {
    let mut net = Net::new(4);
    let silent = Keypair::from_seed([4; 32]);
    for i in 0..3 {
        net.feed(i, Input::Tick);
    }
    // Node 3 is a member that never trains; it votes whatever hash the others hold.
    for round in 0..6 {
        net.jobs.retain(|(i, _)| *i != 3);
        net.train();
        net.settle(|to, from, _| to == 3 || from == 3);
        if net.nodes[0].round() == round {
            net.now = net.now + Duration::from_secs(10);
            for i in 0..3 {
                net.feed(i, Input::Tick);
            }
            net.settle(|to, from, _| to == 3 || from == 3);
        }
        let vote = Message::ModelHash {
            round,
            hash: net.nodes[0].model_hash(),
        };
        for i in 0..3 {
            net.feed(i, Input::Message(silent.node_id(), vote.seal(&silent)));
        }
    }
    net.agreed_at_among(&[0, 1, 2], 6);
    let waited: BTreeSet<Round> = net
        .closed
        .iter()
        .filter(|(_, s)| !s.missed.is_empty())
        .map(|(_, s)| s.round)
        .collect();
    assert_eq!(waited, BTreeSet::from([0]), "only round 0 waited for it");
}

fn is_challenge(m: &Message) -> bool {
    matches!(m, Message::Challenge { .. })
}

/// Three auditing nodes agreed on round 0, every challenge of it lost in flight.
fn challenges_dropped() -> Net {
    let mut net = Net::auditing(3);
    net.start();
    net.settle(|_, _, m| is_challenge(m));
    net.agreed_at(1);
    net
}

/// A challenge its contributor could not get when it was sent (down, or its link cut) is sent
/// again until its deadline, and not after: a contributor back in time answers it.
#[test]
fn an_unanswered_challenge_is_sent_again_until_its_deadline() {
    let mut net = challenges_dropped();
    // A second later, and each second after: the challenges again, every member's of both
    // others (2 auditors among 2 others), none answered.
    let resent = |net: &mut Net| {
        net.now = net.now + Duration::from_secs(1);
        for i in 0..3 {
            net.feed(i, Input::Tick);
        }
        let mut frames = std::mem::take(&mut net.in_flight);
        frames.retain(|(_, _, f)| is_challenge(&Message::open(f, 1 << 20).unwrap().1));
        frames
    };
    // The answer time is half the 10 s deadline; the challenge goes again every fifth of it.
    for second in 1..4 {
        assert_eq!(
            resent(&mut net).len(),
            6,
            "{second} s after the round closed"
        );
    }
    // The contributors are back: each serves each of its auditors.
    let now = net.now + Duration::from_secs(1);
    let served = resent(&mut net)
        .into_iter()
        .flat_map(|(to, from, frame)| net.nodes[to].handle(now, Input::Message(from, frame)))
        .filter(|o| matches!(o, Output::Checkpoints { .. }))
        .count();
    assert_eq!(served, 6);
    assert!(resent(&mut net).is_empty(), "past the answer time");
}

#[test]
fn a_challenge_whose_opening_was_lost_is_served_again_a_bounded_number_of_times() {
    let mut net = challenges_dropped();
    // Every second, each auditor's challenge again (no opening reached it); each contributor
    // serves it, and its opening is lost, until it has served that challenger three times.
    let mut served = Vec::new();
    for _ in 1..5 {
        net.now = net.now + Duration::from_secs(1);
        for i in 0..3 {
            net.feed(i, Input::Tick);
        }
        let now = net.now;
        let frames = std::mem::take(&mut net.in_flight);
        let outputs = (frames.into_iter())
            .filter(|(_, _, f)| is_challenge(&Message::open(f, 1 << 20).unwrap().1))
            .flat_map(|(to, from, frame)| net.nodes[to].handle(now, Input::Message(from, frame)));
        let reads = outputs.filter(|o| matches!(o, Output::Checkpoints { .. }));
        served.push(reads.count());
    }
    assert_eq!(served, [6, 6, 6, 0], "three serves per challenger");
}

#[test]
fn a_node_that_ran_ahead_alone_goes_back_to_the_majority() {
    let mut net = Net::new(4);
    net.partition(&[0, 1, 2]);
    net.partition(&[3]);
    for i in 0..4 {
        net.feed(i, Input::Tick);
    }
    net.run_group(&[3], 6);
    net.run_group(&[0, 1, 2], 2);
    net.jobs.retain(|(i, _)| *i != 3);
    assert_eq!((net.nodes[3].round(), net.nodes[0].round()), (6, 2));
    net.partition(&[0, 1, 2, 3]);
    net.settle(|_, _, _| false);
    assert_eq!(
        net.nodes[3].round(),
        2,
        "it went back to the majority's model"
    );
    assert_eq!(net.nodes[3].model_hash(), net.nodes[0].model_hash());
    net.run_group(&[0, 1, 2, 3], 2);
    net.agreed_at(4);
}

#[test]
fn an_unanswered_state_request_goes_to_the_next_holder_and_hostile_rounds_do_not_panic() {
    let mut net = Net::three_of_four_ran(3);
    // A member votes the last possible round; node 3 asks it, and refuses its answer.
    let liar = Keypair::from_seed([1; 32]);
    net.partition(&[0, 1, 2, 3]);
    let far = Message::ModelHash {
        round: u64::MAX,
        hash: Hash::of(b"nothing"),
    };
    net.feed(3, Input::Message(liar.node_id(), far.seal(&liar)));
    let state = Message::SyncState {
        round: u64::MAX,
        params: vec![0; 4 * PARAMS],
        outer: vec![0; 4 * PARAMS],
        missed: Vec::new(),
        pool: Vec::new(),
    };
    net.feed(3, Input::Message(liar.node_id(), state.seal(&liar)));
    // Its first state request is lost; the retry goes to another holder.
    net.settle(|to, _, m| to != 3 && matches!(m, Message::SyncRequest { .. }));
    assert_eq!(net.resyncs, 0);
    net.now = Timestamp::from_secs_f64(60.0);
    net.feed(3, Input::Tick);
    net.settle(|_, _, _| false);
    assert_eq!(net.resyncs, 1);
    assert_eq!(net.nodes[3].model_hash(), net.nodes[0].model_hash());
}

#[test]
fn a_state_that_arrives_after_the_network_moved_on_is_followed_by_the_newer_one() {
    let mut net = Net::three_of_four_ran(5);
    // Node 3 joins; the state it asks for is held back while the others close round 5, so
    // their votes for round 5 reach it before the state for round 4 does.
    net.partition(&[0, 1, 2, 3]);
    let held = std::cell::RefCell::new(Vec::new());
    net.settle(|to, from, m| {
        let state = to == 3 && matches!(m, Message::SyncState { .. });
        if state {
            held.borrow_mut().push(from);
        }
        state
    });
    let from = held.borrow()[0];
    let stale = net.nodes[from].snapshot();
    net.train();
    net.settle(|_, _, _| false);
    assert_eq!(net.nodes[0].round(), 6);
    let state = Message::SyncState {
        round: stale.round - 1,
        params: stale.params.iter().flat_map(|v| v.to_le_bytes()).collect(),
        outer: stale.outer,
        missed: Vec::new(),
        pool: Vec::new(),
    };
    let key = Keypair::from_seed([from as u8 + 1; 32]);
    net.feed(3, Input::Message(net.nodes[from].id(), state.seal(&key)));
    net.settle(|_, _, _| false);
    // It installed round 4, then round 5 at once, and closed nothing of its own in between.
    assert_eq!(net.resyncs, 2);
    assert!(net.closed.iter().all(|(i, s)| *i != 3 || s.round > 6));
    net.closed.clear();
    net.run_group(&[0, 1, 2, 3], 2);
    net.agreed_at(8);
    assert!(net.closed.iter().all(|(_, s)| s.missed.is_empty()));
    assert!(net.penalties.is_empty());
}

#[test]
fn a_joiner_whose_state_comes_after_the_round_was_announced_still_observes_it() {
    let mut net = Net::three_of_four_ran(5);
    net.partition(&[0, 1, 2, 3]);
    let held = std::cell::RefCell::new(None);
    net.settle(|to, from, m| {
        let state = to == 3 && matches!(m, Message::SyncState { .. });
        if state {
            *held.borrow_mut() = Some((from, m.clone()));
        }
        state
    });
    // The others announce their round-5 Δs; node 3, still at round 0, keeps them aside. Only
    // then does the state for round 4 reach it.
    let before = net.in_flight.len();
    net.train();
    for (to, from, frame) in net.in_flight.split_off(before) {
        if to == 3 {
            net.feed(3, Input::Message(from, frame));
        } else {
            net.in_flight.push_back((to, from, frame));
        }
    }
    let (from, state) = held.into_inner().expect("a state was sent");
    let frame = state.seal(&Keypair::from_seed([from as u8 + 1; 32]));
    net.feed(3, Input::Message(net.nodes[from].id(), frame));
    net.settle(|_, _, _| false);
    assert_eq!(net.resyncs, 1, "one install, then it observed round 5");
    net.agreed_at(6);
    assert!(
        net.closed
            .iter()
            .any(|(i, s)| *i == 3 && s.round == 5 && s.included.len() == 3)
    );
    net.run_group(&[0, 1, 2, 3], 1);
    net.agreed_at(7);
    let mut round_6 = net.closed.iter().filter(|(_, s)| s.round == 6);
    assert!(round_6.clone().count() == 4 && round_6.all(|(_, s)| s.included.len() == 4));
}

#[test]
fn a_contributor_whose_vote_is_late_is_still_waited_for() {
    let mut net = Net::new(3);
    net.start();
    // Round 0 closes everywhere, but the model-hash votes are held back until round 1's Δs
    // have been exchanged (training shorter than the transfers ahead of the votes).
    let held = std::cell::RefCell::new(Vec::new());
    net.settle(|to, from, m| {
        let vote = matches!(m, Message::ModelHash { .. });
        if vote {
            held.borrow_mut().push((to, from));
        }
        vote
    });
    net.agreed_at(1);
    net.train();
    net.settle(|_, _, m| matches!(m, Message::ModelHash { .. }));
    net.agreed_at(2);
    let round_1 = net.closed.iter().filter(|(_, s)| s.round == 1);
    assert!(round_1.clone().count() == 3);
    assert!(round_1.into_iter().all(|(_, s)| s.included.len() == 3));
    assert_eq!(held.borrow().len(), 6);
}

#[test]
fn announcements_that_reach_a_node_before_its_first_round_are_kept() {
    let mut net = Net::new(3);
    // Nodes 0 and 1 start and announce round 0 while node 2 has not started yet.
    for i in 0..2 {
        net.feed(i, Input::Tick);
    }
    net.train();
    net.settle(|_, _, _| false);
    net.feed(2, Input::Tick);
    net.train();
    net.settle(|_, _, _| false);
    net.agreed_at(1);
    assert!(
        net.closed
            .iter()
            .all(|(_, s)| s.included.len() == 3 && s.missed.is_empty())
    );
}

/// A toy growth rule over flat vectors: a depth is 4 parameters; from [`PARAMS`] (depth 2) to
/// depth 4 once the last two pool sizes reach 35; new parameters are zeros.
#[derive(Debug)]
struct Doubling;

impl Growth for Doubling {
    fn decide(&self, n_params: usize, history: &[u64], _closed: Round) -> Option<usize> {
        let recent = history.get(history.len().checked_sub(2)?..)?;
        (n_params == PARAMS && recent.iter().all(|s| *s >= 35)).then_some(4)
    }

    fn admits(&self, n_params: usize) -> bool {
        n_params == PARAMS || n_params == 2 * PARAMS
    }

    fn grow(&self, params: &[f32], n_layers: usize, _round: Round) -> Result<Vec<f32>, String> {
        self.carry(params, 4 * n_layers)
    }

    fn carry(&self, values: &[f32], n_params: usize) -> Result<Vec<f32>, String> {
        let mut out = values.to_vec();
        out.resize(n_params, 0.0);
        Ok(out)
    }
}

impl Net {
    /// Every node announces a budget of 10 and grows by [`Doubling`].
    fn growing(mut self) -> Self {
        for node in &mut self.nodes {
            node.set_pool(10, Some(Box::new(Doubling)));
        }
        self
    }
}

#[test]
fn a_joiner_makes_the_pool_cross_the_threshold_and_every_node_grows_at_one_boundary() {
    // Three nodes (a pool of 30) run 5 rounds: no growth.
    let mut net = Net::new(4).growing();
    net.partition(&[0, 1, 2]);
    for i in 0..3 {
        net.feed(i, Input::Tick);
    }
    net.run_group(&[0, 1, 2], 5);
    assert_eq!(net.nodes[0].pool_history(), [30; 5]);
    assert!(net.closed.iter().all(|(_, s)| s.growth.is_none()));
    // The fourth joins: it observes round 5 (pool 30), contributes to 6 and 7 (pool 40), and
    // every node grows at the end of round 7, before the vote, to one hash.
    net.partition(&[0, 1, 2, 3]);
    net.settle(|_, _, _| false);
    net.feed(3, Input::Tick);
    net.closed.clear();
    net.run_group(&[0, 1, 2, 3], 3);
    let mut grew: Vec<(usize, Round)> = net
        .closed
        .iter()
        .filter(|(_, s)| s.growth == Some(Ok(4)))
        .map(|(i, s)| (*i, s.round))
        .collect();
    grew.sort();
    assert_eq!(grew, [(0, 7), (1, 7), (2, 7), (3, 7)]);
    let hash = net.agreed_at(8);
    assert!(net.nodes.iter().all(|n| n.params().len() == 2 * PARAMS));
    assert_eq!(net.nodes[3].pool_history(), net.nodes[0].pool_history());
    // Training goes on at the new size.
    net.run_group(&[0, 1, 2, 3], 1);
    assert_ne!(net.agreed_at(9), hash);
    assert!(net.penalties.is_empty());
}

#[test]
fn a_node_that_joins_after_growth_installs_the_grown_state_and_its_pool_history() {
    let mut net = Net::new(4).growing();
    net.partition(&[0, 1, 2]);
    for node in &mut net.nodes[..3] {
        node.set_pool(20, Some(Box::new(Doubling)));
    }
    for i in 0..3 {
        net.feed(i, Input::Tick);
    }
    net.run_group(&[0, 1, 2], 4);
    assert!(
        net.nodes[..3]
            .iter()
            .all(|n| n.params().len() == 2 * PARAMS)
    );
    // Node 3 still holds the genesis size; the state it installs is the grown one.
    net.partition(&[0, 1, 2, 3]);
    net.settle(|_, _, _| false);
    net.feed(3, Input::Tick);
    assert_eq!(net.resyncs, 1);
    assert_eq!(net.nodes[3].params().len(), 2 * PARAMS);
    assert_eq!(net.nodes[3].snapshot(), net.nodes[0].snapshot());
    net.run_group(&[0, 1, 2, 3], 2);
    net.agreed_at(6);
    assert!(net.penalties.is_empty());
}

/// A pair (a pipeline stage of two replicas): one is killed, the other closes rounds alone, and
/// the first comes back from genesis. Its mate's greeting vote puts it behind at once and it
/// installs the state, rather than waiting for the mate's round-0 Δ up to the deadline. (In
/// `bench/pipeline-kill.sh` with `BACK_AT`, a restarted stage node did wait out round 0 and
/// then closed rounds alone, so the cause is likely in what the daemon hands its stage core,
/// not in the core.)
#[test]
fn a_restarted_member_of_a_pair_installs_its_mates_state_from_the_greeting() {
    let mut net = Net::new(2);
    net.start();
    net.settle(|_, _, _| false);
    net.agreed_at(1);
    net.partition(&[0]);
    net.run_group(&[0], 4);
    let ahead = net.nodes[0].round();
    assert!(ahead >= 4, "{ahead}");
    net.restart(1);
    net.feed(1, Input::Tick);
    net.partition(&[0, 1]);
    net.settle(|_, _, _| false);
    assert_eq!(net.resyncs, 1, "round {} vs {ahead}", net.nodes[1].round());
    assert!(net.nodes[1].round() >= ahead);
}

/// A pair under the ledger (a stage of two replicas) after round 0; one replica is built again
/// from scratch at round 1 (a restart, or a mover), as the daemon builds it: only itself a
/// member, then its mate. Its first tick asks for votes; it installs its mate's state and
/// trains round 1 from the network's model, and the pair closes round 1 on both Δs. (It used to
/// train round 1 from the seed: its Δ counted nowhere and, the pair's votes tied, the mate could
/// take its model, discarding the stage's training; seen in the move test's logs.)
#[test]
fn a_core_built_from_scratch_trains_its_first_round_from_the_networks_model() {
    let mut net = Net::agreeing(2, || Box::new(LedgerAgreement::default()));
    net.start();
    net.settle(|_, _, _| false);
    net.decide(0, &[0, 1], &[0, 1]);
    let trained = net.agreed_at(1);
    net.rebuild(1, 1);
    net.partition(&[0, 1]);
    net.feed(1, Input::Tick);
    assert!(
        net.jobs.iter().all(|(i, _)| *i != 1),
        "no job before the state"
    );
    net.settle(|_, _, _| false);
    assert_eq!(net.resyncs, 1);
    let (_, job) = net
        .jobs
        .iter()
        .find(|(i, _)| *i == 1)
        .expect("a job once installed");
    assert_eq!((job.round, job.start), (1, trained));
    assert!(
        !net.nodes[1].is_observing(),
        "it trains its round: its job is its lane's"
    );
    net.closed.clear();
    net.train();
    net.settle(|_, _, _| false);
    net.decide(1, &[0, 1], &[0, 1]);
    net.agreed_at(2);
    assert!(net.closed.iter().all(|(_, s)| s.included.len() == 2));
    assert!(net.penalties.is_empty());
}

/// When every member was built from scratch (a network restarted without its checkpoints), no
/// one holds a round's model to answer with: each trains from the seed once its patience is
/// spent, and they agree.
#[test]
fn cores_built_from_scratch_that_nobody_answers_train_after_their_patience() {
    let mut net = Net::agreeing(2, || Box::new(LedgerAgreement::default()));
    for i in 0..2 {
        net.rebuild(i, 3);
    }
    net.partition(&[0, 1]);
    for i in 0..2 {
        net.feed(i, Input::Tick);
    }
    net.settle(|_, _, _| false);
    assert!(net.jobs.is_empty());
    net.now = net.now + PATIENCE;
    for i in 0..2 {
        net.feed(i, Input::Tick);
    }
    assert_eq!(net.jobs.len(), 2);
    assert!(net.jobs.iter().all(|(_, job)| job.round == 3));
    net.train();
    net.settle(|_, _, _| false);
    net.decide(3, &[0, 1], &[0, 1]);
    net.agreed_at(4);
    assert_eq!(net.resyncs, 0);
}

/// A replica whose job failed (its pipeline lane stalled) contributes nothing and still closes
/// the round on its mates' Δs once the ledger lists them; a failure reported for another round
/// changes nothing. (It used to stay in training until a resync: in CI, a restarted pipeline's
/// every stage-0 job failed at once, and the stage stood at that round for good.)
#[test]
fn a_replica_whose_job_failed_closes_the_round_on_the_others_deltas() {
    let mut net = Net::agreeing(3, || Box::new(LedgerAgreement::default()));
    for i in 0..3 {
        net.feed(i, Input::Tick);
    }
    net.feed(2, Input::Failed { round: 7 });
    net.jobs.retain(|(i, _)| *i != 2);
    net.feed(2, Input::Failed { round: 0 });
    net.train();
    net.settle(|_, _, _| false);
    net.decide(0, &[0, 1], &[0, 1, 2]);
    net.agreed_at(1);
    assert!(net.closed.iter().all(|(_, s)| s.included.len() == 2));
    assert_eq!(net.closed.len(), 3);
    assert!(net.jobs.iter().any(|(i, job)| *i == 2 && job.round == 1));
}
