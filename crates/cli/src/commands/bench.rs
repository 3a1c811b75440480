//! `neuroshard bench train`: times full training steps (forward, backward, clipping, AdamW) of a
//! preset on seeded random tokens (`neuroshard_daemon::time_steps`, which a node's start-up speed
//! measurement runs too); `bench/pytorch_train.py` runs the same measurement in PyTorch.
//! `neuroshard bench verify`: honest replays of training chains on other thread counts and
//! kernels (see `verify`).
//! `neuroshard bench grow`: growth part-way through training against the final depth from
//! scratch (see `grow`).
//! `neuroshard bench pipeline`: a model split over stage processes on loopback (see `pipeline`).

mod grow;
mod pipeline;
mod verify;

use std::time::Duration;

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_train::{AdamWConfig, InnerConfig, InnerLoop, LrSchedule};
use serde::Serialize;

/// Benchmarks.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Tokens per second of full training steps on random tokens.
    Train(TrainArgs),
    /// How far honest replays of training chains land from them on other thread counts and
    /// kernels, and what a replay costs.
    Verify(verify::VerifyArgs),
    /// Function-preserving growth on the genesis data: the loss right before and right after
    /// it, and compute to the same loss against the final depth trained from scratch.
    Grow(grow::GrowArgs),
    /// A model split over stages in separate processes on loopback (1F1B, frames over libp2p):
    /// busy shares, the bubble, frame bytes per token, tokens/s against one process.
    Pipeline(pipeline::PipelineArgs),
    /// One stage of `bench pipeline` (started by it).
    #[command(hide = true)]
    PipelineWorker(pipeline::worker::WorkerArgs),
}

#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Model preset: nano, tiny, small or base.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Sequences per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Timed steps (after the warm-up).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first, so allocator and caches settle.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Worker threads for the kernels and matrix products (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Vocabulary size.
    #[arg(long, default_value_t = neuroshard_model::DEFAULT_VOCAB_SIZE)]
    vocab: usize,
    /// Seed for the weights and the random tokens.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// What one benchmark run measured; the same keys as `bench/pytorch_train.py` prints.
#[derive(Debug, Serialize)]
struct Report {
    implementation: &'static str,
    preset: String,
    params: usize,
    batch: usize,
    seq: usize,
    threads: usize,
    steps: usize,
    tokens_per_sec: f64,
    step_ms_median: f64,
    step_ms_min: f64,
    peak_rss_mb: f64,
    loss_first: f32,
    loss_last: f32,
}

/// Runs the chosen benchmark.
pub(crate) fn run(args: Args) -> Result<()> {
    match args.what {
        What::Train(args) => train(&args),
        What::Verify(args) => verify::run(&args),
        What::Grow(args) => grow::run(&args),
        What::Pipeline(args) => pipeline::run(&args),
        What::PipelineWorker(args) => pipeline::worker::run(&args),
    }
}

fn train(args: &TrainArgs) -> Result<()> {
    anyhow::ensure!(
        args.steps > 0 && args.batch > 0 && args.seq > 0,
        "steps, batch and seq must be positive"
    );
    let threads = super::set_threads(args.threads)?;
    let cfg = Config::preset(&args.preset, args.vocab)?;
    let total = (args.warmup + args.steps) as u64;
    let inner = InnerConfig {
        batch_size: args.batch,
        seq_len: args.seq,
        adamw: AdamWConfig::NEUROSHARD,
        // A constant rate: the schedule's floor equals its peak and there is no warm-up.
        schedule: LrSchedule::new(0, total, 1e-3, 1e-3)?,
        clip_norm: 1.0,
        dp: None,
    };
    let mut replica = InnerLoop::new(NeuroLlm::new(&cfg, args.seed, &Device::Cpu)?, inner)?;
    let timed = neuroshard_daemon::time_steps(
        &mut replica,
        args.seed,
        args.warmup,
        args.steps,
        Duration::MAX,
    )?;
    let (times, losses): (Vec<Duration>, Vec<f32>) = timed.into_iter().unzip();
    let report = summarise(args, cfg.n_params(), threads, &times, &losses)?;
    print(&report, args.json)
}

fn summarise(
    args: &TrainArgs,
    params: usize,
    threads: usize,
    times: &[Duration],
    losses: &[f32],
) -> Result<Report> {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let total_s: f64 = ms.iter().sum::<f64>() / 1e3;
    Ok(Report {
        implementation: "neuroshard",
        preset: args.preset.clone(),
        params,
        batch: args.batch,
        seq: args.seq,
        threads,
        steps: args.steps,
        tokens_per_sec: (args.batch * args.seq * args.steps) as f64 / total_s,
        step_ms_median: median(&ms),
        step_ms_min: ms[0],
        peak_rss_mb: peak_rss_mb()?,
        loss_first: losses[0],
        loss_last: losses[losses.len() - 1],
    })
}

/// Median of sorted, non-empty values.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The process's peak resident memory (`VmHWM`), in MiB.
fn peak_rss_mb() -> Result<f64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM line in /proc/self/status")?;
    Ok(kib / 1024.0)
}

fn print(r: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "{} preset {} ({} params), batch {} x seq {}, {} threads, {} steps:\n  {:.0} tokens/s, step median {:.1} ms (min {:.1}), peak RSS {:.0} MiB, loss {:.3} -> {:.3}",
            r.implementation,
            r.preset,
            r.params,
            r.batch,
            r.seq,
            r.threads,
            r.steps,
            r.tokens_per_sec,
            r.step_ms_median,
            r.step_ms_min,
            r.peak_rss_mb,
            r.loss_first,
            r.loss_last
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[1.0, 2.0, 10.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 10.0]), 3.0);
    }

    #[test]
    fn peak_rss_is_readable() {
        assert!(peak_rss_mb().unwrap() > 0.0);
    }
}
