//! The node's status as the HTTP API shows it, kept up to date by the driver.

use std::collections::BTreeMap;

use neuroshard_api::{ClosedRound, ModelPoint, Point, Status};
use neuroshard_node::{RoundSummary, Timestamp};
use neuroshard_p2p::{Multiaddr, PeerId, TrafficStats};
use neuroshard_primitives::{Hash, NodeId};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::work::JobOutcome;

/// The writing side of the status channel, with the bookkeeping the figures need.
#[derive(Debug)]
pub(crate) struct StatusBoard {
    tx: watch::Sender<Status>,
    started: Instant,
    inner_steps: u64,
}

impl StatusBoard {
    /// A board for node `node` of network `network`; returns the receiver the API serves.
    pub(crate) fn new(
        node: NodeId,
        network: Hash,
        inner_steps: u64,
    ) -> (Self, watch::Receiver<Status>) {
        let status = Status {
            node_id: node.to_hex(),
            network_id: network,
            ..Status::default()
        };
        let (tx, rx) = watch::channel(status);
        let board = Self {
            tx,
            started: Instant::now(),
            inner_steps,
        };
        (board, rx)
    }

    /// The addresses peers can dial (with `/p2p/…`).
    pub(crate) fn set_addrs(&self, addrs: &[Multiaddr]) {
        let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        self.tx
            .send_if_modified(|s| replace(&mut s.listen_addrs, addrs));
    }

    /// Round, step, model, peers and traffic: the figures that change all the time.
    pub(crate) fn refresh(
        &self,
        round: u64,
        step: u64,
        model: Hash,
        peers: &BTreeMap<PeerId, NodeId>,
        traffic: TrafficStats,
    ) {
        let peers: Vec<String> = peers.keys().map(ToString::to_string).collect();
        self.tx.send_if_modified(|s| {
            let mut changed = replace(&mut s.round, round);
            changed |= replace(&mut s.inner_step, step);
            changed |= replace(&mut s.model_hash, Some(model));
            changed |= replace(&mut s.peers, peers);
            changed |= replace(&mut s.bytes_sent, traffic.wire_sent);
            changed |= replace(&mut s.bytes_received, traffic.wire_received);
            changed |= replace(&mut s.payload_bytes_sent, traffic.payload_sent);
            changed |= replace(&mut s.payload_bytes_received, traffic.payload_received);
            changed
        });
    }

    /// The loss of the inner step before global step `step`, plotted when it is new.
    pub(crate) fn live_loss(&self, round: u64, step: u64, loss: f32) {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        self.tx.send_if_modified(|s| {
            if s.history.last().is_some_and(|p| p.step >= step) {
                return false;
            }
            s.loss = Some(f64::from(loss));
            s.push_point(Point {
                round,
                step,
                loss: Some(f64::from(loss)),
                val_loss: None,
                elapsed_s,
            });
            true
        });
    }

    /// A training job finished: its throughput.
    pub(crate) fn job_done(&self, outcome: &JobOutcome) {
        if let Ok(result) = &outcome.result {
            let rate = result.tokens as f64 / outcome.train_secs.max(1e-9);
            self.tx.send_modify(|s| s.tokens_per_sec = rate);
        }
    }

    /// The validation loss of `round`'s start model, plotted at the round's first step.
    pub(crate) fn validated(&self, round: u64, val_loss: f32) {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let step = round * self.inner_steps;
        self.tx.send_modify(|s| {
            s.val_loss = Some(f64::from(val_loss));
            s.push_model_point(ModelPoint {
                round,
                tokens: s.network_tokens,
                val_loss: f64::from(val_loss),
            });
            s.push_point(Point {
                round,
                step,
                loss: None,
                val_loss: Some(f64::from(val_loss)),
                elapsed_s,
            });
        });
    }

    /// A round closed: how many contributions it applied, the network's mean training loss, and
    /// the round's entry in the recent rounds (with whom it waited for in vain, and how long it
    /// took since the round before closed here).
    pub(crate) fn round_closed(&self, summary: &RoundSummary) {
        let closed_at_s = summary.closed_at.as_secs_f64();
        self.tx.send_modify(|s| {
            s.contributors = summary.included.len() as u64;
            s.network_tokens = s.network_tokens.saturating_add(summary.tokens);
            if !summary.included.is_empty() {
                s.loss = Some(f64::from(summary.train_loss));
            }
            let duration_s = s
                .rounds
                .last()
                .filter(|r| r.round + 1 == summary.round)
                .map(|r| closed_at_s - r.closed_at_s);
            s.push_round(ClosedRound {
                round: summary.round,
                included: summary.included.len() as u64,
                missed: summary.missed.iter().map(NodeId::to_hex).collect(),
                closed_at_s,
                duration_s,
                model_hash: summary.model_hash,
                installed: false,
            });
        });
    }

    /// What the node's audits found so far, and whom it excluded.
    /// The ledger as this node sees it.
    pub(crate) fn ledger(&self, ledger: neuroshard_api::LedgerStatus) {
        self.tx
            .send_if_modified(|s| replace(&mut s.ledger, Some(ledger)));
    }

    pub(crate) fn audits(
        &self,
        stats: neuroshard_node::AuditStats,
        excluded: &std::collections::BTreeMap<NodeId, String>,
    ) {
        self.tx.send_modify(|s| {
            s.audits = neuroshard_api::Audits {
                challenged: stats.challenged,
                passed: stats.passed,
                failed: stats.failed,
                withheld: stats.withheld,
                served: stats.served,
                proofs_seen: stats.proofs_seen,
                proofs_upheld: stats.proofs_upheld,
                false_accusations: stats.false_accusations,
                excluded: excluded
                    .iter()
                    .map(|(node, reason)| neuroshard_api::Excluded {
                        node: node.to_hex(),
                        reason: reason.clone(),
                    })
                    .collect(),
            };
        });
    }

    /// The node installed the network's state at the end of `round` (model `hash`) at `at`,
    /// instead of closing the round itself: listed among the rounds, so a reader sees which
    /// model the node held after every round.
    pub(crate) fn resynced(&self, round: u64, hash: Hash, at: Timestamp) {
        self.tx.send_modify(|s| {
            s.push_round(ClosedRound {
                round,
                model_hash: hash,
                closed_at_s: at.as_secs_f64(),
                installed: true,
                ..ClosedRound::default()
            });
        });
    }
}

/// Sets `slot` to `value`; whether it changed.
fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        return false;
    }
    *slot = value;
    true
}
