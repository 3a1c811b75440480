//! The geometric median by the smoothed Weiszfeld iteration.
//!
//! Pillutla, Kakade, Harchaoui, *Robust Aggregation for Federated Learning* (RFA), IEEE
//! Transactions on Signal Processing 2022, <https://arxiv.org/abs/1912.13445>.
//!
//! The geometric median minimises `g(z) = Σᵢ ‖z − xᵢ‖`. The smoothed Weiszfeld iteration:
//!
//! 1. Start at the mean `z₀ = (1/n) Σᵢ xᵢ` and measure `dᵢ = ‖z₀ − xᵢ‖`.
//! 2. Weigh each vector by `wᵢ = 1 / max(ν, dᵢ)`: the smoothing ν keeps a weight finite when
//!    z lands on an input.
//! 3. Move to `z = Σᵢ wᵢ xᵢ / Σᵢ wᵢ` and measure the new distances in the same pass.
//! 4. Stop after `max_iter` steps or when `g` improves by less than `tol · g`.
//!
//! Each step is one pass over the input. Tolerance: breakdown point 1/2, so any `f < n/2`
//! attackers move z by at most a bounded multiple of the honest spread, however far they are.

use crate::GeoMedParams;
use crate::dist::affine_step;

/// The smoothed-Weiszfeld geometric median of `vectors`.
pub(crate) fn geometric_median(vectors: &[&[f32]], p: &GeoMedParams) -> Vec<f32> {
    let n = vectors.len();
    let mut z = vec![0.0f32; vectors[0].len()];
    let mut dist: Vec<f64> = affine_step(vectors, &mut z, 0.0, &vec![1.0 / n as f64; n])
        .into_iter()
        .map(f64::sqrt)
        .collect();
    let mut objective: f64 = dist.iter().sum();
    for _ in 0..p.max_iter {
        let weights: Vec<f64> = dist.iter().map(|&d| 1.0 / d.max(p.nu)).collect();
        let total: f64 = weights.iter().sum();
        let coeffs: Vec<f64> = weights.iter().map(|w| w / total).collect();
        dist = affine_step(vectors, &mut z, 0.0, &coeffs)
            .into_iter()
            .map(f64::sqrt)
            .collect();
        let next: f64 = dist.iter().sum();
        let improved = objective - next;
        objective = next;
        if improved <= p.tol * objective {
            break;
        }
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(vs: &[Vec<f32>]) -> Vec<f32> {
        let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
        geometric_median(
            &refs,
            &GeoMedParams {
                nu: 1e-9,
                max_iter: 500,
                tol: 1e-12,
            },
        )
    }

    #[test]
    fn symmetric_points_have_their_centre() {
        let square = vec![
            vec![1.0, 1.0],
            vec![-1.0, 1.0],
            vec![-1.0, -1.0],
            vec![1.0, -1.0],
        ];
        let z = run(&square);
        assert!(z.iter().all(|x| x.abs() < 1e-6), "{z:?}");
    }

    #[test]
    fn an_outlier_barely_moves_it() {
        // A far outlier among five moves the median by less than the honest points' spread.
        let mut vs = vec![
            vec![0.0f32, 0.0],
            vec![2.0, 0.0],
            vec![1.0, 1.5],
            vec![1.0, 0.5],
        ];
        let honest = run(&vs);
        vs.push(vec![1e6, 1e6]);
        let attacked = run(&vs);
        let moved: f32 = honest
            .iter()
            .zip(&attacked)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!(moved < 1.0, "honest {honest:?}, attacked {attacked:?}");
    }

    #[test]
    fn collinear_points_give_the_middle_one() {
        let vs: Vec<Vec<f32>> = [0.0f32, 1.0, 5.0]
            .iter()
            .map(|&x| vec![x, 2.0 * x])
            .collect();
        let z = run(&vs);
        assert!(
            (z[0] - 1.0).abs() < 1e-4 && (z[1] - 2.0).abs() < 1e-4,
            "{z:?}"
        );
    }
}
