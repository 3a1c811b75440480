//! Values of a few bits each, packed least significant bit first: top-k offsets, and the codes
//! of an `hbits` chunk.

/// Writes each value in `bits` bits (at most 16), least significant bit first, into `out`
/// (exactly `ceil(count · bits / 8)` bytes, which start zeroed).
pub(crate) fn pack(values: impl IntoIterator<Item = u16>, bits: usize, out: &mut [u8]) {
    for (j, value) in values.into_iter().enumerate() {
        let at = j * bits;
        // A value spans at most three bytes; the bits past the last one are zero.
        let word = u32::from(value) << (at % 8);
        for (dst, byte) in out[at / 8..].iter_mut().zip(word.to_le_bytes()) {
            *dst |= byte;
        }
    }
}

/// Reads value `j` of those [`pack`] wrote in `bits` bits each.
pub(crate) fn unpack(bytes: &[u8], bits: usize, j: usize) -> usize {
    let at = j * bits;
    let mut word = [0u8; 4];
    for (dst, src) in word.iter_mut().zip(&bytes[at / 8..]) {
        *dst = *src;
    }
    ((u32::from_le_bytes(word) >> (at % 8)) & ((1 << bits) - 1)) as usize
}

/// Whether the bits of `bytes` past the first `used` are all zero.
pub(crate) fn pad_is_zero(bytes: &[u8], used: usize) -> bool {
    used.is_multiple_of(8) || bytes.last().is_none_or(|last| last >> (used % 8) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_pack_in_their_width() {
        let offsets = [1u16, 4095, 7];
        let mut packed = [0u8; 5];
        pack(offsets, 12, &mut packed);
        assert_eq!(packed, [0x01, 0xf0, 0xff, 0x07, 0x00]);
        let read: Vec<usize> = (0..3).map(|j| unpack(&packed, 12, j)).collect();
        assert_eq!(read, [1, 4095, 7]);
        assert!(pad_is_zero(&packed, 36));
        assert!(!pad_is_zero(&[0x01, 0xf0, 0xff, 0x07, 0x10], 36));
        // 16 bits per offset is the little-endian u16 layout of the first top-k codecs.
        let mut wide = [0u8; 6];
        pack(offsets, 16, &mut wide);
        assert_eq!(wide, [1, 0, 0xff, 0x0f, 7, 0]);
    }
}
