//! `neuroshard up`: a whole local network in one command.
//!
//! Builds the genesis data if it is missing or outdated (`neuroshard genesis build`), starts N
//! `neuroshard node` child processes on 127.0.0.1 (the first one holds the dataset and is the
//! others' bootstrap peer; the others get only the genesis file and fetch their shards from it),
//! prints each one's pid and dashboard address, then a line per node every few seconds (round,
//! loss, validation loss, peers, model hash) polled from `/api/status`.
//!
//! A node that exits is restarted, not the end of the network: `up` prints which node exited, its
//! exit status and the end of its log, and starts it again on the same data directory and key
//! (so it resumes from its checkpoint and rejoins) after a back-off of 1 s, doubling while it
//! keeps failing up to 30 s, and back to 1 s once it stayed up a minute ([`backoff`], the policy
//! as plain data; [`keeper`], the task per node that applies it).
//!
//! The first nodes (up to four) are the NEURO ledger's genesis committee and run its consensus;
//! the others follow it ([`committee`]).
//!
//! Ctrl-C stops every child cleanly; the children also stop by themselves when `up` dies, because
//! they watch their standard input, a pipe that closes with it.

mod backoff;
mod committee;
mod keeper;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use neuroshard_data::GenesisDir;
use neuroshard_pool::Plan;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use keeper::{Network, unless_stopped};

use crate::http;

/// Arguments of `neuroshard up`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The genesis directory (built there if missing).
    #[arg(long, default_value = ".neuroshard/genesis")]
    genesis: PathBuf,
    /// Build the genesis from this directory of .txt/.jsonl files instead of the default corpus.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Where the nodes keep their keys, checkpoints and fetched data (one subdirectory each).
    #[arg(long, default_value = ".neuroshard/up")]
    dir: PathBuf,
    /// HTTP port of the first node's dashboard; node i gets this + i (0: each port chosen by the
    /// OS, anew at every restart; tests use it so that runs never collide).
    #[arg(long, default_value_t = 8000)]
    http_port: u16,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5)]
    every: u64,
    /// Every node's memory budget (`neuroshard node --memory-budget`, e.g. 64MiB); below the
    /// model's training footprint the nodes form a pipeline of stages.
    #[arg(long, value_parser = super::node::parse_bytes)]
    memory_budget: Option<u64>,
    /// Every node's announced speed in parameter-tokens per second (`neuroshard node
    /// --work-per-sec`); unset, each node measures its own.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    work_per_sec: Option<u64>,
}

/// Runs `neuroshard up`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let exe = std::env::current_exe().context("finding the neuroshard executable")?;
    ensure_genesis(&exe, &args)?;
    if let Some(budget) = args.memory_budget {
        println!("{}", preview(&args.genesis, args.nodes, budget)?);
    }
    let committee = committee::prepare(&args.genesis, &args.dir, args.nodes)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(supervise(Network::new(&exe, args, committee)))
}

/// Builds the genesis directory with `neuroshard genesis build` unless it already opens; one
/// this build cannot read (an older format) is rebuilt.
fn ensure_genesis(exe: &Path, args: &Args) -> anyhow::Result<()> {
    let dir = args.genesis.display();
    match GenesisDir::open(&args.genesis) {
        Ok(_) => return Ok(()),
        Err(err) if args.genesis.join("manifest.json").exists() => {
            println!("rebuilding the genesis data in {dir}: {err}");
        }
        Err(_) => println!("building the genesis data in {dir} (first run only)"),
    }
    let mut build = std::process::Command::new(exe);
    build.args(["genesis", "build", "--out"]).arg(&args.genesis);
    if let Some(corpus) = &args.corpus {
        build.arg("--corpus").arg(corpus);
    }
    let status = build
        .status()
        .context("running `neuroshard genesis build`")?;
    if !status.success() {
        bail!("`neuroshard genesis build` failed ({status})");
    }
    Ok(())
}

/// What `nodes` nodes with `budget` each will make of the genesis model, said before they start.
fn preview(genesis: &Path, nodes: usize, budget: u64) -> anyhow::Result<String> {
    let dir = GenesisDir::open(genesis)?;
    let model =
        neuroshard_daemon::model_config(&dir.genesis().model).map_err(anyhow::Error::msg)?;
    let batch = dir.genesis().inner.batch_size as usize;
    let (plan, whole) = neuroshard_daemon::preview_plan(&model, batch, nodes, budget);
    Ok(describe(&plan, whole, budget, nodes, batch))
}

/// The preview's sentence: the whole model's training footprint against the budget, and the
/// stages and lanes that equal speeds would give.
fn describe(plan: &Plan, whole: u64, budget: u64, nodes: usize, batch: usize) -> String {
    let mb = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    let needs = format!(
        "memory budget {} per node; the whole model needs {} to train and audit at batch {batch}",
        mb(budget),
        mb(whole)
    );
    let lanes = plan.lanes();
    match plan.stages.len() {
        0 => format!(
            "{needs}: {nodes} nodes cannot hold it, so none will train (raise --memory-budget or --nodes)"
        ),
        1 => format!("{needs}: every node holds the whole model"),
        stages => {
            let ranges: Vec<String> = plan
                .stages
                .iter()
                .map(|s| format!("{}..{}", s.layers.start, s.layers.end))
                .collect();
            let counts: Vec<usize> = plan.stages.iter().map(|s| s.replicas.len()).collect();
            let idle = nodes.saturating_sub(counts.iter().sum());
            let replicas: Vec<String> = counts.iter().map(usize::to_string).collect();
            let idle_lanes = lanes - plan.running_lanes();
            format!(
                "{needs}: with equal speeds the {nodes} nodes form {stages} stages (layers {}) held by {} replicas, {lanes} lane{}{}{}; each node's measured speed decides the real plan",
                ranges.join(", "),
                replicas.join(", "),
                if lanes == 1 { "" } else { "s" },
                if idle_lanes == 0 {
                    String::new()
                } else {
                    format!(
                        " ({idle_lanes} idle: neighbouring stages have too few pairs of replicas)"
                    )
                },
                if idle == 0 {
                    String::new()
                } else {
                    format!(", {idle} left out")
                }
            )
        }
    }
}

/// Starts the nodes, each with a keeper that restarts it when it exits, prints their status
/// until Ctrl-C, then stops them all cleanly.
async fn supervise(net: Network) -> anyhow::Result<()> {
    let net = Arc::new(net);
    let (stop, stopped) = watch::channel(false);
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_ctrl_c.send_replace(true);
        }
    });
    let mut keepers = Vec::new();
    let outcome = start_all(&net, &stopped, &mut keepers).await;
    if outcome.is_ok() && !*stopped.borrow() {
        println!("{} nodes running; Ctrl-C stops them", keepers.len());
        unless_stopped(&mut stopped.clone(), print_status(&net)).await;
    }
    stop.send_replace(true);
    println!("stopping {} nodes", keepers.len());
    for keeper in keepers {
        let _ = keeper.await;
    }
    outcome
}

/// Starts the nodes one by one (node 0 first: the others bootstrap from it) and hands each to
/// its keeper; stops early on Ctrl-C.
async fn start_all(
    net: &Arc<Network>,
    stopped: &watch::Receiver<bool>,
    keepers: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<()> {
    for index in 0..net.args().nodes {
        let Some(node) = keeper::start(net, index, &mut stopped.clone()).await? else {
            return Ok(());
        };
        let keeper = keeper::keep(Arc::clone(net), index, node, stopped.clone());
        keepers.push(tokio::spawn(keeper));
    }
    Ok(())
}

/// Prints one status line per node every `--every` seconds.
async fn print_status(net: &Network) {
    let mut interval = tokio::time::interval(Duration::from_secs(net.args().every.max(1)));
    loop {
        interval.tick().await;
        for index in 0..net.args().nodes {
            let line = match net.dashboard(index) {
                None => "down; restarting".to_owned(),
                Some(dashboard) => {
                    match http::get::<serde_json::Value>(&dashboard, "/api/status").await {
                        Ok(status) => summary(&status),
                        Err(err) => format!("no status ({err:#})"),
                    }
                }
            };
            println!("node {index}: {line}");
        }
    }
}

/// One line of a node's status.
fn summary(status: &serde_json::Value) -> String {
    let num = |key: &str| {
        status[key]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
    };
    let hash = status["model_hash"]
        .as_str()
        .map_or("-", |h| &h[..h.len().min(12)]);
    let role = &status["role"];
    let served: Vec<String> = (role["served"].as_array().into_iter().flatten())
        .filter_map(|l| Some((l.as_u64()? + 1).to_string()))
        .collect();
    let lanes = match served.len() {
        0 => format!("standing by (no lane of {})", role["lanes"]),
        n => format!(
            "lane{} {} of {}",
            if n == 1 { "" } else { "s" },
            served.join(","),
            role["lanes"]
        ),
    };
    let stage = match role["stage"].as_u64() {
        Some(stage) => format!(
            "  stage {}/{} layers {}..{} {lanes}",
            stage + 1,
            role["stages"],
            role["layers"][0],
            role["layers"][1],
        ),
        None => String::new(),
    };
    format!(
        "round {:>4}  step {:>5}  loss {}  val {}  peers {}  model {hash}{stage}",
        status["round"],
        status["inner_step"],
        num("loss"),
        num("val_loss"),
        status["peers"].as_array().map_or(0, Vec::len),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_says_what_a_budget_makes() {
        let cfg = neuroshard_model::Config::preset("nano", 384).unwrap();
        let (plan, whole) = neuroshard_daemon::preview_plan(&cfg, 8, 7, u64::MAX);
        let text = describe(&plan, whole, u64::MAX, 7, 8);
        assert!(text.ends_with("every node holds the whole model"), "{text}");
        let budget = whole * 2 / 3;
        let (plan, _) = neuroshard_daemon::preview_plan(&cfg, 8, 7, budget);
        let text = describe(&plan, whole, budget, 7, 8);
        assert!(
            text.contains("form 2 stages (layers 0..1, 1..2) held by 3, 4 replicas, 4 lanes;"),
            "{text}"
        );
        let (plan, _) = neuroshard_daemon::preview_plan(&cfg, 8, 7, 1000);
        let text = describe(&plan, whole, 1000, 7, 8);
        assert!(text.contains("cannot hold it"), "{text}");
    }

    #[test]
    fn the_preview_says_which_lanes_would_idle() {
        // Four nodes over three stages: both lanes would join the first two stages' only
        // replicas, so one of them idles.
        let node = |i: u8| neuroshard_primitives::NodeId([i; 32]);
        let stage =
            |layers: std::ops::Range<usize>, replicas: Vec<u8>| neuroshard_pool::StagePlan {
                embedding: layers.start == 0,
                head: layers.end == 3,
                layers,
                replicas: replicas.into_iter().map(node).collect(),
            };
        let plan = Plan {
            n_layers: 3,
            stages: vec![
                stage(0..1, vec![1]),
                stage(1..2, vec![2]),
                stage(2..3, vec![3, 4]),
            ],
            unplaced: Vec::new(),
        };
        let text = describe(&plan, 1_000_000, 500_000, 4, 8);
        assert!(
            text.contains("held by 1, 1, 2 replicas, 2 lanes (1 idle: "),
            "{text}"
        );
    }
}
