//! The replicated state machine the engine orders blocks for, and the block header it sees.

use std::net::SocketAddr;

/// A block header: everything about a block except its body.
///
/// The block digest commits to the header and the body (see [`crate::Block::digest`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Height in the chain; the genesis block is height 0.
    pub height: u64,
    /// The epoch the block was proposed in (its committee signed it).
    pub epoch: u64,
    /// Digest of the parent block (all zeros for genesis).
    pub parent: [u8; 32],
    /// The proposer's clock when it built the block, in milliseconds since the Unix epoch.
    /// Never earlier than the parent's.
    pub timestamp_ms: u64,
    /// The proposer's ed25519 public key (all zeros for genesis).
    pub proposer: [u8; 32],
    /// The state root after applying this block ([`Machine::root`]).
    pub state_root: [u8; 32],
}

/// State rows as stored: key and value.
pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// The replicated state machine the engine orders blocks for.
///
/// Every method must be deterministic: the same inputs give the same outputs on every node,
/// whatever the platform or thread count, or honest validators will disagree and stall.
pub trait Machine: Clone + Send + Sync + 'static {
    /// The state after a block; cloned once per block in flight.
    type State: Clone + Send + Sync + 'static;

    /// The state before the first block.
    fn genesis(&self) -> Self::State;

    /// The validators (ed25519 public keys, 32 bytes) of the epoch the block after `state`
    /// belongs to: the genesis state gives epoch 0's committee, and the state after the last
    /// block of epoch `e` gives epoch `e+1`'s (so the machine must fix it by then; the ledger
    /// fixes it one epoch earlier still). Within an epoch it must not change.
    fn committee(&self, state: &Self::State) -> Vec<[u8; 32]>;

    /// Blocks per epoch, at least 2: epoch `e` holds heights `e·L ..= (e+1)·L − 1`. The default,
    /// `u64::MAX`, is one epoch for ever.
    fn epoch_length(&self) -> u64 {
        u64::MAX
    }

    /// The version of the encoding of this machine's state rows and block bodies: the store
    /// notes it when it writes genesis and refuses to resume from a store noting another
    /// ([`crate::Error::Format`]; a store that notes none is format 0), which another version
    /// of the software wrote and which may decode into something else rather than fail. The
    /// default, 0, suits a machine whose encoding never changed.
    fn format(&self) -> u64 {
        0
    }

    /// Where the validator `key` listens for the committee, if `state` records it (a validator
    /// dials the new members of each epoch's committee there).
    fn address(&self, _state: &Self::State, _key: &[u8; 32]) -> Option<SocketAddr> {
        None
    }

    /// A block body on top of `state`: the proposer's pick of pending transactions (opaque bytes).
    ///
    /// `header.state_root` is not known yet (it is all zeros); the body must not depend on it.
    /// The engine executes the body before proposing it, so a body that [`Machine::execute`]
    /// rejects is never proposed (the proposer falls back to `build` with no pending transactions).
    fn build(&self, state: &Self::State, header: &Header, pending: &[Vec<u8>]) -> Vec<u8>;

    /// The transactions `body` carries, as they were given to [`Machine::build`], so every
    /// node's mempool can drop them once the block is finalized and a proposer does not include
    /// them again while the block is in flight. Bytes that do not parse give an empty list.
    fn transactions(&self, body: &[u8]) -> Vec<Vec<u8>>;

    /// Applies `body` to `state`; an error means the block is invalid and must not be voted for.
    ///
    /// Must not read `header.state_root` (the proposer executes before it knows the root).
    /// On error the engine drops `state`, so a partial update does no harm.
    fn execute(&self, state: &mut Self::State, header: &Header, body: &[u8]) -> Result<(), String>;

    /// The state root a block header carries (the root after the block).
    fn root(&self, state: &Self::State) -> [u8; 32];

    /// Rows that changed from `before` to `after` (key, new value or None if removed), so the
    /// store can persist state as rows in one transaction per block.
    ///
    /// `changes(&load(vec![])?, &genesis())` must list every row of the genesis state: the store
    /// writes those once when it is created.
    fn changes(&self, before: &Self::State, after: &Self::State)
    -> Vec<(Vec<u8>, Option<Vec<u8>>)>;

    /// The inverse of [`Machine::changes`]: the state whose rows are `rows` (`vec![]` gives the
    /// empty state, which need not be the genesis state).
    fn load(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self::State, String>;
}
