//! Round bookkeeping across nodes, and the checkers that run once every honest node has closed a
//! round: honest replicas hold the same model, the validation loss is finite, and no honest node
//! was penalised.

use std::collections::BTreeMap;

use neuroshard_node::{Round, RoundSummary, Timestamp};
use neuroshard_primitives::Hash;

use crate::network::Traffic;
use crate::report::{RoundRecord, finite};

/// What is known about a round that not every honest node has closed yet.
#[derive(Debug, Default)]
struct Open {
    hashes: BTreeMap<usize, Hash>,
    first: Option<(RoundSummary, f32)>,
}

/// Per-round progress of a run.
#[derive(Debug)]
pub(crate) struct Progress {
    honest: Vec<bool>,
    open: BTreeMap<Round, Open>,
    pub(crate) records: Vec<RoundRecord>,
    pub(crate) violations: Vec<String>,
    pub(crate) closed: Vec<u64>,
    last_traffic: Vec<Traffic>,
}

impl Progress {
    /// Tracks `honest.len()` nodes, of which those marked `true` are checked.
    pub(crate) fn new(honest: Vec<bool>) -> Self {
        let n = honest.len();
        Self {
            honest,
            open: BTreeMap::new(),
            records: Vec::new(),
            violations: Vec::new(),
            closed: vec![0; n],
            last_traffic: vec![Traffic::default(); n],
        }
    }

    /// Whether the first honest close of `round` is still to come (it triggers an evaluation).
    pub(crate) fn needs_eval(&self, node: usize, round: Round) -> bool {
        self.honest[node]
            && self
                .open
                .get(&round)
                .is_none_or(|open| open.first.is_none())
    }

    /// Records node `node` closing a round; `val_loss` is given for the first honest close.
    /// Returns the round if every honest node has now closed it.
    pub(crate) fn closed(
        &mut self,
        node: usize,
        summary: RoundSummary,
        val_loss: Option<f32>,
    ) -> Option<Round> {
        self.closed[node] = self.closed[node].max(summary.round + 1);
        if !self.honest[node] {
            return None;
        }
        let round = summary.round;
        let open = self.open.entry(round).or_default();
        open.hashes.insert(node, summary.model_hash);
        if let Some(loss) = val_loss {
            open.first = Some((summary, loss));
        }
        let honest = self.honest.iter().filter(|h| **h).count();
        (open.hashes.len() == honest).then_some(round)
    }

    /// Closes the books on `round`: one record, and the checkers' findings.
    pub(crate) fn finish(&mut self, round: Round, now: Timestamp, traffic: &[Traffic]) {
        let open = self
            .open
            .remove(&round)
            .expect("finish follows a complete close");
        let (summary, loss) = open.first.expect("the first honest close was evaluated");
        let agreed = open.hashes.values().all(|h| *h == summary.model_hash);
        if !agreed {
            self.violations.push(format!(
                "round {round}: honest replicas disagree: {:?}",
                open.hashes
            ));
        }
        if !loss.is_finite() {
            self.violations
                .push(format!("round {round}: validation loss is {loss}"));
        }
        let (sent, received) = self.traffic_since_last(traffic);
        self.records.push(RoundRecord {
            round,
            val_loss: finite(loss),
            train_loss: finite(summary.train_loss),
            bytes_sent: sent,
            bytes_received: received,
            sim_time_s: now.as_secs_f64(),
            included: summary.included.len(),
            skipped: summary.skipped.is_some(),
            agreed,
            model_hash: summary.model_hash,
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

    /// Mean bytes sent and received per honest node since the last call.
    fn traffic_since_last(&mut self, traffic: &[Traffic]) -> (u64, u64) {
        let honest: Vec<usize> = (0..self.honest.len()).filter(|i| self.honest[*i]).collect();
        let delta = |f: fn(&Traffic) -> u64| {
            honest
                .iter()
                .map(|i| f(&traffic[*i]) - f(&self.last_traffic[*i]))
                .sum::<u64>()
                / honest.len() as u64
        };
        let sent = delta(|t| t.bytes_sent);
        let received = delta(|t| t.bytes_received);
        self.last_traffic = traffic.to_vec();
        (sent, received)
    }
}
