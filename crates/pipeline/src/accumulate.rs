//! Gradient accumulation over micro-batches, and splitting a batch into them.
//!
//! A micro-batch's loss is the mean cross-entropy over its `b · t` tokens. M micro-batches of
//! the same size make a batch of `M · b` sequences whose mean loss is the mean of theirs, so its
//! gradient is the mean of theirs too: [`GradSum::mean`] divides the sum by M.

use neuroshard_primitives::Batch;

use crate::{Error, Result};

/// Splits `batch` into `micro_batches` equal batches of consecutive sequences.
pub fn split(batch: &Batch, micro_batches: usize) -> Result<Vec<Batch>> {
    if micro_batches == 0 || !batch.batch.is_multiple_of(micro_batches) {
        return Err(Error::Split {
            batch: batch.batch,
            micro_batches,
        });
    }
    let rows = batch.batch / micro_batches;
    let per = rows * (batch.seq + 1);
    Ok(batch
        .tokens
        .chunks_exact(per)
        .map(|tokens| Batch::new(tokens.to_vec(), rows, batch.seq))
        .collect())
}

/// The running sum of one stage's parameter gradients and losses over a step's micro-batches.
#[derive(Debug, Clone, PartialEq)]
pub struct GradSum {
    sum: Vec<f32>,
    loss: f64,
    count: u32,
}

impl GradSum {
    /// An empty sum for a stage with `n_params` parameters.
    pub fn new(n_params: usize) -> Self {
        Self {
            sum: vec![0.0; n_params],
            loss: 0.0,
            count: 0,
        }
    }

    /// Adds one micro-batch's gradients (and its loss, on the last stage).
    pub fn add(&mut self, grads: &[f32], loss: Option<f32>) -> Result<()> {
        if grads.len() != self.sum.len() {
            return Err(Error::Layout(format!(
                "{} gradients for a stage of {} parameters",
                grads.len(),
                self.sum.len()
            )));
        }
        self.sum.iter_mut().zip(grads).for_each(|(s, g)| *s += g);
        self.loss += f64::from(loss.unwrap_or(0.0));
        self.count += 1;
        Ok(())
    }

    /// Micro-batches added so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The mean gradient and the mean loss over the micro-batches added.
    pub fn mean(mut self) -> (Vec<f32>, f32) {
        let n = self.count.max(1) as f32;
        self.sum.iter_mut().for_each(|g| *g /= n);
        (self.sum, (self.loss / f64::from(self.count.max(1))) as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_splits_into_its_rows_in_order() {
        let batch = Batch::new((0..12).collect(), 4, 2);
        let parts = split(&batch, 2).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].tokens, vec![6, 7, 8, 9, 10, 11]);
        assert_eq!(parts[1].batch, 2);
        assert!(split(&batch, 3).is_err());
        assert!(split(&batch, 0).is_err());
    }

    #[test]
    fn the_mean_divides_by_the_count() {
        let mut sum = GradSum::new(2);
        sum.add(&[1.0, 2.0], Some(3.0)).unwrap();
        sum.add(&[3.0, 4.0], Some(5.0)).unwrap();
        assert!(sum.add(&[1.0], None).is_err());
        assert_eq!(sum.count(), 2);
        assert_eq!(sum.mean(), (vec![2.0, 3.0], 4.0));
    }
}
