//! Gaussian noise: send random numbers on the scale of (a multiple of) an honest Δ.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Pure noise N(0, σ²) per coordinate with σ = `sigma_rms` × RMS(own Δ), so the attack scales
/// with the model and the learning rate instead of needing a hand-tuned absolute σ.
pub fn noise(own: &[f32], sigma_rms: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let rms = (own.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / own.len().max(1) as f64)
        .sqrt() as f32;
    let sigma = (sigma_rms * rms).max(f32::MIN_POSITIVE);
    let normal = Normal::new(0.0f32, sigma).expect("sigma is positive and finite");
    own.iter().map(|_| normal.sample(rng)).collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn noise_has_the_requested_scale_and_is_seeded() {
        let own = vec![0.1f32; 20_000];
        let a = noise(&own, 10.0, &mut ChaCha8Rng::seed_from_u64(3));
        let b = noise(&own, 10.0, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        let rms = (a.iter().map(|v| v * v).sum::<f32>() / a.len() as f32).sqrt();
        assert!((rms - 1.0).abs() < 0.05, "rms {rms}");
    }

    #[test]
    fn zero_delta_gives_finite_values() {
        let out = noise(&[0.0; 4], 10.0, &mut ChaCha8Rng::seed_from_u64(0));
        assert!(out.iter().all(|v| v.is_finite()));
    }
}
