//! Differentially private gradients (DP-SGD, Abadi et al. 2016, <https://arxiv.org/abs/1607.00133>).
//!
//! With DP on, each sequence of a batch is one example:
//!
//! 1. each example's loss and gradients come from a backward pass of its own (a batch of one
//!    row: simple, and as exact as the batched pass, at the cost of batch-1 matrix products);
//! 2. each example's gradient is clipped to L2 norm C, and the clipped gradients are summed in
//!    row order;
//! 3. N(0, σ²C²) is added to every coordinate of the sum, and the sum is divided by the number of
//!    examples.
//!
//! The noise is pseudo-random, keyed by the run's seed, the global step and the batch's tokens
//! (which name the node, since every node reads its own assigned shards), so a verifier replaying
//! the step with the same batch draws the same noise to the bit. Coordinates are drawn in
//! fixed-size chunks, chunk i from ChaCha stream i, so the draw is the same on any thread count.
//! Whoever knows the seed and the batch can subtract the noise: the ε reported holds against
//! observers of the model who do not hold both (see `docs/glossary.md`, "Privacy ε").

use neuroshard_model::NeuroLlm;
use neuroshard_primitives::{Batch, Hash};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{CHUNK, Error, Result, clip_grad_norm};

/// The namespace the noise key is hashed under.
const NOISE_NAMESPACE: &[u8] = b"_NEUROSHARD_DP_NOISE";

/// DP-SGD settings: per-example clipping norm, noise multiplier, and the seed of the noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpConfig {
    /// Each example's gradient is clipped to this L2 norm (C).
    pub clip: f32,
    /// The noise's standard deviation over the clipping norm (σ); 0 clips without noise.
    pub noise: f32,
    /// The seed the noise is keyed by (the run's or the network's seed).
    pub seed: u64,
}

impl DpConfig {
    /// Checks C > 0 and σ ≥ 0, both finite.
    pub fn new(clip: f32, noise: f32, seed: u64) -> Result<Self> {
        if !(clip.is_finite() && clip > 0.0) {
            return Err(Error::InvalidHyperParameters(format!(
                "DP clipping norm {clip} must be a positive, finite number"
            )));
        }
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(Error::InvalidHyperParameters(format!(
                "DP noise multiplier {noise} must be a finite number ≥ 0"
            )));
        }
        Ok(Self { clip, noise, seed })
    }
}

/// What [`private_gradients`] computed.
#[derive(Debug)]
pub(crate) struct Private {
    /// Mean loss over the examples.
    pub(crate) loss: f32,
    /// Mean per-example gradient norm before clipping.
    pub(crate) mean_norm: f32,
    /// The noised mean of the clipped per-example gradients.
    pub(crate) grads: Vec<f32>,
}

/// Steps 1–3 of the module docs over every row of `batches`, at global step `step`.
pub(crate) fn private_gradients(
    model: &NeuroLlm,
    batches: &[Batch],
    dp: &DpConfig,
    step: u64,
) -> Result<Private> {
    let mut sum = vec![0.0_f32; model.n_params()];
    let (mut loss, mut norms, mut examples) = (0.0_f32, 0.0_f32, 0_usize);
    for example in batches.iter().flat_map(rows) {
        let (example_loss, mut grads) = model.loss_and_grads(&example)?;
        norms += clip_grad_norm(&mut grads, dp.clip);
        loss += example_loss;
        examples += 1;
        sum.iter_mut().zip(&grads).for_each(|(s, g)| *s += g);
    }
    add_noise(
        &mut sum,
        dp.noise * dp.clip,
        noise_key(dp.seed, step, batches),
    );
    let n = examples as f32;
    sum.iter_mut().for_each(|g| *g /= n);
    Ok(Private {
        loss: loss / n,
        mean_norm: norms / n,
        grads: sum,
    })
}

/// Each row of `batch` as a batch of its own.
fn rows(batch: &Batch) -> impl Iterator<Item = Batch> + '_ {
    batch
        .tokens
        .chunks(batch.seq + 1)
        .map(|row| Batch::new(row.to_vec(), 1, batch.seq))
}

/// The key of step `step`'s noise: BLAKE3 over the namespace, the seed, the step and the tokens.
fn noise_key(seed: u64, step: u64, batches: &[Batch]) -> [u8; 32] {
    let mut bytes = NOISE_NAMESPACE.to_vec();
    bytes.extend_from_slice(&seed.to_le_bytes());
    bytes.extend_from_slice(&step.to_le_bytes());
    for token in batches.iter().flat_map(|b| &b.tokens) {
        bytes.extend_from_slice(&token.to_le_bytes());
    }
    Hash::of(&bytes).0
}

/// Adds N(0, std²) to every value: chunk i draws from ChaCha8 stream i under `key`.
fn add_noise(values: &mut [f32], std: f32, key: [u8; 32]) {
    if std == 0.0 {
        return;
    }
    values
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, chunk)| {
            let mut rng = ChaCha8Rng::from_seed(key);
            rng.set_stream(i as u64);
            for value in chunk {
                let z: f32 = StandardNormal.sample(&mut rng);
                *value += std * z;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused() {
        assert!(DpConfig::new(0.0, 1.0, 0).is_err());
        assert!(DpConfig::new(1.0, -0.1, 0).is_err());
        assert!(DpConfig::new(f32::NAN, 1.0, 0).is_err());
        assert!(DpConfig::new(1.0, f32::INFINITY, 0).is_err());
        assert!(DpConfig::new(1.0, 0.0, 0).is_ok());
    }

    #[test]
    fn noise_is_reproducible_thread_independent_and_has_the_asked_spread() {
        let key = [7; 32];
        let draw = |threads: usize| {
            let mut values = vec![0.0_f32; 3 * CHUNK + 5];
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| add_noise(&mut values, 2.0, key));
            values
        };
        let values = draw(1);
        assert_eq!(values, draw(3));
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "std {}", var.sqrt());
    }

    #[test]
    fn the_key_changes_with_seed_step_and_tokens() {
        let batch = Batch::new(vec![1, 2, 3], 1, 2);
        let other = Batch::new(vec![1, 2, 4], 1, 2);
        let key = noise_key(0, 0, std::slice::from_ref(&batch));
        assert_ne!(key, noise_key(1, 0, std::slice::from_ref(&batch)));
        assert_ne!(key, noise_key(0, 1, std::slice::from_ref(&batch)));
        assert_ne!(key, noise_key(0, 0, &[other]));
    }
}
