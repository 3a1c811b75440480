//! Deterministic multi-node simulation of the training protocol, with Byzantine actors.
//!
//! # Bird's Eye View
//!
//! [`Sim`] runs N [`neuroshard_node::Node`] cores in one process and one thread. An event queue
//! is the simulated clock; a [`Network`] model turns every frame a node sends into a delivery
//! time (latency, jitter, bandwidth, loss) and counts bytes per node; training jobs run for real
//! on the CPU but take simulated time from each node's configured speed. Byzantine nodes run the
//! same protocol code and forge only their pseudo-gradient, with the pure functions in
//! [`adversary`]. A churn schedule ([`ChurnEvent`]) brings nodes up and down and splits and
//! heals the network; frames to a node that is down or across a cut are lost. After every round
//! the checkers compare the model hashes of the honest replicas on the network and the
//! validation loss, and note the rounds that waited for their deadline. Randomness comes from an
//! [`RngTree`] rooted at the run's seed, so the same seed gives the same history, byte for byte.
//!
//! ```no_run
//! use neuroshard_sim::{Sim, SimConfig};
//! # fn scenario() -> (SimConfig, neuroshard_sim::ModelWorkload<neuroshard_sim::MemoryData>) { todo!() }
//! let (config, workload) = scenario();
//! let report = Sim::new(config, workload)?.run()?;
//! report.assert_clean();
//! # Ok::<(), neuroshard_sim::Error>(())
//! ```
//!
//! `docs/TESTING.md` shows how to write a scenario.
//!
//! # Feature Flags
//!
//! None.

pub mod adversary;
mod baseline;
mod byzantine;
mod cheat;
mod churn;
mod compare;
mod config;
mod error;
mod genesis;
mod ledger;
mod memory;
mod network;
mod ponw;
pub mod presets;
mod progress;
mod queue;
mod report;
mod rng;
mod sim;
mod topology;
mod toy;
mod workload;

pub use baseline::{BaselineReport, sync_data_parallel};
pub use cheat::{Cheat, CheatKind};
pub use churn::{Change, ChurnEvent};
pub use compare::{Comparison, Stage, run_with_baselines};
pub use config::{LinkOverride, SimConfig};
pub use error::{Error, Result};
pub use genesis::{GenesisData, GenesisSource};
pub use ledger::{LedgerReport, SlashRecord};
pub use memory::{MemoryData, MemorySource, markov_corpus};
pub use network::{Access, Link, Network, Traffic};
pub use ponw::{PonwReport, PonwRound};
pub use queue::EventQueue;
pub use report::{RoundRecord, SimReport};
pub use rng::RngTree;
pub use sim::Sim;
pub use toy::{NoReplays, NothingToReplay, ToyWorker, ToyWorkload};
pub use workload::{DataPlan, ModelWorkload, Workload};
