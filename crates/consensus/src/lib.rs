//! Orders ledger blocks among a validator committee with BFT consensus and stores them.
//!
//! # Bird's Eye View
//!
//! Validators run commonware's [simplex] (ed25519 certificates, which are attributable; a
//! round-robin leader) to agree on a chain of [`Block`]s, and commonware's marshal to carry
//! blocks between them. The crate turns the project's replicated state machine, a [`Machine`],
//! into a ledger:
//!
//! 1. A leader builds a block from its mempool on its parent's post-state
//!    ([`Machine::build`]), executes it and puts the resulting state root in the header.
//! 2. Every validator re-executes a proposed block on its parent's post-state and checks the
//!    header (epoch, proposer, timestamp) and the state root before voting. Post-states of
//!    verified, not yet finalized blocks stay in memory by digest; a validator that lacks a
//!    parent's post-state (it restarted, or missed a proposal) re-executes the ancestry down to
//!    its last finalized block.
//! 3. Marshal delivers finalized blocks in height order, at least once. The finalizer applies
//!    each to the [`Store`] (redb) in **one write transaction** (row changes, block,
//!    certificate, `applied_height`), then reports a [`Finalized`] to subscribers and only then
//!    acknowledges it to marshal. Blocks at or below `applied_height` are skipped, so a crash
//!    between commit and acknowledgement replays harmlessly.
//! 4. After a restart a validator resumes its state from the store and catches up through
//!    marshal's backfill from peers.
//! 5. Followers (non-validators) get `(block, certificate)` pairs over the project's libp2p
//!    network and check them with [`verify_finalized`] or apply them with a [`Follower`].
//! 6. At each epoch boundary the committee changes to the one the machine fixed (see Epochs).
//!
//! [simplex]: commonware_consensus::simplex
//!
//! # Example
//!
//! A validator for a machine that counts one-byte transactions, as the daemon would start it:
//!
//! ```no_run
//! use neuroshard_consensus::{Header, Machine, Rows, Timing, node};
//!
//! #[derive(Clone)]
//! struct Counter {
//!     committee: Vec<[u8; 32]>,
//! }
//!
//! impl Machine for Counter {
//!     type State = u64;
//!     fn genesis(&self) -> u64 { 0 }
//!     fn committee(&self, _: &u64) -> Vec<[u8; 32]> { self.committee.clone() }
//!     fn build(&self, _: &u64, _: &Header, pending: &[Vec<u8>]) -> Vec<u8> { pending.concat() }
//!     fn transactions(&self, body: &[u8]) -> Vec<Vec<u8>> { body.iter().map(|b| vec![*b]).collect() }
//!     fn execute(&self, n: &mut u64, _: &Header, body: &[u8]) -> Result<(), String> {
//!         *n += body.len() as u64;
//!         Ok(())
//!     }
//!     fn root(&self, n: &u64) -> [u8; 32] {
//!         let mut root = [0; 32];
//!         root[..8].copy_from_slice(&n.to_be_bytes());
//!         root
//!     }
//!     fn changes(&self, _: &u64, after: &u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
//!         vec![(b"n".to_vec(), Some(after.to_be_bytes().to_vec()))]
//!     }
//!     fn load(&self, rows: Rows) -> Result<u64, String> {
//!         match rows.first() {
//!             None => Ok(0),
//!             Some((_, v)) => Ok(u64::from_be_bytes(v[..].try_into().map_err(|_| "row")?)),
//!         }
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (me, other) = ([1; 32], [2; 32]); // the secret key, and another validator's public key
//! let handle = node::start(node::NodeConfig {
//!     secret_key: me,
//!     listen: "127.0.0.1:9100".parse()?,
//!     peers: vec![(other, "127.0.0.1:9101".parse()?)],
//!     data_dir: "/var/lib/neuroshard/ledger".into(),
//!     machine: Counter { committee: vec![/* every validator's public key */] },
//!     timing: Timing::default(),
//! })?;
//! handle.submit(vec![42])?;
//! let _blocks = handle.subscribe(); // `Finalized` blocks in height order, after the store write
//! println!("finalized height {}", handle.finalized_height());
//! handle.shutdown();
//! # Ok(())
//! # }
//! ```
//!
//! # Why marshal
//!
//! Marshal already does what we would otherwise write: broadcast of proposed blocks, fetching
//! a block a validator must verify but did not receive, backfill of finalized blocks after a
//! restart or a partition, and in-order delivery with acknowledgements (so the store write is
//! the durability point). It is commonware's own tested path from simplex to an application.
//! The cost is a second copy of blocks and certificates in marshal's archives (runtime
//! storage), which it needs to serve backfill to peers; the redb store is the ledger's copy.
//! Marshal's `Application` trait and its `Inline` wrapper are ALPHA in commonware 2026.10.0.
//!
//! # Certificates
//!
//! Simplex finalizes a block either with its own finalization certificate or, after a
//! timeout, only through a finalized descendant. [`Finalized::certificate`] is `None` in the
//! second case; the descendant's certificate and the parent links make the block final, and
//! [`Follower`] waits for that descendant.
//!
//! # Epochs
//!
//! Epoch `e` holds heights `e·L ..= (e+1)·L − 1` ([`Machine::epoch_length`], commonware's
//! `FixedEpocher`). The committee of epoch `e+1` is [`Machine::committee`] of the state after
//! the last block of epoch `e` (the boundary block); see [`epoch`].
//!
//! - One marshal, store and finalizer live for the whole run; marshal's provider holds every
//!   known epoch's scheme (the store keeps each epoch's committee, written with the block that
//!   fixed it), so backfilled blocks of any epoch are checked against their own committee.
//! - Simplex runs per epoch on its own sub-channel of the vote, certificate and resolver
//!   channels (commonware's p2p `Muxer`, keyed by epoch), with its own journal partition. When the
//!   finalizer applies a boundary block, the orchestrator aborts epoch `e`'s engine and starts
//!   epoch `e+1`'s from that block (`Floor::Genesis`), if this key is in the new committee;
//!   otherwise the node stops voting ([`Validator::validating`]) and the daemon follows instead.
//!   `Inline` re-proposes the boundary block until it is finalized, so no block straddles epochs.
//! - A node that is behind (restarted across a boundary, or slow) hears simplex traffic of a
//!   later epoch on the muxer's backup queue; it asks marshal for the finalization of its own
//!   epoch's last block from that peer (`hint_finalized`), marshal fills the gap, the finalizer
//!   applies the boundary, and the orchestrator moves on, epoch by epoch.
//! - Every path re-executes blocks through one check of the header's epoch against its height.
//! - A [`Follower`] learns each epoch's committee from the boundary blocks it applied, starting
//!   at the genesis committee.
//!
//! # Runtimes
//!
//! [`start_validator`] wires a validator over any commonware runtime and any authenticated
//! p2p network: the tests use the deterministic runtime and the simulated network. [`node`]
//! runs a validator for the daemon on the tokio runtime over `commonware_p2p::authenticated`.
//! Nothing here reads the system clock or global randomness: time and randomness come from the
//! runtime context.

mod app;
mod block;
mod certificate;
mod engine;
pub mod epoch;
mod error;
mod finalizer;
mod follower;
mod machine;
pub mod node;
mod state;
mod store;

pub use block::{Block, Digest, MAX_BODY_BYTES};
pub use certificate::{
    Certificate, MAX_COMMITTEE, NAMESPACE, Scheme, committee_set, verify_finalized,
};
pub use engine::{
    Channels, Member, Timing, Validator, ValidatorConfig, channel, max_message_size,
    start_validator,
};
pub use error::Error;
pub use follower::{Follower, MAX_PENDING};
pub use machine::{Header, Machine, Rows};
pub use state::{Finalized, MAX_MEMPOOL_TXS, MAX_TX_BYTES, MEMPOOL_TTL_BLOCKS};
pub use store::{Resumed, Store};
