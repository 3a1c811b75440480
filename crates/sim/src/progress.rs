//! Round bookkeeping across nodes, and the checkers: the replicas on the network hold one model,
//! the validation loss is finite, no honest node penalises another.
//!
//! A round's record is defined over the honest nodes that are up on the network's side of any
//! partition. The round has *passed* once each of them has moved beyond it (closed it, or
//! installed a later state): its time and traffic are taken then. A node's last word on the
//! round is the model hash it closed the round with, or the one it installed for the round when
//! it lost a split; the words are final once the next round has passed too (a split on round r
//! is repaired during round r + 1), and the record is written then. Only the words of nodes
//! that have been up and on the network's side for a full round count: a joining, restarting or
//! reconnecting node that comes while the network is in round k counts from round k + 1 on.

use std::collections::{BTreeMap, BTreeSet};

use neuroshard_node::{Round, RoundSummary, Timestamp};
use neuroshard_primitives::Hash;

use crate::network::Traffic;
use crate::report::{RoundRecord, finite};

/// A model some counted node ended a round with.
#[derive(Debug, Default)]
struct Model {
    /// Its validation loss, if it was evaluated.
    val_loss: Option<f32>,
    /// The first counted close that produced it.
    summary: Option<RoundSummary>,
}

/// Time and traffic when every honest network node had moved beyond the round.
#[derive(Debug)]
struct Passed {
    at: Timestamp,
    sent: u64,
    received: u64,
}

/// What is known about a round whose record is not written yet.
#[derive(Debug, Default)]
struct Open {
    /// Each counted node's last word on the round.
    words: BTreeMap<usize, Hash>,
    models: BTreeMap<Hash, Model>,
    /// Members a counted node's close waited for in vain.
    missed: BTreeSet<usize>,
    passed: Option<Passed>,
}

/// Per-round progress of a run.
#[derive(Debug)]
pub(crate) struct Progress {
    honest: Vec<bool>,
    /// The first round each node's word counts for; `None` while it is down or cut off.
    counts_from: Vec<Option<Round>>,
    rounds: Round,
    open: BTreeMap<Round, Open>,
    passed: Round,
    pub(crate) records: Vec<RoundRecord>,
    pub(crate) violations: Vec<String>,
    last_traffic: Vec<Traffic>,
}

impl Progress {
    /// Tracks a run of `rounds` rounds; `honest[i]` says whether node `i` is checked, `up[i]`
    /// whether it counts from round 0.
    pub(crate) fn new(honest: Vec<bool>, up: &[bool], rounds: Round) -> Self {
        let n = honest.len();
        Self {
            counts_from: up.iter().map(|up| up.then_some(0)).collect(),
            honest,
            rounds,
            open: BTreeMap::new(),
            passed: 0,
            records: Vec::new(),
            violations: Vec::new(),
            last_traffic: vec![Traffic::default(); n],
        }
    }

    /// Rounds every honest network node has moved beyond.
    pub(crate) fn passed(&self) -> Round {
        self.passed
    }

    /// Whether `node` is counted on the network from some round on.
    pub(crate) fn is_connected(&self, node: usize) -> bool {
        self.counts_from[node].is_some()
    }

    /// `node` came up on the network's side while the network was in round `now_at`.
    pub(crate) fn connect(&mut self, node: usize, now_at: Round) {
        self.counts_from[node] = Some(now_at + 1);
    }

    /// `node` went down or was cut off: its words on rounds not yet written no longer count,
    /// since it has no chance to repair them.
    pub(crate) fn disconnect(&mut self, node: usize) {
        self.counts_from[node] = None;
        for open in self.open.values_mut() {
            open.words.remove(&node);
        }
    }

    fn counts(&self, node: usize, round: Round) -> bool {
        self.honest[node]
            && round >= self.records.len() as Round
            && self.counts_from[node].is_some_and(|from| from <= round)
    }

    /// Whether the model `hash` a counted node holds after `round` still needs evaluating.
    pub(crate) fn wants_eval(&self, node: usize, round: Round, hash: Hash) -> bool {
        self.counts(node, round)
            && self
                .open
                .get(&round)
                .and_then(|open| open.models.get(&hash))
                .is_none_or(|model| model.val_loss.is_none())
    }

    /// `node` ended `round` with `hash`: it closed the round (`closed` holds the summary and the
    /// members that close waited for in vain), or installed the network's state for it.
    pub(crate) fn word(
        &mut self,
        node: usize,
        round: Round,
        hash: Hash,
        val_loss: Option<f32>,
        closed: Option<(RoundSummary, Vec<usize>)>,
    ) {
        if !self.counts(node, round) {
            return;
        }
        let open = self.open.entry(round).or_default();
        open.words.insert(node, hash);
        let model = open.models.entry(hash).or_default();
        model.val_loss = model.val_loss.or(val_loss);
        if let Some((summary, missed)) = closed {
            model.summary.get_or_insert(summary);
            open.missed.extend(missed);
        }
    }

    /// Every honest network node is at `frontier` or beyond (`counted` lists them): the rounds
    /// before it have passed, and each round whose successor passed is written.
    pub(crate) fn advance(
        &mut self,
        frontier: Round,
        now: Timestamp,
        traffic: &[Traffic],
        counted: &[usize],
    ) {
        while self.passed < frontier.min(self.rounds) {
            let (sent, received) = self.traffic_since_last(traffic, counted);
            let passed = Passed {
                at: now,
                sent,
                received,
            };
            self.open.entry(self.passed).or_default().passed = Some(passed);
            if let Some(previous) = self.passed.checked_sub(1) {
                self.write(previous);
            }
            self.passed += 1;
        }
    }

    /// Writes the last passed round, whose words can no longer be repaired within the run.
    pub(crate) fn finish(&mut self) {
        if let Some(last) = self.passed.checked_sub(1) {
            self.write(last);
        }
    }

    /// The record of a passed round, and the checkers' findings on it.
    fn write(&mut self, round: Round) {
        let open = self.open.remove(&round).unwrap_or_default();
        let passed = open.passed.expect("a round is written after it passed");
        let mut votes: BTreeMap<Hash, usize> = BTreeMap::new();
        for hash in open.words.values() {
            *votes.entry(*hash).or_default() += 1;
        }
        // The most common word, the lowest hash among equals.
        let model_hash = votes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(hash, _)| *hash)
            .unwrap_or_default();
        // With no word at all (every counted node went down, say) there is nothing to compare.
        let agreed = votes.len() <= 1;
        if !agreed {
            self.violations.push(format!(
                "round {round}: the replicas on the network disagree: {:?}",
                open.words
            ));
        }
        let model = open.models.get(&model_hash);
        let val_loss = model.and_then(|m| m.val_loss);
        if let Some(loss) = val_loss.filter(|loss| !loss.is_finite()) {
            self.violations
                .push(format!("round {round}: validation loss is {loss}"));
        }
        let summary = model.and_then(|m| m.summary.as_ref());
        self.records.push(RoundRecord {
            round,
            val_loss: val_loss.and_then(finite),
            train_loss: summary.and_then(|s| finite(s.train_loss)),
            bytes_sent: passed.sent,
            bytes_received: passed.received,
            sim_time_s: passed.at.as_secs_f64(),
            included: summary.map_or(0, |s| s.included.len()),
            skipped: summary.is_some_and(|s| s.skipped.is_some()),
            agreed,
            model_hash,
            replicas: open.words.len(),
            missed: open.missed.into_iter().collect(),
        });
    }

    /// A penalty given by `by` to `peer`: an honest node penalising an honest one is a bug.
    pub(crate) fn penalty(&mut self, by: usize, peer: usize, reason: &str) {
        if self.honest[by] && self.honest[peer] {
            self.violations.push(format!(
                "honest node {by} penalised honest node {peer}: {reason}"
            ));
        }
    }

    /// Mean bytes sent and received per `counted` node since the last call.
    fn traffic_since_last(&mut self, traffic: &[Traffic], counted: &[usize]) -> (u64, u64) {
        let delta = |f: fn(&Traffic) -> u64| {
            counted
                .iter()
                .map(|i| f(&traffic[*i]) - f(&self.last_traffic[*i]))
                .sum::<u64>()
                / counted.len().max(1) as u64
        };
        let sent = delta(|t| t.bytes_sent);
        let received = delta(|t| t.bytes_received);
        self.last_traffic = traffic.to_vec();
        (sent, received)
    }
}
