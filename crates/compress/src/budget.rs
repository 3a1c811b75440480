//! `hbits`: a width per rotated chunk, more bits where the energy is, under one bit budget.
//!
//! After [`crate::rotate`] a chunk is close to Gaussian with its own variance, and a vector's
//! chunks differ a lot (embedding rows, attention, MLP, norms). Spending the same two bits on
//! each, as `hint2` does, wastes bits on the quiet chunks. Reverse water-filling spends them
//! where they remove the most squared error: for Gaussian chunks the total error falls by the
//! ratio of the arithmetic to the geometric mean of the chunks' variances.
//!
//! # Steps, for a vector of `n` values in `N = ceil(n / C)` chunks, with a budget of `R` bits per
//! value (the header carries `1000 · R`, rounded)
//!
//! 1. The code budget is `T = floor(n · 1000R / 8000)` bytes.
//! 2. Each chunk's energy `E_i = Σ x²` (in `f64`, in order) is that of its rotated values too:
//!    the rotation is orthogonal.
//! 3. Widths: every chunk with energy starts at the floor `F`, the largest of 2, 1, 0 bits whose
//!    code bytes for all those chunks fit in `T` (chunks without energy start at 0). Squared
//!    error summed over the vector is not what the loss pays: the output head holds most of a
//!    Δ's energy, and spending every bit by energy starved the layers and the embedding
//!    (`docs/experiments/2026-11-30-hbits.md`), so no chunk falls below `hint2`'s two bits and
//!    only the budget above the floor goes by energy.
//!    Then repeatedly raise by one bit the chunk whose next
//!    bit removes the most error per bit, `E_i · (d(b_i) − d(b_i + 1)) / m_i` with `d` the
//!    relative error of the best uniform quantiser of a Gaussian at `b` bits (`DISTORTION`;
//!    `d(0) = 1`), the lower chunk number first on ties, as long as the chunks' code bytes
//!    `Σ ceil(m_i · b_i / 8)` stay within `T` and `b_i ≤ 8`. A chunk whose next bit does not fit,
//!    or whose energy is 0, gets no more. `d` is convex, so this greedy order is optimal for it.
//! 4. Write the widths, one byte per chunk, then each chunk in order: nothing for `b_i = 0`,
//!    else its rotated values in [`crate::quant`]'s `b_i`-bit uniform format (scale, then codes).
//!    Zero bytes pad the payload to its fixed length, `5N + T`, so the packet's length follows
//!    from its header like every other codec's.
//! 5. A chunk sent at 0 bits stays whole in the residual; error feedback sends it once it has
//!    gathered enough energy to win bits.
//!
//! The decoder rejects a width above 8, widths whose code bytes exceed `T`, and non-zero
//! padding; every sum is checked before a slice is cut.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::config::ValueFormat;
use crate::rotate::{self, Work};
use crate::{CompressConfig, Header};

/// `d(b)`: the squared error of the best uniform quantiser of a unit Gaussian with `2^b`
/// levels (Max 1960), for `b` in `0..=8`.
const DISTORTION: [f64; 9] = [
    1.0, 0.3634, 0.1188, 0.03744, 0.01154, 0.00349, 0.001035, 0.0002997, 0.00008476,
];

/// The width every chunk with energy gets before the rest of the budget goes by energy (step 3).
const FLOOR_BITS: u8 = 2;

/// Bytes of each chunk's width in the table that opens the payload.
const WIDTH_BYTES: usize = 1;

/// Bytes of a chunk's scale, which a non-zero width adds.
const SCALE_BYTES: usize = 4;

/// Step 1: the code budget in bytes of `len` values at `millibits` thousandths of a bit each.
pub(crate) fn code_budget(len: usize, millibits: usize) -> u128 {
    len as u128 * millibits as u128 / 8000
}

/// The payload's fixed length: widths, a scale per chunk, and the code budget.
pub(crate) fn payload_len(header: &Header) -> u128 {
    let chunks = header.len.div_ceil(header.chunk_size) as u128;
    chunks * (WIDTH_BYTES + SCALE_BYTES) as u128 + code_budget(header.len, header.millibits)
}

/// Code bytes of `m` values at `bits` bits each.
fn code_bytes(m: usize, bits: u8) -> usize {
    (m * usize::from(bits)).div_ceil(8)
}

/// One chunk's claim on its next bit: larger gains first, then lower chunk numbers.
#[derive(PartialEq)]
struct Claim {
    gain: f64,
    chunk: usize,
}

impl Eq for Claim {}

impl Ord for Claim {
    fn cmp(&self, other: &Self) -> Ordering {
        self.gain
            .total_cmp(&other.gain)
            .then(other.chunk.cmp(&self.chunk))
    }
}

impl PartialOrd for Claim {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The claim of chunk `chunk` (energy `energy`, `m` values) on the bit after `bits`, if any.
fn claim(chunk: usize, energy: f64, m: usize, bits: u8) -> Option<Claim> {
    let next = usize::from(bits) + 1;
    let gain = energy * (DISTORTION[usize::from(bits)] - DISTORTION.get(next)?) / m as f64;
    (gain > 0.0).then_some(Claim { gain, chunk })
}

/// Step 3: each chunk's width, for chunks of `lens` values with energies `energies`, within
/// `budget` code bytes.
fn allocate(energies: &[f64], lens: &[usize], budget: usize) -> Vec<u8> {
    let floor = floor(energies, lens, budget);
    let mut widths: Vec<u8> = energies
        .iter()
        .map(|&e| if e > 0.0 { floor } else { 0 })
        .collect();
    let used: usize = widths
        .iter()
        .zip(lens)
        .map(|(&b, &m)| code_bytes(m, b))
        .sum();
    let mut heap: BinaryHeap<Claim> = (0..energies.len())
        .filter_map(|i| claim(i, energies[i], lens[i], widths[i]))
        .collect();
    let mut left = budget - used;
    while let Some(Claim { chunk, .. }) = heap.pop() {
        let (m, b) = (lens[chunk], widths[chunk]);
        let cost = code_bytes(m, b + 1) - code_bytes(m, b);
        if cost > left {
            continue;
        }
        left -= cost;
        widths[chunk] = b + 1;
        heap.extend(claim(chunk, energies[chunk], m, b + 1));
    }
    widths
}

/// Step 3's floor: the largest width up to [`FLOOR_BITS`] at which every chunk with energy fits
/// in `budget` code bytes.
fn floor(energies: &[f64], lens: &[usize], budget: usize) -> u8 {
    let cost = |b: u8| -> usize {
        energies
            .iter()
            .zip(lens)
            .filter(|(e, _)| **e > 0.0)
            .map(|(_, &m)| code_bytes(m, b))
            .sum()
    };
    (0..=FLOOR_BITS)
        .rev()
        .find(|&b| cost(b) <= budget)
        .unwrap_or(0)
}

/// Steps 2–4: writes `acc` (the values after error feedback) into `payload` and leaves what
/// was lost in `acc`.
pub(crate) fn encode(header: &Header, acc: &mut [f32], payload: &mut [u8]) {
    let chunk = header.chunk_size;
    let energies: Vec<f64> = acc
        .par_chunks(chunk)
        .map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum())
        .collect();
    let lens: Vec<usize> = acc.chunks(chunk).map(<[f32]>::len).collect();
    let budget = usize::try_from(code_budget(header.len, header.millibits))
        .expect("the code budget of an in-memory vector fits usize");
    let widths = allocate(&energies, &lens, budget);
    let (table, mut rest) = payload.split_at_mut(widths.len() * WIDTH_BYTES);
    table.copy_from_slice(&widths);
    let mut outs = Vec::with_capacity(widths.len());
    for (&b, &m) in widths.iter().zip(&lens) {
        let (out, tail) = rest.split_at_mut(ValueFormat::Uniform(b).bytes(m));
        outs.push(out);
        rest = tail;
    }
    acc.par_chunks_mut(chunk)
        .zip(outs)
        .zip(&widths)
        .enumerate()
        .filter(|(_, (_, b))| **b > 0)
        .for_each_init(Work::default, |work, (index, ((values, out), &b))| {
            rotate::encode_chunk(ValueFormat::Uniform(b), index, values, out, work);
        });
}

/// Checks the width table of `payload` and cuts it into each chunk's bytes, or names the
/// first bad chunk.
fn split<'a>(header: &Header, payload: &'a [u8]) -> Result<Vec<&'a [u8]>, (usize, &'static str)> {
    let chunks = header.len.div_ceil(header.chunk_size);
    let (table, mut rest) = payload
        .split_at_checked(chunks * WIDTH_BYTES)
        .ok_or((0, "hbits width table is cut short"))?;
    let budget = code_budget(header.len, header.millibits);
    let mut codes = 0u128;
    let mut parts = Vec::with_capacity(chunks);
    for (index, &b) in table.iter().enumerate() {
        if b > CompressConfig::MAX_BITS {
            return Err((index, "hbits width is above 8 bits"));
        }
        let m = (header.len - index * header.chunk_size).min(header.chunk_size);
        codes += code_bytes(m, b) as u128;
        if codes > budget {
            return Err((index, "hbits widths exceed the packet's bit budget"));
        }
        // Within budget, the scales and codes so far fit in the payload's fixed length.
        let (part, tail) = rest
            .split_at_checked(ValueFormat::Uniform(b).bytes(m))
            .ok_or((index, "hbits chunk runs past the payload"))?;
        parts.push(part);
        rest = tail;
    }
    if rest.iter().any(|&byte| byte != 0) {
        return Err((chunks, "hbits padding is not zero"));
    }
    Ok(parts)
}

/// Decodes `payload` into `out` (zeroed, `header.len` values), or names the first bad chunk.
pub(crate) fn decode(
    header: &Header,
    payload: &[u8],
    out: &mut [f32],
) -> Result<(), (usize, &'static str)> {
    let parts = split(header, payload)?;
    let chunks = header.len.div_ceil(header.chunk_size);
    out.par_chunks_mut(header.chunk_size)
        .zip(parts)
        .zip(&payload[..chunks * WIDTH_BYTES])
        .enumerate()
        .filter(|(_, (_, b))| **b > 0)
        .find_map_first(|(index, ((values, bytes), &b))| {
            rotate::decode_chunk(ValueFormat::Uniform(b), index, bytes, values)
                .err()
                .map(|reason| (index, reason))
        })
        .map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distortion_is_convex() {
        for b in 1..8 {
            let (before, after) = (
                DISTORTION[b - 1] - DISTORTION[b],
                DISTORTION[b] - DISTORTION[b + 1],
            );
            assert!(after < before, "d falls by less at each bit ({b})");
        }
    }

    #[test]
    fn bits_go_where_the_energy_is() {
        // Four chunks of 8 values and 8 code bytes: 2 bits per value on average, spread by
        // energy (worked out by hand from the gains E · (d(b) − d(b + 1))).
        let lens = [8; 4];
        // Every chunk with energy gets the 2-bit floor first (6 bytes), the 2 bytes left go to
        // the loudest chunk; without the floor the quietest would get nothing.
        let widths = allocate(&[1.0, 16.0, 256.0, 0.0], &lens, 8);
        assert_eq!(widths, [2, 2, 4, 0], "the floor, then bits by energy");
        let used: usize = widths.iter().map(|&b| code_bytes(8, b)).sum();
        assert_eq!(used, 8);
        // A budget below the 2-bit floor lowers the floor rather than skipping chunks.
        assert_eq!(allocate(&[1.0, 16.0, 256.0, 0.0], &lens, 4), [1, 1, 2, 0]);
        // Equal energies: ties go to the lower chunk number, one bit at a time.
        assert_eq!(allocate(&[1.0; 4], &lens, 5), [2, 1, 1, 1]);
        // Nothing to spend, or nothing to send.
        assert_eq!(allocate(&[1.0; 4], &lens, 0), [0; 4]);
        assert_eq!(allocate(&[0.0; 4], &lens, 100), [0; 4]);
        // At most 8 bits, whatever is left.
        assert_eq!(allocate(&[1.0], &[8], 100), [8]);
    }
}
