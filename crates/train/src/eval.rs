//! The validation loss: the mean loss of a model over held-out batches, the one measure the
//! trainer, the node and the simulator report.

use neuroshard_model::NeuroLlm;
use neuroshard_primitives::{Batch, BatchSource};

use crate::{Error, Result};

/// Mean loss of `model` over `batches`, summed in `f64` so the order of many small terms does
/// not move the result; refuses an empty slice rather than report a loss of no batches.
pub fn mean_loss(model: &NeuroLlm, batches: &[Batch]) -> Result<f32> {
    if batches.is_empty() {
        return Err(Error::NoBatches);
    }
    let mut total = 0.0_f64;
    for batch in batches {
        total += f64::from(model.loss(batch)?);
    }
    Ok((total / batches.len() as f64) as f32)
}

/// Mean loss of `model` over batches `0..n_batches` of `source` (`batch` rows of `seq`), by
/// [`mean_loss`].
pub fn evaluate<S: BatchSource>(
    model: &NeuroLlm,
    source: &S,
    n_batches: u64,
    batch: usize,
    seq: usize,
) -> Result<f32> {
    let batches = (0..n_batches)
        .map(|index| source.batch(index, batch, seq).map_err(Error::data))
        .collect::<Result<Vec<_>>>()?;
    mean_loss(model, &batches)
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
        assert_eq!(evaluate(&model, &source, 3, 2, 8).unwrap(), expected);
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
