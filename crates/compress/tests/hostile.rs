//! Hostile input: random, truncated, bit-flipped and re-sealed bytes are errors, never panics.

use neuroshard_compress::wire::{CHECKSUM_LEN, HEADER_LEN};
use neuroshard_compress::{Codec, CompressConfig, Error, Residual, decode, encode, inspect};
use neuroshard_primitives::Hash;
use proptest::prelude::*;

/// The largest vector the tests accept: a declared length above it must be refused.
const MAX_LEN: usize = 4096;

/// Recomputes the checksum, as an attacker would, so the decoder's deeper checks are reached.
fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= CHECKSUM_LEN {
        let (body, checksum) = bytes.split_at_mut(bytes.len() - CHECKSUM_LEN);
        checksum.copy_from_slice(&Hash::of(body).0);
    }
}

/// A valid packet of a few chunks under any codec.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    let values = prop::collection::vec(-10.0f32..10.0, 0..600);
    (0..Codec::ALL.len(), 1usize..200, 0.01f32..=1.0, values).prop_map(|(c, chunk, k, v)| {
        let cfg = CompressConfig {
            codec: Codec::ALL[c],
            chunk_size: chunk,
            topk_fraction: k,
            ..CompressConfig::default()
        };
        encode(&v, &mut Residual::new(), &cfg).unwrap().into_bytes()
    })
}

/// Decodes and checks that a success is a plausible vector.
fn decode_checked(bytes: &[u8]) -> Result<Vec<f32>, Error> {
    let result = decode(bytes, MAX_LEN);
    if let Ok(values) = &result {
        assert!(values.len() <= MAX_LEN);
        assert!(
            values.iter().all(|x| x.is_finite()),
            "decoded values are finite"
        );
        assert_eq!(inspect(bytes, MAX_LEN).unwrap().len, values.len());
    }
    result
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        prop_assert!(decode_checked(&bytes).is_err());
    }

    #[test]
    fn random_payload_after_a_plausible_header(
        codec in 0u8..15, chunk in 0u32..70_000, k in 0u32..300, n in 0u64..5000,
        payload in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = b"NSPG\x01".to_vec();
        bytes.push(codec);
        bytes.extend_from_slice(&[0, 0]);
        bytes.extend_from_slice(&chunk.to_le_bytes());
        bytes.extend_from_slice(&k.to_le_bytes());
        bytes.extend_from_slice(&n.to_le_bytes());
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&[0; CHECKSUM_LEN]);
        reseal(&mut bytes);
        let _ = decode_checked(&bytes);
    }

    #[test]
    fn truncated_packets_are_rejected(bytes in packet(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(bytes.len());
        prop_assert!(decode_checked(&bytes[..cut]).is_err());
        let mut resealed = bytes[..cut].to_vec();
        reseal(&mut resealed);
        prop_assert!(decode_checked(&resealed).is_err(), "the header fixes the length");
    }

    #[test]
    fn flipped_bits_are_rejected(bytes in packet(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = bytes;
        let at = at.index(bytes.len());
        bytes[at] ^= 1 << bit;
        prop_assert!(decode_checked(&bytes).is_err(), "the checksum catches one flipped bit");
    }

    #[test]
    fn resealed_mutations_never_panic(
        bytes in packet(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = bytes;
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        reseal(&mut bytes);
        let _ = decode_checked(&bytes);
    }
}

/// A valid `int8` packet of `n` values in chunks of 4, for editing.
fn int8_packet(n: usize) -> Vec<u8> {
    let cfg = CompressConfig {
        chunk_size: 4,
        ..CompressConfig::new(Codec::Int8)
    };
    let values: Vec<f32> = (0..n).map(|i| i as f32 - 3.0).collect();
    encode(&values, &mut Residual::new(), &cfg)
        .unwrap()
        .into_bytes()
}

/// Applies `edit`, reseals, and returns the decoder's error.
fn edited(n: usize, max_len: usize, edit: impl FnOnce(&mut Vec<u8>)) -> Error {
    let mut bytes = int8_packet(n);
    edit(&mut bytes);
    reseal(&mut bytes);
    decode(&bytes, max_len).unwrap_err()
}

#[test]
fn each_header_check_has_its_error() {
    assert!(decode(&int8_packet(10), 10).is_ok());
    assert!(matches!(edited(10, 10, |b| b[0] = b'X'), Error::BadMagic));
    assert!(matches!(
        edited(10, 10, |b| b[4] = 2),
        Error::UnsupportedVersion(2)
    ));
    assert!(matches!(
        edited(10, 10, |b| b[5] = 15),
        Error::UnknownCodecId(15)
    ));
    assert!(matches!(
        edited(10, 10, |b| b[6] = 1),
        Error::BadHeader {
            field: "reserved",
            ..
        }
    ));
    assert!(matches!(
        edited(10, 10, |b| b[8..12].fill(0)),
        Error::BadHeader {
            field: "chunk_size",
            ..
        }
    ));
    let k_on_dense = |b: &mut Vec<u8>| b[12] = 1;
    assert!(matches!(
        edited(10, 10, k_on_dense),
        Error::BadHeader {
            field: "topk_per_chunk",
            ..
        }
    ));
    assert!(matches!(
        edited(10, 9, |_| {}),
        Error::TooManyParameters {
            declared: 10,
            max: 9
        }
    ));
    assert!(matches!(
        edited(10, 10, |b| b.push(0)),
        Error::LengthMismatch { .. }
    ));
    assert!(matches!(
        decode(&[0; 55], 10),
        Err(Error::TooShort { got: 55, min: 56 })
    ));
    let mut flipped = int8_packet(10);
    flipped[HEADER_LEN] ^= 1;
    assert!(matches!(decode(&flipped, 10), Err(Error::BadChecksum)));
}

#[test]
fn huge_declared_length_is_refused_before_allocating() {
    // A 56-byte packet declaring 2^64 − 1 values: refused by the length check, not by the OOM killer.
    let err = edited(0, usize::MAX, |b| {
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes())
    });
    assert!(
        matches!(err, Error::LengthMismatch { got: 56, .. }),
        "{err}"
    );
    // Top-k with k = 1 in 65536-value chunks is the sparsest layout: still bounded by the bytes.
    let cfg = CompressConfig {
        codec: Codec::TopKSign,
        chunk_size: 65_536,
        topk_fraction: 1e-9,
        ..CompressConfig::default()
    };
    let packet = encode(&vec![1.0; 1 << 20], &mut Residual::new(), &cfg).unwrap();
    assert_eq!(packet.byte_len(), 56 + 16 * 7);
    assert!(matches!(
        decode(packet.as_bytes(), 1 << 19),
        Err(Error::TooManyParameters { .. })
    ));
}

#[test]
fn payload_errors_name_the_first_bad_chunk() {
    // Chunk 1's scale (bytes 24 + 8 ..) made negative, and chunk 2's scale made NaN.
    let err = edited(12, 12, |b| {
        b[HEADER_LEN + 8 + 3] |= 0x80;
        b[HEADER_LEN + 16..HEADER_LEN + 20].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert!(matches!(err, Error::BadPayload { chunk: 1, .. }), "{err}");
    let err = edited(12, 12, |b| b[HEADER_LEN + 4] = 0x80);
    assert!(
        matches!(err, Error::BadPayload { chunk: 0, reason } if reason.contains("-128")),
        "{err}"
    );
}

/// 40 values in chunks of 16 (16, 16, 8) of growing size, encoded with `cfg` (a codec under a
/// bit budget).
fn budget_packet(cfg: &CompressConfig) -> Vec<u8> {
    let values: Vec<f32> = (0..40)
        .map(|i| (i as f32 * 0.7).sin() * (1 + i / 16) as f32)
        .collect();
    encode(&values, &mut Residual::new(), cfg)
        .unwrap()
        .into_bytes()
}

/// `packet` edited by `edit`, re-sealed, and the error its decoding gives.
fn edited_budget_packet(packet: &[u8], edit: &dyn Fn(&mut Vec<u8>)) -> Error {
    let mut bytes = packet.to_vec();
    edit(&mut bytes);
    reseal(&mut bytes);
    decode(&bytes, 40).unwrap_err()
}

/// A bit budget outside 1..=8000 thousandths in `packet`'s header is refused.
fn a_budget_out_of_range_is_refused(packet: &[u8]) {
    for millibits in [0u32, 8001] {
        let err = edited_budget_packet(packet, &|b| {
            b[12..16].copy_from_slice(&millibits.to_le_bytes())
        });
        assert!(
            matches!(
                err,
                Error::BadHeader {
                    field: "millibits",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn hbits_widths_and_budget_are_checked() {
    // 40 values in chunks of 16 (16, 16, 8) at 2 bits per value: a 10-byte code budget, and
    // the payload is 3 width bytes, 3 scales and the budget.
    let cfg: CompressConfig = "hbits:chunk=16,bits=2".parse().unwrap();
    let packet = budget_packet(&cfg);
    assert_eq!(packet.len(), HEADER_LEN + 3 + 12 + 10 + CHECKSUM_LEN);
    let widths = &packet[HEADER_LEN..HEADER_LEN + 3];
    let code: usize = widths
        .iter()
        .zip([16, 16, 8])
        .map(|(&b, m)| (m * usize::from(b)).div_ceil(8))
        .sum();
    assert!(code <= 10, "widths {widths:?} within the budget");
    let edit = |edit: &dyn Fn(&mut Vec<u8>)| edited_budget_packet(&packet, edit);
    let err = edit(&|b| b[HEADER_LEN + 1] = 9);
    assert!(
        matches!(err, Error::BadPayload { chunk: 1, reason } if reason.contains("above 8")),
        "{err}"
    );
    let err = edit(&|b| b[HEADER_LEN..HEADER_LEN + 3].copy_from_slice(&[8, 8, 8]));
    assert!(
        matches!(err, Error::BadPayload { chunk: 0, reason } if reason.contains("budget")),
        "{err}"
    );
    let err = edit(&|b| b[HEADER_LEN..HEADER_LEN + 3].copy_from_slice(&[0, 0, 0]));
    assert!(
        matches!(err, Error::BadPayload { chunk: 3, reason } if reason.contains("padding")),
        "{err}"
    );
    a_budget_out_of_range_is_refused(&packet);
}

#[test]
fn hent_table_entries_streams_and_padding_are_checked() {
    // 40 values in chunks of 16 (16, 16, 8) at 8 bits per value: a 40-byte code budget; the
    // payload is 63 two-byte frequencies, 3 entries (scale, stream length) and the budget.
    let cfg: CompressConfig = "hent:chunk=16,bits=8".parse().unwrap();
    let packet = budget_packet(&cfg);
    let (table, entries) = (HEADER_LEN, HEADER_LEN + 126);
    let streams = entries + 24;
    assert_eq!(packet.len(), streams + 40 + CHECKSUM_LEN);
    let u32_at = |at: usize| u32::from_le_bytes(packet[at..at + 4].try_into().unwrap());
    let lens: Vec<u32> = (0..3).map(|c| u32_at(entries + 8 * c + 4)).collect();
    assert!(lens.iter().all(|&l| l >= 4), "every chunk sent: {lens:?}");
    let used: u32 = lens.iter().sum();
    assert!(used <= 40, "streams {lens:?} within the budget");
    let edit = |edit: &dyn Fn(&mut Vec<u8>)| edited_budget_packet(&packet, edit);
    let payload_error = |err: Error, chunk: usize, words: &str| {
        assert!(
            matches!(err, Error::BadPayload { chunk: c, reason } if c == chunk && reason.contains(words)),
            "{err}, expected chunk {chunk}: {words}"
        );
    };
    // Frequencies: one more count than the total, then the total overflowing u16 sums.
    let total = |b: &[u8]| -> u32 {
        b[table..entries]
            .chunks_exact(2)
            .map(|f| u32::from(u16::from_le_bytes([f[0], f[1]])))
            .sum()
    };
    assert_eq!(total(&packet), 1 << 14);
    payload_error(edit(&|b| b[table] = b[table].wrapping_add(1)), 0, "exceed");
    // The zero symbol (31) is the most frequent: one count less falls short of the total.
    let zero = table + 2 * 31;
    payload_error(
        edit(&|b| b[zero] = b[zero].wrapping_sub(1)),
        0,
        "do not sum",
    );
    payload_error(
        edit(&|b| b[table..entries].fill(0xff)),
        0,
        "exceed the total",
    );
    // Chunk 1's scale: negative, not finite, 0 with a stream.
    let step = entries + 8;
    payload_error(edit(&|b| b[step + 3] |= 0x80), 1, "scale");
    let nan = f32::NAN.to_le_bytes();
    payload_error(
        edit(&|b| b[step..step + 4].copy_from_slice(&nan)),
        1,
        "scale",
    );
    payload_error(edit(&|b| b[step..step + 4].fill(0)), 1, "disagree");
    // Chunk 2's stream length: 0 with a step, then past the budget.
    let len = entries + 16 + 4;
    payload_error(edit(&|b| b[len..len + 4].fill(0)), 2, "disagree");
    payload_error(edit(&|b| b[len] = 41), 2, "budget");
    // The first stream's start state, then a stream cut one byte short (its last byte moved to
    // the padding).
    payload_error(edit(&|b| b[streams] = 0x80), 0, "start state");
    let short = |b: &mut Vec<u8>| {
        let at = entries + 16 + 4;
        b[at..at + 4].copy_from_slice(&(lens[2] - 1).to_le_bytes());
    };
    let err = edit(&|b| short(b));
    assert!(
        matches!(err, Error::BadPayload { chunk: 2 | 3, .. }),
        "{err}"
    );
    // Padding.
    if used < 40 {
        payload_error(edit(&|b| b[streams + 39] = 1), 3, "padding");
    }
    a_budget_out_of_range_is_refused(&packet);
}

#[test]
fn htcq_checks_both_tables_and_reads_its_streams_on_the_trellis() {
    // hent's packet with a second frequency table (the odd levels') after the first: every
    // other check is hent's, above.
    let cfg: CompressConfig = "htcq:chunk=16,bits=8".parse().unwrap();
    let packet = budget_packet(&cfg);
    let (second, entries) = (HEADER_LEN + 126, HEADER_LEN + 252);
    assert_eq!(packet.len(), entries + 24 + 40 + CHECKSUM_LEN);
    assert!(decode(&packet, 40).is_ok());
    let edit = |edit: &dyn Fn(&mut Vec<u8>)| edited_budget_packet(&packet, edit);
    for (at, words) in [(second, "exceed"), (entries - 2, "")] {
        let err = edit(&|b| {
            b[at] = b[at].wrapping_add(1);
            b[at + 1] = b[at + 1].wrapping_add(0x40);
        });
        assert!(
            matches!(err, Error::BadPayload { chunk: 0, reason } if reason.contains(words)),
            "{err}"
        );
    }
    // A stream's last byte moved to the padding.
    let len = entries + 4;
    let err = edit(&|b| {
        let l = u32::from_le_bytes(b[len..len + 4].try_into().unwrap());
        b[len..len + 4].copy_from_slice(&(l - 1).to_le_bytes());
    });
    assert!(matches!(err, Error::BadPayload { .. }), "{err}");
    a_budget_out_of_range_is_refused(&packet);
}
