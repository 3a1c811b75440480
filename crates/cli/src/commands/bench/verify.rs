//! `neuroshard bench verify`: how far honest replays land from the chains they check when the
//! replay runs on another thread count or on the composite kernels, and what a replay costs
//! against the training it checks: the figures `Tolerance` and the audit rate are set from.
//!
//! One process plays both machines: it trains `--jobs` chains (each from the last one's end,
//! as rounds follow each other) with `--train-threads` on the fused kernels, and replays every
//! segment of each with `--replay-threads` on `--replay-kernels`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_kernels::{KernelPath, set_kernel_path};
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_node::{
    Assignments, CheckpointStore, MemoryCheckpoints, ModelVerifier, ModelWorker, Purpose,
    ReplayJob, TrainingJob, TrainingResult, Verifier, Worker,
};
use neuroshard_primitives::{Hash, NodeId};
use neuroshard_train::{AdamWConfig, InMemorySource, InnerConfig, InnerLoop, LrSchedule};
use neuroshard_verify::{
    Chain, Claim, Commitment, Opening, Segments, Tail, Tolerance, judge, residual_hash,
};
use serde::Serialize;

/// What to train and how to replay it.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Model preset: nano, tiny, small or base.
    #[arg(long, default_value = "nano")]
    preset: String,
    /// Vocabulary of the synthetic Markov corpus.
    #[arg(long, default_value_t = 512)]
    vocab: usize,
    /// Sequences per inner step.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 64)]
    seq: usize,
    /// Training jobs (rounds) to train and check.
    #[arg(long, default_value_t = 25)]
    jobs: u64,
    /// Inner steps H per job.
    #[arg(long, default_value_t = 80)]
    steps: u64,
    /// Segments per job (every one is replayed).
    #[arg(long, default_value_t = 40)]
    segments: u64,
    /// Threads the training uses.
    #[arg(long, default_value_t = 2)]
    train_threads: usize,
    /// Threads the replays use.
    #[arg(long, default_value_t = 1)]
    replay_threads: usize,
    /// Kernels the replays use: fused or composite (training always uses the fused ones).
    #[arg(long, default_value = "composite")]
    replay_kernels: String,
    /// Seed for the weights and the corpus.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// What the replays found.
#[derive(Debug, Serialize)]
struct Report {
    preset: String,
    params: usize,
    train_threads: usize,
    replay_threads: usize,
    replay_kernels: String,
    verifications: usize,
    failed: usize,
    bit_identical: usize,
    distance_max: f32,
    distance_p99: f32,
    distance_median: f32,
    loss_diff_max: f32,
    tolerance_state: f32,
    tolerance_loss: f32,
    train_ms_per_job: f64,
    replay_ms_per_segment: f64,
    replay_cost_per_audit: f64,
}

/// Every node's batches are the one corpus here.
struct Same(InMemorySource);

impl Assignments for Same {
    type Source = InMemorySource;

    fn source(&self, _node: NodeId) -> neuroshard_node::Result<InMemorySource> {
        Ok(self.0.clone())
    }
}

pub(crate) fn run(args: &VerifyArgs) -> Result<()> {
    let kernels = match args.replay_kernels.as_str() {
        "fused" => KernelPath::Fused,
        "composite" => KernelPath::Composite,
        other => anyhow::bail!("--replay-kernels {other}: use fused or composite"),
    };
    let mut model = Config::preset(&args.preset, args.vocab)?;
    model.seq_len = args.seq;
    let total = args.jobs * args.steps;
    let inner = InnerConfig {
        batch_size: args.batch,
        seq_len: args.seq,
        adamw: AdamWConfig::NEUROSHARD,
        schedule: LrSchedule::new(total / 10, total, 3e-3, 3e-4)?,
        clip_norm: 1.0,
        dp: None,
    };
    let corpus = neuroshard_sim::markov_corpus(args.vocab, 400_000, args.seed);
    let data = InMemorySource::new(corpus, args.seed);
    let fresh = || -> Result<InnerLoop> {
        Ok(InnerLoop::new(
            NeuroLlm::new(&model, args.seed, &Device::Cpu)?,
            inner,
        )?)
    };
    let store = MemoryCheckpoints::default();
    let mut worker = ModelWorker::new(fresh()?, data.clone(), store.clone());
    let mut verifier = ModelVerifier::new(fresh()?, Same(data), Vec::new(), 0.7);
    let plan = Segments::new(args.steps, args.segments)?;
    let pool = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .context("building a thread pool")
    };
    let (train_pool, replay_pool) = (pool(args.train_threads)?, pool(args.replay_threads)?);
    let mut params = NeuroLlm::new(&model, args.seed, &Device::Cpu)?.flat_params()?;
    let (mut distances, mut loss_diff, mut failed) = (Vec::new(), 0.0_f32, 0);
    let (mut train_time, mut replay_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..args.jobs {
        let job = TrainingJob {
            round,
            steps: args.steps as usize,
            start: Hash::of_f32(&params),
            chain: Some(plan),
        };
        threads(args.train_threads, KernelPath::Fused);
        #[allow(clippy::disallowed_methods)] // timing is what a benchmark is for
        let started = Instant::now();
        let result = train_pool.install(|| worker.train(&job, &params))?;
        train_time += started.elapsed();
        threads(args.replay_threads, kernels);
        for segment in 0..plan.count() {
            let opened = open(&result, &store, &params, plan, segment)?.check(&Claim {
                commitment: &commitment(&result.chain, plan),
                base: &job.start,
                first_step: round * args.steps,
                n_params: params.len(),
            })?;
            let replay = ReplayJob {
                round,
                contributor: NodeId([0; 32]),
                opened,
                purpose: Purpose::Audit { usefulness: None },
            };
            #[allow(clippy::disallowed_methods)] // timing is what a benchmark is for
            let started = Instant::now();
            let replayed = replay_pool.install(|| verifier.replay(&replay))?;
            replay_time += started.elapsed();
            let opened = &replay.opened;
            for (c, r) in opened.losses.iter().zip(&replayed.losses) {
                loss_diff = loss_diff.max((c - r).abs() / r.abs().max(1.0));
            }
            match judge(opened, &replayed.end, &replayed.losses, &Tolerance::DEFAULT) {
                Ok(distance) => distances.push(distance),
                Err(fault) => {
                    failed += 1;
                    eprintln!("job {round} segment {segment}: {fault}");
                }
            }
        }
        params = params
            .iter()
            .zip(&result.delta)
            .map(|(p, d)| p - d)
            .collect();
        eprintln!(
            "job {} of {} checked: {failed} failed so far",
            round + 1,
            args.jobs
        );
    }
    threads(args.train_threads, KernelPath::Fused);
    let report = summarise(
        args,
        model.n_params(),
        distances,
        failed,
        loss_diff,
        (train_time, replay_time),
    );
    print(&report, args.json)
}

/// Sets the thread count candle reads per matrix product, and the kernel path, for the phase
/// about to run (the rayon pool is the phase's own).
fn threads(n: usize, kernels: KernelPath) {
    // SAFETY: between phases no other thread of this process runs or reads the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    set_kernel_path(kernels);
}

/// The commitment a job's chain gives (no residual: the bench encodes nothing).
fn commitment(chain: &Chain, segments: Segments) -> Commitment {
    Commitment {
        segments,
        root: chain.root(),
        residual_before: residual_hash(&[]),
        residual_after: residual_hash(&[]),
    }
}

/// The opening a contributor would serve for `segment` of `result`'s chain.
fn open(
    result: &TrainingResult,
    store: &MemoryCheckpoints,
    base: &[f32],
    plan: Segments,
    segment: u64,
) -> Result<Opening> {
    let read = |i| {
        store
            .get(result.round, i)
            .context("a checkpoint the worker kept")
    };
    let leaf = |i| result.chain.open(i).context("a leaf of the chain");
    let last = segment + 1 == plan.count();
    Ok(Opening {
        segment,
        start: read(segment)?,
        end: read(segment + 1)?,
        start_leaf: leaf(segment)?,
        end_leaf: leaf(segment + 1)?,
        tail: last.then(|| Tail {
            base: base.iter().flat_map(|x| x.to_le_bytes()).collect(),
            residual: Vec::new(),
        }),
        work: Vec::new(),
    })
}

fn summarise(
    args: &VerifyArgs,
    params: usize,
    mut distances: Vec<f32>,
    failed: usize,
    loss_diff: f32,
    (train, replay): (Duration, Duration),
) -> Report {
    distances.sort_by(f32::total_cmp);
    let at = |q: f64| {
        distances
            .get(((distances.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let verifications = distances.len() + failed;
    let train_ms_per_job = train.as_secs_f64() * 1e3 / args.jobs.max(1) as f64;
    let replay_ms_per_segment = replay.as_secs_f64() * 1e3 / verifications.max(1) as f64;
    Report {
        preset: args.preset.clone(),
        params,
        train_threads: args.train_threads,
        replay_threads: args.replay_threads,
        replay_kernels: args.replay_kernels.clone(),
        verifications,
        failed,
        bit_identical: distances.iter().filter(|d| **d == 0.0).count(),
        distance_max: distances.last().copied().unwrap_or(0.0),
        distance_p99: at(0.99),
        distance_median: at(0.5),
        loss_diff_max: loss_diff,
        tolerance_state: Tolerance::DEFAULT.state,
        tolerance_loss: Tolerance::DEFAULT.loss,
        train_ms_per_job,
        replay_ms_per_segment,
        replay_cost_per_audit: replay_ms_per_segment / train_ms_per_job.max(f64::MIN_POSITIVE),
    }
}

fn print(r: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    println!(
        "{} ({} parameters): trained on {} threads (fused), replayed on {} threads ({})",
        r.preset, r.params, r.train_threads, r.replay_threads, r.replay_kernels
    );
    println!(
        "{} honest verifications, {} failed, {} bit-identical",
        r.verifications, r.failed, r.bit_identical
    );
    println!(
        "state distance: median {:.2e}, p99 {:.2e}, max {:.2e} (tolerance {:.0e}); loss difference max {:.2e} (tolerance {:.0e})",
        r.distance_median,
        r.distance_p99,
        r.distance_max,
        r.tolerance_state,
        r.loss_diff_max,
        r.tolerance_loss
    );
    println!(
        "training {:.1} ms per job, replay {:.1} ms per segment: one audit costs {:.2} % of a job",
        r.train_ms_per_job,
        r.replay_ms_per_segment,
        100.0 * r.replay_cost_per_audit
    );
    Ok(())
}
