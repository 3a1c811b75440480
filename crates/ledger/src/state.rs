//! The ledger state: accounts, the rounds still being judged, the supply, and its root.
//!
//! # State root
//!
//! `root = pair(accounts_root, hash(rest))`, where `accounts_root` is the Merkle root over one
//! leaf per account (`hash(id ‖ account)`, in ascending id order) and `rest` is everything else
//! (height, time, rounds, supply, committee, pool roll and sizes, plans). So one account's
//! balance can be checked against a finalized block's root with an [`AccountProof`] (a Merkle
//! path plus the hash of the rest) without replaying the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use neuroshard_pool::Plan;
use neuroshard_primitives::{Hash, MerkleProof, NodeId, merkle_root};
use serde::{Deserialize, Serialize};

use crate::{Amount, CorruptState, Height, Round};

/// Stake on its way out: slashable until `release`, then withdrawable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unbond {
    /// How much.
    pub amount: Amount,
    /// The first height at which it may be withdrawn.
    pub release: Height,
}

/// One account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Spendable NEURO.
    pub balance: Amount,
    /// Bonded NEURO (rewards are paid here, so they stay slashable).
    pub stake: Amount,
    /// Stake being released.
    pub unbonding: Vec<Unbond>,
    /// The next transaction's nonce.
    pub nonce: u64,
}

impl Account {
    /// Stake that a slash can reach: bonded plus unbonding.
    pub fn slashable(&self) -> Amount {
        self.unbonding
            .iter()
            .fold(self.stake, |sum, u| sum.saturating_add(u.amount))
    }

    /// Everything the account holds.
    pub fn total(&self) -> Amount {
        self.balance.saturating_add(self.slashable())
    }
}

/// The part of the model a work claim trained: stage `stage` of a pipeline of `stages`
/// (`docs/economics.md`, "Stage work"). The whole model is stage 0 of 1. Each part is its own
/// DiLoCo round: its claims are its list, and its replicas audit each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Part {
    /// The stage's index.
    pub stage: u32,
    /// Stages in the pipeline.
    pub stages: u32,
}

impl Part {
    /// The whole model: a pipeline of one stage.
    pub const WHOLE: Part = Part {
        stage: 0,
        stages: 1,
    };

    /// Whether it names a stage of its pipeline.
    pub fn is_valid(&self) -> bool {
        self.stage < self.stages
    }
}

/// A contribution on a round's inclusion list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Who trained it.
    pub contributor: NodeId,
    /// The hash of its compressed Δ.
    pub delta: Hash,
    /// Its training chain's root.
    pub root: Hash,
    /// What it trained.
    pub part: Part,
}

/// `part`'s claims as the node core takes an inclusion list: (contributor, Δ hash), in ledger
/// order.
pub fn inclusion_list(claims: &[Claim], part: Part) -> Vec<(NodeId, Hash)> {
    (claims.iter().filter(|c| c.part == part))
        .map(|c| (c.contributor, c.delta))
        .collect()
}

/// An auditor's recorded verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    /// Whether the replay matched.
    pub passed: bool,
    /// The held-out gain of the Δ alone, micro-nats.
    pub gain: i64,
}

/// A round as the ledger tracks it, from its first claim to its settlement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundBook {
    /// Block time of its first claim.
    pub opened_ms: u64,
    /// The claims, in ledger order: the inclusion list.
    pub claims: Vec<Claim>,
    /// The height of the block that closed it, once closed.
    pub closed_at: Option<Height>,
    /// Accounts that claimed it after it closed: not on the list; the next round waits for
    /// them to close early.
    pub late: BTreeSet<NodeId>,
    /// Verdicts by (contributor, auditor).
    pub audits: BTreeMap<(NodeId, NodeId), Audit>,
    /// Accusers by accused, in the order their convictions landed.
    pub convictions: BTreeMap<NodeId, Vec<NodeId>>,
    /// Contributors slashed for this round.
    pub slashed: BTreeSet<NodeId>,
}

impl RoundBook {
    /// `part`'s inclusion list as the node core takes it.
    pub fn list(&self, part: Part) -> Vec<(NodeId, Hash)> {
        inclusion_list(&self.claims, part)
    }

    /// How many claims trained `part`.
    pub fn claims_of(&self, part: Part) -> usize {
        self.claims.iter().filter(|c| c.part == part).count()
    }

    /// The claim of `contributor`, if it is on the list.
    pub fn claim_of(&self, contributor: &NodeId) -> Option<&Claim> {
        self.claims.iter().find(|c| &c.contributor == contributor)
    }
}

/// NEURO created and destroyed since genesis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    /// Allocated at genesis (balances and bonds).
    pub genesis: Amount,
    /// Minted as rewards.
    pub minted: Amount,
    /// Burned by slashes.
    pub burned: Amount,
}

impl Supply {
    /// What the accounts must hold between them: genesis + minted − burned.
    pub fn expected(&self) -> u128 {
        u128::from(self.genesis) + u128::from(self.minted) - u128::from(self.burned)
    }
}

/// What a round's settlement paid, kept for the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// The round.
    pub round: Round,
    /// Each rewarded account and its reward (trainers and verifiers together).
    pub rewards: BTreeMap<NodeId, Amount>,
}

/// An account's entry on the pool roll: its latest capacity record (`Action::Pool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    /// Bytes the account gives to training.
    pub memory_budget: u64,
    /// Its measured training speed, in parameter-tokens per second.
    pub work_per_sec: u64,
    /// The height of the block that recorded it.
    pub height: Height,
}

/// A pipeline plan the ledger made at a plan boundary (`docs/replan.md`, "The plan on the
/// ledger"): who holds which layers, in force from round `from_round` until the next plan's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The plan boundary that made it.
    pub height: Height,
    /// The first round it is in force in.
    pub from_round: Round,
    /// The plan.
    pub plan: Plan,
}

/// Everything but the accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The network id transactions must name.
    pub network: Hash,
    /// The last applied block's height (0 before the first block).
    pub height: Height,
    /// The last applied block's timestamp, ms.
    pub time_ms: u64,
    /// The committee that proposes and finalizes now, sorted.
    pub committee: Vec<NodeId>,
    /// The committee elected at the last epoch boundary, which takes over at the next one.
    pub next_committee: Vec<NodeId>,
    /// Where each registered account's consensus engine listens (`Action::Register`); only
    /// accounts listed here can be elected.
    pub addresses: BTreeMap<NodeId, SocketAddr>,
    /// The round open for claims.
    pub open_round: Round,
    /// Rounds from the oldest unsettled one to the open one.
    pub rounds: BTreeMap<Round, RoundBook>,
    /// The last settled round's payout.
    pub last_payout: Option<Payout>,
    /// The supply counters.
    pub supply: Supply,
    /// The pool roll: each account's latest capacity record, at most [`crate::MAX_POOL`].
    pub pool: BTreeMap<NodeId, PoolEntry>,
    /// The roll's pool size ([`State::pool_size`]) at each of the last plan boundaries
    /// ([`crate::Rules::is_pool_boundary`]), oldest first, at most [`crate::POOL_SIZES_KEPT`].
    pub pool_sizes: Vec<u64>,
    /// The accounts whose entries the last plan boundary dropped from the roll, sorted: their
    /// records were older than `Rules::pool_ttl_blocks`, or they said they leave (`PoolLeave`).
    pub pool_left: Vec<NodeId>,
    /// The roll's accounts that said they leave since the last plan boundary (`PoolLeave`),
    /// sorted: the next boundary drops them.
    pub pool_leaving: Vec<NodeId>,
    /// The pipeline plans in force in the rounds not settled yet, and the latest, oldest first
    /// (none before the first plan boundary that made one).
    pub plans: Vec<PlanRecord>,
}

/// The whole ledger state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Accounts by id; an account with nothing and nonce 0 is absent.
    pub accounts: BTreeMap<NodeId, Account>,
    /// The rest.
    pub meta: Meta,
}

/// The row key of the state's `meta` (account rows are their 32-byte ids).
const META_KEY: &[u8] = b"meta";

/// The version of the ledger's encoding of its state rows, block bodies and transactions, which
/// its store notes (`neuroshard_consensus::Machine::format`): raised whenever one of them
/// changes, so that a node refuses a store another version wrote instead of misreading it.
/// Format 1: claims name their part, round books keep late claimants, and the state keeps the
/// pipeline plans; stores written before note no format (0).
pub const STATE_FORMAT: u64 = 1;

impl State {
    /// An account, or the empty one.
    pub fn account(&self, id: &NodeId) -> Account {
        self.accounts.get(id).cloned().unwrap_or_default()
    }

    /// The state root (see the module docs).
    pub fn root(&self) -> Hash {
        Hash::pair(&merkle_root(&self.account_leaves()), &self.meta_hash())
    }

    fn account_leaves(&self) -> Vec<Hash> {
        self.accounts.iter().map(|(id, a)| leaf(id, a)).collect()
    }

    fn meta_hash(&self) -> Hash {
        Hash::of(&postcard::to_allocvec(&self.meta).expect("meta always encodes"))
    }

    /// A proof of `id`'s account against [`State::root`], or `None` if it has none.
    pub fn prove(&self, id: &NodeId) -> Option<AccountProof> {
        let index = self.accounts.keys().position(|k| k == id)?;
        Some(AccountProof {
            account: self.accounts[id].clone(),
            path: MerkleProof::prove(&self.account_leaves(), index)?,
            meta: self.meta_hash(),
        })
    }

    /// A proof of the committee (and the rest of `meta`) against [`State::root`].
    pub fn prove_meta(&self) -> MetaProof {
        MetaProof {
            accounts: merkle_root(&self.account_leaves()),
            meta: self.meta.clone(),
        }
    }

    /// The closed rounds the state still holds, with `part`'s lists (for a node core that
    /// starts).
    pub fn decided(&self, part: Part) -> Vec<(Round, Vec<(NodeId, Hash)>)> {
        self.meta
            .rounds
            .iter()
            .filter(|(_, book)| book.closed_at.is_some())
            .map(|(round, book)| (*round, book.list(part)))
            .collect()
    }

    /// The latest pipeline plan, if a plan boundary made one.
    pub fn plan(&self) -> Option<&PlanRecord> {
        self.meta.plans.last()
    }

    /// The pipeline plan in force in `round`: the latest whose `from_round` is at most `round`
    /// (kept while `round` is not settled).
    pub fn plan_for(&self, round: Round) -> Option<&PlanRecord> {
        self.meta.plans.iter().rev().find(|p| p.from_round <= round)
    }

    /// The pool roll now: each account's latest capacity record, by account.
    pub fn pool_roll(&self) -> &BTreeMap<NodeId, PoolEntry> {
        &self.meta.pool
    }

    /// The pool's size now: the saturating sum of the roll's memory budgets, in bytes.
    pub fn pool_size(&self) -> u64 {
        self.meta
            .pool
            .values()
            .fold(0, |sum, e| sum.saturating_add(e.memory_budget))
    }

    /// The pool sizes noted at the last plan boundaries, oldest first (the history
    /// `neuroshard-pool`'s `GrowthSchedule::decide` takes).
    pub fn pool_sizes(&self) -> &[u64] {
        &self.meta.pool_sizes
    }

    /// The accounts the last plan boundary dropped from the roll (their records expired), sorted.
    pub fn pool_left(&self) -> &[NodeId] {
        &self.meta.pool_left
    }

    /// The sum of every account's holdings, which must equal [`Supply::expected`].
    pub fn holdings(&self) -> u128 {
        self.accounts
            .values()
            .map(|a| {
                u128::from(a.balance)
                    + a.unbonding
                        .iter()
                        .map(|u| u128::from(u.amount))
                        .sum::<u128>()
                    + u128::from(a.stake)
            })
            .sum()
    }

    /// The state as storage rows: one per account (key: its id) and one for the rest.
    pub fn rows(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut rows: Vec<_> = self
            .accounts
            .iter()
            .map(|(id, a)| (id.0.to_vec(), encode(a)))
            .collect();
        rows.push((META_KEY.to_vec(), encode(&self.meta)));
        rows
    }

    /// The rows that differ from `before` (a `None` value: the row is gone).
    pub fn changes(&self, before: &State) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut changes: Vec<_> = self
            .accounts
            .iter()
            .filter(|(id, a)| before.accounts.get(id) != Some(a))
            .map(|(id, a)| (id.0.to_vec(), Some(encode(a))))
            .collect();
        changes.extend(
            before
                .accounts
                .keys()
                .filter(|id| !self.accounts.contains_key(id))
                .map(|id| (id.0.to_vec(), None)),
        );
        if self.meta != before.meta {
            changes.push((META_KEY.to_vec(), Some(encode(&self.meta))));
        }
        changes
    }

    /// The state back from its rows.
    pub fn from_rows(rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self, CorruptState> {
        let mut state = State::default();
        let mut meta = None;
        for (key, value) in rows {
            if key == META_KEY {
                meta = Some(decode(&value)?);
                continue;
            }
            let id: [u8; 32] = key
                .try_into()
                .map_err(|_| CorruptState("an account key is not 32 bytes".into()))?;
            state.accounts.insert(NodeId(id), decode(&value)?);
        }
        state.meta = meta.ok_or_else(|| CorruptState("no meta row".into()))?;
        Ok(state)
    }
}

/// One account's holdings, provable against a state root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountProof {
    /// The account.
    pub account: Account,
    /// Its leaf's Merkle path among the accounts.
    pub path: MerkleProof,
    /// The hash of the rest of the state.
    pub meta: Hash,
}

impl AccountProof {
    /// Whether this proves `id`'s account under `root`.
    pub fn verify(&self, id: &NodeId, root: &Hash) -> bool {
        let Some(accounts) = self.path.root_of(&leaf(id, &self.account)) else {
            return false;
        };
        Hash::pair(&accounts, &self.meta) == *root
    }
}

/// Everything but the accounts, provable against a state root: how a client learns the committee
/// a boundary block hands over to (epoch by epoch, from the genesis committee) without replaying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaProof {
    /// The accounts' Merkle root.
    pub accounts: Hash,
    /// The rest of the state.
    pub meta: Meta,
}

impl MetaProof {
    /// The proven `meta` if this proves it under `root`.
    pub fn verify(&self, root: &Hash) -> Option<&Meta> {
        let meta = Hash::of(&encode(&self.meta));
        (Hash::pair(&self.accounts, &meta) == *root).then_some(&self.meta)
    }
}

fn leaf(id: &NodeId, account: &Account) -> Hash {
    Hash::of(&encode(&(id, account)))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("ledger state always encodes")
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CorruptState> {
    postcard::from_bytes(bytes).map_err(|err| CorruptState(err.to_string()))
}
