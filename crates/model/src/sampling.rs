//! Choosing the next token from logits: greedy, or seeded sampling with temperature, top-k, top-p.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How to pick tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the fewest most-likely tokens whose probabilities add up to at least `p` (nucleus).
    pub top_p: Option<f32>,
    /// Seed of the sampling RNG: the same seed, model and prompt give the same tokens.
    pub seed: u64,
}

impl SamplingConfig {
    /// Always the most likely token.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::BadSampling(format!(
                "temperature {} must be finite and >= 0",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::BadSampling("top_k must be at least 1".into()));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(Error::BadSampling(format!("top_p {p} must lie in (0, 1]")));
        }
        Ok(())
    }
}

/// A token picker with its own seeded RNG.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplingConfig,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler for `cfg`, refusing settings that make no sense.
    pub fn new(cfg: &SamplingConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg: cfg.clone(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        })
    }

    /// Picks a token id from one position's `logits`.
    pub fn sample(&mut self, logits: &[f32]) -> Result<u32> {
        if logits.is_empty() || logits.iter().any(|l| l.is_nan()) {
            return Err(Error::BadLogits);
        }
        // Most likely first; ties go to the lower id, so greedy is the first argmax.
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_by(|&a, &b| {
            logits[b as usize]
                .total_cmp(&logits[a as usize])
                .then(a.cmp(&b))
        });
        if self.cfg.temperature == 0.0 {
            return Ok(order[0]);
        }
        order.truncate(self.cfg.top_k.unwrap_or(order.len()));
        let inv_t = 1.0 / f64::from(self.cfg.temperature);
        let top = f64::from(logits[order[0] as usize]);
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| ((f64::from(logits[i as usize]) - top) * inv_t).exp())
            .collect();
        if let Some(p) = self.cfg.top_p {
            let total: f64 = probs.iter().sum();
            let mut cumulative = 0.0;
            let keep = probs
                .iter()
                .position(|q| {
                    cumulative += q / total;
                    cumulative >= f64::from(p)
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
        }
        let mut u = self.rng.random::<f64>() * probs.iter().sum::<f64>();
        for (&id, q) in order.iter().zip(&probs) {
            if u < *q {
                return Ok(id);
            }
            u -= q;
        }
        Ok(order[probs.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(temperature: f32, top_k: Option<usize>, top_p: Option<f32>, seed: u64) -> Sampler {
        Sampler::new(&SamplingConfig {
            temperature,
            top_k,
            top_p,
            seed,
        })
        .unwrap()
    }

    fn draws(s: &mut Sampler, logits: &[f32], n: usize) -> Vec<u32> {
        (0..n).map(|_| s.sample(logits).unwrap()).collect()
    }

    #[test]
    fn greedy_picks_the_first_argmax() {
        let mut s = Sampler::new(&SamplingConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[0.1, 3.0, -1.0, 3.0]).unwrap(), 1);
    }

    #[test]
    fn same_seed_same_draws_and_seeds_differ() {
        let logits = [0.0, 0.5, 1.0, 0.2, 0.9];
        let a = draws(&mut sampler(1.0, None, None, 3), &logits, 50);
        assert_eq!(a, draws(&mut sampler(1.0, None, None, 3), &logits, 50));
        assert_ne!(a, draws(&mut sampler(1.0, None, None, 4), &logits, 50));
    }

    #[test]
    fn top_k_and_top_p_restrict_the_support() {
        let logits = [0.0, 2.0, 1.0, 3.0, -1.0];
        let k = draws(&mut sampler(5.0, Some(2), None, 1), &logits, 200);
        assert!(k.iter().all(|&t| t == 3 || t == 1) && k.contains(&1) && k.contains(&3));
        // Probabilities at T=1: 0.64, 0.24, 0.09, …: p = 0.8 keeps the first two.
        let p = draws(&mut sampler(1.0, None, Some(0.8), 1), &logits, 200);
        assert!(p.iter().all(|&t| t == 3 || t == 1) && p.contains(&1));
    }

    #[test]
    fn frequencies_follow_the_softmax() {
        let logits = [0.0f32, 2f32.ln()];
        let n = 4000;
        let ones = draws(&mut sampler(1.0, None, None, 9), &logits, n)
            .iter()
            .filter(|&&t| t == 1)
            .count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 2.0 / 3.0).abs() < 0.03, "{frac}");
    }

    #[test]
    fn nonsense_is_refused() {
        let bad = |t, k, p| {
            Sampler::new(&SamplingConfig {
                temperature: t,
                top_k: k,
                top_p: p,
                seed: 0,
            })
            .is_err()
        };
        assert!(bad(-1.0, None, None) && bad(f32::NAN, None, None));
        assert!(bad(1.0, Some(0), None) && bad(1.0, None, Some(0.0)) && bad(1.0, None, Some(1.5)));
        let mut s = sampler(1.0, None, None, 0);
        assert!(s.sample(&[]).is_err() && s.sample(&[0.0, f32::NAN]).is_err());
    }
}
