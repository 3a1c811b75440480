//! The NEURO ledger's state transition, pure: signed transactions, balances, stake and
//! unbonding, the rounds' inclusion lists, rewards minted by the rules, slashing, and the
//! pipeline's pool roll and plans.
//!
//! # Bird's Eye View
//!
//! The consensus engine (`neuroshard-consensus`) orders blocks; every validator and follower
//! runs [`Ledger::execute`] on each one and must reach the same [`State::root`]. Nothing here
//! reads a clock, a file or a socket: the block's height, time and proposer come in as
//! [`BlockInfo`], the bytes as the body. `docs/economics.md` gives the rules with worked
//! examples.
//!
//! **Invariant:** after every block, genesis + minted − burned equals the sum of all balances,
//! stakes and unbonding entries ([`Supply::expected`] = [`State::holdings`]); a refused
//! transaction or block leaves the state untouched.

mod actions;
mod error;
mod genesis;
mod ledger;
mod outbox;
mod pool;
mod rewards;
mod rules;
mod state;
mod tx;
mod wallet;
mod work;

pub use actions::MAX_UNBONDING;
pub use error::{BlockError, CorruptState, Refused};
pub use genesis::LedgerGenesis;
pub use ledger::{BlockInfo, Body, Ledger, MAX_BODY_BYTES, Receipt};
pub use outbox::Outbox;
pub use pool::{MAX_POOL, POOL_SIZES_KEPT};
pub use rules::Rules;
pub use state::{
    Account, AccountProof, Audit, Claim, Meta, MetaProof, Part, Payout, PlanRecord, PoolEntry,
    RoundBook, STATE_FORMAT, State, Supply, Unbond, inclusion_list,
};
pub use tx::{Action, MAX_TX_BYTES, SignedTx, TX_NAMESPACE, Tx};
pub use wallet::{REQUEST_TTL_MS, WALLET_NAMESPACE, WalletRequest};
pub use work::Work;

/// An amount of NEURO in its smallest unit.
pub type Amount = u64;

/// One NEURO.
pub const NEURO: Amount = 1_000_000;

/// A block height.
pub type Height = u64;

/// A training round.
pub type Round = u64;
