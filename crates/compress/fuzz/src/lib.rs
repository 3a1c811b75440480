//! Helpers shared by the fuzz targets: hostile packets that get past the checksum.
//!
//! A random byte string almost never carries a valid BLAKE3 checksum, so fuzzing `decode` with
//! raw bytes only exercises the header checks. The per-codec targets therefore write a valid
//! header for their codec (from the wire-format table, independently of the crate's writer),
//! fill the payload with the fuzzer's bytes, and seal it, as an attacker who knows the format
//! would; the decoder must then reject or accept the payload without panicking.

use neuroshard_compress::wire::{CHECKSUM_LEN, HEADER_LEN, MAGIC, VERSION};
use neuroshard_compress::{Codec, CompressConfig, Header, Residual, decode, encode};
use neuroshard_primitives::Hash;

/// The most parameters a fuzzed packet may declare: big enough for many chunks, small enough
/// to keep each run fast.
pub const MAX_LEN: usize = 1 << 18;

/// Decodes `bytes` and checks that a success is a plausible vector.
pub fn decode_checked(bytes: &[u8]) {
    if let Ok(values) = decode(bytes, MAX_LEN) {
        assert!(values.len() <= MAX_LEN, "decoded more than the maximum");
        assert!(
            values.iter().all(|x| x.is_finite()),
            "decoded a non-finite value"
        );
    }
}

/// Reads a little-endian `u32` from `data` at `at`, or 0 past its end.
fn u32_at(data: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    for (i, b) in word.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u32::from_le_bytes(word)
}

/// Builds a sealed `codec` packet whose shape comes from the first 12 bytes of `data` and whose
/// payload is the rest of `data`, cut or zero-padded to the length the header implies.
pub fn hostile_packet(codec: Codec, data: &[u8]) -> Vec<u8> {
    let chunk = (u32_at(data, 0) % 65_536) as usize + 1;
    let k = if codec.is_topk() {
        (u32_at(data, 4) as usize % chunk) + 1
    } else {
        0
    };
    let millibits = if codec.has_bit_budget() {
        (u32_at(data, 4) as usize % 8000) + 1
    } else {
        0
    };
    let len = u32_at(data, 8) as usize % 4096;
    let header = Header {
        codec,
        chunk_size: chunk,
        topk_per_chunk: k,
        millibits,
        len,
    };
    let mut bytes = Vec::with_capacity(header.packet_len());
    bytes.extend_from_slice(&MAGIC);
    bytes.push(VERSION);
    bytes.push(
        Codec::ALL
            .iter()
            .position(|&c| c == codec)
            .expect("known codec") as u8,
    );
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&(chunk as u32).to_le_bytes());
    // The slot after the chunk size: k for top-k codecs, the bit budget for hbits and hent.
    bytes.extend_from_slice(&((k + millibits) as u32).to_le_bytes());
    bytes.extend_from_slice(&(len as u64).to_le_bytes());
    debug_assert_eq!(bytes.len(), HEADER_LEN);
    let payload_len = header.packet_len() - HEADER_LEN - CHECKSUM_LEN;
    let rest = data.get(12..).unwrap_or(&[]);
    bytes.extend(
        rest.iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(payload_len),
    );
    let checksum = Hash::of(&bytes);
    bytes.extend_from_slice(&checksum.0);
    bytes
}

/// The per-codec target: a sealed hostile packet must decode or fail, never panic.
pub fn fuzz_codec(codec: Codec, data: &[u8]) {
    decode_checked(&hostile_packet(codec, data));
}

/// The round-trip target: any finite input encodes, decodes, and conserves mass.
pub fn round_trip(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let codec = Codec::ALL[usize::from(selector) % Codec::ALL.len()];
    let cfg = CompressConfig {
        codec,
        chunk_size: usize::from(selector >> 3) + 1,
        topk_fraction: 0.05,
        ..CompressConfig::default()
    };
    let delta: Vec<f32> = rest
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .filter(|x| x.is_finite() && x.abs() < 1e30)
        .collect();
    let mut residual = Residual::new();
    let packet = encode(&delta, &mut residual, &cfg).expect("finite input encodes");
    let decoded = decode(packet.as_bytes(), delta.len()).expect("own packet decodes");
    for ((x, d), r) in delta.iter().zip(&decoded).zip(residual.as_slice()) {
        let tolerance = 4.0 * f32::EPSILON * (x.abs() + d.abs());
        assert!(
            (d + r - x).abs() <= tolerance,
            "mass lost: {d} + {r} != {x}"
        );
    }
}
