//! Distance kernels shared by the vector-wise rules: pairwise distances (Krum, Bulyan) and a
//! fused "move the centre, measure the distances" pass (geometric median, centred clipping).
//!
//! Every reduction runs over fixed-size chunks: a chunk sums in `f32` lanes (redone in `f64` if
//! that overflowed), chunks add up in `f64` inside a fixed-size group, and groups add up in
//! order at the end. No sum depends on how rayon splits the work, so the result is the same for
//! any number of threads.

use rayon::prelude::*;

/// Coordinates per chunk: n chunks of this size stay in L2 while every pair is measured.
const CHUNK: usize = 2048;
/// Chunks per rayon task.
const GROUP: usize = 64;

/// `‖a − b‖²` of two equal-length slices.
fn sq_dist(a: &[f32], b: &[f32]) -> f64 {
    // Eight independent lanes let the compiler vectorise without reassociating.
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            let d = x[k] - y[k];
            lanes[k] += d * d;
        }
    }
    let sum = lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + f64::from(tail);
    if sum.is_finite() {
        sum
    } else {
        // Finite inputs far apart (a peer's 1e30) overflow `f32`; `f64` holds any such square.
        // `d * d`, not `powi`, whose precision Rust leaves to the platform.
        let square =
            |(&x, &y): (&f32, &f32)| (f64::from(x) - f64::from(y)) * (f64::from(x) - f64::from(y));
        a.iter().zip(b).map(square).sum()
    }
}

/// Runs `chunk(range, partial)` over every chunk of `0..len`, where `partial` holds `width` sums,
/// and returns the sums over all chunks, added in a fixed order.
fn chunked_sums<F>(len: usize, width: usize, chunk: F) -> Vec<f64>
where
    F: Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
{
    let groups = len.div_ceil(CHUNK * GROUP);
    let partials: Vec<Vec<f64>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut sums = vec![0.0; width];
            let end = ((g + 1) * CHUNK * GROUP).min(len);
            for start in (g * CHUNK * GROUP..end).step_by(CHUNK) {
                chunk(start..(start + CHUNK).min(end), &mut sums);
            }
            sums
        })
        .collect();
    let mut total = vec![0.0; width];
    for p in partials {
        total.iter_mut().zip(p).for_each(|(t, x)| *t += x);
    }
    total
}

/// Squared Euclidean distances between every pair of vectors, as an n × n row-major matrix.
pub(crate) fn pairwise_sq(vectors: &[&[f32]]) -> Vec<f64> {
    let n = vectors.len();
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .collect();
    let sums = chunked_sums(vectors[0].len(), pairs.len(), |range, sums| {
        for (s, &(i, j)) in sums.iter_mut().zip(&pairs) {
            *s += sq_dist(&vectors[i][range.clone()], &vectors[j][range.clone()]);
        }
    });
    let mut matrix = vec![0.0; n * n];
    for (&(i, j), d) in pairs.iter().zip(sums) {
        matrix[i * n + j] = d;
        matrix[j * n + i] = d;
    }
    matrix
}

/// Moves the centre to `keep·centre + Σ coeffs[i]·vectors[i]` (in `f64`, stored as `f32`) and
/// returns the squared distance from the new centre to each vector, in one pass over the input.
pub(crate) fn affine_step(
    vectors: &[&[f32]],
    centre: &mut [f32],
    keep: f64,
    coeffs: &[f64],
) -> Vec<f64> {
    assert_eq!(coeffs.len(), vectors.len(), "one coefficient per vector");
    let n = vectors.len();
    let span = CHUNK * GROUP;
    let partials: Vec<Vec<f64>> = centre
        .par_chunks_mut(span)
        .enumerate()
        .map(|(g, group)| {
            let mut sums = vec![0.0; n];
            let mut acc = vec![0.0f64; CHUNK];
            for (c, z) in group.chunks_mut(CHUNK).enumerate() {
                let start = g * span + c * CHUNK;
                let range = start..start + z.len();
                let acc = &mut acc[..z.len()];
                acc.iter_mut()
                    .zip(z.iter())
                    .for_each(|(a, &x)| *a = keep * f64::from(x));
                for (v, &w) in vectors.iter().zip(coeffs) {
                    acc.iter_mut()
                        .zip(&v[range.clone()])
                        .for_each(|(a, &x)| *a += w * f64::from(x));
                }
                z.iter_mut()
                    .zip(acc.iter())
                    .for_each(|(x, &a)| *x = a as f32);
                for (s, v) in sums.iter_mut().zip(vectors) {
                    *s += sq_dist(z, &v[range.clone()]);
                }
            }
            sums
        })
        .collect();
    let mut total = vec![0.0; n];
    for p in partials {
        total.iter_mut().zip(p).for_each(|(t, x)| *t += x);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_matches_a_direct_sum_across_chunk_edges() {
        let len = CHUNK * GROUP + CHUNK + 13;
        let vs: Vec<Vec<f32>> = (0..3)
            .map(|r| {
                (0..len)
                    .map(|c| ((c * 7 + r * 5) % 11) as f32 * 0.25)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
        let m = pairwise_sq(&refs);
        for i in 0..3 {
            assert_eq!(m[i * 3 + i], 0.0);
            for j in 0..3 {
                let direct: f64 = vs[i]
                    .iter()
                    .zip(&vs[j])
                    .map(|(&a, &b)| f64::from(a - b).powi(2))
                    .sum();
                assert_eq!(m[i * 3 + j], direct, "pair {i},{j}");
            }
        }
    }

    #[test]
    fn huge_finite_values_do_not_overflow() {
        let a = [f32::MAX, 0.0];
        let b = [-f32::MAX, 0.0];
        let d = sq_dist(&a, &b);
        assert!(d.is_finite() && d > 1e77);
    }

    #[test]
    fn affine_step_moves_and_measures() {
        let (a, b) = (vec![0.0f32, 0.0], vec![4.0f32, 2.0]);
        let refs: Vec<&[f32]> = vec![&a, &b];
        let mut centre = vec![10.0f32, 10.0];
        let d = affine_step(&refs, &mut centre, 0.0, &[0.5, 0.5]);
        assert_eq!(centre, vec![2.0, 1.0]);
        assert_eq!(d, vec![5.0, 5.0]);
        let d = affine_step(&refs, &mut centre, 1.0, &[0.0, 0.0]);
        assert_eq!((centre, d), (vec![2.0, 1.0], vec![5.0, 5.0]));
    }
}
