//! The status snapshot the node publishes and every route renders.

use neuroshard_primitives::Hash;
use serde::{Deserialize, Serialize};

use crate::LedgerStatus;

/// Most points kept in [`Status::history`]; past it, every other point is dropped.
pub const HISTORY_LIMIT: usize = 512;

/// Most rounds kept in [`Status::rounds`]; past it, the oldest is dropped.
pub const ROUNDS_LIMIT: usize = 64;

/// What one node reports about itself: the body of `GET /api/status`.
///
/// The node owns the value and sends a fresh copy through a `tokio::sync::watch` channel
/// whenever something changes; the server only reads it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// This node's public key, lowercase hex.
    pub node_id: String,
    /// The genesis network id.
    pub network_id: Hash,
    /// Addresses the node listens on (multiaddrs, as text).
    pub listen_addrs: Vec<String>,
    /// Connected peers (peer ids, as text).
    pub peers: Vec<String>,
    /// The current outer round.
    pub round: u64,
    /// The inner step within the current round.
    pub inner_step: u64,
    /// The latest training loss of this node's replica on its own batches (or, after a round
    /// closed, the mean its contributors reported), if a step has run.
    pub loss: Option<f64>,
    /// The latest validation loss of the network's model (the one every replica starts the
    /// round from, and the one an export writes), if one was measured.
    pub val_loss: Option<f64>,
    /// Training tokens in the outer steps of the rounds this node closed since it started:
    /// the x axis of [`Status::model_history`].
    #[serde(default)]
    pub network_tokens: u64,
    /// The network model's validation loss against `network_tokens`, oldest first, at most
    /// [`HISTORY_LIMIT`] points.
    #[serde(default)]
    pub model_history: Vec<ModelPoint>,
    /// Training throughput in tokens per second.
    pub tokens_per_sec: f64,
    /// Hash of the current model weights, if a model is loaded.
    pub model_hash: Option<Hash>,
    /// Bytes this node has sent to peers.
    pub bytes_sent: u64,
    /// Bytes this node has received from peers.
    pub bytes_received: u64,
    /// Of `bytes_sent`, the application's own bytes (announcements and fetched chunks), without
    /// the transport's encryption, framing and protocol chatter.
    pub payload_bytes_sent: u64,
    /// Of `bytes_received`, the application's own bytes, counted the same way.
    pub payload_bytes_received: u64,
    /// Contributions (pseudo-gradients) applied in the last closed round.
    pub contributors: u64,
    /// Loss over time, oldest first, at most [`HISTORY_LIMIT`] points.
    pub history: Vec<Point>,
    /// The rounds this node closed most recently, oldest first, at most [`ROUNDS_LIMIT`].
    pub rounds: Vec<ClosedRound>,
    /// Rounds this node closed at their deadline because a member had not delivered its Δ.
    pub rounds_at_deadline: u64,
    /// Proof of Neural Work: this node's audits, the fraud proofs it checked, whom it excluded.
    pub audits: Audits,
    /// The NEURO ledger as this node sees it; `None` on a network without one.
    #[serde(default)]
    pub ledger: Option<LedgerStatus>,
    /// Differential privacy of this node's training; `None` when the network trains without DP.
    #[serde(default)]
    pub privacy: Option<PrivacyStatus>,
    /// The pipeline stage this node trains; `None` when it trains the whole model (or nothing).
    #[serde(default)]
    pub role: Option<RoleStatus>,
    /// Decoder layers of the model this node trains (the network's, which grows by the
    /// genesis `[growth]` schedule); 0 before the first job.
    #[serde(default)]
    pub n_layers: usize,
    /// The times this node's replica took on a deeper model, oldest first.
    #[serde(default)]
    pub growths: Vec<GrowthPoint>,
    /// Parameters of the model this node holds now: the whole model's, or its pipeline stage's
    /// (0 while a node with a memory budget waits for its placement, and on an idle one).
    #[serde(default)]
    pub params_held: u64,
    /// The most parameters this node has held since it started: a node with a memory budget
    /// builds nothing model-sized before its placement, so a stage's peak is its stage's.
    #[serde(default)]
    pub params_peak: u64,
    /// What this node's capacity record announces; `None` before it started.
    #[serde(default)]
    pub capacity: Option<CapacityStatus>,
}

/// What a node's capacity record announces (`docs/pool.md`, "Capacity records").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityStatus {
    /// Bytes it gives to training; `None`: unbounded.
    pub memory_budget: Option<u64>,
    /// Its speed in parameter-tokens per second (`Footprint::work` per second).
    pub work_per_sec: u64,
    /// Whether it measured the speed at start-up; `false`: `--work-per-sec` pinned it.
    pub measured: bool,
}

/// The model grew (`docs/pool.md`, "Growth on a running network"): the replica took on the
/// deeper model at the start of `round`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GrowthPoint {
    /// The first round trained at the new depth.
    pub round: u64,
    /// Layers before.
    pub from_layers: usize,
    /// Layers after.
    pub to_layers: usize,
    /// Validation loss of the round's start model cut back to `from_layers` (the model right
    /// before growth), if measured.
    pub val_before: Option<f64>,
    /// Validation loss of the grown start model (right after growth), if measured.
    pub val_after: Option<f64>,
}

/// The pipeline stage a node trains (`docs/pipeline.md`, "Training in the node").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleStatus {
    /// Its stage's index, from 0.
    pub stage: usize,
    /// Stages in the pipeline.
    pub stages: usize,
    /// The layers it holds, `[start, end)`.
    pub layers: [usize; 2],
    /// Whether it holds the embedding (the first stage).
    pub embedding: bool,
    /// Whether it holds the final norm and the LM head (the last stage).
    pub head: bool,
    /// Its first lane (its index among its stage's replicas), from 0.
    pub lane: usize,
    /// Lanes in the pipeline: as many as the most replicas any stage has.
    pub lanes: usize,
    /// The lanes it serves now, from 0: its own (several where its stage has fewer replicas
    /// than there are lanes) and those it stands in for (`docs/pipeline.md`, "Failover"); none
    /// while it stands by ("Standing by").
    #[serde(default)]
    pub served: Vec<usize>,
    /// The other replicas of its stage, with which it runs DiLoCo (node ids, hex).
    pub stage_peers: Vec<String>,
    /// The lane's previous stage holder (hex), `None` on the first stage.
    pub prev: Option<String>,
    /// The lane's next stage holder (hex), `None` on the last stage.
    pub next: Option<String>,
}

/// The DP-SGD settings this node trains with and the privacy its training has spent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrivacyStatus {
    /// Per-example clipping norm C.
    pub clip: f64,
    /// Noise multiplier σ.
    pub noise: f64,
    /// The δ the ε is reported at.
    pub delta: f64,
    /// The sampling rate the accountant assumes (batch size / sequences the node draws from);
    /// `None` until the node knows its data.
    pub sampling_rate: Option<f64>,
    /// Inner steps this node has trained with DP.
    pub steps: u64,
    /// ε spent at `delta` (Rényi DP accountant); `None` when unbounded (no noise) or unknown.
    pub epsilon: Option<f64>,
}

/// One round as this node closed it, or the round whose end state it installed from a peer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClosedRound {
    /// The outer round.
    pub round: u64,
    /// Contributions the round applied.
    pub included: u64,
    /// Members the round waited for that had not delivered (public keys, lowercase hex): when
    /// not empty, the round closed at its deadline because of them.
    pub missed: Vec<String>,
    /// When the round closed, in seconds since the Unix epoch.
    pub closed_at_s: f64,
    /// Seconds since this node closed the round before, if it closed that one too.
    pub duration_s: Option<f64>,
    /// Hash of the model after the round's outer step.
    pub model_hash: Hash,
    /// The node did not close this round itself but installed the network's state at its end
    /// (it had fallen behind, or closed it on another model): `included` is 0 and `closed_at_s`
    /// is when it installed it.
    pub installed: bool,
    /// The depth the model grew to at this round's end, if it grew.
    #[serde(default)]
    pub grew_to: Option<usize>,
}

/// The network's model at the start of a round: how far it has trained and how well it does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPoint {
    /// The round whose start model was measured.
    pub round: u64,
    /// [`Status::network_tokens`] when it was measured.
    pub tokens: u64,
    /// Its validation loss.
    pub val_loss: f64,
}

/// One point of the loss history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The outer round the point was taken in.
    pub round: u64,
    /// Inner steps taken since the node started training: the plot's x axis.
    pub step: u64,
    /// Training loss at this point, if measured.
    pub loss: Option<f64>,
    /// Validation loss at this point, if measured.
    pub val_loss: Option<f64>,
    /// Seconds since the node started.
    pub elapsed_s: f64,
}

impl Status {
    /// Appends `point` to the history, keeping it within [`HISTORY_LIMIT`].
    ///
    /// When the history is full every other point is dropped (the newest is always kept), so
    /// the plot covers the whole run at a coarser resolution instead of forgetting its start.
    pub fn push_point(&mut self, point: Point) {
        thin(&mut self.history, HISTORY_LIMIT);
        self.history.push(point);
    }

    /// Appends `point` to the network model's history, keeping it within [`HISTORY_LIMIT`] the
    /// way [`Status::push_point`] does.
    pub fn push_model_point(&mut self, point: ModelPoint) {
        thin(&mut self.model_history, HISTORY_LIMIT);
        self.model_history.push(point);
    }

    /// Appends `round` to the closed rounds, keeping the newest [`ROUNDS_LIMIT`], and counts it
    /// if it closed at its deadline.
    pub fn push_round(&mut self, round: ClosedRound) {
        if !round.missed.is_empty() {
            self.rounds_at_deadline += 1;
        }
        if self.rounds.len() >= ROUNDS_LIMIT {
            self.rounds.remove(0);
        }
        self.rounds.push(round);
    }
}

/// Makes room in a series bounded by `limit` before a push: when full, drops every other point
/// but keeps the newest, so the series keeps spanning the whole run at a coarser resolution.
pub(crate) fn thin<T>(series: &mut Vec<T>, limit: usize) {
    if series.len() < limit {
        return;
    }
    let newest = series.len() - 1;
    let mut index = 0;
    series.retain(|_| {
        let keep = index % 2 == 0 || index == newest;
        index += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: u64) -> Point {
        Point {
            step,
            loss: Some(step as f64),
            ..Point::default()
        }
    }

    #[test]
    fn history_stays_bounded_and_spans_the_run() {
        let mut status = Status::default();
        for step in 0..10 * HISTORY_LIMIT as u64 {
            status.push_point(point(step));
            assert!(status.history.len() <= HISTORY_LIMIT);
        }
        let steps: Vec<u64> = status.history.iter().map(|p| p.step).collect();
        assert_eq!(steps[0], 0, "the start of the run is kept");
        assert_eq!(*steps.last().unwrap(), 10 * HISTORY_LIMIT as u64 - 1);
        assert!(steps.windows(2).all(|w| w[0] < w[1]), "oldest first");
        assert!(steps.len() > HISTORY_LIMIT / 4);
    }

    #[test]
    fn rounds_keep_the_newest_and_count_the_deadlines() {
        let mut status = Status::default();
        for round in 0..2 * ROUNDS_LIMIT as u64 {
            let missed = if round % 4 == 0 {
                vec!["ab".to_owned()]
            } else {
                Vec::new()
            };
            status.push_round(ClosedRound {
                round,
                missed,
                ..ClosedRound::default()
            });
        }
        let rounds: Vec<u64> = status.rounds.iter().map(|r| r.round).collect();
        let newest: Vec<u64> = (ROUNDS_LIMIT as u64..2 * ROUNDS_LIMIT as u64).collect();
        assert_eq!(rounds, newest, "the newest rounds, oldest first");
        assert_eq!(status.rounds_at_deadline, ROUNDS_LIMIT as u64 / 2);
    }
}

/// What a node's audits of others' work found (`Status::audits`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Audits {
    /// Segments of other nodes' chains this node challenged.
    pub challenged: u64,
    /// Of its replays, those that matched the commitment.
    pub passed: u64,
    /// Its audits that failed (a bad opening or a replay that did not match).
    pub failed: u64,
    /// Its challenges the contributor did not answer in time.
    pub withheld: u64,
    /// Challenges of this node's own chains it answered.
    pub served: u64,
    /// Fraud proofs received from other nodes.
    pub proofs_seen: u64,
    /// Of those, the ones that held when this node checked them.
    pub proofs_upheld: u64,
    /// Of those, the false ones: the accuser was excluded.
    pub false_accusations: u64,
    /// Peers excluded as proven cheaters or false accusers (node ids, hex), with why.
    pub excluded: Vec<Excluded>,
}

/// One excluded peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// Its node id, hex.
    pub node: String,
    /// The finding that excluded it.
    pub reason: String,
}
