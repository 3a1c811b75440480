//! `neuroshard bench grow`: trains a shallow model on the genesis data, grows it by
//! [`NeuroLlm::grown`] part-way, trains on, and sets it beside a model of the final depth
//! trained from scratch on the same batches and schedule: the validation loss right before and
//! right after growth, and the compute each run needs to reach the same loss.
//!
//! Compute is counted as `6 × (layer parameters + head) + 6 × layers × seq × d_model` FLOPs per
//! trained token: the matrix products forward and backward, and causal attention's scores and
//! mixing (the embedding is a lookup).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_data::{GenesisDir, TrainBatches};
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_primitives::{Batch, BatchSource};
use neuroshard_train::{AdamW, InnerConfig, InnerLoop, LossEstimate, LrSchedule, loss_estimate};
use serde::Serialize;

/// What to train, when to grow, and how to measure.
#[derive(Debug, clap::Args)]
pub(crate) struct GrowArgs {
    /// A built genesis directory (its training and validation shards are read, never written).
    #[arg(long)]
    genesis: PathBuf,
    /// Model preset whose widths both runs use: nano, tiny, small or base.
    #[arg(long, default_value = "nano")]
    preset: String,
    /// Layers before growth.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    /// Layers after growth, and of the model trained from scratch.
    #[arg(long, default_value_t = 4)]
    grown_layers: usize,
    /// Steps trained before growing.
    #[arg(long, default_value_t = 300)]
    grow_at: u64,
    /// Steps in each run (one cosine schedule over all of them).
    #[arg(long, default_value_t = 900)]
    steps: u64,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate (warm-up a tenth of --steps, at most 100; floor a tenth of the peak).
    #[arg(long, default_value_t = 2e-3)]
    lr: f32,
    /// Steps between validation losses.
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// Validation batches averaged per evaluation.
    #[arg(long, default_value_t = 16)]
    eval_batches: u64,
    /// Seed of the weights (and of the new layers) and of the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One validation point of a run.
#[derive(Debug, Clone, Copy, Serialize)]
struct Point {
    step: u64,
    flops: f64,
    loss: f32,
    stderr: f32,
}

/// Both runs and the figures drawn from them.
#[derive(Debug, Serialize)]
struct Report {
    preset: String,
    layers: usize,
    grown_layers: usize,
    grow_at: u64,
    steps: u64,
    tokens_per_step: u64,
    loss_before_growth: f32,
    loss_after_growth: f32,
    growth_change_percent: f32,
    grown: Vec<Point>,
    scratch: Vec<Point>,
    grown_seconds: f64,
    scratch_seconds: f64,
}

/// The data and settings both runs share.
struct Setup<'a> {
    args: &'a GrowArgs,
    inner: InnerConfig,
    train: &'a TrainBatches,
    val: Vec<Batch>,
}

pub(crate) fn run(args: &GrowArgs) -> Result<()> {
    anyhow::ensure!(
        args.layers >= 1 && args.grown_layers > args.layers && args.grow_at < args.steps,
        "need 1 <= --layers < --grown-layers and --grow-at < --steps"
    );
    super::super::set_threads(args.threads)?;
    let genesis = GenesisDir::open(&args.genesis)
        .with_context(|| format!("opening the genesis {}", args.genesis.display()))?;
    let base = Config::preset(&args.preset, genesis.tokenizer().vocab_size())?;
    let seq = base.seq_len;
    let train = genesis
        .train_batches(None, args.seed)
        .context("opening the training shards")?;
    let val_source = genesis
        .validation_batches()
        .context("opening the validation shards")?;
    let val = (0..args.eval_batches)
        .map(|i| val_source.batch(i, args.batch, seq))
        .collect::<std::result::Result<Vec<_>, _>>()
        .context("reading validation batches")?;
    let warmup = (args.steps / 10).min(100);
    let inner = InnerConfig {
        batch_size: args.batch,
        seq_len: seq,
        adamw: neuroshard_train::AdamWConfig::NEUROSHARD,
        schedule: LrSchedule::new(warmup, args.steps, args.lr, args.lr / 10.0)?,
        clip_norm: 1.0,
        dp: None,
    };
    let setup = Setup {
        args,
        inner,
        train: &train,
        val,
    };
    let at = |n_layers| Config {
        n_layers,
        ..base.clone()
    };
    let report = measure(&setup, &at(args.layers), &at(args.grown_layers))?;
    print(&report, args.json)
}

fn measure(setup: &Setup<'_>, small: &Config, big: &Config) -> Result<Report> {
    let args = setup.args;
    #[allow(clippy::disallowed_methods)] // timing is what a benchmark is for
    let start = Instant::now();
    let mut grown = Vec::new();
    let model = NeuroLlm::new(small, args.seed, &Device::Cpu)?;
    let mut inner = InnerLoop::new(model, setup.inner)?;
    train_span(setup, &mut inner, 0..args.grow_at, 0.0, &mut grown)?;
    let before = loss_estimate(inner.model(), &setup.val)?;
    let mut inner = grow(inner, big.n_layers, args.seed)?;
    let after = loss_estimate(inner.model(), &setup.val)?;
    let flops = grown.last().map_or(0.0, |p| p.flops);
    grown.push(point(args.grow_at, flops, after));
    train_span(
        setup,
        &mut inner,
        args.grow_at..args.steps,
        flops,
        &mut grown,
    )?;
    let grown_seconds = start.elapsed().as_secs_f64();

    #[allow(clippy::disallowed_methods)] // timing is what a benchmark is for
    let start = Instant::now();
    let mut scratch = Vec::new();
    let mut inner = InnerLoop::new(NeuroLlm::new(big, args.seed, &Device::Cpu)?, setup.inner)?;
    train_span(setup, &mut inner, 0..args.steps, 0.0, &mut scratch)?;
    Ok(Report {
        preset: args.preset.clone(),
        layers: small.n_layers,
        grown_layers: big.n_layers,
        grow_at: args.grow_at,
        steps: args.steps,
        tokens_per_step: setup.inner.tokens_per_step(),
        loss_before_growth: before.mean,
        loss_after_growth: after.mean,
        growth_change_percent: 100.0 * (after.mean - before.mean) / before.mean,
        grown,
        scratch,
        grown_seconds,
        scratch_seconds: start.elapsed().as_secs_f64(),
    })
}

/// The inner loop on the grown model, the AdamW moments of the old parameters carried over
/// and the new layers' started at zero.
fn grow(inner: InnerLoop, n_layers: usize, seed: u64) -> Result<InnerLoop> {
    let old = inner.model();
    let model = old.grown(n_layers, seed)?;
    let adamw = inner.optimizer();
    let optimizer = AdamW::from_state(
        *adamw.config(),
        model.carry_from(old, adamw.m())?,
        model.carry_from(old, adamw.v())?,
        adamw.steps(),
    )?;
    Ok(InnerLoop::from_parts(model, optimizer, *inner.config())?)
}

/// Trains `steps`, adding compute from `flops` on, with a validation point every
/// `--eval-every` steps and at the span's end.
fn train_span(
    setup: &Setup<'_>,
    inner: &mut InnerLoop,
    steps: std::ops::Range<u64>,
    mut flops: f64,
    points: &mut Vec<Point>,
) -> Result<()> {
    let cfg = inner.model().config().clone();
    let per_step = flops_per_token(&cfg) * setup.inner.tokens_per_step() as f64;
    let end = steps.end;
    for step in steps {
        let batch = setup
            .train
            .batch(step, setup.inner.batch_size, setup.inner.seq_len)?;
        inner.step_on(&batch, step)?;
        flops += per_step;
        if (step + 1) % setup.args.eval_every == 0 || step + 1 == end {
            let estimate = loss_estimate(inner.model(), &setup.val)?;
            points.push(point(step + 1, flops, estimate));
        }
    }
    Ok(())
}

fn point(step: u64, flops: f64, estimate: LossEstimate) -> Point {
    Point {
        step,
        flops,
        loss: estimate.mean,
        stderr: estimate.stderr,
    }
}

/// Training FLOPs per token (module docs).
fn flops_per_token(cfg: &Config) -> f64 {
    let matmul = cfg.n_layers * cfg.n_layer_params() + cfg.n_embed_params();
    let attention = cfg.n_layers * cfg.seq_len * cfg.d_model;
    6.0 * (matmul + attention) as f64
}

/// The compute at which `run` first reaches `target`, linearly interpolated between the
/// validation points around the crossing.
fn flops_to(run: &[Point], target: f32) -> Option<f64> {
    let i = run.iter().position(|p| p.loss <= target)?;
    let Some(prev) = i.checked_sub(1).map(|j| run[j]) else {
        return Some(run[i].flops);
    };
    // prev.loss > target >= run[i].loss, so the denominator is positive.
    let f = f64::from((prev.loss - target) / (prev.loss - run[i].loss));
    Some(prev.flops + f * (run[i].flops - prev.flops))
}

fn print(r: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    println!(
        "{} with {} -> {} layers at step {} of {} ({} tokens/step)",
        r.preset, r.layers, r.grown_layers, r.grow_at, r.steps, r.tokens_per_step
    );
    println!(
        "validation loss right before growth {:.5}, right after {:.5} ({:+.4} %)",
        r.loss_before_growth, r.loss_after_growth, r.growth_change_percent
    );
    println!(" step  grown loss      GFLOP | scratch loss    GFLOP");
    for s in &r.scratch {
        // The grown run's last point at this step: after growth where it has two.
        let g = r
            .grown
            .iter()
            .rfind(|g| g.step == s.step)
            .context("runs evaluate together")?;
        println!(
            "{:>5} {:.4}±{:.4} {:>7.1} | {:.4}±{:.4} {:>7.1}",
            s.step,
            g.loss,
            g.stderr,
            g.flops / 1e9,
            s.loss,
            s.stderr,
            s.flops / 1e9
        );
    }
    for (name, target) in [("grown", r.grown.last()), ("scratch", r.scratch.last())] {
        let target = target.context("a run has no points")?.loss;
        let (g, s) = (flops_to(&r.grown, target), flops_to(&r.scratch, target));
        println!(
            "to the {name} run's final loss {target:.4}: grown {}, scratch {}",
            gflop(g),
            gflop(s)
        );
    }
    println!(
        "wall time: grown {:.0} s, scratch {:.0} s",
        r.grown_seconds, r.scratch_seconds
    );
    Ok(())
}

fn gflop(flops: Option<f64>) -> String {
    flops.map_or("never".into(), |f| format!("{:.1} GFLOP", f / 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_to_a_loss_is_interpolated_between_points() {
        let p = |step, flops, loss| Point {
            step,
            flops,
            loss,
            stderr: 0.0,
        };
        let run = [p(1, 10.0, 6.0), p(2, 20.0, 5.0), p(3, 30.0, 4.0)];
        assert_eq!(flops_to(&run, 6.5), Some(10.0));
        assert_eq!(flops_to(&run, 4.5), Some(25.0));
        assert_eq!(flops_to(&run, 4.0), Some(30.0));
        assert_eq!(flops_to(&run, 3.9), None);
    }
}
