//! Deterministic multi-node simulation of the training protocol, with Byzantine actors.
//!
//! # Bird's Eye View
//!
//! Being assembled: the Byzantine attackers as pure functions, the network model, the simulated
//! clock and the seeded RNG tree.

pub mod adversary;
mod error;
mod network;
mod queue;
mod rng;

pub use error::{Error, Result};
pub use network::{Access, Link, Network, Traffic};
pub use queue::EventQueue;
pub use rng::RngTree;
