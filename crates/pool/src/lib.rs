//! The Dynamic Layer Pool: capacity records, stage assignment and the growth schedule, pure.
//!
//! # Bird's Eye View
//!
//! Each node announces a signed [`CapacityRecord`] (its memory budget and measured speed,
//! bound to the network id). From the model and the members' latest records, [`assign`] gives
//! every node the same [`Plan`]: pipeline stages, each a contiguous layer range with its
//! replicas, the embedding on the first and the head on the last, balanced by speed, close to
//! the previous plan; [`carry`] re-plans a running pipeline without moving a layer anyone
//! holds. [`Footprint`] says what a stage costs in memory and work.
//! [`GrowthSchedule::decide`] says, from the pool sizes at past round boundaries, when the model
//! grows and to what depth (the model crate's `NeuroLlm::grown` then adds the layers).
//!
//! Nothing here does I/O, reads a clock or draws randomness: the same inputs give the same
//! outputs on every node. See `docs/pool.md` for the rules.
//!
//! ```
//! use neuroshard_model::Config;
//! use neuroshard_pool::{Footprint, Member, Workload, assign};
//! use neuroshard_primitives::NodeId;
//!
//! let cfg = Config::preset("nano", 8192)?;
//! let fp = Footprint::of(&cfg, Workload { micro_batch: 8, micro_batches: 4 });
//! let whole = fp.bytes(cfg.n_layers, true, true);
//! let members: Vec<Member> = (0..3)
//!     .map(|i| Member { node: NodeId([i; 32]), memory_budget: whole, work_per_sec: 1_000_000 })
//!     .collect();
//! let plan = assign(cfg.n_layers, &fp, Workload { micro_batch: 8, micro_batches: 4 }, &members, None);
//! assert_eq!(plan.stages.len(), 1);
//! assert_eq!(plan.stages[0].replicas.len(), 3);
//! # Ok::<(), neuroshard_model::Error>(())
//! ```

mod assign;
mod capacity;
mod error;
mod footprint;
mod growth;

pub use assign::{
    Member, Plan, REBALANCE, REDUNDANCY, REPLAN, StagePlan, Unplaced, assign, carry, running_lanes,
};
pub use capacity::{CAPACITY_NAMESPACE, CapacityRecord, MAX_CAPACITY_FRAME};
pub use error::{Error, Result};
pub use footprint::{Footprint, REPLAY_BYTES_PER_PARAM, STATE_BYTES_PER_PARAM, Workload};
pub use growth::{GrowthSchedule, GrowthSpec, GrowthStepSpec, pool_bytes};
