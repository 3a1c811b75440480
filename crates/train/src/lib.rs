//! Local training: AdamW, clipping, schedules, checkpoints, and the DiLoCo outer loop.
//!
//! # Bird's Eye View
//!
//! The optimisers ([`AdamW`], [`clip_grad_norm`], [`OuterOptimizer`]) are pure functions over
//! flat `f32` slices in the model's canonical parameter order, split into fixed-size chunks so
//! the result is the same to the bit on any number of threads. [`InnerLoop`] is the one inner
//! step (batch → loss and gradients → clip → AdamW at lr(step)) that everything which trains or
//! replays training runs; with a [`DpConfig`] it is a DP-SGD step (per-example clipping and
//! Gaussian noise keyed by the seed, the step and the batch, so a replay draws the same noise). A [`Trainer`] owns an inner loop and a step counter; step `i` reads batch `i` of any
//! [`neuroshard_primitives::BatchSource`], so a run restored from a [`checkpoint`] continues
//! exactly. [`run`] drives a trainer with periodic validation and checkpoints and reports to an
//! [`Observer`]; it does no other I/O and reads no clock. [`mean_loss`] is the one validation
//! loss (summed in `f64`) that the trainer, the node and the simulator report. [`Replica`] is one DiLoCo worker: it
//! keeps θ_start and its AdamW state across rounds, returns the pseudo-gradient and applies the
//! aggregated one with Nesterov momentum. This crate knows nothing about peers.
//!
//! ```
//! use candle_core::Device;
//! use neuroshard_model::Config;
//! use neuroshard_primitives::Hash;
//! use neuroshard_train::{AdamWConfig, InMemorySource, LrSchedule, RunSpec, Trainer};
//!
//! let source = InMemorySource::new((0..500).map(|i| i % 32).collect(), 0);
//! let spec = RunSpec {
//!     model: Config::preset("nano", 32)?,
//!     seed: 0,
//!     batch: 2,
//!     seq: 8,
//!     schedule: LrSchedule::new(1, 3, 1e-3, 1e-4)?,
//!     adamw: AdamWConfig::NEUROSHARD,
//!     max_grad_norm: 1.0,
//!     dp: None,
//!     tokenizer_hash: Hash::of(b"tokenizer.json"),
//!     data_id: source.identity(),
//! };
//! let mut trainer = Trainer::new(spec, &Device::Cpu)?;
//! while !trainer.is_done() {
//!     let stats = trainer.step(&source)?;
//!     assert!(stats.loss.is_finite());
//! }
//! assert_eq!(trainer.step_index(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adamw;
pub mod checkpoint;
mod clip;
mod diloco;
mod dp;
mod error;
mod eval;
mod inner;
mod run;
mod schedule;
mod source;
mod stage;
mod trainer;

pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, l2_norm};
pub use diloco::{OuterConfig, OuterOptimizer, Replica, pseudo_gradient};
pub use dp::DpConfig;
pub use error::{Error, Result};
pub use eval::{LossEstimate, evaluate, loss_estimate, mean_loss};
pub use inner::{Gradients, InnerConfig, InnerLoop, StepStats};
pub use run::{CheckpointPolicy, Observer, Validation, run};
pub use schedule::LrSchedule;
pub use source::InMemorySource;
pub use stage::StageLoop;
pub use trainer::{RunSpec, Trainer};

/// Elements per rayon task in the element-wise optimisers: fixed, so results never depend on
/// the number of threads.
const CHUNK: usize = 16 * 1024;
