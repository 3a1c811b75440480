//! Sorting networks for any n, pruned to the ranks a coordinate-wise rule reads.
//!
//! A coordinate-wise rule (trimmed mean, median) sorts the n values of every coordinate. Doing
//! that with a data-independent network of compare-exchanges lets one comparator act on a whole
//! block of coordinates at once (`min`/`max` over two rows), which the compiler turns into SIMD,
//! instead of running a branchy sort per coordinate.
//!
//! 1. Build Batcher's odd-even merge sort for `p`, the next power of two ≥ n.
//! 2. Treat positions `n..p` as `+∞` and resolve every comparator that touches one at build time
//!    (against `+∞` a comparator is a no-op or a relabelling), so only real rows are compared.
//! 3. Walk the network backwards from the ranks the rule needs and drop every comparator whose
//!    outputs are never read: a mean (nothing to sort) keeps none, a median keeps fewer.

/// A compare-exchange network over n rows, pruned to the ranks `lo..hi`.
#[derive(Debug, Clone)]
pub(crate) struct Network {
    /// Pairs of physical rows `(a, b)`: after the step row `a` holds the min, row `b` the max.
    comparators: Vec<(usize, usize)>,
    /// `rank_rows[k]` is the physical row that holds the value of rank `lo + k`.
    rank_rows: Vec<usize>,
}

impl Network {
    /// Builds the network that leaves ranks `lo..hi` (0 = smallest) of n values in known rows.
    pub(crate) fn new(n: usize, lo: usize, hi: usize) -> Self {
        assert!(
            lo < hi && hi <= n,
            "rank range {lo}..{hi} must be non-empty and within {n}"
        );
        let p = n.next_power_of_two();
        // `row[pos]` is the physical row at network position `pos`; `None` stands for +∞.
        let mut row: Vec<Option<usize>> = (0..p).map(|pos| (pos < n).then_some(pos)).collect();
        let mut comparators = Vec::new();
        for (a, b) in batcher(p) {
            match (row[a], row[b]) {
                (Some(ra), Some(rb)) => comparators.push((ra, rb)),
                // +∞ at `a` moves up to `b`: a relabelling, no work.
                (None, Some(_)) => row.swap(a, b),
                // +∞ already at `b` (or both +∞): nothing moves.
                (_, None) => {}
            }
        }
        let rank_rows: Vec<usize> = row[lo..hi]
            .iter()
            .map(|r| r.expect("n finite values sort below the +∞ padding"))
            .collect();
        Self {
            comparators: prune(comparators, &rank_rows, n),
            rank_rows,
        }
    }

    /// The compare-exchanges to apply, in order.
    pub(crate) fn comparators(&self) -> &[(usize, usize)] {
        &self.comparators
    }

    /// Physical rows holding ranks `lo..hi`, in rank order.
    pub(crate) fn rank_rows(&self) -> &[usize] {
        &self.rank_rows
    }
}

/// Batcher's odd-even merge sort on `p` (a power of two) positions, min to the lower position.
fn batcher(p: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut span = 1;
    while span < p {
        let mut k = span;
        while k >= 1 {
            let mut j = k % span;
            while j + k < p {
                for i in 0..k.min(p - j - k) {
                    if (i + j) / (2 * span) == (i + j + k) / (2 * span) {
                        out.push((i + j, i + j + k));
                    }
                }
                j += 2 * k;
            }
            k /= 2;
        }
        span *= 2;
    }
    out
}

/// Drops the comparators whose results never reach `needed` rows.
fn prune(comparators: Vec<(usize, usize)>, needed: &[usize], n: usize) -> Vec<(usize, usize)> {
    let mut live = vec![false; n];
    for &r in needed {
        live[r] = true;
    }
    let mut kept: Vec<(usize, usize)> = comparators
        .into_iter()
        .rev()
        .filter(|&(a, b)| {
            let keep = live[a] || live[b];
            if keep {
                live[a] = true;
                live[b] = true;
            }
            keep
        })
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the network on one column of values and returns the ranks it promises.
    fn run(net: &Network, values: &[u8]) -> Vec<u8> {
        let mut v = values.to_vec();
        for &(a, b) in net.comparators() {
            let (x, y) = (v[a], v[b]);
            v[a] = x.min(y);
            v[b] = x.max(y);
        }
        net.rank_rows().iter().map(|&r| v[r]).collect()
    }

    /// The 0-1 principle: a network sorts every input iff it sorts every 0/1 input.
    #[test]
    fn sorts_every_binary_input_up_to_twelve() {
        for n in 1..=12usize {
            let full = Network::new(n, 0, n);
            let middle = Network::new(n, (n - 1) / 2, n / 2 + 1);
            for bits in 0u32..(1 << n) {
                let values: Vec<u8> = (0..n).map(|i| ((bits >> i) & 1) as u8).collect();
                let mut sorted = values.clone();
                sorted.sort_unstable();
                assert_eq!(run(&full, &values), sorted, "n = {n}, bits = {bits:b}");
                assert_eq!(
                    run(&middle, &values),
                    sorted[(n - 1) / 2..n / 2 + 1],
                    "n = {n}"
                );
            }
        }
    }

    #[test]
    fn pruning_removes_work() {
        assert!(Network::new(16, 0, 16).comparators().len() <= 63);
        assert!(
            Network::new(16, 0, 16).comparators().len()
                > Network::new(16, 7, 9).comparators().len()
        );
        // The lowest rank only: a minimum needs a tournament (n − 1 comparators) at most.
        assert!(Network::new(16, 0, 1).comparators().len() < 32);
    }
}
