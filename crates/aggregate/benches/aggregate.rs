//! Times every aggregation rule on 16 vectors of 10M `f32` and prints ms and GB/s of input.
//!
//! Run with `RAYON_NUM_THREADS=2 cargo bench -p neuroshard-aggregate`. `AGG_BENCH_LEN` (values
//! per vector, default 10 000 000), `AGG_BENCH_N` (vectors, default 16) and `AGG_BENCH_REPS`
//! (timed runs per rule, best kept, default 3) change the setup; `AGG_BENCH_RULES` (names,
//! comma-separated) times only those rules.

use std::time::Instant;

use neuroshard_aggregate::{Rule, RuleKind, aggregate};
use rayon::prelude::*;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cheap, deterministic value in [-1, 1) for (vector, coordinate): splitmix64 of the pair.
fn noise(seed: u64, i: usize) -> f32 {
    let mut z =
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// n − f honest vectors (a shared signal plus noise) and f attackers (the signal × −100).
fn inputs(n: usize, f: usize, len: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|r| {
            let mut v = vec![0.0f32; len];
            v.par_iter_mut().enumerate().for_each(|(i, x)| {
                let signal = noise(0, i);
                *x = if r < n - f {
                    signal + 0.1 * noise(r as u64 + 1, i)
                } else {
                    -100.0 * signal
                };
            });
            v
        })
        .collect()
}

/// CPU seconds this process has used (user + system), from `/proc/self/stat`; `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every mainstream configuration.
    Some(ticks as f64 / 100.0)
}

/// Best wall time of `reps` runs, and the CPU time of that run (a load-independent figure on a
/// shared machine).
#[allow(clippy::disallowed_methods)] // A benchmark reads the clock; the library never does.
fn time_best(reps: usize, mut run: impl FnMut() -> Vec<f32>) -> (f64, Option<f64>) {
    (0..reps)
        .map(|_| {
            let cpu = cpu_seconds();
            let start = Instant::now();
            std::hint::black_box(run());
            let wall = start.elapsed().as_secs_f64();
            (wall, cpu.zip(cpu_seconds()).map(|(a, b)| b - a))
        })
        .fold((f64::INFINITY, None), |best, run| {
            if run.0 < best.0 { run } else { best }
        })
}

fn main() {
    let len = env_or("AGG_BENCH_LEN", 10_000_000);
    let n = env_or("AGG_BENCH_N", 16);
    let reps = env_or("AGG_BENCH_REPS", 3);
    let f = RuleKind::Bulyan.max_attackers(n).unwrap_or(0);
    let vectors = inputs(n, f, len);
    let gb = (n * len * size_of::<f32>()) as f64 / 1e9;
    println!(
        "{n} vectors × {len} f32 ({gb:.2} GB), f = {f}, {} rayon threads, best of {reps}",
        rayon::current_num_threads()
    );
    println!("{:<14} {:>10} {:>8} {:>10}", "rule", "ms", "GB/s", "cpu ms");
    let only = std::env::var("AGG_BENCH_RULES").ok();
    let wanted = |kind: &RuleKind| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|r| r.trim() == kind.name()))
    };
    for kind in RuleKind::ALL.iter().copied().filter(wanted) {
        let rule = Rule::for_attackers(kind, n, f).expect("f is within every rule's tolerance");
        let (secs, cpu) = time_best(reps, || aggregate(&rule, &vectors).expect("valid input"));
        let cpu = cpu.map_or("-".to_owned(), |c| format!("{:.0}", c * 1e3));
        println!(
            "{:<14} {:>10.1} {:>8.2} {cpu:>10}",
            kind.name(),
            secs * 1e3,
            gb / secs
        );
    }
}
