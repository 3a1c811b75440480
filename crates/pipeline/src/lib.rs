//! Runs a micro-batch through a pipeline of stage holders: the 1F1B schedule, activation and
//! gradient frames, gradient accumulation over micro-batches.
//!
//! # Bird's Eye View
//!
//! NeuroLLM split over S [`Stage`](neuroshard_model::Stage)s trains on the true gradient at every
//! stage: a step's batch is split into M micro-batches; each flows forward as hidden states, stage
//! to stage, and back as the loss's gradient with respect to each stage's input.
//!
//! - [`Plan`]: each stage's order of forwards and backwards (1F1B), checked ([`Plan::validate`])
//!   and placed in time ([`Plan::timeline`]) to give each stage's busy share and the bubble.
//! - [`Frame`]: one micro-batch's activations or gradients on the wire, at f32, bf16 or f16,
//!   checksummed, decoded under a [`FrameLimit`] derived from the model config.
//! - [`StageStep`]: one stage's share of a step, driven by whoever moves the frames (a thread,
//!   [`run_step`]; or a network task): deliver frames, run ready operations, send what they return.
//! - [`Traffic`]: the frames a stage's step received and sent, which its work commitment names
//!   so an auditor can replay the step ([`StageStep::run_through`]).
//! - [`GradSum`]: M micro-batches of b sequences give the gradient of the batch of M · b.
//! - [`Layout`]: stage vectors to and from the whole model's canonical order, so the one inner
//!   step (`neuroshard_train::InnerLoop`) can descend on a pipeline's gradients.
//!
//! Nothing here reads a clock, does I/O or draws randomness; time is measured by the driver.
//!
//! ```
//! use candle_core::Device;
//! use neuroshard_model::{Config, Stage};
//! use neuroshard_pipeline::{Plan, Precision, even_split, run_step};
//! use neuroshard_primitives::Batch;
//!
//! let cfg = Config { vocab_size: 40, d_model: 16, n_layers: 3, n_heads: 2, n_kv_heads: 1,
//!                    d_ff: 24, seq_len: 8, rope_theta: 1e4, norm_eps: 1e-5 };
//! let stages = even_split(&cfg, 3)?
//!     .into_iter()
//!     .map(|spec| Stage::new(&cfg, spec, 7, &Device::Cpu))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let plan = Plan::one_f_one_b(3, 4)?;
//! let batch = Batch::new((0..4 * 9).map(|i| i % 40).collect(), 4, 8);
//! let step = run_step(&stages, &plan, 0, &batch, Precision::Bf16)?;
//! assert!(step.loss().unwrap() > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod accumulate;
mod error;
pub mod frame;
mod layout;
mod local;
pub mod schedule;
mod step;
mod traffic;

pub use accumulate::{GradSum, split};
pub use error::{Error, Result};
pub use frame::{Frame, FrameKind, FrameLimit, Precision};
pub use layout::Layout;
pub use local::{LocalStep, even_split, relative_error, run_step, split_at, whole_gradients};
pub use schedule::{Costs, Op, Plan, Timeline};
pub use step::{Direction, Outgoing, StageOutcome, StageStep};
pub use traffic::{Frames, SEAL_BYTES, SEAL_NAMESPACE, Seal, Traffic};
