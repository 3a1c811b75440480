//! Why a transaction or a block is refused.

use neuroshard_primitives::NodeId;

use crate::{Amount, Height, Round};

/// A transaction the state transition refuses. A refused transaction leaves the state untouched;
/// a block holding one is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Bytes that do not decode to a transaction, or too many of them.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The signature does not verify under the signer's key.
    #[error("forged signature from {0}")]
    BadSignature(NodeId),
    /// The transaction names another network.
    #[error("transaction for another network")]
    WrongNetwork,
    /// The nonce is not the account's next one (a replay, or one sent out of order).
    #[error("nonce {got} is not the account's next nonce {expected}")]
    BadNonce {
        /// The account's next nonce.
        expected: u64,
        /// The transaction's.
        got: u64,
    },
    /// A zero amount, which would only burn a nonce.
    #[error("amount must be positive")]
    ZeroAmount,
    /// Spending more than the account holds.
    #[error("overdraft: {wanted} wanted, {available} available")]
    Overdraft {
        /// What the transaction spends.
        wanted: Amount,
        /// What the account has.
        available: Amount,
    },
    /// A balance or total would overflow.
    #[error("amount overflows")]
    Overflow,
    /// A withdrawal with nothing unbonded yet.
    #[error("nothing to withdraw before height {release} (now {height})")]
    StillBonded {
        /// The earliest release height among the account's unbonding stake.
        release: Height,
        /// The block's height.
        height: Height,
    },
    /// A withdrawal from an account that is not unbonding anything.
    #[error("nothing is unbonding")]
    NothingUnbonding,
    /// A work claim for a round other than the one open for claims.
    #[error("round {got} is not open for claims (open: {open})")]
    RoundNotOpen {
        /// The round open for claims.
        open: Round,
        /// The claim's round.
        got: Round,
    },
    /// A work claim for a stage its pipeline does not have.
    #[error("stage {} of {} is not a stage of its pipeline", .0.stage, .0.stages)]
    BadPart(crate::Part),
    /// A second claim for the same round from one account.
    #[error("a claim for round {0} is already on the ledger")]
    DuplicateClaim(Round),
    /// A verdict or conviction about a round that is not closed, or no longer settles.
    #[error("round {0} is not closed, or is settled")]
    RoundNotJudgeable(Round),
    /// A verdict or conviction about an account that has no claim in the round's list.
    #[error("{contributor} has no contribution in round {round}")]
    NoContribution {
        /// The round.
        round: Round,
        /// The account named.
        contributor: NodeId,
    },
    /// An account judging its own work.
    #[error("an account cannot judge its own work")]
    SelfJudgement,
    /// A verdict whose audit ticket does not select its signer, or a repeated one.
    #[error("verdict refused: {0}")]
    BadVerdict(String),
    /// A conviction whose evidence does not hold, or whose accuser has no bond.
    #[error("conviction refused: {0}")]
    BadConviction(String),
    /// A consensus address registration refused: the signer is not bonded, or the address
    /// cannot be dialled (unspecified IP, port 0) or is already the signer's.
    #[error("registration refused: {0}")]
    BadRegistration(String),
    /// A pool record refused: a zero memory budget or speed, or a new entry on a full roll
    /// ([`crate::MAX_POOL`]).
    #[error("pool record refused: {0}")]
    BadPoolRecord(String),
}

/// A block the state transition refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The body does not decode, or exceeds the size limits.
    #[error("malformed block: {0}")]
    Malformed(String),
    /// The header does not follow the state (height, time, proposer).
    #[error("bad block header: {0}")]
    BadHeader(String),
    /// A transaction in it is refused.
    #[error("transaction {index} refused: {reason}")]
    Transaction {
        /// Its position in the block.
        index: usize,
        /// Why.
        reason: Refused,
    },
}

/// A ledger state that cannot be read back (a corrupt store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt ledger state: {0}")]
pub struct CorruptState(pub String);
