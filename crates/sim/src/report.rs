//! What a run produced: one record per round, per-node traffic, checker violations, and a digest
//! of the whole history for determinism tests.

use neuroshard_primitives::Hash;
use serde::Serialize;

use crate::network::Traffic;
use crate::ponw::PonwReport;

/// One round, as the honest nodes on the network's side of any partition ended it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRecord {
    /// The round.
    pub round: u64,
    /// Validation loss of the honest model after the round (`None` if not finite).
    pub val_loss: Option<f32>,
    /// Mean final inner loss the included contributors reported.
    pub train_loss: Option<f32>,
    /// Bytes each honest node sent during the round, on average.
    pub bytes_sent: u64,
    /// Bytes each honest node received during the round, on average.
    pub bytes_received: u64,
    /// Simulated time when the last honest network node moved beyond the round, seconds from
    /// the start.
    pub sim_time_s: f64,
    /// Contributions the first close that produced [`RoundRecord::model_hash`] included.
    pub included: usize,
    /// Whether that close skipped the outer step (its rule refused the inputs).
    pub skipped: bool,
    /// Whether every counted replica ended the round with the same model hash (after repairing
    /// any split in the round after).
    pub agreed: bool,
    /// The model hash the counted replicas ended the round with (the most common one when they
    /// disagree).
    pub model_hash: Hash,
    /// Honest replicas counted: up on the network's side for a full round by then.
    pub replicas: usize,
    /// Members a counted replica's close waited for and did not get a Δ from: the round closed
    /// at its deadline because of them. Node indices, ascending.
    pub missed: Vec<usize>,
}

/// The outcome of one simulated run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// The seed, to replay the run.
    pub seed: u64,
    /// Validation loss of the genesis model.
    pub initial_val_loss: Option<f32>,
    /// Validation loss after the last round.
    pub final_val_loss: Option<f32>,
    /// One record per round.
    pub rounds: Vec<RoundRecord>,
    /// Indices of the Byzantine nodes.
    pub attackers: Vec<usize>,
    /// Bytes and messages per node over the whole run.
    pub traffic: Vec<Traffic>,
    /// Training tokens the honest nodes processed.
    pub honest_tokens: u64,
    /// Penalties honest nodes gave, per penalised node.
    pub penalties: Vec<u64>,
    /// Resyncs per node.
    pub resyncs: Vec<u64>,
    /// What the checkers found wrong, round by round.
    pub violations: Vec<String>,
    /// A digest of every round's model hash and losses: equal digests, equal histories.
    pub digest: Hash,
    /// What Proof of Neural Work did, when the run audits.
    pub ponw: Option<PonwReport>,
    /// What the ledger did, when rounds close through it.
    pub ledger: Option<crate::LedgerReport>,
}

impl SimReport {
    /// Panics with the violations and `SIM_SEED=<n>` if any checker failed (for tests).
    pub fn assert_clean(&self) {
        assert!(
            self.violations.is_empty(),
            "checkers failed:\n{}\nSIM_SEED={}",
            self.violations.join("\n"),
            self.seed
        );
    }

    /// Mean bytes sent per honest node over the run.
    pub fn mean_bytes_sent(&self) -> u64 {
        self.rounds.iter().map(|r| r.bytes_sent).sum()
    }

    /// Mean bytes received per honest node over the run.
    pub fn mean_bytes_received(&self) -> u64 {
        self.rounds.iter().map(|r| r.bytes_received).sum()
    }

    /// The replicas counted in each round, round by round.
    pub fn replicas(&self) -> Vec<usize> {
        self.rounds.iter().map(|record| record.replicas).collect()
    }

    /// Rounds that closed at their deadline because a member had not delivered.
    pub fn deadline_rounds(&self) -> Vec<u64> {
        self.rounds
            .iter()
            .filter(|record| !record.missed.is_empty())
            .map(|record| record.round)
            .collect()
    }

    /// Simulated seconds the run took.
    pub fn sim_time_s(&self) -> f64 {
        self.rounds.last().map_or(0.0, |r| r.sim_time_s)
    }
}

/// Folds the per-round figures into one hash.
pub(crate) fn digest(rounds: &[RoundRecord]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    for record in rounds {
        hasher.update(&record.round.to_le_bytes());
        hasher.update(&record.model_hash.0);
        hasher.update(&record.val_loss.unwrap_or(f32::NAN).to_bits().to_le_bytes());
        hasher.update(&record.bytes_sent.to_le_bytes());
        hasher.update(&record.bytes_received.to_le_bytes());
        hasher.update(&record.sim_time_s.to_bits().to_le_bytes());
    }
    Hash(*hasher.finalize().as_bytes())
}

/// `Some(x)` for a finite `x`, so JSON never holds NaN.
pub(crate) fn finite(value: f32) -> Option<f32> {
    value.is_finite().then_some(value)
}
