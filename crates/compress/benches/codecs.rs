//! Times encoding and decoding of one Gaussian vector under several codecs and prints ms, values
//! per second, bytes and the share of the energy each leaves as error.
//!
//! Run with `RAYON_NUM_THREADS=1 cargo bench -p neuroshard-compress` for single-core figures.
//! `COMPRESS_BENCH_LEN` (values, default 4 194 304), `COMPRESS_BENCH_REPS` (timed runs, best
//! kept, default 3) and `COMPRESS_BENCH_CODECS` (codec strings separated by spaces, default
//! `int4 hent:bits=2.1 htcq:bits=2.1`) change the setup.

use std::time::{Duration, Instant};

use neuroshard_compress::{CompressConfig, Residual, decode, encode};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// The best wall time of `reps` runs of `f`, and its last result.
#[allow(clippy::disallowed_methods)] // A benchmark reads the clock; the library never does.
fn best_of<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..reps {
        let start = Instant::now();
        out = Some(f());
        best = best.min(start.elapsed());
    }
    (best, out.expect("at least one run"))
}

fn main() {
    let env = |name: &str| std::env::var(name).ok();
    let len: usize = env("COMPRESS_BENCH_LEN").map_or(1 << 22, |v| v.parse().expect("a length"));
    let reps: usize = env("COMPRESS_BENCH_REPS").map_or(3, |v| v.parse().expect("a count"));
    let codecs =
        env("COMPRESS_BENCH_CODECS").unwrap_or_else(|| "int4 hent:bits=2.1 htcq:bits=2.1".into());
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let values: Vec<f32> = (0..len).map(|_| rng.sample(StandardNormal)).collect();
    let energy: f64 = values.iter().map(|&v| f64::from(v).powi(2)).sum();
    println!(
        "{len} Gaussian values, best of {reps}, {} threads",
        rayon::current_num_threads()
    );
    for codec in codecs.split_whitespace() {
        let cfg: CompressConfig = codec.parse().expect("a codec string");
        let (enc, packet) = best_of(reps, || {
            encode(&values, &mut Residual::new(), &cfg).expect("finite values")
        });
        let (dec, decoded) = best_of(reps, || {
            decode(packet.as_bytes(), len).expect("its own packet")
        });
        let lost: f64 = values
            .iter()
            .zip(&decoded)
            .map(|(&v, &w)| f64::from(v - w).powi(2))
            .sum();
        let per_s = |d: Duration| len as f64 / d.as_secs_f64() / 1e6;
        println!(
            "{codec:<16} encode {:>8.1} ms ({:>6.1} M values/s)  decode {:>7.1} ms ({:>6.1} M values/s)  {:>9} bytes ({:.3} bits per value)  error {:.4}",
            enc.as_secs_f64() * 1e3,
            per_s(enc),
            dec.as_secs_f64() * 1e3,
            per_s(dec),
            packet.byte_len(),
            8.0 * packet.byte_len() as f64 / len as f64,
            lost / energy,
        );
    }
}
