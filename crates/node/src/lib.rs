//! The round state machine: membership, training rounds, agreement, outer step.
//!
//! # Bird's Eye View
//!
//! The node core is being assembled: the signed, size-bounded messages, the agreement seam, and
//! the training-job types a driver exchanges with it.

mod agreement;
mod error;
mod message;
mod time;
mod work;

pub use agreement::{Agreement, DeadlineAgreement, RoundView};
pub use error::{Error, Result};
pub use message::{Announcement, MAX_SMALL_FRAME, Message, Round};
pub use time::Timestamp;
pub use work::{TrainingJob, TrainingResult, Worker};
