//! Krum and Multi-Krum: keep the vectors that sit closest to their neighbours.
//!
//! Blanchard, El Mhamdi, Guerraoui, Stainer, *Machine Learning with Adversaries: Byzantine
//! Tolerant Gradient Descent*, NeurIPS 2017, <https://arxiv.org/abs/1703.02757>.
//!
//! 1. Compute the squared distance `‖xᵢ − xⱼ‖²` of every pair (n² / 2 distances, one pass over
//!    the input, parallel over coordinate chunks).
//! 2. Score each vector by the sum of its squared distances to its `n − f − 2` nearest others.
//! 3. Krum returns the vector with the lowest score; Multi-Krum returns the mean of the m
//!    vectors with the lowest scores (scored once, as in the paper). Ties go to the lower index, which after the
//!    crate's canonical input order is the lexicographically smaller vector.
//!
//! Tolerance: f Byzantine vectors among n with `n > 2f + 2` (`n ≥ 2f + 3`); Multi-Krum needs
//! `1 ≤ m ≤ n − f`. With `m = n − f` (the default) Multi-Krum averages as many vectors as can
//! be honest, which keeps most of the mean's variance reduction.

use crate::coordinate;
use crate::dist::pairwise_sq;

/// Pairwise squared distances of n vectors, row-major.
#[derive(Debug)]
pub(crate) struct Distances {
    n: usize,
    sq: Vec<f64>,
}

impl Distances {
    /// Measures every pair of `vectors`.
    pub(crate) fn new(vectors: &[&[f32]]) -> Self {
        Self {
            n: vectors.len(),
            sq: pairwise_sq(vectors),
        }
    }

    /// Krum scores of `members` (indices into the vectors) against each other: the sum of each
    /// one's `k − f − 2` smallest squared distances to the other members, where `k` is the
    /// member count, and at least one neighbour while there is one (Bulyan's last rounds).
    pub(crate) fn scores(&self, members: &[usize], f: usize) -> Vec<f64> {
        let k = members.len();
        let neighbours = k.saturating_sub(f + 2).max(1).min(k - 1);
        members
            .iter()
            .map(|&i| {
                let row = &self.sq[i * self.n..(i + 1) * self.n];
                let mut d: Vec<f64> = members
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| row[j])
                    .collect();
                d.sort_unstable_by(f64::total_cmp);
                d[..neighbours].iter().sum()
            })
            .collect()
    }

    /// The `m` members with the lowest scores, best first (ties to the lower index).
    pub(crate) fn best(&self, members: &[usize], f: usize, m: usize) -> Vec<usize> {
        let scores = self.scores(members, f);
        let mut order: Vec<(f64, usize)> =
            scores.into_iter().zip(members.iter().copied()).collect();
        order.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        order.into_iter().take(m).map(|(_, i)| i).collect()
    }
}

/// Indices of the `m` vectors Multi-Krum keeps, best first (`m = 1` is Krum's choice).
pub(crate) fn select(vectors: &[&[f32]], f: usize, m: usize) -> Vec<usize> {
    let all: Vec<usize> = (0..vectors.len()).collect();
    Distances::new(vectors).best(&all, f, m)
}

/// Krum: the input vector with the lowest score.
pub(crate) fn krum(vectors: &[&[f32]], f: usize) -> Vec<f32> {
    vectors[select(vectors, f, 1)[0]].to_vec()
}

/// Multi-Krum: the mean of the `m` vectors with the lowest scores, in index order.
pub(crate) fn multi_krum(vectors: &[&[f32]], f: usize, m: usize) -> Vec<f32> {
    let mut chosen = select(vectors, f, m);
    chosen.sort_unstable();
    let kept: Vec<&[f32]> = chosen.iter().map(|&i| vectors[i]).collect();
    coordinate::mean(&kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(vs: &[Vec<f32>]) -> Vec<&[f32]> {
        vs.iter().map(Vec::as_slice).collect()
    }

    /// A plus sign of five points centred on (1, 1), and two points far away.
    fn cluster() -> Vec<Vec<f32>> {
        vec![
            vec![1.0, 1.0],
            vec![100.0, -100.0],
            vec![1.1, 1.0],
            vec![0.9, 1.0],
            vec![-50.0, 70.0],
            vec![1.0, 1.1],
            vec![1.0, 0.9],
        ]
    }

    #[test]
    fn krum_picks_the_cluster_centre() {
        let vs = cluster();
        // (1, 1) has its 3 nearest neighbours at 0.01 each; the arms score 0.05.
        assert_eq!(krum(&refs(&vs), 2), vec![1.0, 1.0]);
        let chosen = select(&refs(&vs), 2, 5);
        let mut sorted = chosen.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 2, 3, 5, 6], "the outliers are never chosen");
    }

    #[test]
    fn multi_krum_averages_the_cluster() {
        let vs = cluster();
        let got = multi_krum(&refs(&vs), 2, 5);
        for g in &got {
            assert!((g - 1.0).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn scores_count_n_minus_f_minus_2_neighbours() {
        let vs: Vec<Vec<f32>> = [0.0f32, 1.0, 3.0, 7.0, 20.0]
            .iter()
            .map(|&x| vec![x])
            .collect();
        let d = Distances::new(&refs(&vs));
        // n = 5, f = 1: two neighbours each. Point 0: 1 + 9; point 1: 1 + 4; point 2: 4 + 9.
        assert_eq!(d.scores(&[0, 1, 2, 3, 4], 1)[..3], [10.0, 5.0, 13.0]);
    }
}
