//! Centred clipping: average the inputs' offsets from a centre, each clipped to a radius τ.
//!
//! Karimireddy, He, Jaggi, *Learning from History for Byzantine Robust Optimization*, ICML 2021,
//! <https://arxiv.org/abs/2012.10333>.
//!
//! 1. Start at `v₀`: zero, the coordinate-wise median, or (through
//!    [`crate::centered_clip_from`]) the previous round's aggregate, as in the paper.
//! 2. Repeat L times: `v ← v + (1/n) Σᵢ (xᵢ − v) · min(1, τ / ‖xᵢ − v‖)`.
//!    Each step is one pass over the input, which also measures the distances for the next.
//! 3. τ is fixed, or at each step the median of the distances `‖xᵢ − v‖` (so at least the
//!    farther half is clipped, whatever the scale of the update).
//!
//! Tolerance: each attacker moves v by at most τ/n per step, so the rule needs `f < n/2` and a
//! good start; the paper's guarantee is for a small constant fraction `δ = f/n` of attackers
//! and a start near the honest mean (its momentum from the previous round).

use crate::dist::affine_step;
use crate::{ClipParams, Radius};

/// Centred clipping of `vectors` from the centre `start`.
pub(crate) fn centered_clip(vectors: &[&[f32]], p: &ClipParams, start: Vec<f32>) -> Vec<f32> {
    let n = vectors.len();
    let mut v = start;
    let zeros = vec![0.0; n];
    let mut dist: Vec<f64> = affine_step(vectors, &mut v, 1.0, &zeros)
        .into_iter()
        .map(f64::sqrt)
        .collect();
    for _ in 0..p.iterations {
        let tau = match p.tau {
            Radius::Fixed(tau) => tau,
            Radius::MedianDistance => lower_median(&dist),
        };
        // A vector at distance 0 (or within τ) contributes its full offset.
        let coeffs: Vec<f64> = dist
            .iter()
            .map(|&d| if d > tau { tau / d } else { 1.0 } / n as f64)
            .collect();
        let keep = 1.0 - coeffs.iter().sum::<f64>();
        dist = affine_step(vectors, &mut v, keep, &coeffs)
            .into_iter()
            .map(f64::sqrt)
            .collect();
    }
    v
}

/// The lower median of a non-empty list.
fn lower_median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted[(sorted.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Start;

    fn refs(vs: &[Vec<f32>]) -> Vec<&[f32]> {
        vs.iter().map(Vec::as_slice).collect()
    }

    #[test]
    fn a_large_radius_gives_the_mean() {
        let vs = vec![vec![1.0f32, 0.0], vec![3.0, 4.0], vec![5.0, 2.0]];
        let p = ClipParams {
            tau: Radius::Fixed(1e9),
            iterations: 1,
            start: Start::Zero,
        };
        assert_eq!(centered_clip(&refs(&vs), &p, vec![0.0; 2]), vec![3.0, 2.0]);
    }

    #[test]
    fn each_input_moves_the_centre_by_at_most_tau_over_n() {
        // Four honest vectors at the centre and one huge one: one step moves v by ≤ τ/5.
        let mut vs = vec![vec![0.0f32; 3]; 4];
        vs.push(vec![1e6, -1e6, 1e6]);
        let p = ClipParams {
            tau: Radius::Fixed(1.0),
            iterations: 1,
            start: Start::Zero,
        };
        let v = centered_clip(&refs(&vs), &p, vec![0.0; 3]);
        let norm: f64 = v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 0.2).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn median_radius_ignores_a_far_minority() {
        let mut vs: Vec<Vec<f32>> = (0..5).map(|i| vec![1.0 + i as f32 * 0.01, 2.0]).collect();
        vs.push(vec![-1e4, 1e4]);
        vs.push(vec![1e4, 1e4]);
        let p = ClipParams {
            tau: Radius::MedianDistance,
            iterations: 5,
            start: Start::Zero,
        };
        let v = centered_clip(&refs(&vs), &p, vec![1.0, 2.0]);
        assert!(
            (v[0] - 1.02).abs() < 0.05 && (v[1] - 2.0).abs() < 0.05,
            "{v:?}"
        );
    }
}
