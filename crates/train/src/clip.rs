//! Gradient clipping by global L2 norm, with a reduction order fixed by the data, not the threads.

use rayon::prelude::*;

use crate::CHUNK;

/// The L2 norm of `values`, the same to the bit on any number of threads.
///
/// Each fixed-size chunk sums its squares in order (in `f64`), and the per-chunk sums are added
/// in chunk order, so the reduction tree depends only on the length.
pub fn l2_norm(values: &[f32]) -> f32 {
    let partials: Vec<f64> = values
        .par_chunks(CHUNK)
        .map(|chunk| chunk.iter().map(|&x| f64::from(x) * f64::from(x)).sum())
        .collect();
    partials.iter().sum::<f64>().sqrt() as f32
}

/// Scales `grads` down so their global L2 norm is at most `max_norm`; returns the norm before.
///
/// A non-finite norm (an overflowed or NaN gradient) is returned as is and the gradients are
/// left untouched, so the caller can see it and decide; PyTorch's `clip_grad_norm_` does the same.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f32) -> f32 {
    assert!(max_norm > 0.0, "clip_grad_norm: max_norm must be positive");
    let norm = l2_norm(grads);
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        grads
            .par_chunks_mut(CHUNK)
            .for_each(|chunk| chunk.iter_mut().for_each(|g| *g *= scale));
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn three_four_five() {
        let mut grads = vec![3.0_f32, 4.0];
        assert_eq!(clip_grad_norm(&mut grads, 1.0), 5.0);
        assert!((grads[0] - 0.6).abs() < 1e-6 && (grads[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn small_gradients_are_untouched() {
        let mut grads = vec![0.3_f32, 0.4];
        assert!((clip_grad_norm(&mut grads, 1.0) - 0.5).abs() < 1e-7);
        assert_eq!(grads, vec![0.3, 0.4]);
    }

    #[test]
    fn non_finite_norm_leaves_gradients_alone() {
        let mut grads = vec![f32::NAN, 1.0];
        assert!(clip_grad_norm(&mut grads, 1.0).is_nan());
        assert_eq!(grads[1], 1.0);
    }

    #[test]
    fn norm_is_identical_on_any_thread_count() {
        let values: Vec<f32> = (0..5 * CHUNK + 3)
            .map(|i| ((i * 104_729) % 997) as f32 * 1e-3 - 0.5)
            .collect();
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| l2_norm(&values))
        };
        assert_eq!(on(1).to_bits(), on(4).to_bits());
    }

    proptest! {
        #[test]
        fn clipped_norm_is_at_most_max(
            grads in prop::collection::vec(-1e3_f32..1e3, 1..200),
            max_norm in 0.01_f32..10.0,
        ) {
            let mut g = grads.clone();
            let before = clip_grad_norm(&mut g, max_norm);
            prop_assert!(l2_norm(&g) <= max_norm * 1.0001);
            if before <= max_norm {
                prop_assert_eq!(g, grads);
            }
        }
    }
}
