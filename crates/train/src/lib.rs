//! Local training: AdamW, clipping, schedules, checkpoints, and the DiLoCo outer loop.

mod adamw;
mod clip;
mod error;
mod schedule;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, l2_norm};
pub use error::{Error, Result};
pub use schedule::LrSchedule;

/// Elements per rayon task in the element-wise optimisers: fixed, so results never depend on
/// the number of threads.
const CHUNK: usize = 16 * 1024;
