//! The simulation loop: N node cores, one thread, a simulated clock and network, and the churn
//! schedule (joins, leaves, crashes, restarts, partitions) carried out as it comes due.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use neuroshard_ledger::Part;
use neuroshard_node::{
    Agreement, CheckpointStore, DeadlineAgreement, Input, LedgerAgreement, MemoryCheckpoints, Node,
    Output, Purpose, ReplayJob, Replayed, Round, RoundSummary, Snapshot, Timestamp, TrainingJob,
    TrainingResult, Verifier, Worker,
};
use neuroshard_primitives::{Hash, Keypair, NodeId};

use crate::byzantine::Byzantine;
use crate::cheat::Cheats;
use crate::churn::Change;
use crate::ledger::{BLOCK_INTERVAL, SimLedger};
use crate::network::Network;
use crate::ponw::PonwReport;
use crate::progress::Progress;
use crate::queue::EventQueue;
use crate::report::{SimReport, digest, finite};
use crate::rng::RngTree;
use crate::topology::Topology;
use crate::{Error, Result, RoundRecord, SimConfig, Workload};

/// Something that happens at a simulated time. A node's events carry the generation they were
/// scheduled in: a node that stopped (and perhaps came back) never sees its earlier life's
/// ticks, training results or connections.
#[derive(Debug)]
enum Event {
    /// A deadline the node asked to be woken for (or its start).
    Tick { node: usize, generation: u64 },
    /// A frame from `from` arrives at `to`, if both are still the lives that sent and awaited it
    /// and can still reach each other.
    Deliver {
        to: usize,
        from: usize,
        generations: (u64, u64),
        frame: Vec<u8>,
    },
    /// The node's training job finishes.
    Trained {
        node: usize,
        generation: u64,
        result: TrainingResult,
    },
    /// The churn schedule's change number `.0` comes due.
    Churn(usize),
    /// The node's driver read the checkpoints a challenge asked for.
    Checkpoints {
        node: usize,
        generation: u64,
        peer: NodeId,
        round: Round,
        segment: u64,
        checkpoints: Option<Vec<Vec<u8>>>,
    },
    /// The node's replay finishes.
    Replayed {
        node: usize,
        generation: u64,
        job: Box<ReplayJob>,
        result: std::result::Result<Replayed, String>,
    },
    /// The ledger's sequencer orders a block.
    Block,
}

/// A deterministic run of N nodes.
#[derive(Debug)]
pub struct Sim<W: Workload> {
    config: SimConfig,
    workload: W,
    tree: RngTree,
    queue: EventQueue<Event>,
    net: Network,
    genesis: Vec<f32>,
    ids: Vec<NodeId>,
    index: BTreeMap<NodeId, usize>,
    /// Each node's core while it is up.
    nodes: Vec<Option<Node>>,
    workers: Vec<Option<W::Worker>>,
    /// Each node's checkpoint store, shared with its worker (it survives a restart, as a disk
    /// would).
    stores: Vec<MemoryCheckpoints>,
    verifier: W::Verifier,
    cheats: Cheats,
    /// Each node's state after the last round it closed or installed, as a daemon checkpoints.
    checkpoints: Vec<Option<Snapshot>>,
    topology: Topology,
    /// Churn changes waiting for their round to begin: (round, index in the schedule).
    waiting: BTreeSet<(Round, usize)>,
    /// The latest round the network has begun.
    begun: Round,
    byzantine: Byzantine,
    progress: Progress,
    penalties: Vec<u64>,
    resyncs: Vec<u64>,
    honest_tokens: u64,
    initial_val_loss: f32,
    /// The ledger, when rounds close through it.
    ledger: Option<SimLedger>,
}

impl<W: Workload> Sim<W> {
    /// Builds the network, the roles (from the seed) and the nodes that are up from the start.
    pub fn new(config: SimConfig, mut workload: W) -> Result<Self> {
        config.validate()?;
        let n = config.nodes;
        let tree = RngTree::new(config.seed);
        let ids: Vec<NodeId> = (0..n).map(|i| key(&tree, i).node_id()).collect();
        let genesis = workload.init_params()?;
        let initial_val_loss = workload.val_loss(&genesis)?;
        let mut net = Network::new(n, config.link, tree.stream("network", 0));
        for o in &config.link_overrides {
            net.set_link(o.from, o.to, o.link);
        }
        let byzantine = Byzantine::for_config(&config);
        let cheats = Cheats::for_config(&config, &tree);
        let honest = (0..n)
            .map(|i| !byzantine.is_attacker(i) && !cheats.is_cheater(i))
            .collect();
        let verifier = workload.verifier(&ids, config.node.outer.lr)?;
        let topology = Topology::new(n, &config.churn);
        let audit = config
            .node
            .audit
            .unwrap_or(neuroshard_verify::AuditConfig::DEFAULT);
        let ledger = config
            .ledger
            .then(|| SimLedger::new((0..n).map(|i| key(&tree, i)).collect(), audit))
            .transpose()?;
        let up: Vec<bool> = (0..n).map(|i| topology.is_up(i)).collect();
        let mut sim = Self {
            index: ids.iter().enumerate().map(|(i, id)| (*id, i)).collect(),
            progress: Progress::new(honest, &up, config.rounds),
            waiting: config
                .churn
                .iter()
                .enumerate()
                .map(|(k, event)| (event.round, k))
                .collect(),
            penalties: vec![0; n],
            resyncs: vec![0; n],
            nodes: (0..n).map(|_| None).collect(),
            workers: (0..n).map(|_| None).collect(),
            stores: (0..n).map(|_| MemoryCheckpoints::default()).collect(),
            verifier,
            cheats,
            checkpoints: vec![None; n],
            config,
            workload,
            tree,
            queue: EventQueue::new(),
            net,
            genesis,
            ids,
            topology,
            begun: 0,
            byzantine,
            honest_tokens: 0,
            initial_val_loss,
            ledger,
        };
        for node in (0..n).filter(|i| up[*i]) {
            sim.start(Timestamp::ZERO, node)?;
        }
        sim.begin_rounds(Timestamp::ZERO);
        Ok(sim)
    }

    /// Runs every round and returns the report.
    pub fn run(self) -> Result<SimReport> {
        self.run_observed(|_| {})
    }

    /// Runs every round, handing each round's record to `on_round` as soon as it is written
    /// (for progress output), and returns the report.
    pub fn run_observed(mut self, mut on_round: impl FnMut(&RoundRecord)) -> Result<SimReport> {
        let mut seen = 0;
        while self.progress.passed() < self.config.rounds {
            let Some((now, event)) = self.queue.pop() else {
                return Err(self.stalled());
            };
            self.step(now, event)?;
            self.begin_rounds(now);
            self.advance(now);
            for record in &self.progress.records[seen..] {
                on_round(record);
            }
            seen = self.progress.records.len();
        }
        self.progress.finish();
        for record in &self.progress.records[seen..] {
            on_round(record);
        }
        Ok(self.report())
    }

    /// Handles one event and carries out what the node asks.
    fn step(&mut self, now: Timestamp, event: Event) -> Result<()> {
        let (node, input) = match event {
            Event::Tick { node, generation } if self.topology.is_current(node, generation) => {
                (node, Input::Tick)
            }
            Event::Deliver {
                to,
                from,
                generations,
                frame,
            } if self.topology.is_current(from, generations.0)
                && self.topology.is_current(to, generations.1)
                && self.topology.reachable(from, to) =>
            {
                (to, Input::Message(self.ids[from], frame))
            }
            Event::Trained {
                node,
                generation,
                mut result,
            } if self.topology.is_current(node, generation) => {
                if self.byzantine.is_attacker(node) {
                    result.delta = self.byzantine.forge(node, result.round, now, &result.delta);
                } else {
                    self.byzantine.announced(now, &result.delta);
                    self.honest_tokens += result.tokens;
                }
                (node, Input::Trained(result))
            }
            Event::Churn(k) => return self.churn(now, k),
            Event::Block => return self.block(now),
            Event::Checkpoints {
                node,
                generation,
                peer,
                round,
                segment,
                checkpoints,
            } if self.topology.is_current(node, generation) => (
                node,
                Input::Checkpoints {
                    peer,
                    round,
                    segment,
                    checkpoints,
                    work: Vec::new(),
                },
            ),
            Event::Replayed {
                node,
                generation,
                job,
                result,
            } if self.topology.is_current(node, generation) => (node, Input::Replayed(job, result)),
            // A stopped node's events, and frames across a cut link, are lost.
            Event::Tick { .. }
            | Event::Deliver { .. }
            | Event::Trained { .. }
            | Event::Checkpoints { .. }
            | Event::Replayed { .. } => return Ok(()),
        };
        let outputs = self.up_mut(node).handle(now, input);
        self.carry_out_all(now, node, outputs)
    }

    fn carry_out_all(&mut self, now: Timestamp, node: usize, outputs: Vec<Output>) -> Result<()> {
        outputs
            .into_iter()
            .try_for_each(|output| self.carry_out(now, node, output))
    }

    fn carry_out(&mut self, now: Timestamp, node: usize, output: Output) -> Result<()> {
        self.submit_to_ledger(now, node, &output);
        match output {
            Output::Broadcast(frame) => {
                let peers: Vec<usize> = self.topology.peers(node).collect();
                for to in peers.into_iter().filter(|to| *to != node) {
                    self.send(now, node, to, frame.clone());
                }
            }
            Output::Send(peer, frame) => {
                if let Some(&to) = self.index.get(&peer) {
                    self.send(now, node, to, frame);
                }
            }
            Output::Train(job) => self.train(now, node, &job)?,
            Output::WakeAt(at) => {
                let generation = self.topology.generation(node);
                self.queue.push(at, Event::Tick { node, generation });
            }
            Output::Penalize { peer, reason } => {
                if let Some(&peer) = self.index.get(&peer) {
                    self.penalties[peer] += 1;
                    self.progress.penalty(node, peer, &reason);
                }
            }
            Output::Closed(summary) => self.closed(node, summary)?,
            // Claims reach the ledger above.
            Output::Claim { .. } => {}
            Output::Resynced { round, hash } => {
                self.resyncs[node] += 1;
                self.word(node, round, hash, None)?;
            }
            Output::Checkpoints {
                peer,
                round,
                segment,
                indices,
            } => self.serve(now, node, peer, round, segment, &indices),
            Output::Replay(job) => self.replay(now, node, job),
            Output::Audited(verdict) => {
                if let Some(&contributor) = self.index.get(&verdict.contributor) {
                    let honest = self.honest_nodes();
                    let honest = |i: usize| honest[i];
                    self.cheats
                        .tally
                        .audited(node, contributor, &verdict, honest);
                }
            }
            Output::Excluded { node: who, .. } => {
                if let Some(&who) = self.index.get(&who) {
                    let honest = self.honest_nodes();
                    let honest = |i: usize| honest[i];
                    self.cheats.tally.excluded(self.begun, node, who, honest);
                }
            }
        }
        Ok(())
    }

    /// Whether each node neither attacks nor cheats.
    fn honest_nodes(&self) -> Vec<bool> {
        (0..self.config.nodes)
            .map(|i| !self.byzantine.is_attacker(i) && !self.cheats.is_cheater(i))
            .collect()
    }

    /// The driver reads checkpoints `indices` of `round` for a challenger of `segment` (a
    /// withholding cheater may not).
    fn serve(
        &mut self,
        now: Timestamp,
        node: usize,
        peer: NodeId,
        round: Round,
        segment: u64,
        indices: &[u64],
    ) {
        let store = &self.stores[node];
        let read: Option<Vec<Vec<u8>>> = indices.iter().map(|i| store.get(round, *i)).collect();
        let checkpoints = read.filter(|_| !self.cheats.withholds(node));
        let generation = self.topology.generation(node);
        self.queue.push(
            now,
            Event::Checkpoints {
                node,
                generation,
                peer,
                round,
                segment,
                checkpoints,
            },
        );
    }

    /// Runs a replay for real now (a false accuser reports one that did not happen), and feeds
    /// it back after the simulated compute time; it runs beside training.
    fn replay(&mut self, now: Timestamp, node: usize, job: Box<ReplayJob>) {
        let steps = job.opened.end.step.saturating_sub(job.opened.start.step);
        let audit = matches!(job.purpose, Purpose::Audit { .. });
        let result = if audit && self.cheats.accuses(node, job.round) {
            Ok(crate::cheat::false_replay(&job))
        } else {
            self.cheats.tally.replayed(steps);
            self.verifier.replay(&job).map_err(|err| err.to_string())
        };
        let tokens = steps as f64 * self.workload.tokens_per_step() as f64;
        let done = now + Duration::from_secs_f64(tokens / self.config.tokens_per_sec[node]);
        let generation = self.topology.generation(node);
        self.queue.push(
            done,
            Event::Replayed {
                node,
                generation,
                job,
                result,
            },
        );
    }

    fn closed(&mut self, node: usize, summary: RoundSummary) -> Result<()> {
        let honest = self.honest_nodes();
        for id in &summary.included {
            if let Some(&i) = self.index.get(id)
                && honest[node]
                && !honest[i]
            {
                self.cheats.tally.included(summary.round, i);
            }
        }
        let missed = summary
            .missed
            .iter()
            .filter_map(|id| self.index.get(id).copied())
            .collect();
        let (round, hash) = (summary.round, summary.model_hash);
        self.word(node, round, hash, Some((summary, missed)))
    }

    /// `node` ended `round` with `hash`: checkpoint it, and evaluate the model if the checkers
    /// need it and the node still holds it.
    fn word(
        &mut self,
        node: usize,
        round: Round,
        hash: Hash,
        closed: Option<(RoundSummary, Vec<usize>)>,
    ) -> Result<()> {
        let core = self.nodes[node]
            .as_ref()
            .expect("only a node that is up has outputs");
        let val_loss = if core.model_hash() == hash && self.progress.wants_eval(node, round, hash) {
            Some(self.workload.val_loss(core.params())?)
        } else {
            None
        };
        self.checkpoints[node] = Some(core.snapshot());
        self.progress.word(node, round, hash, val_loss, closed);
        Ok(())
    }

    fn send(&mut self, now: Timestamp, from: usize, to: usize, frame: Vec<u8>) {
        if !self.topology.reachable(from, to) {
            return;
        }
        let at = self.net.transmit(now, from, to, frame.len());
        let generations = (self.topology.generation(from), self.topology.generation(to));
        self.queue.push(
            at,
            Event::Deliver {
                to,
                from,
                generations,
                frame,
            },
        );
    }

    /// Runs the job for real now, and schedules its result after the simulated compute time.
    fn train(&mut self, now: Timestamp, node: usize, job: &TrainingJob) -> Result<()> {
        if job.round >= self.config.rounds {
            return Ok(());
        }
        let core = self.nodes[node].as_ref().expect("a node that trains is up");
        let start = core.params().to_vec();
        let worker = self.workers[node]
            .as_mut()
            .expect("a node that is up has a worker");
        let result = if self.cheats.is_cheater(node) {
            let store = &mut self.stores[node];
            let other = (node + 1) % self.config.nodes;
            let other = (other, self.ids[other]);
            self.cheats
                .train(&self.workload, worker, store, node, other, job, &start)?
        } else {
            let result = worker.train(job, &start).map_err(|err| Error::Worker {
                node,
                round: job.round,
                source: Box::new(err),
            })?;
            self.cheats.honest_delta(job.round, &result.delta);
            result
        };
        self.cheats.tally.trained(job.steps as u64);
        let tokens = job.steps as f64 * self.workload.tokens_per_step() as f64;
        let done = now + Duration::from_secs_f64(tokens / self.config.tokens_per_sec[node]);
        self.byzantine.trained(node, job.round, done, &result.delta);
        let generation = self.topology.generation(node);
        self.queue.push(
            done,
            Event::Trained {
                node,
                generation,
                result,
            },
        );
        Ok(())
    }

    /// Carries out the schedule's change number `k`.
    fn churn(&mut self, now: Timestamp, k: usize) -> Result<()> {
        let change = self.config.churn[k].change.clone();
        self.topology.apply(&change)?;
        match change {
            Change::Join(node) | Change::Restart(node) => self.start(now, node)?,
            Change::Leave(node) | Change::Crash(node) => {
                self.nodes[node] = None;
                self.workers[node] = None;
            }
            Change::Partition(_) | Change::Heal => {}
        }
        let network = self.topology.network();
        for node in 0..self.config.nodes {
            let on_network = network.contains(&node);
            if on_network && !self.progress.is_connected(node) {
                self.progress.connect(node, self.begun);
            } else if !on_network && self.progress.is_connected(node) {
                self.progress.disconnect(node);
            }
        }
        // Each node that is up now reaches a different set of peers: tell it, as a driver does
        // when connections open and close.
        for node in 0..self.config.nodes {
            let members = self.members(node);
            let changed = self.nodes[node]
                .as_ref()
                .is_some_and(|core| *core.members() != members);
            if changed {
                let outputs = self.up_mut(node).set_members(now, members);
                self.carry_out_all(now, node, outputs)?;
            }
        }
        Ok(())
    }

    /// Brings `node` up: from its checkpoint if it has one (a restart), else from the genesis
    /// model at round 0; its first tick comes now.
    fn start(&mut self, now: Timestamp, node: usize) -> Result<()> {
        let key = key(&self.tree, node);
        let config = self.config.node.clone();
        let members = self.members(node);
        let agreement: Box<dyn Agreement> = match &self.ledger {
            Some(_) => Box::new(LedgerAgreement::default()),
            None => Box::new(DeadlineAgreement),
        };
        let mut core = match self.checkpoints[node].clone() {
            Some(snapshot) => Node::resume(key, config, members, snapshot, agreement),
            None => Node::new(key, config, members, self.genesis.clone(), agreement),
        }
        .map_err(|err| Error::InvalidConfig(err.to_string()))?;
        // A (re)started node learns the lists the ledger still holds, as a daemon reads them
        // from its ledger store; nothing is due before its first tick.
        for (round, list) in self
            .ledger
            .iter()
            .flat_map(|l| l.state().decided(Part::WHOLE))
        {
            let _ = core.handle(now, Input::Decided { round, list });
        }
        self.nodes[node] = Some(core);
        let store = self.stores[node].clone();
        self.workers[node] = Some(self.workload.worker(node, self.ids[node], store)?);
        let generation = self.topology.generation(node);
        self.queue.push(now, Event::Tick { node, generation });
        Ok(())
    }

    /// Notes the rounds the network has begun, and schedules the churn that waited for them.
    fn begin_rounds(&mut self, now: Timestamp) {
        let latest = self
            .honest_network()
            .into_iter()
            .filter_map(|node| self.nodes[node].as_ref().map(Node::round))
            .max();
        self.begun = self.begun.max(latest.unwrap_or(0));
        while let Some(&(round, k)) = self.waiting.first()
            && round <= self.begun
        {
            self.waiting.pop_first();
            self.queue
                .push(now + self.config.churn[k].after, Event::Churn(k));
        }
    }

    /// Lets the records move on to the lowest round an honest node on the network is in.
    fn advance(&mut self, now: Timestamp) {
        let counted = self.honest_network();
        let frontier = counted
            .iter()
            .filter_map(|node| self.nodes[*node].as_ref().map(Node::round))
            .min();
        if let Some(frontier) = frontier {
            self.progress
                .advance(frontier, now, self.net.traffic(), &counted);
        }
    }

    /// The honest nodes up on the network's side. The network's round is theirs: an attacker
    /// may run ahead alone (a silent one closes rounds with nothing to wait for).
    fn honest_network(&self) -> Vec<usize> {
        self.topology
            .network()
            .into_iter()
            .filter(|node| !self.byzantine.is_attacker(*node))
            .collect()
    }

    /// The ids of the nodes `node` reaches, itself included.
    fn members(&self, node: usize) -> BTreeSet<NodeId> {
        self.topology
            .peers(node)
            .map(|peer| self.ids[peer])
            .collect()
    }

    fn up_mut(&mut self, node: usize) -> &mut Node {
        self.nodes[node]
            .as_mut()
            .expect("events reach only nodes that are up")
    }

    fn stalled(&self) -> Error {
        Error::Stalled {
            seed: self.config.seed,
            time: self.queue.now(),
            rounds: self
                .nodes
                .iter()
                .map(|core| core.as_ref().map_or(0, Node::round))
                .collect(),
        }
    }

    fn report(mut self) -> SimReport {
        let ponw = self.ponw_report();
        let records = self.progress.records;
        SimReport {
            seed: self.config.seed,
            initial_val_loss: finite(self.initial_val_loss),
            final_val_loss: records.last().and_then(|r| r.val_loss),
            digest: digest(&records),
            rounds: records,
            attackers: self.byzantine.attackers(),
            traffic: self.net.traffic().to_vec(),
            honest_tokens: self.honest_tokens,
            penalties: self.penalties,
            resyncs: self.resyncs,
            violations: self.progress.violations,
            ponw,
            ledger: self.ledger.as_ref().map(SimLedger::report),
        }
    }

    /// Puts what `output` calls for on the ledger, and schedules a block for it.
    fn submit_to_ledger(&mut self, now: Timestamp, node: usize, output: &Output) {
        let (Some(ledger), Some(core)) = (&mut self.ledger, &self.nodes[node]) else {
            return;
        };
        if let Some(action) = core.ledger_action(output, ledger.state(), Part::WHOLE)
            && ledger.submit(node, action)
        {
            self.queue.push(now + BLOCK_INTERVAL, Event::Block);
        }
    }

    /// The sequencer's block: a round it closes is decided for every node that is up.
    fn block(&mut self, now: Timestamp) -> Result<()> {
        let ledger = self
            .ledger
            .as_mut()
            .expect("blocks come only with a ledger");
        let (receipt, due) = ledger.block(now)?;
        if due {
            self.queue.push(now + BLOCK_INTERVAL, Event::Block);
        }
        let Some((round, claims)) = receipt.closed else {
            return Ok(());
        };
        let list = neuroshard_ledger::inclusion_list(&claims, Part::WHOLE);
        for node in 0..self.config.nodes {
            if self.nodes[node].is_some() {
                let input = Input::Decided {
                    round,
                    list: list.clone(),
                };
                let outputs = self.up_mut(node).handle(now, input);
                self.carry_out_all(now, node, outputs)?;
            }
        }
        Ok(())
    }

    /// The work-proof report, when the run audits.
    fn ponw_report(&mut self) -> Option<PonwReport> {
        self.config.node.audit?;
        let n_params = self.genesis.len();
        let delta_bytes =
            neuroshard_compress::encoded_len(n_params, &self.config.node.compress).unwrap_or(0);
        let commitment_bytes = crate::ponw::commitment_bytes();
        let tally = std::mem::take(&mut self.cheats.tally);
        let cheat = self.cheats.cheat().map(|c| c.to_string());
        Some(tally.report(
            cheat,
            self.cheats.cheaters().to_vec(),
            commitment_bytes,
            delta_bytes,
        ))
    }
}

/// Node `i`'s key, from the run's seed.
fn key(tree: &RngTree, i: usize) -> Keypair {
    Keypair::from_seed(tree.seed_bytes("key", i as u64))
}
