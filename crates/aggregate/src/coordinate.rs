//! Coordinate-wise rules: mean, trimmed mean and median, over cache-sized blocks.
//!
//! # Trimmed mean
//!
//! For each coordinate, sort the n values, drop `t` from each end and average the `n − 2t` left
//! (Yin, Chen, Ramchandran, Bartlett, *Byzantine-Robust Distributed Learning: Towards Optimal
//! Statistical Rates*, ICML 2018, <https://arxiv.org/abs/1803.01498>). With `t ≥ f` every kept
//! value lies between two honest values, so the result stays within the honest range of each
//! coordinate; it needs `2t < n`.
//!
//! # Median
//!
//! The coordinate-wise median (same paper) is the trimmed mean with `t = ⌊(n − 1)/2⌋`: the
//! middle value for odd n, the mean of the two middle values for even n. It tolerates any
//! `f < n/2`.
//!
//! # How it runs
//!
//! 1. Split the coordinates into spans, one rayon task each (fixed size, so the output does not
//!    depend on the thread count: every output value is computed by the same code from the same
//!    inputs).
//! 2. Within a span, copy a block of `w` coordinates of every vector into an `n × w` buffer that
//!    stays in L1: row `r` is vector `r`'s slice.
//! 3. Apply a sorting network of compare-exchanges row against row (`min`/`max` over `w` lanes,
//!    which vectorises), pruned to the ranks `t..n − t`.
//! 4. Sum the kept rows in rank order in `f64` and divide. Summing in rank order makes the
//!    trimmed mean and median exactly independent of the input order.

use rayon::prelude::*;

use crate::network::Network;

/// Coordinates per rayon task.
const SPAN: usize = 1 << 14;
/// Floats in one block buffer (16 KiB): the block width is this over n.
const BLOCK_FLOATS: usize = 4096;

/// The mean of every coordinate, summed in input order in `f64`.
pub(crate) fn mean(vectors: &[&[f32]]) -> Vec<f32> {
    let mut out = vec![0.0f32; vectors[0].len()];
    out.par_chunks_mut(SPAN).enumerate().for_each(|(s, span)| {
        let mut acc = vec![0.0f64; BLOCK_FLOATS];
        for (b, block) in span.chunks_mut(BLOCK_FLOATS).enumerate() {
            let range = s * SPAN + b * BLOCK_FLOATS..s * SPAN + b * BLOCK_FLOATS + block.len();
            let rows = vectors.iter().map(|v| &v[range.clone()]);
            sum_rows(rows, &mut acc[..block.len()], block);
        }
    });
    out
}

/// The trimmed mean dropping `trim` values from each end of every coordinate (`2·trim < n`).
pub(crate) fn trimmed_mean(vectors: &[&[f32]], trim: usize) -> Vec<f32> {
    let n = vectors.len();
    assert!(
        2 * trim < n,
        "trim {trim} must leave values among {n}; checked by the caller"
    );
    if trim == 0 {
        return mean(vectors);
    }
    let net = Network::new(n, trim, n - trim);
    let width = (BLOCK_FLOATS / n).max(8);
    let mut out = vec![0.0f32; vectors[0].len()];
    out.par_chunks_mut(SPAN).enumerate().for_each(|(s, span)| {
        let mut buf = vec![0.0f32; n * width];
        let mut acc = vec![0.0f64; width];
        for (b, block) in span.chunks_mut(width).enumerate() {
            let start = s * SPAN + b * width;
            let w = block.len();
            for (row, v) in buf.chunks_exact_mut(w).zip(vectors) {
                row.copy_from_slice(&v[start..start + w]);
            }
            for &(lo, hi) in net.comparators() {
                compare_exchange(&mut buf, w, lo, hi);
            }
            let rows = net.rank_rows().iter().map(|&r| &buf[r * w..(r + 1) * w]);
            sum_rows(rows, &mut acc[..w], block);
        }
    });
    out
}

/// The coordinate-wise median.
pub(crate) fn median(vectors: &[&[f32]]) -> Vec<f32> {
    trimmed_mean(vectors, (vectors.len() - 1) / 2)
}

/// Writes the mean of `rows` (equal-length slices) into `out`, accumulating in `acc`.
fn sum_rows<'a>(rows: impl ExactSizeIterator<Item = &'a [f32]>, acc: &mut [f64], out: &mut [f32]) {
    let count = rows.len() as f64;
    acc.fill(0.0);
    for row in rows {
        for (a, &x) in acc.iter_mut().zip(row) {
            *a += f64::from(x);
        }
    }
    for (o, &a) in out.iter_mut().zip(acc.iter()) {
        *o = (a / count) as f32;
    }
}

/// Puts the lane-wise minimum of rows `lo` and `hi` of `buf` (rows of width `w`) in row `lo`
/// and the maximum in row `hi`.
#[inline(never)]
fn compare_exchange(buf: &mut [f32], w: usize, lo: usize, hi: usize) {
    let (low, high) = if lo < hi {
        let (head, tail) = buf.split_at_mut(hi * w);
        (&mut head[lo * w..(lo + 1) * w], &mut tail[..w])
    } else {
        let (head, tail) = buf.split_at_mut(lo * w);
        (&mut tail[..w], &mut head[hi * w..(hi + 1) * w])
    };
    min_max(low, high);
}

/// Lane-wise `(low, high) ← (min, max)`.
fn min_max(low: &mut [f32], high: &mut [f32]) {
    // Fixed-width chunks and selects written out (not `f32::min`, whose NaN handling the
    // inputs do not need) let the compiler turn this into `minps`/`maxps`.
    let mut lows = low.chunks_exact_mut(LANES);
    let mut highs = high.chunks_exact_mut(LANES);
    for (x, y) in (&mut lows).zip(&mut highs) {
        let a: [f32; LANES] = x.try_into().expect("chunk of LANES");
        let b: [f32; LANES] = y.try_into().expect("chunk of LANES");
        x.copy_from_slice(&std::array::from_fn::<f32, LANES, _>(|k| {
            if a[k] < b[k] { a[k] } else { b[k] }
        }));
        y.copy_from_slice(&std::array::from_fn::<f32, LANES, _>(|k| {
            if a[k] < b[k] { b[k] } else { a[k] }
        }));
    }
    for (x, y) in lows.into_remainder().iter_mut().zip(highs.into_remainder()) {
        let (a, b) = (*x, *y);
        *x = a.min(b);
        *y = a.max(b);
    }
}

/// Lanes one compare-exchange step works on at once.
const LANES: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[f32], f: impl Fn(&[&[f32]]) -> Vec<f32>) -> f32 {
        let vs: Vec<Vec<f32>> = values.iter().map(|&x| vec![x]).collect();
        let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
        f(&refs)[0]
    }

    #[test]
    fn known_answers() {
        assert_eq!(
            column(&[1.0, 2.0, 3.0, 4.0, 100.0], |v| trimmed_mean(v, 1)),
            3.0
        );
        assert_eq!(column(&[4.0, 1.0, 3.0, 2.0], median), 2.5);
        assert_eq!(column(&[9.0, -1.0, 5.0], median), 5.0);
        assert_eq!(column(&[7.0], median), 7.0);
        assert_eq!(column(&[1.0, 2.0, 6.0], mean), 3.0);
        assert_eq!(
            column(&[2.5, -5e9, 1.0, 4.0, 1e9, 1.5, 2.0], |v| trimmed_mean(
                v, 2
            )),
            2.0
        );
    }

    #[test]
    fn blocks_cover_every_coordinate() {
        // Lengths that are not multiples of the block or span, with n not a power of two.
        let n = 7;
        let len = SPAN + BLOCK_FLOATS / n * 3 + 5;
        let vs: Vec<Vec<f32>> = (0..n)
            .map(|r| (0..len).map(|c| ((c * 31 + r * 17) % 23) as f32).collect())
            .collect();
        let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
        let got = median(&refs);
        for c in 0..len {
            let mut col: Vec<f32> = vs.iter().map(|v| v[c]).collect();
            col.sort_by(f32::total_cmp);
            assert_eq!(got[c], col[3], "coordinate {c}");
        }
    }
}
