//! Checks a set of input vectors once (count, lengths, finiteness) and puts them in a canonical
//! order before any rule runs.

use std::cmp::Ordering;

use rayon::prelude::*;

use crate::{Error, Result};

/// Coordinates per finiteness-check chunk: large enough to amortise rayon, small enough to
/// split 10M-value vectors evenly over cores.
const CHECK_CHUNK: usize = 1 << 16;

/// Checked input vectors, sorted into a canonical order.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    /// The vectors, sorted lexicographically by value (`f32::total_cmp`).
    pub(crate) vectors: Vec<&'a [f32]>,
    /// `original[k]` is the caller's index of `vectors[k]`.
    pub(crate) original: Vec<usize>,
}

/// Checks `vectors` (see [`check_only`]) and sorts them into a canonical order.
///
/// Every rule then sees the same sequence whatever order the caller (or the network) delivered
/// the vectors in, so every output is bit-for-bit independent of the input order: replicas that
/// received the same updates in different orders still apply the same aggregate. Sorting costs
/// a few comparisons per vector, each usually decided at the first coordinate.
pub(crate) fn check<V: AsRef<[f32]> + Sync>(vectors: &[V]) -> Result<Checked<'_>> {
    let slices = check_only(vectors)?;
    let mut order: Vec<usize> = (0..slices.len()).collect();
    order.sort_by(|&a, &b| lexicographic(slices[a], slices[b]));
    Ok(Checked {
        vectors: order.iter().map(|&i| slices[i]).collect(),
        original: order,
    })
}

/// Orders two equal-length vectors by their first differing value (`f32::total_cmp`).
fn lexicographic(a: &[f32], b: &[f32]) -> Ordering {
    // Colluding peers may send identical vectors, which only a full scan tells apart: find the
    // first differing chunk with a parallel, vectorised bit comparison, then compare within it.
    let differs = |(x, y): (&[f32], &[f32])| {
        x.iter()
            .zip(y)
            .fold(0u32, |acc, (p, q)| acc | (p.to_bits() ^ q.to_bits()))
            != 0
    };
    let chunks = a.par_chunks(CHECK_CHUNK).zip(b.par_chunks(CHECK_CHUNK));
    let Some(chunk) = chunks.position_first(differs) else {
        return Ordering::Equal;
    };
    let start = chunk * CHECK_CHUNK;
    let pairs = a[start..].iter().zip(&b[start..]);
    pairs
        .map(|(x, y)| x.total_cmp(y))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Borrows every vector as a slice and checks that there is at least one, that all have the
/// length of vector 0, and that every value is finite.
///
/// A NaN or an infinity is rejected with the index of the first offending vector, so that the
/// caller can drop (or punish) that peer: no rule can give a meaningful answer over a NaN.
fn check_only<V: AsRef<[f32]> + Sync>(vectors: &[V]) -> Result<Vec<&[f32]>> {
    let slices: Vec<&[f32]> = vectors.iter().map(AsRef::as_ref).collect();
    let expected = slices.first().ok_or(Error::NoVectors)?.len();
    if let Some((index, v)) = slices.iter().enumerate().find(|(_, v)| v.len() != expected) {
        return Err(Error::LengthMismatch {
            index,
            len: v.len(),
            expected,
        });
    }
    for (index, v) in slices.iter().enumerate() {
        if let Some(coordinate) = first_non_finite(v) {
            return Err(Error::NonFinite { index, coordinate });
        }
    }
    Ok(slices)
}

/// Index of the first NaN or infinity in `v`, if any.
fn first_non_finite(v: &[f32]) -> Option<usize> {
    let bad_chunk = v.par_chunks(CHECK_CHUNK).position_first(|chunk| {
        // A branch-free OR over the exponent bits vectorises; `all(is_finite)` would not.
        chunk
            .iter()
            .fold(0u32, |acc, x| acc | u32::from(x.to_bits() & EXP == EXP))
            != 0
    })?;
    let start = bad_chunk * CHECK_CHUNK;
    v[start..]
        .iter()
        .position(|x| !x.is_finite())
        .map(|i| start + i)
}

/// Exponent bits of an `f32`: all set exactly for the infinities and NaNs.
const EXP: u32 = 0x7f80_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_empty_mismatch_and_non_finite() {
        let none: [Vec<f32>; 0] = [];
        assert_eq!(check(&none).unwrap_err(), Error::NoVectors);
        let uneven = [vec![1.0, 2.0], vec![1.0]];
        assert_eq!(
            check(&uneven).unwrap_err(),
            Error::LengthMismatch {
                index: 1,
                len: 1,
                expected: 2
            }
        );
        let mut long = vec![0.5f32; 3 * CHECK_CHUNK];
        long[2 * CHECK_CHUNK + 7] = f32::NAN;
        let bad = [vec![0.0f32; 3 * CHECK_CHUNK], long];
        assert_eq!(
            check(&bad).unwrap_err(),
            Error::NonFinite {
                index: 1,
                coordinate: 2 * CHECK_CHUNK + 7
            }
        );
        let inf = [vec![1.0f32, f32::NEG_INFINITY]];
        assert_eq!(
            check(&inf).unwrap_err(),
            Error::NonFinite {
                index: 0,
                coordinate: 1
            }
        );
    }

    #[test]
    fn accepts_extreme_finite_values() {
        let ok = [vec![f32::MAX, f32::MIN, f32::MIN_POSITIVE, -0.0, 1e-45]];
        assert_eq!(check(&ok).unwrap().vectors.len(), 1);
    }

    #[test]
    fn sorts_into_a_canonical_order() {
        let vs = [
            vec![1.0f32, 5.0],
            vec![-0.0, 9.0],
            vec![1.0, 2.0],
            vec![0.0, 0.0],
        ];
        let checked = check(&vs).unwrap();
        assert_eq!(checked.original, vec![1, 3, 2, 0]);
        assert_eq!(checked.vectors[2], &[1.0, 2.0]);
    }
}
