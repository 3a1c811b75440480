//! The ledger's record for people: every account's history, each round's list and payout, the
//! finality of recent blocks, and the views the HTTP API and the status serve. Built from the
//! blocks as they are applied (and from the store's blocks at a restart), so it is complete.

use std::collections::{BTreeMap, VecDeque};

use neuroshard_api::{
    AccountView, AuditView, BlockView, ClaimView, ConvictionView, HistoryEntry, HistoryKind,
    LedgerStatus, PendingTx, RewardPoint, RewardView, RoundLedgerView, TxView, UnbondView,
};
use neuroshard_consensus::{Block, Header};
use neuroshard_ledger::{
    Account, Action, Amount, Body, Claim, Outbox, Payout, Receipt, Round, RoundBook, Rules,
    SignedTx, State,
};
use neuroshard_primitives::NodeId;

/// History entries kept per account.
const HISTORY_KEPT: usize = 1_000;
/// Rounds whose list and payout are kept after they settle.
const ROUNDS_KEPT: usize = 256;
/// Blocks whose finality feeds the percentiles.
const FINALITY_KEPT: usize = 200;

/// A settled round: the ledger's book of it as it stood when it settled, and what it paid.
#[derive(Debug, Clone)]
struct Settled {
    book: RoundBook,
    payout: Payout,
}

/// The record.
#[derive(Debug, Default)]
pub(crate) struct Book {
    history: BTreeMap<NodeId, VecDeque<HistoryEntry>>,
    settled: BTreeMap<Round, Settled>,
    finality: VecDeque<u64>,
    /// This node's rewards so far, and their series.
    earned: u64,
    /// Their series, kept bounded by [`LedgerStatus::push_reward`] (only `rewards` is used).
    series: LedgerStatus,
}

impl Book {
    /// Records block `header` with its `receipt`; `rounds` are the ledger's round books before
    /// the block (a round it settles is kept as it stood); `now_ms` is when this node applied it.
    pub(crate) fn record(
        &mut self,
        header: &Header,
        receipt: &Receipt,
        rounds: &BTreeMap<Round, RoundBook>,
        owner: &NodeId,
        now_ms: Option<u64>,
    ) {
        let at = (header.height, header.timestamp_ms);
        for tx in &receipt.txs {
            self.transaction(at, tx);
        }
        let proposer = NodeId(header.proposer);
        if receipt.proposer_reward > 0 {
            self.push(
                &proposer,
                at,
                HistoryKind::ProposerReward,
                receipt.proposer_reward,
                None,
                None,
            );
        }
        for (who, lost) in &receipt.slashed {
            self.push(who, at, HistoryKind::Slash, *lost, None, None);
        }
        let mut mine = if proposer == *owner {
            receipt.proposer_reward
        } else {
            0
        };
        for payout in &receipt.settled {
            for (who, amount) in &payout.rewards {
                self.push(who, at, HistoryKind::Reward, *amount, None, None);
            }
            mine = mine.saturating_add(payout.rewards.get(owner).copied().unwrap_or(0));
            let book = rounds.get(&payout.round).cloned().unwrap_or_default();
            self.settled.insert(
                payout.round,
                Settled {
                    book,
                    payout: payout.clone(),
                },
            );
            while self.settled.len() > ROUNDS_KEPT {
                self.settled.pop_first();
            }
        }
        if mine > 0 {
            self.earned = self.earned.saturating_add(mine);
            let point = RewardPoint {
                height: header.height,
                time_ms: header.timestamp_ms,
                total: self.earned,
            };
            self.series.push_reward(point);
        }
        if let Some(now) = now_ms {
            if self.finality.len() >= FINALITY_KEPT {
                self.finality.pop_front();
            }
            self.finality
                .push_back(now.saturating_sub(header.timestamp_ms));
        }
    }

    /// History entries for one transaction's parties.
    fn transaction(&mut self, at: (u64, u64), tx: &SignedTx) {
        let id = Some(tx.id().to_hex());
        let signer = tx.signer;
        match &tx.tx.action {
            Action::Transfer { to, amount } => {
                let (to_hex, from_hex) = (Some(to.to_hex()), Some(signer.to_hex()));
                self.push(
                    &signer,
                    at,
                    HistoryKind::TransferOut,
                    *amount,
                    to_hex,
                    id.clone(),
                );
                self.push(to, at, HistoryKind::TransferIn, *amount, from_hex, id);
            }
            Action::Stake { amount } => {
                self.push(&signer, at, HistoryKind::Stake, *amount, None, id)
            }
            Action::Unstake { amount } => {
                self.push(&signer, at, HistoryKind::Unstake, *amount, None, id)
            }
            Action::Withdraw => self.push(&signer, at, HistoryKind::Withdraw, 0, None, id),
            Action::Register { .. }
            | Action::Claim { .. }
            | Action::Verdict { .. }
            | Action::Convict { .. }
            | Action::Pool { .. }
            | Action::PoolLeave => {}
        }
    }

    fn push(
        &mut self,
        who: &NodeId,
        (height, time_ms): (u64, u64),
        kind: HistoryKind,
        amount: Amount,
        counterparty: Option<String>,
        tx: Option<String>,
    ) {
        let entries = self.history.entry(*who).or_default();
        if entries.len() >= HISTORY_KEPT {
            entries.pop_front();
        }
        entries.push_back(HistoryEntry {
            height,
            time_ms,
            kind,
            amount,
            counterparty,
            tx,
        });
    }

    /// An account's history, oldest first.
    pub(crate) fn history(&self, who: &NodeId) -> Vec<HistoryEntry> {
        self.history
            .get(who)
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// A round as the ledger holds it: open or closed in `state`, or settled in the record.
    pub(crate) fn round(&self, state: &State, round: Round) -> Option<RoundLedgerView> {
        if let Some(book) = state.meta.rounds.get(&round) {
            return Some(round_view(round, book, None));
        }
        let settled = self.settled.get(&round)?;
        Some(round_view(round, &settled.book, Some(&settled.payout)))
    }

    /// The ledger part of the node's status.
    pub(crate) fn status(
        &self,
        state: &State,
        head: &Header,
        owner: &NodeId,
        validator: bool,
        outbox: &Outbox,
    ) -> LedgerStatus {
        let account = state.account(owner);
        let mut sorted: Vec<u64> = self.finality.iter().copied().collect();
        sorted.sort_unstable();
        let percentile = |p: f64| {
            (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * p).round() as usize])
        };
        LedgerStatus {
            height: head.height,
            state_root: hex::encode(head.state_root),
            finality_ms: self.finality.back().copied(),
            finality_p50_ms: percentile(0.5),
            finality_p99_ms: percentile(0.99),
            committee: state.meta.committee.iter().map(NodeId::to_hex).collect(),
            validator,
            balance: account.balance,
            stake: account.stake,
            unbonding: unbonding(&account),
            rewards: self.series.rewards.clone(),
            pending: outbox
                .waiting()
                .map(|(tx, action)| PendingTx {
                    action: describe(action),
                    tx: tx.map(|t| t.to_hex()),
                })
                .collect(),
        }
    }
}

/// A round's book for people; `payout` once it settled.
fn round_view(round: Round, book: &RoundBook, payout: Option<&Payout>) -> RoundLedgerView {
    RoundLedgerView {
        round,
        closed_at: book.closed_at,
        settled: payout.is_some(),
        included: book.claims.iter().map(claim_view).collect(),
        audits: book
            .audits
            .iter()
            .map(|((contributor, auditor), audit)| AuditView {
                contributor: contributor.to_hex(),
                auditor: auditor.to_hex(),
                passed: audit.passed,
                gain: audit.gain,
            })
            .collect(),
        convictions: book
            .convictions
            .iter()
            .map(|(contributor, accusers)| ConvictionView {
                contributor: contributor.to_hex(),
                accusers: accusers.iter().map(NodeId::to_hex).collect(),
            })
            .collect(),
        slashed: book.slashed.iter().map(NodeId::to_hex).collect(),
        rewards: payout.map_or_else(Vec::new, |p| {
            p.rewards
                .iter()
                .map(|(who, amount)| RewardView {
                    account: who.to_hex(),
                    amount: *amount,
                })
                .collect()
        }),
    }
}

fn claim_view(claim: &Claim) -> ClaimView {
    ClaimView {
        contributor: claim.contributor.to_hex(),
        delta: claim.delta.to_hex(),
        root: claim.root.to_hex(),
        stage: claim.part.stage,
        stages: claim.part.stages,
    }
}

fn unbonding(account: &Account) -> Vec<UnbondView> {
    account
        .unbonding
        .iter()
        .map(|u| UnbondView {
            amount: u.amount,
            release_height: u.release,
        })
        .collect()
}

/// An account's holdings with their proof against the root of `head`.
pub(crate) fn account_view(state: &State, head: &Header, who: &NodeId) -> AccountView {
    let account = state.account(who);
    let proof = state.prove(who).map_or_else(String::new, |proof| {
        hex::encode(postcard::to_allocvec(&proof).expect("a proof always encodes"))
    });
    AccountView {
        id: who.to_hex(),
        balance: account.balance,
        stake: account.stake,
        unbonding: unbonding(&account),
        nonce: account.nonce,
        height: head.height,
        state_root: hex::encode(head.state_root),
        proof,
    }
}

/// A stored block for people.
pub(crate) fn block_view(
    block: &Block,
    certificate: Option<Vec<u8>>,
    committee_proof: Option<&[u8]>,
) -> BlockView {
    let txs = Body::decode(&block.body, &Rules::DEFAULT)
        .map(|b| b.txs)
        .unwrap_or_default();
    BlockView {
        height: block.header.height,
        digest: hex::encode(block.id()),
        parent: hex::encode(block.header.parent),
        time_ms: block.header.timestamp_ms,
        proposer: hex::encode(block.header.proposer),
        state_root: hex::encode(block.header.state_root),
        txs: txs
            .iter()
            .filter_map(|bytes| SignedTx::decode(bytes).ok())
            .map(|tx| TxView {
                id: tx.id().to_hex(),
                signer: tx.signer.to_hex(),
                nonce: tx.tx.nonce,
                action: describe(&tx.tx.action),
            })
            .collect(),
        certificate: certificate.map(hex::encode).unwrap_or_default(),
        block: hex::encode(block.to_bytes()),
        committee_proof: committee_proof.map(hex::encode).unwrap_or_default(),
    }
}

/// One line for a person.
pub(crate) fn describe(action: &Action) -> String {
    let neuro = |a: &Amount| format!("{:.6} NEURO", *a as f64 / neuroshard_ledger::NEURO as f64);
    match action {
        Action::Transfer { to, amount } => format!("send {} to {}", neuro(amount), to.to_hex()),
        Action::Stake { amount } => format!("stake {}", neuro(amount)),
        Action::Unstake { amount } => format!("unstake {}", neuro(amount)),
        Action::Withdraw => "withdraw released stake".into(),
        Action::Register { consensus } => format!("register consensus address {consensus}"),
        Action::Claim {
            round, delta, part, ..
        } if *part == neuroshard_ledger::Part::WHOLE => {
            format!("claim round {round} (Δ {})", delta.short())
        }
        Action::Claim {
            round, delta, part, ..
        } => format!(
            "claim round {round}, stage {} of {} (Δ {})",
            part.stage,
            part.stages,
            delta.short()
        ),
        Action::Verdict {
            round,
            contributor,
            passed,
            ..
        } => format!(
            "verdict on {contributor} for round {round}: {}",
            if *passed { "passed" } else { "failed" }
        ),
        Action::Convict {
            round, contributor, ..
        } => format!("convict {contributor} for round {round}"),
        Action::Pool {
            memory_budget,
            work_per_sec,
        } => format!("pool capacity: {memory_budget} bytes, {work_per_sec} param-tokens/s"),
        Action::PoolLeave => "leave the pool".into(),
    }
}

/// A hex id from the API (`"me"` is `owner`).
pub(crate) fn parse_id(text: &str, owner: &NodeId) -> Option<NodeId> {
    if text == "me" {
        return Some(*owner);
    }
    let bytes: [u8; 32] = hex::decode(text).ok()?.try_into().ok()?;
    Some(NodeId(bytes))
}
