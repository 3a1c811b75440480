//! Property tests: every codec round-trips, and error feedback conserves mass.

use neuroshard_compress::{Codec, CompressConfig, Residual, decode, encode, encoded_len, inspect};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp1, StandardNormal};

/// Any valid configuration with small chunks, so that vectors span many chunks.
fn config() -> impl Strategy<Value = CompressConfig> {
    let decay = prop_oneof![Just(1.0f32), 0.0f32..=1.0];
    let bits = prop_oneof![Just(2.0f32), 0.001f32..=8.0];
    (
        0..Codec::ALL.len(),
        1usize..300,
        0.001f32..=1.0,
        decay,
        bits,
    )
        .prop_map(|(c, chunk, fraction, decay, bits)| CompressConfig {
            codec: Codec::ALL[c],
            chunk_size: chunk,
            topk_fraction: fraction,
            ef_decay: decay,
            bits,
        })
}

/// Finite values spanning many magnitudes, with exact zeros and repeats.
fn values(max_len: usize) -> impl Strategy<Value = Vec<f32>> {
    let value = prop_oneof![
        3 => -1.0f32..1.0,
        1 => -1e6f32..1e6,
        1 => -1e-30f32..1e-30,
        1 => Just(0.0f32),
        1 => Just(0.5f32),
    ];
    prop::collection::vec(value, 0..max_len)
}

/// `|decoded + new residual − (delta + decay · old residual)|` is within a few roundings of the
/// values.
fn assert_conserved(delta: &[f32], old: &[f32], decay: f32, decoded: &[f32], new: &[f32]) {
    for i in 0..delta.len() {
        let acc = delta[i] + decay * old.get(i).copied().unwrap_or(0.0);
        let back = decoded[i] + new[i];
        let tolerance = 4.0 * f32::EPSILON * (acc.abs() + decoded[i].abs());
        assert!(
            (back - acc).abs() <= tolerance,
            "index {i}: {back} != {acc}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_conserves_mass(cfg in config(), delta in values(2000), warm in values(2000)) {
        // A residual from an earlier round (when the lengths happen to allow one).
        let mut residual = Residual::new();
        if warm.len() >= delta.len() {
            residual = Residual::from(warm[..delta.len()].to_vec());
        }
        let old = residual.as_slice().to_vec();
        let packet = encode(&delta, &mut residual, &cfg).unwrap();
        prop_assert_eq!(packet.byte_len(), encoded_len(delta.len(), &cfg).unwrap());
        prop_assert_eq!(inspect(packet.as_bytes(), delta.len()).unwrap(), *packet.header());
        let decoded = decode(packet.as_bytes(), delta.len()).unwrap();
        prop_assert_eq!(decoded.len(), delta.len());
        prop_assert!(decoded.iter().all(|x| x.is_finite()));
        assert_conserved(&delta, &old, cfg.ef_decay, &decoded, residual.as_slice());
        if cfg.codec == Codec::None {
            prop_assert!(residual.as_slice().iter().all(|&r| r == 0.0));
        }
    }

    #[test]
    fn topk_keeps_at_most_k_per_chunk(cfg in config(), delta in values(2000)) {
        let cfg = CompressConfig { codec: Codec::TopK, ..cfg };
        let packet = encode(&delta, &mut Residual::new(), &cfg).unwrap();
        let decoded = decode(packet.as_bytes(), delta.len()).unwrap();
        let k = cfg.topk_per_chunk();
        for (chunk, original) in decoded.chunks(cfg.chunk_size).zip(delta.chunks(cfg.chunk_size)) {
            prop_assert!(chunk.iter().filter(|&&x| x != 0.0).count() <= k);
            // Plain top-k sends the kept values exactly, so each is one of the originals.
            for (d, x) in chunk.iter().zip(original) {
                prop_assert!(*d == 0.0 || d == x);
            }
        }
    }

    #[test]
    fn rounds_of_feedback_send_everything(cfg in config(), deltas in prop::collection::vec(values(300), 1..6)) {
        // Several rounds on one residual: what was sent plus what is carried is what was given,
        // when nothing decays.
        let cfg = CompressConfig { ef_decay: 1.0, ..cfg };
        let n = deltas.iter().map(Vec::len).min().unwrap_or(0);
        let mut residual = Residual::new();
        let mut given = vec![0.0f64; n];
        let mut sent = vec![0.0f64; n];
        // Each round rounds once at the magnitude of what it sends and carries.
        let mut scale = vec![0.0f64; n];
        for delta in &deltas {
            let packet = encode(&delta[..n], &mut residual, &cfg).unwrap();
            let decoded = decode(packet.as_bytes(), n).unwrap();
            for i in 0..n {
                given[i] += f64::from(delta[i]);
                sent[i] += f64::from(decoded[i]);
                scale[i] += f64::from(decoded[i].abs()) + f64::from(residual.as_slice()[i].abs());
            }
        }
        for i in 0..n {
            let carried = f64::from(residual.as_slice()[i]);
            let tolerance = 2.0 * f64::from(f32::EPSILON) * (scale[i] + given[i].abs());
            prop_assert!((sent[i] + carried - given[i]).abs() <= tolerance, "index {}", i);
        }
    }
}

#[test]
fn output_does_not_depend_on_threads() {
    let delta: Vec<f32> = (0..100_000)
        .map(|i| ((i as f32) * 0.618).sin() * (1.0 + (i % 17) as f32))
        .collect();
    for codec in Codec::ALL {
        let cfg = CompressConfig {
            chunk_size: 1000,
            ..CompressConfig::new(codec)
        };
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut residual = Residual::new();
                let packet = encode(&delta, &mut residual, &cfg).unwrap();
                let decoded = decode(packet.as_bytes(), delta.len()).unwrap();
                (packet, residual, decoded)
            })
        };
        assert_eq!(run(1), run(4), "{codec}");
    }
}

#[test]
fn non_finite_input_is_an_error_and_keeps_the_residual() {
    let cfg = CompressConfig::default();
    let mut residual = Residual::from(vec![1.0, f32::MAX, 0.0]);
    let before = residual.clone();
    for delta in [[0.0, f32::MAX, 0.0], [0.0, 0.0, f32::NAN]] {
        let err = encode(&delta, &mut residual, &cfg).unwrap_err();
        assert!(
            matches!(err, neuroshard_compress::Error::NonFiniteInput { .. }),
            "{err}"
        );
        assert_eq!(residual, before);
    }
    let err = encode(&[1.0, 2.0], &mut residual, &cfg).unwrap_err();
    assert!(matches!(
        err,
        neuroshard_compress::Error::ResidualLength {
            residual: 3,
            delta: 2
        }
    ));
    let bad = CompressConfig {
        chunk_size: 0,
        ..cfg
    };
    assert!(encode(&[1.0], &mut Residual::new(), &bad).is_err());
}

#[test]
fn empty_vector_round_trips() {
    for codec in Codec::ALL {
        let packet = encode(&[], &mut Residual::new(), &CompressConfig::new(codec)).unwrap();
        assert_eq!(packet.byte_len(), 56);
        assert_eq!(decode(packet.as_bytes(), 0).unwrap(), Vec::<f32>::new());
    }
}

#[test]
fn dense_low_bit_codecs_sizes() {
    // 2 bits per value (int2) and 1.6 (ternary, five to a byte) against int4's 4, the same
    // 4-byte scale per chunk: what they buy at a fixed H (docs/experiments/2026-11-30-int2.md).
    let n = 1 << 20;
    let len = |codec| encoded_len(n, &CompressConfig::new(codec)).unwrap() - 56;
    let chunks = n / CompressConfig::DEFAULT_CHUNK_SIZE;
    assert_eq!(len(Codec::Int2), chunks * 4 + n / 4);
    assert_eq!(len(Codec::Int4), chunks * 4 + n / 2);
    assert_eq!(len(Codec::Ternary), chunks * (4 + 4096_usize.div_ceil(5)));
    assert_eq!(
        len(Codec::HInt2),
        len(Codec::Int2),
        "the rotation costs no bytes"
    );
    // hbits at its default 2 bits per value: int2's codes and scales, plus a width byte per
    // chunk; 2.1 bits buys n / 80 more code bytes.
    assert_eq!(len(Codec::HBits), len(Codec::Int2) + chunks);
    let budget = |bits| encoded_len(n, &format!("hbits:bits={bits}").parse().unwrap()).unwrap();
    assert_eq!(budget(2.1) - budget(2.0), n / 80);
    // hent at 2 bits per value: the same code bytes as int2, a frequency table, and a step and
    // a stream length per chunk.
    assert_eq!(len(Codec::HEnt), n / 4 + 126 + chunks * 8);
    // htcq: a second table.
    assert_eq!(len(Codec::HTcq), len(Codec::HEnt) + 126);
}

/// `‖decode(encode(x)) − x‖² / ‖x‖²` for one fresh encoding of `values` under `codec`.
fn relative_error(values: &[f32], codec: Codec) -> f64 {
    relative_error_under(values, &CompressConfig::new(codec))
}

/// `‖decode(encode(x)) − x‖² / ‖x‖²` for one fresh encoding of `values` under `cfg`.
fn relative_error_under(values: &[f32], cfg: &CompressConfig) -> f64 {
    let packet = encode(values, &mut Residual::new(), cfg).unwrap();
    let decoded = decode(packet.as_bytes(), values.len()).unwrap();
    let energy = |v: &mut dyn Iterator<Item = f32>| v.map(|x| f64::from(x).powi(2)).sum::<f64>();
    let lost = energy(&mut decoded.iter().zip(values).map(|(d, x)| d - x));
    lost / energy(&mut values.iter().copied())
}

#[test]
fn rotation_evens_out_int2_error_across_chunk_shapes() {
    // 4 096-value chunks of three shapes: Gaussian, Laplace (heavy tails), and sparse (90 % of
    // the values a hundred times smaller, as a block of rarely used embedding rows).
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let n = 8 * 4096;
    let gaussian: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    let laplace: Vec<f32> = (0..n)
        .map(|_| rng.sample::<f32, _>(Exp1) * if rng.random() { 1.0 } else { -1.0 })
        .collect();
    let sparse: Vec<f32> = gaussian
        .iter()
        .map(|&x| if rng.random_bool(0.9) { x * 0.01 } else { x })
        .collect();
    let shapes = [
        ("gaussian", gaussian),
        ("laplace", laplace),
        ("sparse", sparse),
    ];
    for (name, values) in &shapes {
        let (plain, rotated) = (
            relative_error(values, Codec::Int2),
            relative_error(values, Codec::HInt2),
        );
        eprintln!("{name}: int2 {plain:.3}, hint2 {rotated:.3}");
        // A rotated chunk is near-Gaussian whatever it held: int2's best on a Gaussian chunk
        // is 0.12 of its energy (Lloyd–Max for a uniform 4-level grid).
        assert!((0.11..0.14).contains(&rotated), "{name}: hint2 {rotated}");
        assert!(
            rotated <= plain,
            "{name}: hint2 {rotated} against int2 {plain}"
        );
    }
}

/// Eight Gaussian chunks whose standard deviations span 1 to 2^7, and each chunk's share of
/// its energy left as error by one encoding under `codec` (at its default 2 bits per value).
fn error_per_chunk(codec: Codec) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let spread: Vec<f32> = (0..8 * 4096)
        .map(|i| rng.sample::<f32, _>(StandardNormal) * (1 << (i / 4096)) as f32)
        .collect();
    let packet = encode(&spread, &mut Residual::new(), &CompressConfig::new(codec)).unwrap();
    let decoded = decode(packet.as_bytes(), spread.len()).unwrap();
    spread
        .chunks(4096)
        .zip(decoded.chunks(4096))
        .map(|(x, d)| {
            let energy: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
            let lost: f64 = x
                .iter()
                .zip(d)
                .map(|(&v, &w)| f64::from(v - w).powi(2))
                .sum();
            lost / energy
        })
        .collect()
}

#[test]
fn hent_leaves_less_error_than_hint2_on_every_chunk_at_the_same_bytes() {
    // hent's step is the same multiple of each chunk's RMS, so each chunk keeps the same share
    // of its energy as error, about 0.09 at 2 bits (a mid-tread grid, entropy-coded, a
    // four-byte state per chunk, the levels at the least-squares scale; 0.10 at the bins'
    // centres) against hint2's 0.12.
    let n = 8 * 4096;
    assert!(
        encoded_len(n, &CompressConfig::new(Codec::HEnt)).unwrap()
            <= encoded_len(n, &CompressConfig::new(Codec::HInt2)).unwrap() + 200
    );
    let hint2 = error_per_chunk(Codec::HInt2);
    for (c, (hent, hint2)) in error_per_chunk(Codec::HEnt)
        .into_iter()
        .zip(hint2)
        .enumerate()
    {
        eprintln!("chunk {c}: hent {hent:.4}, hint2 {hint2:.4}");
        assert!((0.08..0.095).contains(&hent), "chunk {c}: {hent}");
        assert!(hent < hint2 * 0.9, "chunk {c}: against hint2 {hint2}");
    }
}

#[test]
fn htcq_leaves_a_sixth_less_error_than_hent_on_every_chunk() {
    // The same chunks on the trellis, 126 bytes more (a second table): the Viterbi search buys
    // what a scalar grid cannot at the same rate (0.47 dB from the rate–distortion bound on a
    // long Gaussian against hent's 1.50; less on 4 096-value chunks, which share the rate of
    // their four-byte states).
    let hent = error_per_chunk(Codec::HEnt);
    for (c, (htcq, hent)) in error_per_chunk(Codec::HTcq)
        .into_iter()
        .zip(hent)
        .enumerate()
    {
        eprintln!("chunk {c}: htcq {htcq:.4}, hent {hent:.4}");
        assert!(
            htcq < hent * 0.85,
            "chunk {c}: {htcq} against hent's {hent}"
        );
    }
}

#[test]
fn hbits_spends_the_bits_where_the_energy_is() {
    // Eight 4 096-value Gaussian chunks whose standard deviations span 1 to 2^7, as a Δ's
    // embedding, attention, MLP and norm chunks differ; then eight of equal variance.
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let spread: Vec<f32> = (0..8 * 4096)
        .map(|i| rng.sample::<f32, _>(StandardNormal) * (1 << (i / 4096)) as f32)
        .collect();
    let even: Vec<f32> = (0..8 * 4096).map(|_| rng.sample(StandardNormal)).collect();
    // Half a bit per value above the 2-bit floor every chunk gets, to spend by energy.
    let hbits: CompressConfig = "hbits:bits=2.5".parse().unwrap();
    for (name, values) in [("spread", &spread), ("even", &even)] {
        let (fixed, allocated) = (
            relative_error(values, Codec::HInt2),
            relative_error_under(values, &hbits),
        );
        eprintln!("{name}: hint2 {fixed:.4}, hbits {allocated:.4}");
        assert!(
            allocated <= fixed * 1.02,
            "{name}: {allocated} against {fixed}"
        );
    }
    // Spread chunks: the half bit per value goes to the loudest chunks (the two loudest hold
    // 94 % of the energy), two more bits each cut their error tenfold.
    let (fixed, allocated) = (
        relative_error(&spread, Codec::HInt2),
        relative_error_under(&spread, &hbits),
    );
    assert!(allocated < fixed / 4.0, "{allocated} against {fixed}");
}
