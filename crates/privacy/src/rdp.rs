//! The Rényi DP of one step of the Poisson-subsampled Gaussian mechanism, in log space.
//!
//! A step adds N(0, σ²) to a sum of per-example values of L2 norm at most 1, over a batch in
//! which each example is present with probability q. Its RDP at order α is
//! ln(A_α) / (α − 1), where A_α = E_{z∼μ₀}[(μ(z)/μ₀(z))^α], μ₀ = N(0, σ²), μ₁ = N(1, σ²) and
//! μ = (1 − q)μ₀ + qμ₁ (Mironov, Talwar, Zhang 2019, <https://arxiv.org/abs/1908.10530>):
//!
//! 1. Integer α (Section 3.2): A_α = Σ_{k=0..α} C(α, k) (1 − q)^{α−k} q^k exp((k² − k) / 2σ²).
//! 2. Fractional α (Section 3.3): split the integral at z₀ = σ² ln(1/q − 1) + ½, expand each
//!    half as a binomial series with Gaussian tails erfc, and sum until the terms fall below
//!    e⁻³⁰ of the total. |C(α, k)| is used, so the sum bounds A_α from above, as
//!    Google's `dp-accounting` 0.6 does.
//!
//! Every term is kept as its logarithm, so orders up to 1024 neither overflow nor underflow.

/// Terms of the fractional series before an order is given up as not converging (its RDP is
/// then infinite, which drops it from the ε minimum).
const MAX_TERMS: usize = 1000;

/// The RDP at `order` of one step with sampling rate `q` and noise multiplier `sigma`, both
/// already checked (q in [0, 1], σ ≥ 0); `order` > 1.
pub(crate) fn subsampled_gaussian(q: f64, sigma: f64, order: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 || order.is_infinite() {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return order / (2.0 * sigma * sigma);
    }
    let log_a = if order.fract() == 0.0 {
        log_a_int(q, sigma, order as u64)
    } else {
        log_a_frac(q, sigma, order)
    };
    log_a / (order - 1.0)
}

/// ln A_α for integer α (step 1 of the module docs).
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let (log_q, log_1mq) = (q.ln(), (-q).ln_1p());
    let mut log_binom = 0.0;
    let mut log_a = f64::NEG_INFINITY;
    for k in 0..=alpha {
        if k > 0 {
            log_binom += ((alpha - k + 1) as f64).ln() - (k as f64).ln();
        }
        let kf = k as f64;
        let term = log_binom
            + kf * log_q
            + (alpha as f64 - kf) * log_1mq
            + (kf * kf - kf) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, term);
    }
    log_a
}

/// ln A_α for fractional α (step 2 of the module docs).
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (log_q, log_1mq) = (q.ln(), (-q).ln_1p());
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let tail = |x: f64| 0.5_f64.ln() + log_erfc(x / (std::f64::consts::SQRT_2 * sigma));
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut last0, mut last1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut log_binom = 0.0;
    for i in 0..MAX_TERMS {
        let k = i as f64;
        if i > 0 {
            log_binom += (alpha - k + 1.0).abs().ln() - k.ln();
        }
        let j = alpha - k;
        let quad = |x: f64| (x * x - x) / (2.0 * sigma * sigma);
        let s0 = log_binom + k * log_q + j * log_1mq + quad(k) + tail(k - z0);
        let s1 = log_binom + j * log_q + k * log_1mq + quad(j) + tail(z0 - j);
        log_a0 = log_add(log_a0, s0);
        log_a1 = log_add(log_a1, s1);
        let total = log_add(log_a0, log_a1);
        if s0 < last0 && s1 < last1 && s0.max(s1) < total - 30.0 {
            return total;
        }
        (last0, last1) = (s0, s1);
    }
    f64::INFINITY
}

/// ln(eˣ + eʸ) without overflow.
fn log_add(x: f64, y: f64) -> f64 {
    let (hi, lo) = if x > y { (x, y) } else { (y, x) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    hi + (lo - hi).exp().ln_1p()
}

/// ln erfc(x), accurate where erfc underflows: beyond x = 25 the asymptotic series
/// erfc(x) ≈ exp(−x² − ½x⁻² + ⅝x⁻⁴ − 37/24 x⁻⁶ + 353/64 x⁻⁸) / (x√π) is used, whose next
/// term is below 1e-14 there.
fn log_erfc(x: f64) -> f64 {
    if x < 25.0 {
        return libm::erfc(x).ln();
    }
    let inv2 = 1.0 / (x * x);
    -0.5 * std::f64::consts::PI.ln() - x.ln() - x * x
        + inv2 * (-0.5 + inv2 * (0.625 + inv2 * (-37.0 / 24.0 + inv2 * 353.0 / 64.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_erfc_is_continuous_where_the_series_takes_over() {
        let below = libm::erfc(24.999_999).ln();
        assert!((below - log_erfc(25.0)).abs() < 1e-4 * below.abs());
        assert_eq!(log_erfc(0.0), 0.0);
    }

    #[test]
    fn without_subsampling_it_is_the_gaussian_mechanism() {
        assert_eq!(subsampled_gaussian(1.0, 2.0, 3.0), 3.0 / 8.0);
        assert_eq!(subsampled_gaussian(0.0, 2.0, 3.0), 0.0);
        assert_eq!(subsampled_gaussian(0.5, 0.0, 3.0), f64::INFINITY);
    }

    #[test]
    fn order_two_matches_the_closed_form() {
        // A₂ = (1−q)² + 2q(1−q) + q² e^{1/σ²} = 1 + q² (e^{1/σ²} − 1).
        let (q, sigma) = (0.01_f64, 1.0_f64);
        let expected = (q * q * (1.0 / (sigma * sigma)).exp_m1()).ln_1p();
        assert!((subsampled_gaussian(q, sigma, 2.0) - expected).abs() < 1e-15);
    }

    #[test]
    fn fractional_orders_lie_between_their_integer_neighbours() {
        let at = |order| subsampled_gaussian(0.01, 1.1, order);
        assert!(at(2.0) <= at(2.5) && at(2.5) <= at(3.0));
        assert!(at(10.0) <= at(10.9) && at(10.9) <= at(11.0));
    }
}
