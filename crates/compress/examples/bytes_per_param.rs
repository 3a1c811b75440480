//! Prints bytes per parameter, relative L2 error and speed of every codec on a Gaussian vector.
//!
//! `cargo run -p neuroshard-compress --example bytes_per_param --release [-- N [CONFIG_SUFFIX]]`,
//! for example `-- 1000000 :chunk=4096,k=0.01` (the defaults).

use std::time::{Duration, Instant};

use neuroshard_compress::{Codec, CompressConfig, Residual, decode, encode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Runs `f` `reps` times and returns the last result and the fastest time.
#[allow(clippy::disallowed_methods)] // A benchmark reads the clock; the codecs do not.
fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (T, Duration) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..reps {
        let start = Instant::now();
        out = Some(f());
        best = best.min(start.elapsed());
    }
    (out.expect("at least one repetition"), best)
}

fn relative_l2(x: &[f32], y: &[f32]) -> f64 {
    let err: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let norm: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (err / norm).sqrt()
}

/// Repetitions per timing (the fastest counts: the machine may be shared).
const REPS: usize = 20;
/// Rounds of error feedback for the second error column.
const ROUNDS: u64 = 10;

/// `‖Σ decoded − Σ Δ‖ / ‖Σ Δ‖` over [`ROUNDS`] independent Δs on one residual, which is
/// `‖final residual‖ / ‖Σ Δ‖`: what feedback has not yet delivered.
fn feedback_error(
    cfg: &CompressConfig,
    gaussian: impl Fn(u64) -> Vec<f32>,
) -> Result<f64, neuroshard_compress::Error> {
    let mut residual = Residual::new();
    let mut total = Vec::new();
    for round in 1..=ROUNDS {
        let delta = gaussian(round);
        encode(&delta, &mut residual, cfg)?;
        total.resize(delta.len(), 0.0f64);
        total
            .iter_mut()
            .zip(&delta)
            .for_each(|(t, d)| *t += f64::from(*d));
    }
    let norm = total.iter().map(|t| t * t).sum::<f64>().sqrt();
    Ok(residual.norm() / norm)
}

fn main() -> Result<(), neuroshard_compress::Error> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let suffix = args.get(2).map_or(":chunk=4096,k=0.01", String::as_str);
    let gaussian = |seed| -> Vec<f32> {
        let normal = Normal::new(0.0f32, 1.0).expect("unit normal");
        normal
            .sample_iter(ChaCha8Rng::seed_from_u64(seed))
            .take(n)
            .collect()
    };
    let delta = gaussian(0);
    let threads = rayon::current_num_threads();
    println!("{n} Gaussian values, {threads} rayon threads, best of {REPS} runs.");
    println!("Errors: one round without feedback; the sum of {ROUNDS} rounds with feedback.");
    println!(
        "| codec | bytes/param | vs f32 | rel. L2 error | {ROUNDS}-round error | encode GB/s | decode GB/s |"
    );
    println!("|---|---|---|---|---|---|---|");
    let gb = (4 * n) as f64 / 1e9;
    for codec in Codec::ALL {
        let cfg: CompressConfig = format!("{codec}{suffix}").parse()?;
        let (packet, t_enc) = timed(REPS, || encode(&delta, &mut Residual::new(), &cfg));
        let packet = packet?;
        let (decoded, t_dec) = timed(REPS, || decode(packet.as_bytes(), n));
        let decoded = decoded?;
        let bpp = packet.byte_len() as f64 / n as f64;
        println!(
            "| {codec} | {bpp:.4} | {:.0}× | {:.4} | {:.4} | {:.2} | {:.2} |",
            4.0 / bpp,
            relative_l2(&delta, &decoded),
            feedback_error(&cfg, gaussian)?,
            gb / t_enc.as_secs_f64(),
            gb / t_dec.as_secs_f64(),
        );
    }
    Ok(())
}
