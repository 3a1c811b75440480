//! The simulation loop: N node cores, one thread, a simulated clock and network.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use neuroshard_node::Timestamp;
use neuroshard_node::{
    DeadlineAgreement, Input, Node, Output, TrainingJob, TrainingResult, Worker,
};
use neuroshard_primitives::{Keypair, NodeId};

use crate::byzantine::Byzantine;
use crate::network::Network;
use crate::progress::Progress;
use crate::queue::EventQueue;
use crate::report::{RoundRecord, SimReport, digest, finite};
use crate::rng::RngTree;
use crate::{Error, Result, SimConfig, Workload};

/// Something that happens to one node at a simulated time.
#[derive(Debug)]
enum Event {
    /// A deadline the node asked to be woken for (or the start).
    Tick(usize),
    /// A frame from `from` arrives at `to`.
    Deliver {
        to: usize,
        from: usize,
        frame: Vec<u8>,
    },
    /// The node's training job finishes.
    Trained { node: usize, result: TrainingResult },
}

/// A deterministic run of N nodes.
#[derive(Debug)]
pub struct Sim<W: Workload> {
    config: SimConfig,
    workload: W,
    queue: EventQueue<Event>,
    net: Network,
    nodes: Vec<Node>,
    workers: Vec<W::Worker>,
    index: BTreeMap<NodeId, usize>,
    byzantine: Byzantine,
    progress: Progress,
    penalties: Vec<u64>,
    resyncs: Vec<u64>,
    honest_tokens: u64,
    initial_val_loss: f32,
}

impl<W: Workload> Sim<W> {
    /// Builds the nodes (keys and roles from the seed), their workers and the network.
    pub fn new(config: SimConfig, mut workload: W) -> Result<Self> {
        config.validate()?;
        let tree = RngTree::new(config.seed);
        let keys: Vec<Keypair> = (0..config.nodes as u64)
            .map(|i| Keypair::from_seed(tree.seed_bytes("key", i)))
            .collect();
        let ids: Vec<NodeId> = keys.iter().map(Keypair::node_id).collect();
        let members: BTreeSet<NodeId> = ids.iter().copied().collect();
        let params = workload.init_params()?;
        let initial_val_loss = workload.val_loss(&params)?;
        let workers = (0..config.nodes)
            .map(|i| workload.worker(i, ids[i]))
            .collect::<Result<Vec<_>>>()?;
        let nodes = keys
            .into_iter()
            .map(|key| {
                let agreement = Box::new(DeadlineAgreement);
                Node::new(
                    key,
                    config.node.clone(),
                    members.clone(),
                    params.clone(),
                    agreement,
                )
                .map_err(|err| Error::InvalidConfig(err.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut net = Network::new(config.nodes, config.link, tree.stream("network", 0));
        for o in &config.link_overrides {
            net.set_link(o.from, o.to, o.link);
        }
        let byzantine = Byzantine::new(
            config.nodes,
            config.byzantine,
            config.groups,
            config.attack,
            tree.stream("byzantine", 0),
        );
        let honest = (0..config.nodes)
            .map(|i| !byzantine.is_attacker(i))
            .collect();
        let mut queue = EventQueue::new();
        for i in 0..config.nodes {
            queue.push(Timestamp::ZERO, Event::Tick(i));
        }
        Ok(Self {
            index: ids.iter().enumerate().map(|(i, id)| (*id, i)).collect(),
            penalties: vec![0; config.nodes],
            resyncs: vec![0; config.nodes],
            config,
            workload,
            queue,
            net,
            nodes,
            workers,
            byzantine,
            progress: Progress::new(honest),
            honest_tokens: 0,
            initial_val_loss,
        })
    }

    /// Runs every round and returns the report.
    pub fn run(self) -> Result<SimReport> {
        self.run_observed(|_| {})
    }

    /// Runs every round, handing each round's record to `on_round` as soon as every honest node
    /// has closed it (for progress output), and returns the report.
    pub fn run_observed(mut self, mut on_round: impl FnMut(&RoundRecord)) -> Result<SimReport> {
        let mut seen = 0;
        while (self.progress.records.len() as u64) < self.config.rounds {
            let Some((now, event)) = self.queue.pop() else {
                return Err(self.stalled());
            };
            self.step(now, event)?;
            for record in &self.progress.records[seen..] {
                on_round(record);
            }
            seen = self.progress.records.len();
        }
        Ok(self.report())
    }

    /// Handles one event and carries out what the node asks.
    fn step(&mut self, now: Timestamp, event: Event) -> Result<()> {
        let (node, input) = match event {
            Event::Tick(node) => (node, Input::Tick),
            Event::Deliver { to, from, frame } => {
                (to, Input::Message(self.nodes[from].id(), frame))
            }
            Event::Trained { node, mut result } => {
                if self.byzantine.is_attacker(node) {
                    result.delta = self.byzantine.forge(node, result.round, now, &result.delta);
                } else {
                    self.byzantine.announced(now, &result.delta);
                    self.honest_tokens += result.tokens;
                }
                (node, Input::Trained(result))
            }
        };
        let outputs = self.nodes[node].handle(now, input);
        outputs
            .into_iter()
            .try_for_each(|output| self.carry_out(now, node, output))
    }

    fn carry_out(&mut self, now: Timestamp, node: usize, output: Output) -> Result<()> {
        match output {
            Output::Broadcast(frame) => {
                for to in (0..self.nodes.len()).filter(|to| *to != node) {
                    self.send(now, node, to, frame.clone());
                }
            }
            Output::Send(peer, frame) => {
                if let Some(&to) = self.index.get(&peer) {
                    self.send(now, node, to, frame);
                }
            }
            Output::Train(job) => self.train(now, node, &job)?,
            Output::WakeAt(at) => self.queue.push(at, Event::Tick(node)),
            Output::Penalize { peer, reason } => {
                if let Some(&peer) = self.index.get(&peer) {
                    self.penalties[peer] += 1;
                    self.progress.penalty(node, peer, &reason);
                }
            }
            Output::Closed(summary) => {
                let val_loss = if self.progress.needs_eval(node, summary.round) {
                    Some(self.workload.val_loss(self.nodes[node].params())?)
                } else {
                    None
                };
                if let Some(round) = self.progress.closed(node, summary, val_loss) {
                    self.progress.finish(round, now, self.net.traffic());
                }
            }
            Output::Resynced { .. } => self.resyncs[node] += 1,
        }
        Ok(())
    }

    fn send(&mut self, now: Timestamp, from: usize, to: usize, frame: Vec<u8>) {
        let at = self.net.transmit(now, from, to, frame.len());
        self.queue.push(at, Event::Deliver { to, from, frame });
    }

    /// Runs the job for real now, and schedules its result after the simulated compute time.
    fn train(&mut self, now: Timestamp, node: usize, job: &TrainingJob) -> Result<()> {
        if job.round >= self.config.rounds {
            return Ok(());
        }
        let result = self.workers[node]
            .train(job, self.nodes[node].params())
            .map_err(|err| Error::Worker {
                node,
                round: job.round,
                source: Box::new(err),
            })?;
        let tokens = job.steps as f64 * self.workload.tokens_per_step() as f64;
        let done = now + Duration::from_secs_f64(tokens / self.config.tokens_per_sec[node]);
        self.byzantine.trained(node, job.round, done, &result.delta);
        self.queue.push(done, Event::Trained { node, result });
        Ok(())
    }

    fn stalled(&self) -> Error {
        Error::Stalled {
            seed: self.config.seed,
            time: self.queue.now(),
            rounds: self.progress.closed.clone(),
        }
    }

    fn report(self) -> SimReport {
        let records = self.progress.records;
        SimReport {
            seed: self.config.seed,
            initial_val_loss: finite(self.initial_val_loss),
            final_val_loss: records.last().and_then(|r| r.val_loss),
            digest: digest(&records),
            rounds: records,
            attackers: (0..self.config.nodes)
                .filter(|i| self.byzantine.is_attacker(*i))
                .collect(),
            traffic: self.net.traffic().to_vec(),
            honest_tokens: self.honest_tokens,
            penalties: self.penalties,
            resyncs: self.resyncs,
            violations: self.progress.violations,
        }
    }
}
