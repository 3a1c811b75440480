//! What the HTTP API asks of the node's ledger ([`LedgerApi`]), the views it answers with, and
//! the ledger part of the status ([`LedgerStatus`]).
//!
//! Plain serde structs: amounts are `u64` micro-NEURO (1 NEURO = 1 000 000), ids and hashes are
//! lowercase hex strings. This crate does not depend on the ledger; the daemon converts.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Most points kept in [`LedgerStatus::rewards`]; past it, every other point is dropped.
pub const REWARDS_LIMIT: usize = 256;

/// What the HTTP API asks of the node's ledger; the daemon implements it.
///
/// The server calls these on a blocking thread, so an implementation may take a lock.
pub trait LedgerApi: Send + Sync + 'static {
    /// `GET /api/ledger/account/{id}` (`"me"` = this node).
    fn account(&self, id: &str) -> Result<AccountView, ApiError>;
    /// `GET /api/ledger/account/{id}/history`, oldest first.
    fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, ApiError>;
    /// `GET /api/ledger/block/{height}`.
    fn block(&self, height: u64) -> Result<BlockView, ApiError>;
    /// `GET /api/ledger/round/{round}`: inclusion list, audits, convictions, rewards paid.
    fn round(&self, round: u64) -> Result<RoundLedgerView, ApiError>;
    /// `POST /api/ledger/submit`, body = a sealed `WalletRequest`.
    fn submit(&self, request: &[u8]) -> Result<SubmitReply, ApiError>;
}

/// Why a ledger route failed; each maps to one HTTP status, with `{"error": "..."}` as the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 404: no such account, block or round.
    #[error("{0}")]
    NotFound(String),
    /// 400: the request is malformed or refused.
    #[error("{0}")]
    BadRequest(String),
    /// 503: no ledger on this network.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.to_string(),
        };
        (self.status(), Json(body)).into_response()
    }
}

/// The body of every error answer of the ledger routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// Stake on its way out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbondView {
    /// How much, micro-NEURO.
    pub amount: u64,
    /// The first height at which it may be withdrawn.
    pub release_height: u64,
}

/// One account as a finalized state holds it, with the proof that it does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account id (the node's public key), hex.
    pub id: String,
    /// Spendable, micro-NEURO.
    pub balance: u64,
    /// Bonded, micro-NEURO.
    pub stake: u64,
    /// Stake being released.
    pub unbonding: Vec<UnbondView>,
    /// The account's next transaction nonce.
    pub nonce: u64,
    /// The finalized height the account was read at.
    pub height: u64,
    /// That height's state root, hex.
    pub state_root: String,
    /// The account's Merkle proof against `state_root` (the ledger's encoded `AccountProof`),
    /// hex; empty when the account does not exist (nothing held, nonce 0).
    pub proof: String,
}

/// What moved an account's holdings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    /// Received from `counterparty`.
    TransferIn,
    /// Sent to `counterparty`.
    TransferOut,
    /// Balance bonded as stake.
    Stake,
    /// Stake started unbonding.
    Unstake,
    /// Released unbonding moved back to the balance.
    Withdraw,
    /// A round's reward (training or verifying).
    Reward,
    /// The reward for proposing a block.
    ProposerReward,
    /// Stake lost to a conviction.
    Slash,
}

/// One change to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The block that made it.
    pub height: u64,
    /// That block's time, ms since the Unix epoch.
    pub time_ms: u64,
    /// What happened.
    pub kind: HistoryKind,
    /// How much, micro-NEURO.
    pub amount: u64,
    /// The other account of a transfer, hex.
    pub counterparty: Option<String>,
    /// The transaction's id, hex; `None` for what the ledger did itself (rewards, slashes).
    pub tx: Option<String>,
}

/// A transaction in a block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxView {
    /// Its id (the hash of its wire bytes), hex.
    pub id: String,
    /// The signing account, hex.
    pub signer: String,
    /// Its nonce.
    pub nonce: u64,
    /// What it does, one line for a person (`transfer 1.500000 NEURO to ab12…`).
    pub action: String,
}

/// A finalized block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    /// Its height.
    pub height: u64,
    /// Its digest, hex.
    pub digest: String,
    /// The parent's digest, hex.
    pub parent: String,
    /// Its time, ms since the Unix epoch.
    pub time_ms: u64,
    /// The proposer's id, hex.
    pub proposer: String,
    /// The state root after it, hex.
    pub state_root: String,
    /// Its transactions, in order.
    pub txs: Vec<TxView>,
    /// The finality certificate, encoded, hex ("" when the block was finalized only through a
    /// later block).
    pub certificate: String,
    /// The block's canonical bytes, hex: what the certificate signs (its digest), so a client can
    /// check the block against the committee itself.
    #[serde(default)]
    pub block: String,
    /// For the last block of an epoch, the ledger's encoded `MetaProof` of the state after it,
    /// hex: the committee it hands over to, provable against `state_root`, so a client learns
    /// each epoch's committee from the genesis one (empty for other blocks).
    #[serde(default)]
    pub committee_proof: String,
}

/// A contribution on a round's inclusion list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimView {
    /// Who trained it, hex.
    pub contributor: String,
    /// The hash of its compressed Δ, hex.
    pub delta: String,
    /// Its training chain's root, hex.
    pub root: String,
    /// The pipeline stage it trained (0 of 1: the whole model).
    pub stage: u32,
    /// Stages in that pipeline.
    pub stages: u32,
}

/// An auditor's verdict on a contribution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    /// Whose contribution, hex.
    pub contributor: String,
    /// Who audited it, hex.
    pub auditor: String,
    /// Whether the replay matched the commitment.
    pub passed: bool,
    /// The held-out loss gain of the Δ alone, micro-nats.
    pub gain: i64,
}

/// The convictions of one contributor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvictionView {
    /// The convicted contributor, hex.
    pub contributor: String,
    /// Its accusers, in the order their convictions landed, hex.
    pub accusers: Vec<String>,
}

/// One account's reward.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardView {
    /// The account, hex.
    pub account: String,
    /// How much, micro-NEURO.
    pub amount: u64,
}

/// A training round as the ledger records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundLedgerView {
    /// The round.
    pub round: u64,
    /// The height of the block that closed its inclusion list, once closed.
    pub closed_at: Option<u64>,
    /// Whether it is settled (`rewards` is final).
    pub settled: bool,
    /// The inclusion list, in ledger order.
    pub included: Vec<ClaimView>,
    /// The verdicts recorded.
    pub audits: Vec<AuditView>,
    /// The convictions recorded.
    pub convictions: Vec<ConvictionView>,
    /// The contributors slashed for it, hex.
    pub slashed: Vec<String>,
    /// The rewards its settlement paid (empty until settled).
    pub rewards: Vec<RewardView>,
}

/// The node's answer to a submitted wallet request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitReply {
    /// The hash of the sealed request, hex (the node takes each request once).
    pub request: String,
    /// What the node did with it, for a person.
    pub message: String,
}

/// The ledger as this node sees it: `Status::ledger`, `None` on a network without one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LedgerStatus {
    /// The last finalized height.
    pub height: u64,
    /// Its state root, hex.
    pub state_root: String,
    /// How long the last block took from proposal to finality, ms.
    pub finality_ms: Option<u64>,
    /// The median of that over recent blocks, ms.
    pub finality_p50_ms: Option<u64>,
    /// The 99th percentile of that over recent blocks, ms.
    pub finality_p99_ms: Option<u64>,
    /// The committee that finalizes now, hex ids.
    pub committee: Vec<String>,
    /// Whether this node is on the committee.
    pub validator: bool,
    /// This node's spendable balance, micro-NEURO.
    pub balance: u64,
    /// This node's stake, micro-NEURO.
    pub stake: u64,
    /// This node's stake being released.
    pub unbonding: Vec<UnbondView>,
    /// This node's cumulative rewards over time, oldest first, at most [`REWARDS_LIMIT`] points.
    pub rewards: Vec<RewardPoint>,
    /// This node's transactions not yet on a finalized block, oldest first.
    pub pending: Vec<PendingTx>,
}

/// One point of [`LedgerStatus::rewards`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardPoint {
    /// The finalized height: the chart's x axis.
    pub height: u64,
    /// That block's time, ms since the Unix epoch.
    pub time_ms: u64,
    /// Rewards received since genesis, micro-NEURO.
    pub total: u64,
}

/// An outgoing transaction waiting for the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTx {
    /// What it does, one line for a person.
    pub action: String,
    /// The id of the transaction last signed for it, hex; `None` before it is signed.
    pub tx: Option<String>,
}

impl LedgerStatus {
    /// Appends `point` to the rewards series, keeping it within [`REWARDS_LIMIT`]: when full,
    /// every other point is dropped (the newest is kept), so the chart spans the whole run.
    pub fn push_reward(&mut self, point: RewardPoint) {
        crate::status::thin(&mut self.rewards, REWARDS_LIMIT);
        self.rewards.push(point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_stay_bounded_and_span_the_run() {
        let mut ledger = LedgerStatus::default();
        for height in 0..4 * REWARDS_LIMIT as u64 {
            ledger.push_reward(RewardPoint {
                height,
                time_ms: height * 1000,
                total: height * 10,
            });
            assert!(ledger.rewards.len() <= REWARDS_LIMIT);
        }
        assert_eq!(ledger.rewards[0].height, 0, "the start is kept");
        let last = ledger.rewards.last().unwrap().height;
        assert_eq!(last, 4 * REWARDS_LIMIT as u64 - 1, "the newest is kept");
    }
}
