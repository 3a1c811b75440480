//! Differential-privacy accounting: the Rényi DP of the Poisson-subsampled Gaussian mechanism and its (ε, δ) guarantee.
//!
//! # Bird's Eye View
//!
//! DP-SGD clips each example's gradient to L2 norm C, sums, and adds N(0, σ²C²) per coordinate;
//! with each example in a step's batch with probability q, a step is the subsampled Gaussian
//! mechanism with noise multiplier σ. An [`Accountant`] computes that step's Rényi DP at a fixed
//! list of orders ([`DEFAULT_ORDERS`]) once; T steps compose by adding, so T × RDP(α); and the
//! RDP converts to (ε, δ)-DP at the best order by
//! ε = RDP(α) + ln(1 − 1/α) − (ln δ + ln α) / (α − 1)
//! (Canonne, Kamath, Steinke 2020, Proposition 12, <https://arxiv.org/abs/2004.00010>),
//! or ε = 0 where the KL bound δ ≥ √(1 − e^{−RDP(α)}) already holds.
//! The orders and the conversion are those of Google's `dp-accounting` `RdpAccountant`, so the
//! two agree (`bench/privacy.sh` checks five settings).
//!
//! The crate does no I/O and depends on nothing of ours.
//!
//! ```
//! use neuroshard_privacy::Accountant;
//!
//! // The DP-SGD paper's MNIST setting: q = 256/60000, σ = 1.1, 60 epochs, δ = 1e-5.
//! let accountant = Accountant::new(256.0 / 60_000.0, 1.1)?;
//! let spent = accountant.epsilon(14_062, 1e-5)?;
//! assert!(spent.epsilon > 2.5 && spent.epsilon < 3.5);
//! # Ok::<(), neuroshard_privacy::Error>(())
//! ```

mod error;
mod rdp;

pub use error::{Error, Result};

/// The RDP orders evaluated: 1.1 to 10.9 by tenths, 11 to 63, and 128, 256, 512, 1024 (the
/// same list as `dp-accounting`'s `RdpAccountant`).
pub fn default_orders() -> Vec<f64> {
    let tenths = (1..100).map(|x| 1.0 + f64::from(x) / 10.0);
    let integers = (11..64).map(f64::from);
    let large = [128.0, 256.0, 512.0, 1024.0];
    tenths.chain(integers).chain(large).collect()
}

/// The sampling rate DP-SGD accounting assumes for batches of `batch_size` sequences of
/// `seq_len` tokens drawn from `pool_tokens` tokens: batch size / sequences in the pool, at most 1.
///
/// Our batches are read in a fixed shuffled order, not Poisson-sampled, so ε computed from this
/// rate is the standard DP-SGD accounting under the Poisson assumption, not a proof for our
/// sampler.
pub fn sampling_rate(batch_size: usize, seq_len: usize, pool_tokens: u64) -> f64 {
    let sequences = (pool_tokens / seq_len.max(1) as u64).max(1);
    (batch_size as f64 / sequences as f64).min(1.0)
}

/// The privacy spent: ε at the δ asked for, and the RDP order that gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    /// ε; infinite when no order gives a finite bound (no noise).
    pub epsilon: f64,
    /// The order α the minimum was reached at.
    pub order: f64,
}

/// The RDP of one step of the subsampled Gaussian mechanism at every order.
#[derive(Debug, Clone, PartialEq)]
pub struct Accountant {
    orders: Vec<f64>,
    per_step: Vec<f64>,
}

impl Accountant {
    /// The accountant for steps that each sample examples with probability `sampling_rate` and
    /// add Gaussian noise of `noise` times the clipping norm.
    pub fn new(sampling_rate: f64, noise: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&sampling_rate) {
            return Err(Error::SamplingRate(sampling_rate));
        }
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(Error::Noise(noise));
        }
        let orders = default_orders();
        let per_step = orders
            .iter()
            .map(|&order| rdp::subsampled_gaussian(sampling_rate, noise, order))
            .collect();
        Ok(Self { orders, per_step })
    }

    /// ε at `delta` after `steps` steps.
    pub fn epsilon(&self, steps: u64, delta: f64) -> Result<Spent> {
        if !(delta > 0.0 && delta < 1.0) {
            return Err(Error::Delta(delta));
        }
        let best = self
            .orders
            .iter()
            .zip(&self.per_step)
            .map(|(&order, &rdp)| Spent {
                epsilon: to_epsilon(order, steps as f64 * rdp, delta),
                order,
            })
            .min_by(|a, b| a.epsilon.total_cmp(&b.epsilon))
            .expect("the order list is not empty");
        Ok(Spent {
            epsilon: best.epsilon.max(0.0),
            ..best
        })
    }
}

/// ε from RDP `rdp` at order `order` for `delta` (the conversion of the crate docs).
fn to_epsilon(order: f64, rdp: f64, delta: f64) -> f64 {
    if delta * delta + (-rdp).exp_m1() > 0.0 {
        0.0
    } else if order > 1.01 {
        rdp + (-1.0 / order).ln_1p() - (delta * order).ln() / (order - 1.0)
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> f64 {
        Accountant::new(q, sigma)
            .unwrap()
            .epsilon(steps, delta)
            .unwrap()
            .epsilon
    }

    #[test]
    fn the_order_list_is_dp_accountings() {
        let orders = default_orders();
        assert_eq!(orders.len(), 99 + 53 + 4);
        assert_eq!((orders[0], orders[98], orders[99]), (1.1, 10.9, 11.0));
        assert_eq!(orders.last(), Some(&1024.0));
    }

    /// Values printed by `dp-accounting` 0.6's `RdpAccountant` (see `bench/privacy.sh`).
    #[test]
    fn known_values() {
        let cases = [
            (
                (256.0 / 60_000.0, 1.1, 14_062, 1e-5),
                2.596_555_869_794_303_6,
            ),
            ((0.01, 1.0, 1_000, 1e-5), 2.101_366_525_420_273),
            ((1.0, 1.0, 1, 1e-5), 4.728_507_067_217_623),
        ];
        for ((q, sigma, steps, delta), expected) in cases {
            let got = epsilon(q, sigma, steps, delta);
            assert!(
                (got - expected).abs() <= 1e-6 * expected,
                "q {q} σ {sigma} T {steps} δ {delta}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn the_sampling_rate_is_the_batch_over_the_sequences_in_the_pool() {
        assert_eq!(sampling_rate(8, 128, 128 * 800), 0.01);
        assert_eq!(sampling_rate(8, 128, 100), 1.0);
    }

    #[test]
    fn no_noise_means_no_guarantee_and_no_steps_mean_none_spent() {
        assert_eq!(epsilon(0.01, 0.0, 1, 1e-5), f64::INFINITY);
        assert_eq!(epsilon(0.01, 1.0, 0, 1e-5), 0.0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(Accountant::new(1.5, 1.0), Err(Error::SamplingRate(1.5)));
        assert_eq!(Accountant::new(0.1, -1.0), Err(Error::Noise(-1.0)));
        assert!(Accountant::new(0.1, f64::NAN).is_err());
        let accountant = Accountant::new(0.1, 1.0).unwrap();
        assert_eq!(accountant.epsilon(1, 0.0), Err(Error::Delta(0.0)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn epsilon_grows_with_steps_and_falls_with_noise(
            q in 0.001_f64..0.2,
            sigma in 0.6_f64..4.0,
            steps in 1_u64..5_000,
        ) {
            let at = |s: f64, t: u64| epsilon(q, s, t, 1e-5);
            prop_assert!(at(sigma, steps) <= at(sigma, steps * 2));
            prop_assert!(at(sigma * 1.5, steps) <= at(sigma, steps));
        }
    }
}
