//! `neuroshard sim`: N simulated nodes train real NeuroLLM replicas with DiLoCo, a codec, a
//! robust aggregation rule and optional attackers, over a simulated network; reports the run
//! beside two baselines (no attackers; synchronous data-parallel).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use neuroshard_aggregate::{ClipParams, Overrides, Radius, Rule, RuleKind, Trim};
use neuroshard_compress::{CompressConfig, encoded_len};
use neuroshard_data::{DilocoSpec, GenesisDir};
use neuroshard_model::Config;
use neuroshard_node::NodeConfig;
use neuroshard_sim::adversary::{Attack, AttackKind};
use neuroshard_sim::{
    Cheat, Comparison, DataPlan, GenesisData, Link, MemoryData, ModelWorkload, SimConfig,
    SimReport, markov_corpus, run_with_baselines,
};
use neuroshard_train::{AdamWConfig, InnerConfig, LrSchedule, OuterConfig};
use neuroshard_verify::AuditConfig;

mod table;

/// Vocabulary of the synthetic corpus used when no genesis directory is given.
const SYNTHETIC_VOCAB: usize = 256;

/// Simulate a network of nodes training together, with attackers and baselines.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Genesis directory (`neuroshard genesis`); without it, a synthetic Markov-chain corpus.
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Model preset: nano, tiny, small or base.
    #[arg(long, default_value = "nano")]
    preset: String,
    /// Number of nodes.
    #[arg(long, default_value_t = 8)]
    nodes: usize,
    /// How many of them are Byzantine (f).
    #[arg(long, default_value_t = 0)]
    byzantine: usize,
    /// sign-flip, noise, scale, alie, ipm, free-ride, replay, silent or none.
    #[arg(long, default_value = "none")]
    attack: String,
    /// The attack's strength: sign-flip factor, noise σ in honest-RMS units, scale factor,
    /// ALIE z, IPM ε.
    #[arg(long)]
    attack_strength: Option<f32>,
    /// Colluding groups the attackers form (they share statistics within a group).
    #[arg(long, default_value_t = 1)]
    groups: usize,
    /// mean, trimmed-mean, median, krum, multi-krum, geomed, centered-clip or bulyan.
    #[arg(long, default_value = "trimmed-mean")]
    aggregator: String,
    /// Override the values trimmed from each end (default f).
    #[arg(long)]
    trim: Option<usize>,
    /// Override Krum's, Multi-Krum's and Bulyan's f (default --byzantine).
    #[arg(long)]
    rule_f: Option<usize>,
    /// Override Multi-Krum's m (default n − f).
    #[arg(long)]
    multi_krum_m: Option<usize>,
    /// Override centred clipping's radius τ (default: the median distance).
    #[arg(long)]
    clip_tau: Option<f64>,
    /// Codec, optionally with parameters: `topk-int8`, `topk-int8:chunk=4096,k=0.01`, `none`, …
    #[arg(long, default_value = "int4")]
    codec: String,
    /// Rounds to run.
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Inner steps H per round.
    #[arg(long, default_value_t = 50)]
    inner_steps: usize,
    /// The run's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Sequences per inner step.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Tokens per sequence (default: the preset's).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Peak inner AdamW learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f32,
    /// Inner steps of linear learning-rate warm-up (default: a tenth of the schedule, at most
    /// 200).
    #[arg(long)]
    warmup_steps: Option<u64>,
    /// Rounds the cosine learning-rate schedule spans (default `--rounds`; a node's default is
    /// in `config/node.toml`).
    #[arg(long)]
    schedule_rounds: Option<u64>,
    /// Outer Nesterov learning rate (default: the genesis default).
    #[arg(long, default_value_t = DilocoSpec::DEFAULT.outer_lr as f32)]
    outer_lr: f32,
    /// Outer Nesterov momentum (default: the genesis default).
    #[arg(long, default_value_t = DilocoSpec::DEFAULT.outer_momentum as f32)]
    outer_momentum: f32,
    /// One-way link latency, milliseconds.
    #[arg(long, default_value_t = 40.0)]
    latency_ms: f64,
    /// Extra random delay per message, up to this many milliseconds.
    #[arg(long, default_value_t = 0.0)]
    jitter_ms: f64,
    /// Link (and access) bandwidth, megabits per second.
    #[arg(long, default_value_t = 100.0)]
    bandwidth_mbps: f64,
    /// Segment loss probability on every link.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Simulated training speed of every node, tokens per second.
    #[arg(long, default_value_t = 20_000.0)]
    tokens_per_sec: f64,
    /// Round deadline in seconds (default: three times the expected compute and transfer time).
    #[arg(long)]
    round_timeout_s: Option<f64>,
    /// Turn Proof of Neural Work off: contributions are trusted, nothing is audited.
    #[arg(long)]
    no_audit: bool,
    /// Expected auditors per contribution.
    #[arg(long, default_value_t = AuditConfig::DEFAULT.auditors)]
    auditors: f64,
    /// Segments per training job (a replay costs 1/segments of a job).
    #[arg(long, default_value_t = AuditConfig::DEFAULT.segments)]
    segments: u64,
    /// How the cheaters cheat the work proof, `KIND[:STRENGTH]`: lazy, fabricate, copy, replay,
    /// wrong-data, forge-loss, false-accuse or withhold.
    #[arg(long)]
    cheat: Option<Cheat>,
    /// How many nodes cheat (default 1 with --cheat).
    #[arg(long)]
    cheaters: Option<usize>,
    /// Close rounds through the NEURO ledger (an ideal sequencer over the real state
    /// transition): claims, verdicts, convictions, rewards and slashes, reported at the end.
    #[arg(long)]
    ledger: bool,
    /// Training shards each node is assigned per round (genesis data only).
    #[arg(long, default_value_t = 1)]
    shards_per_node: usize,
    /// Held-out batches the validation loss is measured on.
    #[arg(long, default_value_t = 8)]
    val_batches: usize,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Instead of one run with baselines: every aggregator under every attack (the attackers
    /// and all other settings from the flags), as a table of final validation losses.
    #[arg(long)]
    table: bool,
}

/// Runs the simulation and its baselines, and prints the result.
pub(crate) fn run(args: Args) -> Result<()> {
    let attack_kind: AttackKind = args.attack.parse()?;
    if args.byzantine >= args.nodes {
        bail!(
            "--byzantine {} with --nodes {} leaves no honest node; use fewer attackers",
            args.byzantine,
            args.nodes
        );
    }
    if args.table && args.byzantine == 0 {
        bail!("--table compares attacks: give --byzantine a value above 0");
    }
    if attack_kind != AttackKind::None && args.byzantine == 0 {
        bail!("--attack {attack_kind} needs attackers: give --byzantine a value above 0");
    }
    match &args.genesis {
        Some(path) => {
            let dir = GenesisDir::open(path)
                .with_context(|| format!("opening genesis directory {}", path.display()))?;
            let vocab = dir.tokenizer().vocab_size();
            let data = GenesisData::new(dir, args.inner_steps as u64, args.shards_per_node)?;
            execute(&args, attack_kind, vocab, data)
        }
        None => {
            let corpus = markov_corpus(SYNTHETIC_VOCAB, 2_000_000, args.seed);
            let data = MemoryData::new(corpus, args.nodes, 0.05);
            execute(&args, attack_kind, SYNTHETIC_VOCAB, data)
        }
    }
}

fn execute<D: DataPlan + Clone>(
    args: &Args,
    attack: AttackKind,
    vocab: usize,
    data: D,
) -> Result<()> {
    let mut model = Config::preset(&args.preset, vocab)?;
    if let Some(seq) = args.seq_len {
        model.seq_len = seq;
    }
    let inner = inner_config(args, model.seq_len)?;
    if args.table {
        let workload = ModelWorkload::new(model.clone(), args.seed, inner, data, args.val_batches)?;
        return table::run(args, &workload, |attack, kind| {
            sim_config(args, attack, rule(args, kind)?, &model, &inner)
        });
    }
    let aggregator = rule(args, args.aggregator.parse()?)?;
    let config = sim_config(args, attack, aggregator, &model, &inner)?;
    let workload = ModelWorkload::new(model, args.seed, inner, data, args.val_batches)?;
    let comparison = run_with_baselines(&config, &workload, |stage, record| {
        let loss = record
            .val_loss
            .map_or_else(|| "diverged".to_owned(), |l| format!("{l:.4}"));
        eprintln!(
            "{stage:?} round {} val loss {loss} at {:.1} s, {} bytes sent per node",
            record.round, record.sim_time_s, record.bytes_sent
        );
    })?;
    print_table(&comparison);
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&summary_json(args, &config, &comparison))?
        );
    }
    Ok(())
}

fn inner_config(args: &Args, seq_len: usize) -> Result<InnerConfig> {
    let rounds = args.schedule_rounds.unwrap_or(args.rounds);
    let total = rounds * args.inner_steps as u64;
    let warmup = args.warmup_steps.unwrap_or((total / 10).min(200));
    let schedule = LrSchedule::over_rounds(warmup, rounds, args.inner_steps as u64, args.lr)?;
    Ok(InnerConfig {
        batch_size: args.batch_size,
        seq_len,
        adamw: AdamWConfig::NEUROSHARD,
        schedule,
        clip_norm: 1.0,
        dp: None,
    })
}

fn sim_config(
    args: &Args,
    attack: AttackKind,
    aggregator: Rule,
    model: &Config,
    inner: &InnerConfig,
) -> Result<SimConfig> {
    let compress: CompressConfig = args.codec.parse()?;
    let link = Link {
        latency_s: args.latency_ms / 1e3,
        jitter_s: args.jitter_ms / 1e3,
        bandwidth_bps: args.bandwidth_mbps * 1e6 / 8.0,
        loss: args.loss,
    };
    let payload = encoded_len(model.n_params(), &compress)?;
    let max_frame = NodeConfig::max_frame_for(model.n_params(), &compress)?;
    let compute_s = args.inner_steps as f64 * inner.tokens_per_step() as f64 / args.tokens_per_sec;
    let transfer_s =
        2.0 * args.nodes as f64 * payload as f64 / link.effective_rate() + 20.0 * link.latency_s;
    let timeout = args
        .round_timeout_s
        .unwrap_or(3.0 * (compute_s + transfer_s) + 1.0);
    let mut attack = Attack::with_defaults(attack, args.nodes, args.byzantine);
    if let Some(strength) = args.attack_strength {
        attack.strength = strength;
    }
    let outer = OuterConfig {
        lr: args.outer_lr,
        momentum: args.outer_momentum,
    };
    outer.validate()?;
    let config = SimConfig {
        seed: args.seed,
        nodes: args.nodes,
        byzantine: args.byzantine,
        attack,
        groups: args.groups,
        rounds: args.rounds,
        node: NodeConfig {
            inner_steps: args.inner_steps,
            round_timeout: Duration::from_secs_f64(timeout),
            compress,
            aggregator,
            outer,
            max_frame,
            audit: (!args.no_audit).then_some(AuditConfig {
                auditors: args.auditors,
                segments: args.segments,
                ..AuditConfig::DEFAULT
            }),
        },
        link,
        link_overrides: Vec::new(),
        tokens_per_sec: vec![args.tokens_per_sec; args.nodes],
        churn: Vec::new(),
        cheat: args.cheat,
        cheaters: args.cheaters.unwrap_or(usize::from(args.cheat.is_some())),
        ledger: args.ledger,
    };
    config.validate()?;
    Ok(config)
}

/// The aggregation rule with its parameters defaulted from f and overridden by the flags.
fn rule(args: &Args, kind: RuleKind) -> Result<Rule> {
    let overrides = Overrides {
        trim: args.trim.map(Trim::Count),
        f: args.rule_f,
        m: args.multi_krum_m,
        clip: args.clip_tau.map(|tau| ClipParams {
            tau: Radius::Fixed(tau),
            ..ClipParams::default()
        }),
        ..Overrides::default()
    };
    Rule::configure(kind, args.nodes, args.byzantine, &overrides).with_context(|| {
        format!(
            "--aggregator {kind} cannot run with {} attackers among {} nodes (it needs {})",
            args.byzantine,
            args.nodes,
            kind.requirement()
        )
    })
}

/// One line per round, then the baselines, for people.
fn print_table(c: &Comparison) {
    let kib = |bytes: u64| bytes as f64 / 1024.0;
    let loss = |l: Option<f32>| l.map_or_else(|| "diverged".to_owned(), |l| format!("{l:.4}"));
    println!("round  val_loss  sent/node KiB  recv/node KiB  sim_time_s  included  agreed");
    for r in &c.run.rounds {
        println!(
            "{:>5}  {:>8}  {:>13.1}  {:>13.1}  {:>10.1}  {:>8}  {}",
            r.round,
            loss(r.val_loss),
            kib(r.bytes_sent),
            kib(r.bytes_received),
            r.sim_time_s,
            r.included,
            r.agreed
        );
    }
    println!(
        "final val loss {}  (no attack {}, sync data-parallel {})",
        loss(c.run.final_val_loss),
        loss(c.no_attack.final_val_loss),
        loss(c.sync_dp.final_val_loss)
    );
    println!(
        "bytes sent per node: {:.1} KiB  (sync data-parallel {:.1} KiB, {:.0}x more)",
        kib(c.run.mean_bytes_sent()),
        kib(c.sync_dp.bytes_sent),
        ratio(c.sync_dp.bytes_sent, c.run.mean_bytes_sent())
    );
    if let Some(p) = &c.run.ponw {
        print_ponw(p);
    }
    if let Some(l) = &c.run.ledger {
        print_ledger(l);
    }
    for violation in &c.run.violations {
        println!("checker: {violation}");
    }
    if !c.run.violations.is_empty() {
        println!("SIM_SEED={}", c.run.seed);
    }
}

/// What the work proof caught and cost, for people.
fn print_ponw(p: &neuroshard_sim::PonwReport) {
    if let Some(cheat) = &p.cheat {
        let rate = p
            .catch_rate
            .map_or_else(|| "-".into(), |r| format!("{:.0} %", 100.0 * r));
        let detection: Vec<String> = p
            .rounds_to_detection
            .iter()
            .map(|d| d.map_or_else(|| "never".into(), |d| d.to_string()))
            .collect();
        println!(
            "cheat {cheat} by nodes {:?}: {rate} of cheating acts caught; rounds to detection {}",
            p.cheaters,
            detection.join(", ")
        );
    }
    println!(
        "audits: {} honest passed, {} honest failed, {} honest excluded; verification {:.1} % of training; commitment {} B = {:.4} % of a Δ",
        p.honest_passed,
        p.honest_failed,
        p.honest_excluded,
        100.0 * p.verification_fraction,
        p.commitment_bytes,
        100.0 * p.commitment_fraction
    );
}

/// What the ledger minted, burned and slashed, for people.
fn print_ledger(l: &neuroshard_sim::LedgerReport) {
    let neuro = |units: u64| units as f64 / neuroshard_ledger::NEURO as f64;
    println!(
        "ledger: {} blocks, {} rounds closed; minted {:.6} NEURO, burned {:.6} NEURO (genesis {:.0})",
        l.blocks,
        l.rounds_closed,
        neuro(l.minted),
        neuro(l.burned),
        neuro(l.genesis)
    );
    for slash in &l.slashes {
        println!(
            "ledger: node {} slashed {:.6} NEURO while round {} was open",
            slash.node,
            neuro(slash.amount),
            slash.open_round
        );
    }
    let stakes: Vec<String> = l
        .stakes
        .iter()
        .map(|s| format!("{:.3}", neuro(*s)))
        .collect();
    println!("ledger: stakes by node (NEURO): {}", stakes.join(", "));
}

/// The `--json` object: the run, per node, the baselines and the ratios between them.
fn summary_json(args: &Args, config: &SimConfig, c: &Comparison) -> serde_json::Value {
    let run = &c.run;
    let honest = (config.nodes - run.attackers.len()).max(1) as u64;
    let tokens_per_node = run.honest_tokens / honest;
    let gap = |a: Option<f32>, b: Option<f32>| a.zip(b).map(|(a, b)| (a - b) / b);
    serde_json::json!({
        "final_val_loss": run.final_val_loss,
        "initial_val_loss": run.initial_val_loss,
        "rounds": run.rounds,
        "bytes_sent": run.mean_bytes_sent(),
        "bytes_received": run.mean_bytes_received(),
        "sim_time_s": run.sim_time_s(),
        "tokens": run.honest_tokens,
        "bytes_per_token": run.mean_bytes_sent() as f64 / tokens_per_node.max(1) as f64,
        "nodes": nodes_json(run),
        "attackers": run.attackers,
        "violations": run.violations,
        "ponw": run.ponw,
        "ledger": run.ledger,
        "baselines": baselines_json(config, c),
        "comparison": {
            "comm_ratio_vs_sync_dp": ratio(c.sync_dp.bytes_sent, run.mean_bytes_sent()),
            "val_loss_gap_vs_sync_dp": gap(run.final_val_loss, c.sync_dp.final_val_loss),
            "val_loss_gap_vs_no_attack": gap(run.final_val_loss, c.no_attack.final_val_loss),
        },
        "settings": {
            "preset": args.preset,
            "nodes": config.nodes,
            "byzantine": config.byzantine,
            "attack": config.attack.kind.name(),
            "attack_strength": config.attack.strength,
            "aggregator": config.node.aggregator,
            "codec": config.node.compress,
            "rounds": config.rounds,
            "inner_steps": config.node.inner_steps,
            "round_timeout_s": config.node.round_timeout.as_secs_f64(),
            "seed": config.seed,
        },
        "seed": run.seed,
        "digest": run.digest,
    })
}

/// Traffic, penalties and resyncs of every node, attackers marked.
fn nodes_json(run: &SimReport) -> Vec<serde_json::Value> {
    run.traffic
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({
                "index": i,
                "attacker": run.attackers.contains(&i),
                "bytes_sent": t.bytes_sent,
                "bytes_received": t.bytes_received,
                "penalties": run.penalties[i],
                "resyncs": run.resyncs[i],
            })
        })
        .collect()
}

/// The two baselines: synchronous data-parallel and the run without attackers.
fn baselines_json(config: &SimConfig, c: &Comparison) -> serde_json::Value {
    let sync_tokens_per_node = c.sync_dp.tokens / config.nodes as u64;
    serde_json::json!({
        "sync_dp": {
            "final_val_loss": c.sync_dp.final_val_loss,
            "val_losses": c.sync_dp.val_losses,
            "bytes_sent": c.sync_dp.bytes_sent,
            "bytes_received": c.sync_dp.bytes_received,
            "sim_time_s": c.sync_dp.sim_time_s,
            "tokens": c.sync_dp.tokens,
            "bytes_per_token": c.sync_dp.bytes_sent as f64 / sync_tokens_per_node.max(1) as f64,
        },
        "no_attack": {
            "final_val_loss": c.no_attack.final_val_loss,
            "val_losses": c.no_attack.rounds.iter().map(|r| r.val_loss).collect::<Vec<_>>(),
            "bytes_sent": c.no_attack.mean_bytes_sent(),
            "bytes_received": c.no_attack.mean_bytes_received(),
            "sim_time_s": c.no_attack.sim_time_s(),
        },
    })
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    numerator as f64 / denominator.max(1) as f64
}
