//! The round state machine: membership, training rounds, agreement, outer step.
//!
//! # Bird's Eye View
//!
//! A [`Node`] is one replica of data-parallel DiLoCo as a pure state machine: the driver feeds
//! it [`Input`]s (a tick, a peer's frame, a finished training job) with the current time and
//! carries out the [`Output`]s it returns (broadcast, send, train, wake me at, penalise). It never
//! reads a clock and never does I/O, so the simulator runs many of them in one thread with a
//! simulated clock, and the network driver runs one over libp2p, with the same code.
//!
//! A round, as `round.rs` strings it together (see `docs/protocol.md`):
//! train H inner steps (the driver's [`Worker`]), compress Δ with error feedback and announce
//! it, fetch the others' Δs by hash, let the [`Agreement`] close the round, aggregate robustly,
//! apply the outer Nesterov step, vote the model hash, resync if the members settled on another.
//!
//! ```mermaid
//! stateDiagram-v2
//!     [*] --> Training: first Tick
//!     Training --> Exchange: Trained(Δ) / compress, announce
//!     Exchange --> Exchange: Announce / Fetch, Delta / check, store
//!     Exchange --> Training: agreement closes / aggregate, outer step, hash vote
//! ```
//!
//! # Feature Flags
//!
//! None.

mod agreement;
mod config;
mod error;
mod ledger_work;
mod message;
mod node;
mod phase;
mod replica;
mod round;
mod time;
mod work;

pub use agreement::{Agreement, DeadlineAgreement, LedgerAgreement, RoundView};
pub use config::NodeConfig;
pub use error::{Error, Result};
pub use ledger_work::WorkChecks;
pub use message::{Announcement, MAX_SMALL_FRAME, Message, Round};
pub use node::{Input, Node, Output, RoundSummary, Snapshot};
pub use phase::audit::{AuditStats, OwnChain};
pub use phase::grow::{Growth, POOL_HISTORY};
pub use replica::{
    Assignments, CHECKPOINT_ROUNDS, CheckpointStore, LossGauge, MemoryCheckpoints, ModelVerifier,
    ModelWorker, loss_ends,
};
pub use time::Timestamp;
pub use work::{Purpose, ReplayJob, Replayed, TrainingJob, TrainingResult, Verifier, Worker};
