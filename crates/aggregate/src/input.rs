//! Checks a set of input vectors once (count, lengths, finiteness) before any rule runs.

use rayon::prelude::*;

use crate::{Error, Result};

/// Coordinates per finiteness-check chunk: large enough to amortise rayon, small enough to
/// split 10M-value vectors evenly over cores.
const CHECK_CHUNK: usize = 1 << 16;

/// Borrows every vector as a slice and checks that there is at least one, that all have the
/// length of vector 0, and that every value is finite.
///
/// A NaN or an infinity is rejected with the index of the first offending vector, so that the
/// caller can drop (or punish) that peer: no rule can give a meaningful answer over a NaN.
pub(crate) fn check<V: AsRef<[f32]> + Sync>(vectors: &[V]) -> Result<Vec<&[f32]>> {
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
        assert_eq!(check(&ok).unwrap().len(), 1);
    }
}
