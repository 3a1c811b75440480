//! The validation loss: the mean loss of a model over held-out batches, the one measure the
//! trainer, the node and the simulator report.

use neuroshard_model::NeuroLlm;
use neuroshard_primitives::{Batch, BatchSource};

use crate::{Error, Result};

/// Mean loss of `model` over `batches`, by [`loss_estimate`].
pub fn mean_loss(model: &NeuroLlm, batches: &[Batch]) -> Result<f32> {
    Ok(loss_estimate(model, batches)?.mean)
}

/// A validation loss with its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossEstimate {
    /// The mean of the batch losses.
    pub mean: f32,
    /// The standard error of that mean: the batch losses' sample standard deviation over
    /// √batches (0 for a single batch), treating the batches as independent draws.
    pub stderr: f32,
}

/// The mean loss of `model` over `batches` and its standard error, summed in `f64` so the order
/// of many small terms does not move the result; refuses an empty slice rather than report a
/// loss of no batches.
pub fn loss_estimate(model: &NeuroLlm, batches: &[Batch]) -> Result<LossEstimate> {
    if batches.is_empty() {
        return Err(Error::NoBatches);
    }
    let losses = batches
        .iter()
        .map(|batch| Ok(f64::from(model.loss(batch)?)))
        .collect::<Result<Vec<f64>>>()?;
    let n = losses.len() as f64;
    let mean = losses.iter().sum::<f64>() / n;
    let variance = if losses.len() > 1 {
        losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Ok(LossEstimate {
        mean: mean as f32,
        stderr: (variance / n).sqrt() as f32,
    })
}

/// The loss of `model` over batches `0..n_batches` of `source` (`batch` rows of `seq`), by
/// [`loss_estimate`].
pub fn evaluate<S: BatchSource>(
    model: &NeuroLlm,
    source: &S,
    n_batches: u64,
    batch: usize,
    seq: usize,
) -> Result<LossEstimate> {
    let batches = (0..n_batches)
        .map(|index| source.batch(index, batch, seq).map_err(Error::data))
        .collect::<Result<Vec<_>>>()?;
    loss_estimate(model, &batches)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use neuroshard_model::Config;

    use super::*;
    use crate::InMemorySource;

    fn model() -> NeuroLlm {
        NeuroLlm::new(&Config::preset("nano", 16).unwrap(), 3, &Device::Cpu).unwrap()
    }

    #[test]
    fn the_mean_is_the_average_of_the_batch_losses() {
        let model = model();
        let source = InMemorySource::new((0..200).map(|i| i % 16).collect(), 0);
        let batches: Vec<Batch> = (0..3).map(|i| source.batch(i, 2, 8).unwrap()).collect();
        let losses: Vec<f64> = batches
            .iter()
            .map(|b| f64::from(model.loss(b).unwrap()))
            .collect();
        let expected = (losses.iter().sum::<f64>() / 3.0) as f32;
        assert_eq!(mean_loss(&model, &batches).unwrap(), expected);
        let mean = losses.iter().sum::<f64>() / 3.0;
        let sd = (losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let estimate = loss_estimate(&model, &batches).unwrap();
        assert!((f64::from(estimate.stderr) - sd / 3f64.sqrt()).abs() < 1e-6);
        assert!(estimate.stderr > 0.0);
        assert_eq!(evaluate(&model, &source, 3, 2, 8).unwrap().mean, expected);
    }

    #[test]
    fn no_batches_is_refused() {
        let model = model();
        assert!(matches!(mean_loss(&model, &[]), Err(Error::NoBatches)));
        let source = InMemorySource::new((0..200).map(|i| i % 16).collect(), 0);
        assert!(matches!(
            evaluate(&model, &source, 0, 2, 8),
            Err(Error::NoBatches)
        ));
    }
}
