//! The training loop: steps, periodic validation and checkpoints, progress to an observer.

use std::path::{Path, PathBuf};

use neuroshard_primitives::BatchSource;

use crate::{LossEstimate, Result, StepStats, Trainer, checkpoint};

/// Receives progress from [`run`]; the command line draws a progress bar or prints JSON lines
/// from it, so the loop itself does no I/O except checkpoints.
pub trait Observer {
    /// Called after every step, with the validation loss when one was computed after it.
    fn on_step(&mut self, stats: &StepStats, val_loss: Option<LossEstimate>);

    /// Called after a checkpoint has been written completely.
    fn on_checkpoint(&mut self, step: u64, dir: &Path);
}

/// Validation: the mean loss over the first `batches` batches of `source`, every `every` steps
/// and after the last one.
#[derive(Debug)]
pub struct Validation<'a, V> {
    /// Held-out batches, read with the run's batch and sequence sizes.
    pub source: &'a V,
    /// Batches averaged per evaluation (at least 1).
    pub batches: u64,
    /// Steps between evaluations (0: only after the last step).
    pub every: u64,
}

/// Where and how often to write checkpoints (always after the last step too).
#[derive(Debug, Clone)]
pub struct CheckpointPolicy {
    /// The checkpoint directory; each save replaces the previous one atomically.
    pub dir: PathBuf,
    /// Steps between saves (0: only after the last step).
    pub every: u64,
}

/// Whether `step` completes a period of `every` steps or is the final one.
fn due(step: u64, every: u64, last: u64) -> bool {
    step == last || (every > 0 && step.is_multiple_of(every))
}

/// Trains until `trainer` has completed `until` steps (capped at the schedule's total).
///
/// Batch `i` of `source` is used for step `i`, so stopping anywhere and resuming from the
/// checkpoint gives the same losses as never stopping.
pub fn run<S: BatchSource, V: BatchSource>(
    trainer: &mut Trainer,
    source: &S,
    validation: Option<&Validation<'_, V>>,
    checkpoints: Option<&CheckpointPolicy>,
    until: u64,
    observer: &mut dyn Observer,
) -> Result<()> {
    let last = until.min(trainer.spec().schedule.total_steps);
    while trainer.step_index() < last {
        let stats = trainer.step(source)?;
        let val_loss = match validation {
            Some(v) if due(stats.step, v.every, last) => {
                Some(trainer.evaluate(v.source, v.batches.max(1))?)
            }
            _ => None,
        };
        observer.on_step(&stats, val_loss);
        if let Some(policy) = checkpoints.filter(|p| due(stats.step, p.every, last)) {
            checkpoint::save(&policy.dir, trainer)?;
            observer.on_checkpoint(stats.step, &policy.dir);
        }
    }
    Ok(())
}
