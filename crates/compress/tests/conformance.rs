//! Conformance: stored hashes of fixed encodings. A deliberate format change updates them
//! (`UPDATE_EXPECT=1 cargo test -p neuroshard-compress --test conformance`), and that diff is
//! the review signal; an accidental one fails here.

use std::fmt::Write;

use expect_test::expect;
use neuroshard_compress::{Codec, CompressConfig, Residual, encode};

/// Encodes `values` under `cfg` with a fresh residual and returns the packet's bytes.
fn bytes(values: &[f32], cfg: &str) -> Vec<u8> {
    let cfg: CompressConfig = cfg.parse().unwrap();
    encode(values, &mut Residual::new(), &cfg)
        .unwrap()
        .into_bytes()
}

#[test]
fn every_codec_encodes_a_fixed_vector_the_same_way() {
    let values: Vec<f32> = (0..1000)
        .map(|i| (i as f32 * 0.37).sin() * (1 + i % 7) as f32)
        .collect();
    let mut table = String::new();
    for codec in Codec::ALL {
        let bytes = bytes(&values, &format!("{codec}:chunk=256,k=0.05"));
        let hash = neuroshard_primitives::Hash::of(&bytes);
        writeln!(
            table,
            "{codec:<10} {:>5} bytes  {}",
            bytes.len(),
            hash.short()
        )
        .unwrap();
    }
    expect![[r#"
        none        4056 bytes  77ff826c
        int8        1072 bytes  658f38eb
        int4         572 bytes  3687fd0b
        sign         197 bytes  9ac6739c
        topk         368 bytes  ecce9bb0
        topk-int8    228 bytes  8b4b8e40
        topk-int4    204 bytes  b770deaf
        topk-sign    184 bytes  157d0d5a
        topk-int2    140 bytes  a263dc19
        int2         322 bytes  53728bfd
        ternary      275 bytes  4b236707
        hint2        322 bytes  eb5eefa4
        hbits        326 bytes  954be593
        hent         464 bytes  99a69922
        htcq         590 bytes  5eefc0c8
    "#]]
    .assert_eq(&table);
}

#[test]
fn topk_int8_byte_layout() {
    // Chunk 0 keeps 2 of 4: offsets 1 and 3 (|−2| and |4| are largest), scale 4.0, q = −64
    // (−63.5 rounds half to even) and 127. Chunk 1 is the single value 1.0: offset 0, scale 1.0,
    // q = 127.
    let hex: String = bytes(&[0.5, -2.0, 0.25, 4.0, 1.0], "topk-int8:chunk=4,k=0.5")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (header, rest) = hex.split_at(48);
    let (payload, checksum) = rest.split_at(rest.len() - 64);
    expect!["4e5350470105000004000000020000000500000000000000"].assert_eq(header);
    expect!["0100030000008040c07f00000000803f7f"].assert_eq(payload);
    assert_eq!(checksum.len(), 64);
}
