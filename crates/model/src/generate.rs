//! Autoregressive generation with a key/value cache.

use candle_core::{IndexOp, Tensor};

use crate::{Error, NeuroLlm, Result, Sampler, SamplingConfig};

/// Continues `prompt` by up to `max_tokens` tokens and returns only the new ones. Stops early,
/// without emitting it, when `stop` is sampled. The prompt is run once; each later step feeds
/// one token and attends over the cached keys and values.
pub fn generate(
    model: &NeuroLlm,
    prompt: &[u32],
    max_tokens: usize,
    sampling: &SamplingConfig,
    stop: Option<u32>,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let mut sampler = Sampler::new(sampling)?;
    let mut cache = model.new_cache();
    let mut step: Vec<u32> = prompt.to_vec();
    let mut out = Vec::with_capacity(max_tokens);
    while out.len() < max_tokens {
        let t = step.len();
        let tokens = Tensor::from_vec(step, (1, t), model.device())?;
        let logits = model
            .forward_cached(&tokens, &mut cache)?
            .i((0, t - 1))?
            .to_vec1::<f32>()?;
        let next = sampler.sample(&logits)?;
        if Some(next) == stop {
            break;
        }
        out.push(next);
        step = vec![next];
    }
    Ok(out)
}
