//! The random rotation of `hint2`, `hbits` and `hent`: random signs, then a fast Walsh–Hadamard transform, per chunk.
//!
//! A 2-bit code fits a bell-shaped chunk well (int2's error is about 0.12 of the chunk's
//! energy) and a sparse or heavy-tailed one badly (up to 2.4 times its energy, for a chunk of
//! rarely used embedding rows). An orthogonal rotation by a random sign flip followed by a
//! Hadamard matrix spreads every value over the whole chunk, so the rotated values are close to
//! Gaussian whatever the chunk held (QuIP#, QuaRot). The rotation is orthogonal, so an error
//! in the rotated values is an error of the same size in the chunk, and it costs no bytes.
//!
//! # Steps, for chunk number `c` of `m` values
//!
//! 1. Split the chunk into blocks whose lengths are powers of two, largest first: the binary
//!    digits of `m` (one block when `m` is a power of two, as the default 4 096 is; a shorter
//!    last chunk of 1 000 values is blocks of 512, 256, 128, 64, 32 and 8).
//! 2. Draw one sign per value: value `i`'s is bit `i mod 8` of byte `i / 8 mod 32` of
//!    `BLAKE3(b"neuroshard/hint2/signs" ‖ c as u64 LE ‖ i / 256 as u64 LE)`, 1 for negative.
//!    Every node and auditor computes the same signs from the chunk's number; nothing is sent.
//! 3. Rotate: in `f64`, multiply each value by its sign, then apply to each block of `n` values
//!    the Walsh–Hadamard transform (the butterflies `(a, b) → (a + b, a − b)` over strides 1, 2,
//!    4, …, n/2) and multiply by `1/√n`. Round to `f32`, saturating at `±f32::MAX`.
//! 4. The encoder writes the rotated chunk with the value format ([`crate::quant`]), reads back
//!    what it wrote as the decoder does, and un-rotates that.
//! 5. Un-rotate: in `f64`, apply each block's transform times `1/√n` again (it is its own
//!    inverse), then multiply by the signs, and round to `f32`. The decoder rejects a chunk
//!    whose un-rotated values are not finite; the encoder keeps `value − un-rotated` as the
//!    residual, exactly what a peer's decoder reconstructs.
//!
//! Both directions are fixed sequences of `f64` operations, so encoder, decoder and auditors
//! agree bit for bit on every machine.

use neuroshard_primitives::Hash;

use crate::config::ValueFormat;

/// The domain of the sign hash (step 2).
const SIGN_DOMAIN: &[u8] = b"neuroshard/hint2/signs";

/// Values whose signs one hash gives: 32 bytes of 8 bits.
const SIGNS_PER_HASH: usize = 256;

/// Buffers reused across the chunks one worker encodes.
#[derive(Debug, Default)]
pub(crate) struct Work {
    signs: Vec<u8>,
    wide: Vec<f64>,
    rotated: Vec<f32>,
}

/// Encodes chunk number `index` of `acc` into `out` under `format`, rotated, and leaves what
/// was lost (in the chunk's own coordinates) in `acc`.
pub(crate) fn encode_chunk(
    format: ValueFormat,
    index: usize,
    acc: &mut [f32],
    out: &mut [u8],
    work: &mut Work,
) {
    let Work {
        signs,
        wide,
        rotated,
    } = work;
    draw_signs(index, acc.len(), signs);
    rotated.clear();
    rotated.extend_from_slice(acc);
    rotate(rotated, signs, wide);
    format.encode(rotated, out);
    format
        .decode(out, rotated)
        .expect("the value format decodes what it has just written");
    unrotate(rotated, signs, wide);
    for (a, sent) in acc.iter_mut().zip(rotated.iter()) {
        *a -= sent;
    }
}

/// Decodes chunk number `index` from `bytes` into `out` under `format`, or says what is wrong.
pub(crate) fn decode_chunk(
    format: ValueFormat,
    index: usize,
    bytes: &[u8],
    out: &mut [f32],
) -> Result<(), &'static str> {
    format.decode(bytes, out)?;
    unrotate_checked(index, out, &mut Work::default())
}

/// Steps 2–3 alone: rotates chunk number `index` in place, for a codec that writes its rotated
/// values itself.
pub(crate) fn rotate_chunk(index: usize, values: &mut [f32], work: &mut Work) {
    draw_signs(index, values.len(), &mut work.signs);
    rotate(values, &work.signs, &mut work.wide);
}

/// Step 5 alone: un-rotates chunk number `index` in place.
pub(crate) fn unrotate_chunk(index: usize, values: &mut [f32], work: &mut Work) {
    draw_signs(index, values.len(), &mut work.signs);
    unrotate(values, &work.signs, &mut work.wide);
}

/// Step 5 alone on values a peer sent: un-rotates chunk number `index` in place, or says that a
/// value overflowed.
pub(crate) fn unrotate_checked(
    index: usize,
    values: &mut [f32],
    work: &mut Work,
) -> Result<(), &'static str> {
    unrotate_chunk(index, values, work);
    if values.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err("rotated values overflow f32 once un-rotated")
    }
}

/// Step 2: the sign bytes of chunk `index`, `len` values (bit `i mod 8` of byte `i / 8`).
fn draw_signs(index: usize, len: usize, signs: &mut Vec<u8>) {
    signs.clear();
    let mut input = SIGN_DOMAIN.to_vec();
    input.extend_from_slice(&(index as u64).to_le_bytes());
    let prefix = input.len();
    for block in 0..len.div_ceil(SIGNS_PER_HASH) {
        input.truncate(prefix);
        input.extend_from_slice(&(block as u64).to_le_bytes());
        signs.extend_from_slice(&Hash::of(&input).0);
    }
}

/// Whether value `i`'s sign bit is set (negative).
fn negative(signs: &[u8], i: usize) -> bool {
    signs[i / 8] >> (i % 8) & 1 == 1
}

/// Step 3: signs, then each block's normalised transform, in place.
fn rotate(values: &mut [f32], signs: &[u8], wide: &mut Vec<f64>) {
    wide.clear();
    wide.extend(values.iter().enumerate().map(|(i, &x)| {
        let x = f64::from(x);
        if negative(signs, i) { -x } else { x }
    }));
    transform_blocks(wide);
    for (v, &w) in values.iter_mut().zip(wide.iter()) {
        *v = to_f32(w);
    }
}

/// Step 5: each block's normalised transform, then the signs, in place.
fn unrotate(values: &mut [f32], signs: &[u8], wide: &mut Vec<f64>) {
    wide.clear();
    wide.extend(values.iter().map(|&x| f64::from(x)));
    transform_blocks(wide);
    for (i, (v, &w)) in values.iter_mut().zip(wide.iter()).enumerate() {
        *v = if negative(signs, i) { -w } else { w } as f32;
    }
}

/// Rounds to `f32`, saturating at `±f32::MAX` (the encoder's rotated values stay finite).
fn to_f32(x: f64) -> f32 {
    x.clamp(-f64::from(f32::MAX), f64::from(f32::MAX)) as f32
}

/// Step 1 and the transform of step 3: splits `values` into power-of-two blocks, largest
/// first, and applies the normalised Walsh–Hadamard transform to each.
fn transform_blocks(values: &mut [f64]) {
    let mut rest = values;
    while !rest.is_empty() {
        let n = 1usize << rest.len().ilog2();
        let (block, tail) = rest.split_at_mut(n);
        hadamard(block);
        rest = tail;
    }
}

/// The Walsh–Hadamard transform of a block of `2^k` values, times `1/√n`: orthogonal and its
/// own inverse.
fn hadamard(block: &mut [f64]) {
    let n = block.len();
    debug_assert!(n.is_power_of_two(), "blocks are powers of two");
    let mut half = 1;
    while half < n {
        for pair in block.chunks_exact_mut(2 * half) {
            let (a, b) = pair.split_at_mut(half);
            for (x, y) in a.iter_mut().zip(b.iter_mut()) {
                (*x, *y) = (*x + *y, *x - *y);
            }
        }
        half *= 2;
    }
    let norm = 1.0 / (n as f64).sqrt();
    block.iter_mut().for_each(|x| *x *= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hadamard_known_answer_and_inverse() {
        let mut block = [1.0, 0.0, 0.0, 0.0];
        hadamard(&mut block);
        assert_eq!(block, [0.5; 4]);
        let mut block = [1.0, 2.0, 3.0, 4.0];
        hadamard(&mut block);
        assert_eq!(block, [5.0, -1.0, -2.0, 0.0]);
        hadamard(&mut block);
        assert_eq!(block, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn blocks_follow_the_binary_digits_of_the_length() {
        // 7 = 4 + 2 + 1: a spike in each block spreads over that block only.
        let mut values = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0];
        transform_blocks(&mut values);
        let h = 1.0 / 2.0f64.sqrt();
        assert_eq!(values, [0.5, 0.5, 0.5, 0.5, h, h, 1.0]);
    }

    #[test]
    fn rotation_is_orthogonal_and_undone() {
        let values: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
        let mut signs = Vec::new();
        draw_signs(3, values.len(), &mut signs);
        let mut rotated = values.clone();
        rotate(&mut rotated, &signs, &mut Vec::new());
        let energy = |v: &[f32]| v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>();
        assert!((energy(&rotated) / energy(&values) - 1.0).abs() < 1e-6);
        unrotate(&mut rotated, &signs, &mut Vec::new());
        for (a, b) in rotated.iter().zip(&values) {
            assert!((a - b).abs() <= 1e-4, "{a} against {b}");
        }
    }

    #[test]
    fn signs_depend_on_the_chunk_and_are_balanced() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        draw_signs(0, 4096, &mut a);
        draw_signs(1, 4096, &mut b);
        assert_eq!(a.len(), 512);
        assert_ne!(a, b);
        let ones: u32 = a.iter().map(|x| x.count_ones()).sum();
        assert!(
            (1848..2248).contains(&ones),
            "{ones} of 4096 signs negative"
        );
    }

    #[test]
    fn a_spike_is_spread_over_the_chunk() {
        // One large value among zeros, int2's worst case: rotated, every value has its size.
        let mut values = vec![0.0f32; 256];
        values[17] = 16.0;
        let mut signs = Vec::new();
        draw_signs(0, 256, &mut signs);
        rotate(&mut values, &signs, &mut Vec::new());
        assert!(values.iter().all(|x| x.abs() == 1.0));
    }
}
