//! Local training: AdamW, clipping, schedules, checkpoints, and the DiLoCo outer loop.

mod adamw;
pub mod checkpoint;
mod clip;
mod diloco;
mod error;
mod run;
mod schedule;
mod source;
mod trainer;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, l2_norm};
pub use diloco::{OuterConfig, OuterOptimizer, Replica};
pub use error::{Error, Result};
pub use run::{CheckpointPolicy, Observer, Validation, run};
pub use schedule::LrSchedule;
pub use source::InMemorySource;
pub use trainer::{RunSpec, StepStats, Trainer, evaluate};

/// Elements per rayon task in the element-wise optimisers: fixed, so results never depend on
/// the number of threads.
const CHUNK: usize = 16 * 1024;
