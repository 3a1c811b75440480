//! `neuroshard train`: train NeuroLLM locally on the Genesis data, with checkpoints and resume.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use neuroshard_data::{BuildOptions, GenesisDir, Progress, Stage, build_genesis};
use neuroshard_model::{Config, DEFAULT_VOCAB_SIZE};
use neuroshard_train::{
    AdamWConfig, CheckpointPolicy, DpConfig, LossEstimate, LrSchedule, Observer, RunSpec,
    StepStats, Trainer, Validation, checkpoint,
};

/// Arguments of `neuroshard train`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Model preset: nano, tiny, small or base.
    #[arg(long, default_value = "nano")]
    preset: String,
    /// The Genesis dataset directory; built there (fetching the corpus) when missing.
    #[arg(long, default_value = ".neuroshard/genesis")]
    genesis: PathBuf,
    /// Optimizer steps in the whole run (the cosine reaches --min-lr at the last one).
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Sequences per batch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Tokens per sequence (default: the preset's training length).
    #[arg(long)]
    seq: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f32,
    /// Linear warm-up steps (default: a tenth of --steps, at most 100).
    #[arg(long)]
    warmup: Option<u64>,
    /// Final learning rate of the cosine (default: --lr / 10).
    #[arg(long)]
    min_lr: Option<f32>,
    /// Seed of the initial weights and of the batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where checkpoints go (default: .neuroshard/checkpoints/<preset>).
    #[arg(long)]
    checkpoint_dir: Option<PathBuf>,
    /// Steps between checkpoints (0: only at the end); one is always written at the end.
    #[arg(long, default_value_t = 500)]
    checkpoint_every: u64,
    /// Continue the run in --checkpoint-dir (same settings required).
    #[arg(long)]
    resume: bool,
    /// Steps between validation losses (0: only at the end).
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Validation batches averaged per evaluation.
    #[arg(long, default_value_t = 8)]
    eval_batches: u64,
    /// Steps between log lines (JSON lines with --json).
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Print one JSON object per logged step to stdout.
    #[arg(long)]
    json: bool,
    /// Worker threads for the kernels and matrix products (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// DP-SGD: clip each sequence's gradient to this L2 norm (with --dp-noise; default: the
    /// genesis file's `[privacy]` section, if any, which these flags may not contradict).
    #[arg(long, requires = "dp_noise")]
    dp_clip: Option<f32>,
    /// DP-SGD: Gaussian noise of this many times --dp-clip per coordinate (with --dp-clip).
    #[arg(long, requires = "dp_clip")]
    dp_noise: Option<f32>,
    /// DP-SGD: the δ the ε spent is reported at (default: the genesis file's, else 1e-5).
    #[arg(long)]
    dp_delta: Option<f64>,
}

/// Runs `neuroshard train`.
pub(crate) fn run(args: Args) -> Result<()> {
    // Refuse a bad preset before spending minutes building the dataset.
    Config::preset(&args.preset, DEFAULT_VOCAB_SIZE)?;
    super::set_threads(args.threads)?;
    let genesis = open_or_build_genesis(&args.genesis)?;
    let spec = run_spec(&args, &genesis)?;
    let dir = args
        .checkpoint_dir
        .clone()
        .unwrap_or_else(|| Path::new(".neuroshard/checkpoints").join(&args.preset));
    let mut trainer = start(&args, spec, &dir)?;
    let source = genesis
        .train_batches(None, trainer.spec().seed)
        .context("opening the training shards")?;
    let val = genesis
        .validation_batches()
        .context("opening the validation shards")?;
    let eval_batches = args.eval_batches.clamp(
        1,
        val.n_batches(trainer.spec().batch, trainer.spec().seq)
            .max(1),
    );
    let validation = Validation {
        source: &val,
        batches: eval_batches,
        every: args.eval_every,
    };
    let policy = CheckpointPolicy {
        dir: dir.clone(),
        every: args.checkpoint_every,
    };
    let mut display = Display::new(&trainer, args.log_every, args.json);
    let total = trainer.spec().schedule.total_steps;
    neuroshard_train::run(
        &mut trainer,
        &source,
        Some(&validation),
        Some(&policy),
        total,
        &mut display,
    )
    .context("training")?;
    display.finish(&dir);
    if let Some((_, _, delta)) = dp_settings(&args, &genesis)? {
        report_epsilon(trainer.spec(), trainer.step_index(), delta, &genesis)?;
    }
    Ok(())
}

impl Args {
    /// The flags as `neuroshard train` has them when none is given.
    pub(crate) fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: Args,
        }
        <Defaults as clap::Parser>::parse_from(["train"]).args
    }
}

/// The run these flags describe, with the tokenizer and data of `genesis`.
fn run_spec(args: &Args, genesis: &GenesisDir) -> Result<RunSpec> {
    let model = Config::preset(&args.preset, genesis.tokenizer().vocab_size())?;
    run_spec_for(model, args, genesis)
}

/// The run these flags describe for the model sizes `model`, with the tokenizer and data of
/// `genesis`.
pub(crate) fn run_spec_for(model: Config, args: &Args, genesis: &GenesisDir) -> Result<RunSpec> {
    let tokenizer = genesis.tokenizer();
    let warmup = args.warmup.unwrap_or((args.steps / 10).min(100));
    let min_lr = args.min_lr.unwrap_or(args.lr / 10.0);
    let spec = RunSpec {
        seq: args.seq.unwrap_or(model.seq_len),
        model,
        seed: args.seed,
        batch: args.batch,
        schedule: LrSchedule::new(warmup, args.steps, args.lr, min_lr)?,
        adamw: AdamWConfig::NEUROSHARD,
        max_grad_norm: 1.0,
        dp: dp_settings(args, genesis)?
            .map(|(clip, noise, _)| DpConfig::new(clip, noise, args.seed))
            .transpose()?,
        tokenizer_hash: tokenizer.hash(),
        data_id: genesis.manifest().merkle_root,
    };
    spec.validate()?;
    Ok(spec)
}

/// The DP-SGD settings (clip, noise, δ): the genesis file's `[privacy]` section, or the flags
/// when it has none; flags that contradict the section are refused.
fn dp_settings(args: &Args, genesis: &GenesisDir) -> Result<Option<(f32, f32, f64)>> {
    let flags = args.dp_clip.zip(args.dp_noise);
    let Some(section) = genesis.genesis().privacy else {
        return Ok(flags.map(|(clip, noise)| (clip, noise, args.dp_delta.unwrap_or(1e-5))));
    };
    let network = (section.clip as f32, section.noise as f32, section.delta);
    let asked = (
        flags.map_or(network.0, |f| f.0),
        flags.map_or(network.1, |f| f.1),
        args.dp_delta.unwrap_or(network.2),
    );
    anyhow::ensure!(
        asked == network,
        "--dp-clip/--dp-noise/--dp-delta {asked:?} contradict the genesis file's [privacy] section {network:?}; drop the flags"
    );
    Ok(Some(network))
}

/// Logs the ε spent after `steps` steps of `spec`'s DP-SGD at `delta`, with the sampling rate of
/// its batches over the whole training set.
fn report_epsilon(spec: &RunSpec, steps: u64, delta: f64, genesis: &GenesisDir) -> Result<()> {
    let Some(dp) = spec.dp else {
        return Ok(());
    };
    let pool: u64 = genesis.manifest().shards.iter().map(|s| s.tokens).sum();
    let q = neuroshard_privacy::sampling_rate(spec.batch, spec.seq, pool);
    let spent = neuroshard_privacy::Accountant::new(q, f64::from(dp.noise))
        .and_then(|accountant| accountant.epsilon(steps, delta))
        .context("computing the privacy spent")?;
    tracing::info!(
        "privacy: ε = {:.4} at δ = {delta} after {steps} DP-SGD steps (q = {q:.3e}, σ = {}, C = {}; Poisson-sampling accounting)",
        spent.epsilon,
        dp.noise,
        dp.clip
    );
    Ok(())
}

/// A fresh trainer, or with `--resume` the checkpoint's, checked against `spec`. Never
/// replaces an existing checkpoint unless resuming it.
fn start(args: &Args, spec: RunSpec, dir: &Path) -> Result<Trainer> {
    let device = Device::Cpu;
    if !args.resume {
        anyhow::ensure!(
            !checkpoint::exists(dir),
            "{} already holds a checkpoint; pass --resume to continue it or choose another --checkpoint-dir",
            dir.display()
        );
        return Ok(Trainer::new(spec, &device)?);
    }
    let loaded = checkpoint::load(dir, &device)
        .with_context(|| format!("loading the checkpoint in {} to resume", dir.display()))?;
    loaded
        .meta
        .check_resumable(&spec)
        .with_context(|| format!("resuming from {}", dir.display()))?;
    tracing::info!(step = loaded.meta.step, "resuming from {}", dir.display());
    Ok(loaded.trainer)
}

/// Opens the Genesis directory, building it first (fetching the default corpus) when it has
/// never been built.
pub(crate) fn open_or_build_genesis(path: &Path) -> Result<GenesisDir> {
    if path.join("manifest.json").exists() {
        return GenesisDir::open(path)
            .with_context(|| format!("opening the genesis in {}", path.display()));
    }
    tracing::info!(
        "no genesis in {}: building it (fetches the default corpus)",
        path.display()
    );
    build_genesis(&BuildOptions::new(path), &LogProgress)
        .with_context(|| format!("building the genesis in {}", path.display()))
}

/// Build progress as log lines: the build runs once, before training.
struct LogProgress;

impl Progress for LogProgress {
    fn begin(&self, stage: Stage, total: u64) {
        tracing::info!(?stage, total, "genesis build");
    }

    fn advance(&self, _amount: u64) {}

    fn finish(&self, stage: Stage, summary: &str) {
        tracing::info!(?stage, "{summary}");
    }

    fn warn(&self, message: &str) {
        tracing::warn!("{message}");
    }
}

/// The progress bar on stderr and, with `--json`, one JSON line per logged step on stdout.
struct Display {
    bar: ProgressBar,
    json: bool,
    log_every: u64,
    window_start: Instant,
    window_tokens: usize,
    last_val: Option<LossEstimate>,
    last_loss: Option<f32>,
}

impl Display {
    #[allow(clippy::disallowed_methods)] // Wall-clock throughput is measured at the edge.
    fn new(trainer: &Trainer, log_every: u64, json: bool) -> Self {
        let total = trainer.spec().schedule.total_steps;
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
                .expect("valid progress template"),
        );
        bar.set_position(trainer.step_index());
        bar.reset_eta();
        Self {
            bar,
            json,
            log_every: log_every.max(1),
            window_start: Instant::now(),
            window_tokens: 0,
            last_val: None,
            last_loss: None,
        }
    }

    fn finish(&self, dir: &Path) {
        self.bar.finish();
        let Some(loss) = self.last_loss else {
            tracing::info!(
                "the run in {} had already taken all its steps; train further in another --checkpoint-dir",
                dir.display()
            );
            return;
        };
        let val = self.last_val.map_or(String::new(), |v| {
            format!(", val loss {:.4} ± {:.4}", v.mean, v.stderr)
        });
        tracing::info!("done: loss {loss:.4}{val}; checkpoint in {}", dir.display());
    }
}

impl Observer for Display {
    #[allow(clippy::disallowed_methods)] // Wall-clock throughput is measured at the edge.
    fn on_step(&mut self, stats: &StepStats, val_loss: Option<LossEstimate>) {
        self.window_tokens += stats.tokens;
        self.last_loss = Some(stats.loss);
        self.last_val = val_loss.or(self.last_val);
        let logged = stats.step.is_multiple_of(self.log_every) || val_loss.is_some();
        if !logged {
            self.bar.set_position(stats.step);
            return;
        }
        let elapsed = self.window_start.elapsed().max(Duration::from_micros(1));
        let tokens_per_sec = self.window_tokens as f64 / elapsed.as_secs_f64();
        (self.window_start, self.window_tokens) = (Instant::now(), 0);
        let val = self.last_val.map_or(String::new(), |v| {
            format!("  val {:.4} ± {:.4}", v.mean, v.stderr)
        });
        self.bar.set_message(format!(
            "loss {:.4}{val}  {tokens_per_sec:.0} tok/s",
            stats.loss
        ));
        self.bar.set_position(stats.step);
        if self.json {
            let mut line = serde_json::json!({
                "step": stats.step,
                "loss": stats.loss,
                "lr": stats.lr,
                "grad_norm": stats.grad_norm,
                "tokens_per_sec": tokens_per_sec,
            });
            if let Some(v) = val_loss {
                line["val_loss"] = v.mean.into();
                line["val_loss_stderr"] = v.stderr.into();
            }
            self.bar.suspend(|| println!("{line}"));
        }
    }

    fn on_checkpoint(&mut self, step: u64, dir: &Path) {
        self.bar
            .suspend(|| tracing::debug!(step, "checkpoint written to {}", dir.display()));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use clap::Parser;
    use neuroshard_data::{CorpusChoice, NoProgress};

    use super::*;

    #[derive(Debug, Parser)]
    struct TrainCli {
        #[command(flatten)]
        args: Args,
    }

    #[derive(Debug, Parser)]
    struct GenerateCli {
        #[command(flatten)]
        args: super::super::generate::Args,
    }

    /// A small genesis directory in `root/genesis-<vocab_size>`.
    pub(crate) fn small_genesis(root: &Path, vocab_size: usize) -> PathBuf {
        let corpus = root.join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        let words = [
            "alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta",
        ];
        for doc in 0..20 {
            let text: Vec<&str> = (0..300)
                .map(|i| words[(i * 7 + doc * 3 + i / 5) % words.len()])
                .collect();
            std::fs::write(corpus.join(format!("{doc}.txt")), text.join(" ")).unwrap();
        }
        let options = BuildOptions {
            corpus: CorpusChoice::Path(corpus),
            vocab_size,
            shard_tokens: 2000,
            validation_fraction: 0.1,
            ..BuildOptions::new(root.join(format!("genesis-{vocab_size}")))
        };
        build_genesis(&options, &NoProgress)
            .unwrap()
            .path()
            .to_owned()
    }

    fn train(genesis: &Path, ckpt: &Path, extra: &[&str]) -> Result<()> {
        let mut argv = vec![
            "train", "--preset", "nano", "--steps", "4", "--batch", "2", "--seq", "16",
        ];
        let (g, c) = (genesis.to_str().unwrap(), ckpt.to_str().unwrap());
        argv.extend([
            "--genesis",
            g,
            "--checkpoint-dir",
            c,
            "--checkpoint-every",
            "2",
            "--eval-every",
            "2",
        ]);
        argv.extend(extra);
        run(TrainCli::try_parse_from(argv).unwrap().args)
    }

    fn generate(genesis: &Path, ckpt: &Path) -> Result<()> {
        let (g, c) = (genesis.to_str().unwrap(), ckpt.to_str().unwrap());
        let argv = [
            "generate",
            "--genesis",
            g,
            "--checkpoint",
            c,
            "--prompt",
            "alpha beta",
            "--max-tokens",
            "5",
        ];
        super::super::generate::run(GenerateCli::try_parse_from(argv).unwrap().args)
    }

    fn snapshot(dir: &Path) -> Vec<Vec<u8>> {
        let files = [
            checkpoint::MODEL_FILE,
            checkpoint::OPTIMIZER_FILE,
            checkpoint::META_FILE,
        ];
        files
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .collect()
    }

    #[test]
    fn train_resume_generate_and_their_errors() {
        let root = tempfile::tempdir().unwrap();
        let genesis = small_genesis(root.path(), 300);
        let ckpt = root.path().join("ckpt");
        train(&genesis, &ckpt, &["--json"]).unwrap();
        assert_eq!(checkpoint::read_meta(&ckpt).unwrap().step, 4);
        let saved = snapshot(&ckpt);

        // A second run without --resume, or a resume with other settings, overwrites nothing.
        let err = format!("{:#}", train(&genesis, &ckpt, &[]).unwrap_err());
        assert!(err.contains("already holds a checkpoint"), "{err}");
        let err = format!(
            "{:#}",
            train(&genesis, &ckpt, &["--resume", "--lr", "1e-2"]).unwrap_err()
        );
        assert!(err.contains("schedule mismatch"), "{err}");
        train(&genesis, &ckpt, &["--resume"]).unwrap();
        assert_eq!(snapshot(&ckpt), saved);

        generate(&genesis, &ckpt).unwrap();
        let other = small_genesis(root.path(), 290);
        let err = format!("{:#}", generate(&other, &ckpt).unwrap_err());
        assert!(err.contains("tokenizer mismatch"), "{err}");
        let err = format!("{:#}", train(&other, &ckpt, &["--resume"]).unwrap_err());
        assert!(err.contains("tokenizer mismatch"), "{err}");
        assert_eq!(snapshot(&ckpt), saved);

        let model = ckpt.join(checkpoint::MODEL_FILE);
        let mut bytes = std::fs::read(&model).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&model, bytes).unwrap();
        let err = format!("{:#}", generate(&genesis, &ckpt).unwrap_err());
        assert!(
            err.contains("model.safetensors") && err.contains("corrupt"),
            "{err}"
        );
    }

    #[test]
    fn unknown_preset_is_refused_before_any_work() {
        let root = tempfile::tempdir().unwrap();
        let argv = [
            "train",
            "--preset",
            "huge",
            "--genesis",
            root.path().to_str().unwrap(),
        ];
        let err = format!(
            "{:#}",
            run(TrainCli::try_parse_from(argv).unwrap().args).unwrap_err()
        );
        assert!(err.contains("unknown preset \"huge\""), "{err}");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn dp_flags_train_and_may_not_contradict_the_genesis_section() {
        let root = tempfile::tempdir().unwrap();
        let genesis = small_genesis(root.path(), 300);
        let dp = ["--dp-clip", "1.0", "--dp-noise", "0.5"];
        train(&genesis, &root.path().join("flags"), &dp).unwrap();
        let meta = checkpoint::read_meta(&root.path().join("flags")).unwrap();
        assert_eq!(meta.spec.dp, Some(DpConfig::new(1.0, 0.5, 0).unwrap()));
        let file = genesis.join("genesis.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let section = "\n[privacy]\nclip = 2.0\nnoise = 1.0\ndelta = 1e-6\n";
        std::fs::write(&file, format!("{text}{section}")).unwrap();
        let err = format!(
            "{:#}",
            train(&genesis, &root.path().join("clash"), &dp).unwrap_err()
        );
        assert!(
            err.contains("contradict the genesis file's [privacy]"),
            "{err}"
        );
        train(&genesis, &root.path().join("network"), &[]).unwrap();
        let meta = checkpoint::read_meta(&root.path().join("network")).unwrap();
        assert_eq!(meta.spec.dp, Some(DpConfig::new(2.0, 1.0, 0).unwrap()));
    }
}
