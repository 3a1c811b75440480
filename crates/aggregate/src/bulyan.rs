//! Bulyan: iterated Krum selection, then a coordinate-wise trimmed mean of the selection.
//!
//! El Mhamdi, Guerraoui, Rouault, *The Hidden Vulnerability of Distributed Learning in
//! Byzantium*, ICML 2018, <https://arxiv.org/abs/1802.07927>.
//!
//! 1. Measure every pair once.
//! 2. Select `θ = n − 2f` vectors: repeatedly run Krum (with the same f) on the vectors not yet
//!    selected and move the winner into the selection. As the pool shrinks below Krum's own
//!    bound, each score keeps at least one neighbour.
//! 3. Per coordinate, drop the f largest and f smallest of the θ selected values and average
//!    the `θ − 2f = n − 4f` left (the trimmed-mean form of the paper's "β closest to the
//!    median" step).
//!
//! Tolerance: f Byzantine vectors among n with `n ≥ 4f + 3`. Krum alone lets an attacker move
//! the result far along coordinates that a distance hides; the trimmed mean of step 3 bounds
//! every coordinate by honest values.

use crate::coordinate;
use crate::krum::Distances;

/// Indices of the θ = n − 2f vectors iterated Krum selects, in selection order.
pub(crate) fn select(vectors: &[&[f32]], f: usize) -> Vec<usize> {
    let n = vectors.len();
    assert!(
        n >= 4 * f + 3,
        "bulyan needs n ≥ 4f + 3; checked by the caller"
    );
    let distances = Distances::new(vectors);
    let mut pool: Vec<usize> = (0..n).collect();
    let mut chosen = Vec::with_capacity(n - 2 * f);
    while chosen.len() < n - 2 * f {
        let best = distances.best(&pool, f, 1)[0];
        pool.retain(|&i| i != best);
        chosen.push(best);
    }
    chosen
}

/// Bulyan's aggregate of `vectors` for f attackers.
pub(crate) fn bulyan(vectors: &[&[f32]], f: usize) -> Vec<f32> {
    let mut chosen = select(vectors, f);
    chosen.sort_unstable();
    let kept: Vec<&[f32]> = chosen.iter().map(|&i| vectors[i]).collect();
    coordinate::trimmed_mean(&kept, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_outliers_then_trims() {
        // n = 7, f = 1: θ = 5 selected, then 1 trimmed from each end, 3 averaged.
        let vs: Vec<Vec<f32>> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 1000.0, -900.0]
            .iter()
            .map(|&x| vec![x, -x])
            .collect();
        let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
        let mut chosen = select(&refs, 1);
        chosen.sort_unstable();
        assert_eq!(chosen, vec![0, 1, 2, 3, 4]);
        assert_eq!(bulyan(&refs, 1), vec![3.0, -3.0]);
    }
}
