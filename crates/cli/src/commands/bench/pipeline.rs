//! `neuroshard bench pipeline`: a model split over stages in separate processes on loopback, each
//! running its 1F1B plan and exchanging activation and gradient frames over libp2p (`worker.rs`).
//! Reports each stage's busy share and the bubble, frame bytes per token, tokens/s against one
//! process holding the whole model on the same cores, and how far the pipeline's first-step
//! gradient lies from the whole model's. `--train-steps N` trains in one process instead
//! (`train.rs`), to measure what a frame precision costs in loss.

mod train;
pub(crate) mod worker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use candle_core::Device;
use neuroshard_data::GenesisDir;
use neuroshard_model::{Config, NeuroLlm, Stage, StageSpec};
use neuroshard_pipeline::{
    Costs, Layout, Plan, Precision, StageOutcome, even_split, split_at, whole_gradients,
};
use neuroshard_primitives::{Batch, BatchSource};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use worker::WorkerReport;

/// What every stage agrees on: the model, the split, the batches and the frames.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Shape {
    /// Model preset: nano, tiny, small or base.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Vocabulary size (with --genesis, the tokenizer's).
    #[arg(long, default_value_t = 256)]
    vocab: usize,
    /// Seed of the weights (and of the random tokens without --genesis).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Pipeline stages (one process each); the layers are split evenly unless --bounds says.
    #[arg(long, default_value_t = 3)]
    stages: usize,
    /// The layer index each stage but the last ends at, e.g. `2,4` for layers 0..2 / 2..4 / the
    /// head alone on a 4-layer model (default: as even as the layer count allows).
    #[arg(long, value_delimiter = ',')]
    bounds: Vec<usize>,
    /// Micro-batches per step.
    #[arg(long, default_value_t = 8)]
    micro_batches: u32,
    /// Sequences per step (a multiple of --micro-batches).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 64)]
    seq: usize,
    /// Steps.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Precision of the frames: f32, bf16 or f16.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Directory for the batches, the workers' reports and gradients, and their logs.
    #[arg(long)]
    dir: PathBuf,
}

/// Arguments of `neuroshard bench pipeline`.
#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArgs {
    #[command(flatten)]
    shape: Shape,
    /// Take the batches from this genesis directory's training shards (default: random tokens).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Rayon threads per stage process; the one-process baseline gets stages × this.
    #[arg(long, default_value_t = 1)]
    threads_per_stage: usize,
    /// Also time one process holding the whole model on the same batches.
    #[arg(long)]
    baseline: bool,
    /// Instead of the processes: train this many steps in one process (frames still encoded at
    /// --precision), and report the training and validation losses.
    #[arg(long)]
    train_steps: Option<u64>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

impl Shape {
    /// Each stage's layers, embedding and head.
    fn specs(&self, cfg: &Config) -> Result<Vec<StageSpec>> {
        if self.bounds.is_empty() {
            return Ok(even_split(cfg, self.stages)?);
        }
        ensure!(
            self.bounds.len() + 1 == self.stages,
            "--bounds needs one index fewer than --stages"
        );
        Ok(split_at(cfg, &self.bounds)?)
    }

    /// The stages built from the weights' seed.
    fn build_stages(&self, cfg: &Config) -> Result<Vec<Stage>> {
        self.specs(cfg)?
            .into_iter()
            .map(|spec| Ok(Stage::new(cfg, spec, self.seed, &Device::Cpu)?))
            .collect()
    }
}

/// What a run measured.
#[derive(Debug, Serialize)]
struct Report {
    preset: String,
    stages: usize,
    micro_batches: u32,
    batch: usize,
    seq: usize,
    steps: usize,
    precision: String,
    threads_per_stage: usize,
    /// Per stage: mean share of the step spent computing (steps after the first).
    busy_fraction: Vec<f64>,
    /// 1 − mean busy share over the stages.
    bubble_fraction: f64,
    /// The bubble 1F1B gives uniform stages: (S − 1) / (M + S − 1).
    bubble_uniform: f64,
    /// The bubble of the plan's timeline with each stage's measured forward and backward times
    /// and instant frames: what the stages' imbalance alone costs.
    bubble_predicted: f64,
    /// Frame bytes per predicted token across each stage boundary, forward and backward.
    bytes_per_token: [f64; 2],
    tokens_per_sec: f64,
    baseline_tokens_per_sec: Option<f64>,
    /// ‖g_pipeline − g_whole‖ / ‖g_whole‖ on the first step's batch (with --baseline).
    grad_rel_err: Option<f64>,
    loss: Vec<f32>,
}

pub(crate) fn run(args: &PipelineArgs) -> Result<()> {
    let mut shape = args.shape.clone();
    ensure!(
        shape.steps > 0 && shape.stages > 0 && args.threads_per_stage > 0,
        "steps, stages and threads must be positive"
    );
    ensure!(
        shape.batch.is_multiple_of(shape.micro_batches as usize),
        "--batch must be a multiple of --micro-batches"
    );
    let genesis = args
        .genesis
        .as_ref()
        .map(GenesisDir::open)
        .transpose()
        .context("opening the genesis")?;
    if let Some(genesis) = &genesis {
        shape.vocab = genesis.tokenizer().vocab_size();
    }
    std::fs::create_dir_all(&shape.dir)
        .with_context(|| format!("creating {}", shape.dir.display()))?;
    if let Some(steps) = args.train_steps {
        let genesis = genesis.context("--train-steps needs --genesis (its validation split)")?;
        return train::run(
            &shape,
            &genesis,
            steps,
            args.threads_per_stage * shape.stages,
            args.json,
        );
    }
    let batches = make_batches(&shape, genesis.as_ref())?;
    write_batches(&shape.dir, &batches)?;
    #[allow(clippy::disallowed_methods)] // a benchmark measures time
    let start = Instant::now();
    let reports = run_workers(&shape, args.threads_per_stage)?;
    let elapsed = start.elapsed().as_secs_f64();
    let mut report = summarise(&shape, args.threads_per_stage, &reports, elapsed)?;
    if args.baseline {
        super::super::set_threads(Some(args.threads_per_stage * shape.stages))?;
        let (tokens_per_sec, err) = baseline(&shape, &batches)?;
        report.baseline_tokens_per_sec = Some(tokens_per_sec);
        report.grad_rel_err = Some(err);
    }
    print(&report, args.json)
}

/// The step batches: the genesis training shards' first `steps` batches, or seeded random tokens.
fn make_batches(shape: &Shape, genesis: Option<&GenesisDir>) -> Result<Vec<Batch>> {
    match genesis {
        Some(genesis) => {
            let source = genesis
                .train_batches(None, shape.seed)
                .context("opening the training shards")?;
            (0..shape.steps as u64)
                .map(|i| {
                    source
                        .batch(i, shape.batch, shape.seq)
                        .context("reading a batch")
                })
                .collect()
        }
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(shape.seed);
            let n = shape.batch * (shape.seq + 1);
            Ok((0..shape.steps)
                .map(|_| {
                    let tokens = (0..n)
                        .map(|_| rng.random_range(0..shape.vocab as u32))
                        .collect();
                    Batch::new(tokens, shape.batch, shape.seq)
                })
                .collect())
        }
    }
}

fn write_batches(dir: &Path, batches: &[Batch]) -> Result<()> {
    let bytes: Vec<u8> = batches
        .iter()
        .flat_map(|b| &b.tokens)
        .flat_map(|t| t.to_le_bytes())
        .collect();
    std::fs::write(dir.join("batches.u32"), bytes).context("writing the batches")
}

/// The batches `write_batches` wrote for `shape`.
pub(super) fn read_batches(dir: &Path, shape: &Shape) -> Result<Vec<Batch>> {
    let bytes = std::fs::read(dir.join("batches.u32")).context("reading the batches")?;
    let per = shape.batch * (shape.seq + 1);
    ensure!(
        bytes.len() == 4 * per * shape.steps,
        "batches.u32 does not hold {} batches of {per} tokens",
        shape.steps
    );
    let tokens: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(tokens
        .chunks_exact(per)
        .map(|t| Batch::new(t.to_vec(), shape.batch, shape.seq))
        .collect())
}

/// Starts one worker per stage, the last first (each dials the next), and waits for them all.
fn run_workers(shape: &Shape, threads: usize) -> Result<Vec<WorkerReport>> {
    let exe = std::env::current_exe().context("finding the neuroshard executable")?;
    let mut children: Vec<Child> = Vec::new();
    let mut next: Option<String> = None;
    let started = (0..shape.stages).rev().try_for_each(|s| {
        let mut child = spawn_worker(&exe, shape, s, next.as_deref(), threads)?;
        let line = first_line(&mut child);
        children.push(child);
        next = Some(line.with_context(|| {
            format!(
                "stage {s} did not start; see {}",
                log_path(&shape.dir, s).display()
            )
        })?);
        anyhow::Ok(())
    });
    let mut failed = started.err();
    for (child, s) in children.iter_mut().zip((0..shape.stages).rev()) {
        match failed {
            Some(_) => drop(child.kill()),
            None => {
                let status = child.wait().context("waiting for a stage")?;
                if !status.success() {
                    failed = Some(anyhow::anyhow!(
                        "stage {s} failed ({status}); see {}",
                        log_path(&shape.dir, s).display()
                    ));
                }
            }
        }
    }
    if let Some(err) = failed {
        children.iter_mut().for_each(|c| drop(c.kill()));
        return Err(err);
    }
    (0..shape.stages)
        .map(|s| {
            let path = shape.dir.join(format!("stage-{s}.json"));
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok(serde_json::from_slice(&bytes)?)
        })
        .collect()
}

fn log_path(dir: &Path, s: usize) -> PathBuf {
    dir.join(format!("stage-{s}.log"))
}

fn spawn_worker(
    exe: &Path,
    shape: &Shape,
    s: usize,
    next: Option<&str>,
    threads: usize,
) -> Result<Child> {
    let log = std::fs::File::create(log_path(&shape.dir, s)).context("creating a stage log")?;
    let mut command = Command::new(exe);
    command
        .args(["bench", "pipeline-worker", "--stage", &s.to_string()])
        .args([
            "--preset",
            &shape.preset,
            "--vocab",
            &shape.vocab.to_string(),
            "--seed",
            &shape.seed.to_string(),
        ])
        .args([
            "--stages",
            &shape.stages.to_string(),
            "--micro-batches",
            &shape.micro_batches.to_string(),
        ])
        .args([
            "--batch",
            &shape.batch.to_string(),
            "--seq",
            &shape.seq.to_string(),
        ])
        .args([
            "--steps",
            &shape.steps.to_string(),
            "--precision",
            &shape.precision.to_string(),
        ])
        .arg("--dir")
        .arg(&shape.dir)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    if let Some(next) = next {
        command.args(["--next", next]);
    }
    if !shape.bounds.is_empty() {
        let bounds: Vec<String> = shape.bounds.iter().map(usize::to_string).collect();
        command.args(["--bounds", &bounds.join(",")]);
    }
    command.spawn().context("starting a pipeline stage")
}

/// The worker's address, from its first line `listening <addr>`.
fn first_line(child: &mut Child) -> Result<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    match line.trim().strip_prefix("listening ") {
        Some(addr) => Ok(addr.to_owned()),
        None => bail!("the stage printed {line:?} instead of its address"),
    }
}

/// The bubble of the 1F1B timeline with the measured mean forward and backward of each stage.
fn predicted_bubble(
    shape: &Shape,
    reports: &[WorkerReport],
    mean: &dyn Fn(&[f64]) -> f64,
) -> Result<f64> {
    let m = f64::from(shape.micro_batches);
    let micros = |seconds: f64| (seconds / m * 1e6).round() as u64;
    let costs = Costs {
        forward: reports.iter().map(|r| micros(mean(&r.forward_s))).collect(),
        backward: reports
            .iter()
            .map(|r| micros(mean(&r.busy_s) - mean(&r.forward_s)))
            .collect(),
    };
    let plan = Plan::one_f_one_b(shape.stages, shape.micro_batches)?;
    Ok(plan.timeline(&costs)?.bubble_fraction())
}

fn summarise(
    shape: &Shape,
    threads: usize,
    reports: &[WorkerReport],
    elapsed: f64,
) -> Result<Report> {
    // The first step includes connection set-up and allocator warm-up; skip it when there are more.
    let skip = usize::from(shape.steps > 1);
    let mean = |v: &[f64]| v[skip..].iter().sum::<f64>() / (v.len() - skip).max(1) as f64;
    let busy: Vec<f64> = reports
        .iter()
        .map(|r| mean(&r.busy_s) / mean(&r.wall_s).max(1e-12))
        .collect();
    let step_s = reports.iter().map(|r| mean(&r.wall_s)).fold(0.0, f64::max);
    let tokens = (shape.batch * shape.seq) as f64;
    let boundaries = (shape.stages - 1).max(1) as f64;
    let per_token = |lane: usize| {
        reports
            .iter()
            .map(|r| r.bytes_sent[lane] as f64)
            .sum::<f64>()
            / (tokens * shape.steps as f64 * boundaries)
    };
    let (s, m) = (shape.stages as f64, f64::from(shape.micro_batches));
    tracing::info!(elapsed_s = elapsed, "pipeline finished");
    Ok(Report {
        preset: shape.preset.clone(),
        stages: shape.stages,
        micro_batches: shape.micro_batches,
        batch: shape.batch,
        seq: shape.seq,
        steps: shape.steps,
        precision: shape.precision.to_string(),
        threads_per_stage: threads,
        bubble_fraction: 1.0 - busy.iter().sum::<f64>() / busy.len() as f64,
        busy_fraction: busy,
        bubble_uniform: (s - 1.0) / (m + s - 1.0),
        bubble_predicted: predicted_bubble(shape, reports, &mean)?,
        bytes_per_token: [per_token(0), per_token(1)],
        tokens_per_sec: tokens / step_s.max(1e-12),
        baseline_tokens_per_sec: None,
        grad_rel_err: None,
        loss: reports.last().map(|r| r.loss.clone()).unwrap_or_default(),
    })
}

/// One process holding the whole model: tokens/s of the same gradient computations, and the
/// distance of the pipeline's first-step gradient (the workers' files) from the whole model's.
fn baseline(shape: &Shape, batches: &[Batch]) -> Result<(f64, f64)> {
    let cfg = Config::preset(&shape.preset, shape.vocab)?;
    let model = NeuroLlm::new(&cfg, shape.seed, &Device::Cpu)?;
    let mut times = Vec::new();
    let mut first = None;
    for batch in batches {
        #[allow(clippy::disallowed_methods)] // a benchmark measures time
        let start = Instant::now();
        let (_, grads) = model.loss_and_grads(batch)?;
        times.push(start.elapsed().as_secs_f64());
        first.get_or_insert(grads);
    }
    let skip = usize::from(times.len() > 1);
    let step_s = times[skip..].iter().sum::<f64>() / (times.len() - skip) as f64;
    let whole = first.context("no batches")?;
    let got = pipeline_gradient(shape, &cfg, &model)?;
    Ok((
        (shape.batch * shape.seq) as f64 / step_s,
        neuroshard_pipeline::relative_error(&got, &whole),
    ))
}

/// The workers' first-step gradients, assembled in the whole model's canonical order.
fn pipeline_gradient(shape: &Shape, cfg: &Config, model: &NeuroLlm) -> Result<Vec<f32>> {
    let stages = shape.build_stages(cfg)?;
    let outcomes = (0..shape.stages)
        .map(|s| {
            let bytes = std::fs::read(shape.dir.join(format!("stage-{s}.grads")))?;
            let grads = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Ok(StageOutcome {
                grads,
                loss: None,
                traffic: Vec::new(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(whole_gradients(
        &Layout::new(&model.param_shapes()),
        &stages,
        &outcomes,
    )?)
}

fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let busy: Vec<String> = report
        .busy_fraction
        .iter()
        .map(|b| format!("{:.0} %", 100.0 * b))
        .collect();
    println!(
        "{} stages × {} micro-batches, {} frames: busy {} · bubble {:.1} % (these stage times with instant frames {:.1} %, uniform stages {:.1} %)",
        report.stages,
        report.micro_batches,
        report.precision,
        busy.join(" / "),
        100.0 * report.bubble_fraction,
        100.0 * report.bubble_predicted,
        100.0 * report.bubble_uniform
    );
    println!(
        "frames: {:.0} B/token forward, {:.0} B/token backward per boundary · {:.0} tokens/s",
        report.bytes_per_token[0], report.bytes_per_token[1], report.tokens_per_sec
    );
    if let (Some(base), Some(err)) = (report.baseline_tokens_per_sec, report.grad_rel_err) {
        println!(
            "one process, whole model: {base:.0} tokens/s · first-step gradient relative error {err:.2e}"
        );
    }
    Ok(())
}
