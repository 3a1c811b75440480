//! Top-k selection within a chunk, and the chunk-level encoder and decoder.
//!
//! # Top-k (per chunk)
//!
//! 1. In a chunk of `m` values keep `m' = min(k, m)`, where `k = ceil(fraction · C)`.
//! 2. Order the values by `|x_i|`, largest first, and on equal magnitude by smaller offset
//!    `i`. This is a strict total order (magnitudes compare as the bits of `|x_i|`, which are
//!    monotone for finite floats), so the kept set does not depend on the sort algorithm or on
//!    threads.
//! 3. Keep the first `m'` in that order, and write their offsets within the chunk (strictly
//!    increasing, each in the codec's offset width, packed least significant bit first; see
//!    [`crate::wire`]) followed by their values in the chosen value format.
//! 4. The reconstruction is zero except at the kept offsets; the values not kept stay whole in
//!    the residual, which is what lets error feedback send them in a later round.

use crate::Header;
use crate::bits::{pack, pad_is_zero, unpack};
use crate::rotate;

/// Buffers reused across the chunks one worker encodes.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    keys: Vec<u64>,
    offsets: Vec<u16>,
    values: Vec<f32>,
    rotation: rotate::Work,
}

/// Fills `offsets` with the offsets of the `k` values of largest magnitude, ascending.
fn select(values: &[f32], k: usize, keys: &mut Vec<u64>, offsets: &mut Vec<u16>) {
    // Key: |x| bits above, the complemented offset below, so that larger keys come first in
    // the order of step 2 and no two keys are equal.
    keys.clear();
    keys.extend(
        values
            .iter()
            .enumerate()
            .map(|(i, x)| (u64::from(x.abs().to_bits()) << 32) | u64::from(!(i as u32))),
    );
    let m = keys.len();
    if k < m {
        keys.select_nth_unstable(m - k);
    }
    offsets.clear();
    offsets.extend(keys[m - k..].iter().map(|key| !(*key as u32) as u16));
    offsets.sort_unstable();
}

/// Encodes chunk number `index`, `acc`, into `out` and leaves what was lost in `acc`.
pub(crate) fn encode_chunk(
    header: &Header,
    index: usize,
    acc: &mut [f32],
    out: &mut [u8],
    scratch: &mut Scratch,
) {
    let format = header.codec.value_format();
    if header.codec.is_rotated() {
        rotate::encode_chunk(format, index, acc, out, &mut scratch.rotation);
        return;
    }
    if !header.codec.is_topk() {
        format.encode(acc, out);
        return;
    }
    let k = header.kept(acc.len());
    let Scratch {
        keys,
        offsets,
        values,
        ..
    } = scratch;
    select(acc, k, keys, offsets);
    let (offset_bytes, value_bytes) = out.split_at_mut(header.offset_bytes(k));
    pack(offsets.iter().copied(), header.offset_bits(), offset_bytes);
    values.clear();
    values.extend(offsets.iter().map(|&i| acc[usize::from(i)]));
    format.encode(values, value_bytes);
    for (&i, &lost) in offsets.iter().zip(values.iter()) {
        acc[usize::from(i)] = lost;
    }
}

/// Decodes chunk number `index` from `bytes` into `out` (which starts zeroed), or says what is
/// wrong.
pub(crate) fn decode_chunk(
    header: &Header,
    index: usize,
    bytes: &[u8],
    out: &mut [f32],
) -> Result<(), &'static str> {
    let format = header.codec.value_format();
    if header.codec.is_rotated() {
        return rotate::decode_chunk(format, index, bytes, out);
    }
    if !header.codec.is_topk() {
        return format.decode(bytes, out);
    }
    let k = header.kept(out.len());
    let bits = header.offset_bits();
    let (offset_bytes, value_bytes) = bytes.split_at(header.offset_bytes(k));
    if !pad_is_zero(offset_bytes, k * bits) {
        return Err("top-k offset pad bits are not zero");
    }
    let offset = |j: usize| unpack(offset_bytes, bits, j);
    let mut bound = out.len();
    for j in (0..k).rev() {
        if offset(j) >= bound {
            return Err("top-k offsets are not strictly increasing within the chunk");
        }
        bound = offset(j);
    }
    format.decode(value_bytes, &mut out[..k])?;
    // Offsets are strictly increasing, so offset(j) ≥ j: scattering from the back never
    // overwrites a value that has not moved yet, and needs no second buffer.
    for j in (0..k).rev() {
        let value = std::mem::take(&mut out[j]);
        out[offset(j)] = value;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, CompressConfig};

    fn header(codec: Codec, chunk: usize, fraction: f32, len: usize) -> Header {
        let cfg = CompressConfig {
            codec,
            chunk_size: chunk,
            topk_fraction: fraction,
            ..CompressConfig::default()
        };
        Header::for_config(&cfg, len)
    }

    #[test]
    fn selects_largest_then_lowest_offset() {
        let (mut keys, mut offsets) = (Vec::new(), Vec::new());
        select(
            &[1.0, -5.0, 3.0, 5.0, 0.0, -3.0],
            3,
            &mut keys,
            &mut offsets,
        );
        assert_eq!(offsets, [1, 2, 3], "ties at |3| go to the smaller offset");
        select(&[0.0; 4], 4, &mut keys, &mut offsets);
        assert_eq!(offsets, [0, 1, 2, 3]);
    }

    #[test]
    fn topk_chunk_round_trip() {
        let h = header(Codec::TopK, 8, 0.25, 8);
        let original = [0.1, -4.0, 0.2, 0.3, 2.0, -0.5, 0.0, 1.0];
        let mut acc = original;
        let mut out = vec![0u8; h.chunk_bytes(8)];
        encode_chunk(&h, 0, &mut acc, &mut out, &mut Scratch::default());
        assert_eq!(out.len(), 2 * 2 + 4 * 2);
        assert_eq!(acc, [0.1, 0.0, 0.2, 0.3, 0.0, -0.5, 0.0, 1.0]);
        let mut decoded = [0.0; 8];
        decode_chunk(&h, 0, &out, &mut decoded).unwrap();
        assert_eq!(decoded, [0.0, -4.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn topk_int2_chunk_round_trip() {
        let h = header(Codec::TopKInt2, 8, 0.25, 8);
        let original = [0.1, -3.0, 0.2, 0.3, 3.0, -0.5, 0.0, 1.0];
        let mut acc = original;
        let mut out = vec![0u8; h.chunk_bytes(8)];
        encode_chunk(&h, 0, &mut acc, &mut out, &mut Scratch::default());
        // Two 3-bit offsets in one byte, a 4-byte scale, two 2-bit codes in one byte.
        assert_eq!(out.len(), 1 + 4 + 1);
        let mut decoded = [0.0; 8];
        decode_chunk(&h, 0, &out, &mut decoded).unwrap();
        assert_eq!(decoded, [0.0, -3.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0]);
        for ((x, d), r) in original.iter().zip(&decoded).zip(&acc) {
            assert_eq!(*r, x - d);
        }
        out[0] |= 0b0100_0000;
        assert!(decode_chunk(&h, 0, &out, &mut decoded).is_err(), "pad bits");
    }

    #[test]
    fn rejects_bad_offsets() {
        let h = header(Codec::TopK, 8, 0.25, 8);
        let value = 1.0f32.to_le_bytes();
        let bytes =
            |a: u16, b: u16| [&a.to_le_bytes()[..], &b.to_le_bytes(), &value, &value].concat();
        let mut out = [0.0; 8];
        assert!(decode_chunk(&h, 0, &bytes(1, 7), &mut out).is_ok());
        assert!(
            decode_chunk(&h, 0, &bytes(3, 3), &mut out).is_err(),
            "duplicate"
        );
        assert!(
            decode_chunk(&h, 0, &bytes(4, 2), &mut out).is_err(),
            "descending"
        );
        assert!(
            decode_chunk(&h, 0, &bytes(1, 8), &mut out).is_err(),
            "past the chunk"
        );
    }
}
