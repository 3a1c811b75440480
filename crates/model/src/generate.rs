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
    let mut out = Vec::with_capacity(max_tokens);
    generate_each(model, prompt, max_tokens, sampling, stop, |token| {
        out.push(token);
        true
    })?;
    Ok(out)
}

/// [`generate`], handing each new token to `on_token` as soon as it is sampled (a server streams
/// them); stops early when `on_token` returns `false`.
pub fn generate_each(
    model: &NeuroLlm,
    prompt: &[u32],
    max_tokens: usize,
    sampling: &SamplingConfig,
    stop: Option<u32>,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::EmptyPrompt);
    }
    let mut sampler = Sampler::new(sampling)?;
    let mut cache = model.new_cache();
    let mut step: Vec<u32> = prompt.to_vec();
    for _ in 0..max_tokens {
        let t = step.len();
        let tokens = Tensor::from_vec(step, (1, t), model.device())?;
        let logits = model
            .forward_cached(&tokens, &mut cache)?
            .i((0, t - 1))?
            .to_vec1::<f32>()?;
        let next = sampler.sample(&logits)?;
        if Some(next) == stop || !on_token(next) {
            break;
        }
        step = vec![next];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{micro, test_devices};
    use candle_core::Device;

    fn logits_rows(t: &Tensor) -> Vec<Vec<f32>> {
        t.squeeze(0).unwrap().to_vec2().unwrap()
    }

    fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .flatten()
            .zip(b.iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn cached_decoding_matches_recomputing_the_prefix() {
        let cfg = micro();
        for dev in test_devices() {
            let model = NeuroLlm::new(&cfg, 11, &dev).unwrap();
            let ids: Vec<u32> = vec![3, 17, 5, 36, 0, 8, 8, 21, 2];
            let full = logits_rows(
                &model
                    .forward(&Tensor::from_vec(ids.clone(), (1, ids.len()), &dev).unwrap())
                    .unwrap(),
            );
            // A prompt of 4, then chunks of 1, 3 and 1 tokens: every chunk has tq < tk.
            let mut cache = model.new_cache();
            let mut cached = Vec::new();
            for chunk in [&ids[..4], &ids[4..5], &ids[5..8], &ids[8..]] {
                let x = Tensor::from_vec(chunk.to_vec(), (1, chunk.len()), &dev).unwrap();
                cached.extend(logits_rows(&model.forward_cached(&x, &mut cache).unwrap()));
            }
            assert_eq!(cache.len(), ids.len());
            let diff = max_diff(&full, &cached);
            assert!(diff < 1e-4, "cached logits differ by {diff}");
        }
    }

    #[test]
    fn greedy_generation_is_deterministic_and_follows_argmax() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 12, &Device::Cpu).unwrap();
        let greedy = SamplingConfig::greedy();
        let out = generate(&model, &[1, 2, 3], 6, &greedy, None).unwrap();
        assert_eq!(out, generate(&model, &[1, 2, 3], 6, &greedy, None).unwrap());
        // Without a cache: append the argmax of the last position, six times.
        let mut seq = vec![1u32, 2, 3];
        for _ in 0..6 {
            let x = Tensor::from_vec(seq.clone(), (1, seq.len()), &Device::Cpu).unwrap();
            let last = logits_rows(&model.forward(&x).unwrap()).pop().unwrap();
            seq.push(Sampler::new(&greedy).unwrap().sample(&last).unwrap());
        }
        assert_eq!(out, seq[3..]);
    }

    #[test]
    fn sampling_is_reproducible_per_seed_and_stops() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 13, &Device::Cpu).unwrap();
        let sampling = |seed| SamplingConfig {
            temperature: 1.5,
            top_k: Some(20),
            top_p: Some(0.95),
            seed,
        };
        let a = generate(&model, &[4, 5], 12, &sampling(1), None).unwrap();
        assert_eq!(a.len(), 12);
        assert_eq!(
            a,
            generate(&model, &[4, 5], 12, &sampling(1), None).unwrap()
        );
        assert_ne!(
            a,
            generate(&model, &[4, 5], 12, &sampling(2), None).unwrap()
        );
        let stopped = generate(&model, &[4, 5], 12, &sampling(1), Some(a[3])).unwrap();
        let first = a.iter().position(|&t| t == a[3]).unwrap();
        assert_eq!(stopped, a[..first]);
    }

    #[test]
    fn each_token_is_handed_over_and_the_callback_can_stop() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 15, &Device::Cpu).unwrap();
        let greedy = SamplingConfig::greedy();
        let all = generate(&model, &[1, 2], 8, &greedy, None).unwrap();
        let mut seen = Vec::new();
        generate_each(&model, &[1, 2], 8, &greedy, None, |token| {
            seen.push(token);
            seen.len() < 3
        })
        .unwrap();
        assert_eq!(seen, all[..3]);
    }

    #[test]
    fn empty_prompts_and_bad_tokens_are_refused() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 14, &Device::Cpu).unwrap();
        let greedy = SamplingConfig::greedy();
        assert!(matches!(
            generate(&model, &[], 3, &greedy, None),
            Err(Error::EmptyPrompt)
        ));
        assert!(matches!(
            generate(&model, &[99], 3, &greedy, None),
            Err(Error::TokenOutOfRange { .. })
        ));
    }
}
