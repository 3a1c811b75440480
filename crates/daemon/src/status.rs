//! The node's status as the HTTP API shows it, kept up to date by the driver.

use std::collections::BTreeMap;

use neuroshard_api::{ClosedRound, GrowthPoint, ModelPoint, Point, PrivacyStatus, Status};
use neuroshard_data::PrivacySpec;
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
    privacy: Option<PrivacyBasis>,
}

/// What the privacy spent is computed from: the network's DP settings and this node's batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrivacyBasis {
    /// The genesis file's `[privacy]` section.
    pub(crate) spec: PrivacySpec,
    /// Sequences per inner step.
    pub(crate) batch_size: usize,
    /// Tokens per sequence.
    pub(crate) seq_len: usize,
}

impl StatusBoard {
    /// A board for node `node` of network `network`, training with DP when `privacy` is given;
    /// returns the receiver the API serves.
    pub(crate) fn new(
        node: NodeId,
        network: Hash,
        inner_steps: u64,
        privacy: Option<PrivacyBasis>,
    ) -> (Self, watch::Receiver<Status>) {
        let status = Status {
            node_id: node.to_hex(),
            network_id: network,
            privacy: privacy.map(|basis| PrivacyStatus {
                clip: basis.spec.clip,
                noise: basis.spec.noise,
                delta: basis.spec.delta,
                sampling_rate: None,
                steps: 0,
                epsilon: Some(0.0),
            }),
            ..Status::default()
        };
        let (tx, rx) = watch::channel(status);
        let board = Self {
            tx,
            started: Instant::now(),
            inner_steps,
            privacy,
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
        model: Option<Hash>,
        peers: &BTreeMap<PeerId, NodeId>,
        traffic: TrafficStats,
    ) {
        let peers: Vec<String> = peers.keys().map(ToString::to_string).collect();
        self.tx.send_if_modified(|s| {
            let mut changed = replace(&mut s.round, round);
            changed |= replace(&mut s.inner_step, step);
            changed |= replace(&mut s.model_hash, model);
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

    /// A training job finished: its throughput and, with DP, the privacy its H steps spent on
    /// batches drawn from `pool_tokens` tokens (unknown before the manifest).
    pub(crate) fn job_done(&self, outcome: &JobOutcome, pool_tokens: Option<u64>) {
        if let Ok(result) = &outcome.result {
            let rate = result.tokens as f64 / outcome.train_secs.max(1e-9);
            self.tx.send_modify(|s| {
                s.tokens_per_sec = rate;
                if let (Some(basis), Some(privacy)) = (&self.privacy, s.privacy.as_mut()) {
                    spend(privacy, basis, self.inner_steps, pool_tokens);
                }
            });
        }
    }

    /// The node's round core holds `held` parameters now (its trainer and replayer, when it
    /// has them, hold the same model); the peak keeps the most it ever held.
    pub(crate) fn params(&self, held: usize) {
        let held = held as u64;
        self.tx.send_if_modified(|s| {
            let peak = s.params_peak.max(held);
            replace(&mut s.params_held, held) | replace(&mut s.params_peak, peak)
        });
    }

    /// The replica took on a model of `n_layers` for `round`; `grew` when it came from a
    /// shallower one (its depth and the start model's loss cut back to it).
    pub(crate) fn depth(&self, round: u64, n_layers: usize, grew: Option<(usize, Option<f32>)>) {
        self.tx.send_if_modified(|s| {
            let changed = replace(&mut s.n_layers, n_layers);
            if let Some((from_layers, val_before)) = grew {
                s.growths.push(GrowthPoint {
                    round,
                    from_layers,
                    to_layers: n_layers,
                    val_before: val_before.map(f64::from),
                    val_after: None,
                });
                let excess = s.growths.len().saturating_sub(neuroshard_api::ROUNDS_LIMIT);
                s.growths.drain(..excess);
                return true;
            }
            changed
        });
    }

    /// The validation loss of `round`'s start model, plotted at the round's first step.
    pub(crate) fn validated(&self, round: u64, val_loss: f32) {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let step = round * self.inner_steps;
        self.tx.send_modify(|s| {
            if let Some(growth) = s.growths.last_mut().filter(|g| g.round == round) {
                growth.val_after = Some(f64::from(val_loss));
            }
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
            // A pipeline stage without the head reports no loss (NaN).
            if !summary.included.is_empty() && summary.train_loss.is_finite() {
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
                grew_to: summary.growth.clone().and_then(Result::ok),
            });
        });
    }

    /// What this node's capacity record announces.
    pub(crate) fn capacity(&self, capacity: neuroshard_api::CapacityStatus) {
        self.tx
            .send_if_modified(|s| replace(&mut s.capacity, Some(capacity)));
    }

    /// The pipeline role this node trains: its stage, layers, lanes (`served`: those it serves
    /// now) and peers.
    pub(crate) fn role(&self, role: &crate::role::Role, served: Vec<usize>) {
        let me = self.tx.borrow().node_id.clone();
        let status = neuroshard_api::RoleStatus {
            stage: role.stage,
            stages: role.stages,
            layers: [role.spec.layers.start, role.spec.layers.end],
            embedding: role.spec.embedding,
            head: role.spec.head,
            lane: role.lane,
            lanes: role.lanes,
            served,
            stage_peers: (role.replicas.iter().map(NodeId::to_hex))
                .filter(|n| *n != me)
                .collect(),
            prev: role.prev.map(|n| n.to_hex()),
            next: role.next.map(|n| n.to_hex()),
        };
        self.tx
            .send_if_modified(|s| replace(&mut s.role, Some(status)));
    }

    /// The node holds no stage (a plan left it out).
    pub(crate) fn no_role(&self) {
        self.tx.send_if_modified(|s| s.role.take().is_some());
    }

    /// The lanes the node's stage serves now.
    pub(crate) fn served(&self, lanes: Vec<usize>) {
        self.tx.send_if_modified(|s| match &mut s.role {
            Some(role) => replace(&mut role.served, lanes),
            None => false,
        });
    }

    /// The ledger as this node sees it.
    pub(crate) fn ledger(&self, ledger: neuroshard_api::LedgerStatus) {
        self.tx
            .send_if_modified(|s| replace(&mut s.ledger, Some(ledger)));
    }

    /// What the node's audits found so far, and whom it excluded.
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
                grew_to: None,
                ..ClosedRound::default()
            });
        });
    }
}

/// Counts `steps` more DP-SGD steps in `privacy` and recomputes ε; the sampling rate is the batch
/// over the sequences of the shards a round draws from (`neuroshard_privacy::sampling_rate`),
/// an upper bound over the run, since an example is in the pool only in rounds its shard is
/// assigned to this node.
fn spend(privacy: &mut PrivacyStatus, basis: &PrivacyBasis, steps: u64, pool_tokens: Option<u64>) {
    privacy.steps += steps;
    privacy.sampling_rate = pool_tokens
        .map(|tokens| neuroshard_privacy::sampling_rate(basis.batch_size, basis.seq_len, tokens));
    privacy.epsilon = privacy.sampling_rate.and_then(|q| {
        neuroshard_privacy::Accountant::new(q, privacy.noise)
            .and_then(|accountant| accountant.epsilon(privacy.steps, privacy.delta))
            .ok()
            .map(|spent| spent.epsilon)
            .filter(|epsilon| epsilon.is_finite())
    });
}

/// Sets `slot` to `value`; whether it changed.
fn replace<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        return false;
    }
    *slot = value;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_spends_its_steps_and_epsilon_waits_for_the_data() {
        let basis = PrivacyBasis {
            spec: PrivacySpec {
                clip: 1.0,
                noise: 1.0,
                delta: 1e-5,
            },
            batch_size: 8,
            seq_len: 128,
        };
        let mut privacy = PrivacyStatus {
            noise: 1.0,
            delta: 1e-5,
            ..PrivacyStatus::default()
        };
        spend(&mut privacy, &basis, 500, None);
        assert_eq!((privacy.steps, privacy.epsilon), (500, None));
        spend(&mut privacy, &basis, 500, Some(128 * 800));
        assert_eq!(privacy.sampling_rate, Some(0.01));
        let expected = neuroshard_privacy::Accountant::new(0.01, 1.0)
            .unwrap()
            .epsilon(1000, 1e-5)
            .unwrap()
            .epsilon;
        assert_eq!((privacy.steps, privacy.epsilon), (1000, Some(expected)));
    }
}
