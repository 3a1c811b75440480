//! Proof of Neural Work: every contribution commits to its training as a chain anyone can check.
//!
//! # Bird's Eye View
//!
//! A training job of H inner steps is cut into S segments ([`Segments`]). The worker records a
//! [`Checkpoint`] (parameters, AdamW moments, step counters) at each segment boundary and the
//! loss of every step; the leaves go into a Merkle tree whose root, with the hashes of the
//! error-feedback residual before and after encoding, is the [`Commitment`] an announcement
//! carries (about 140 bytes, whatever the model's size).
//!
//! After the round closes, each node draws from its own signature over the round's result
//! whether it audits each contributor and which segment ([`audit`]). The contributor serves an
//! [`Opening`]: both checkpoints of the segment with their Merkle proofs (for the last segment
//! also the base model and residual, so the encoding can be repeated). The verifier checks the
//! opening ([`Opening::check`]), replays the segment with the one inner step every trainer uses
//! ([`replay`]), and compares ([`judge`], [`check_encoding`]) within a [`Tolerance`] calibrated
//! from honest replays. A failed audit is provable: the contributor's signed announcement and
//! signed opening are all another node needs to repeat the check.
//!
//! A pipeline stage's chain also names, per segment, the batches and the frames it received and
//! sent; [`stage`] replays a stage's segment from them and judges the frames it sent.
//!
//! Pure: no I/O, no clock, no randomness of its own. `crates/node` carries the messages;
//! the drivers run the replays.
//!
//! # Feature Flags
//!
//! None.

pub mod audit;
mod chain;
mod checkpoint;
mod error;
mod opening;
mod replay;
pub mod stage;
mod verdict;

pub use audit::{AuditConfig, Draw};
pub use chain::{Chain, Commitment, Leaf, Segments, residual_hash};
pub use checkpoint::Checkpoint;
pub use error::{Error, Result};
pub use opening::{Claim, Opened, Opening, Tail};
pub use replay::{Tolerance, check_encoding, judge, replay};
pub use verdict::{Fault, Outcome, Usefulness, Verdict};
