//! `neuroshard up`: a whole local network in one command.
//!
//! Builds the genesis data if it is missing or outdated (`neuroshard genesis build`), starts N
//! `neuroshard node` child processes on 127.0.0.1 (the first one holds the dataset and is the
//! others' bootstrap peer; the others get only the genesis file and fetch their shards from it),
//! prints each dashboard address, then a line per node every few seconds (round, loss,
//! validation loss, peers, model hash) polled from `/api/status`. Ctrl-C stops every child
//! cleanly; the children also stop by themselves when `up` dies, because they watch their
//! standard input, a pipe that closes with it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use neuroshard_data::GenesisDir;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

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
    /// HTTP port of the first node's dashboard; node i gets this + i (0: chosen by the OS).
    #[arg(long, default_value_t = 8000)]
    http_port: u16,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5)]
    every: u64,
}

/// A running child node.
struct Running {
    child: Child,
    dashboard: String,
}

/// Runs `neuroshard up`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let exe = std::env::current_exe().context("finding the neuroshard executable")?;
    ensure_genesis(&exe, &args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(supervise(&exe, &args))
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

async fn supervise(exe: &Path, args: &Args) -> anyhow::Result<()> {
    let mut nodes: Vec<Running> = Vec::new();
    let mut bootstrap = None;
    for index in 0..args.nodes {
        let started = start_node(exe, args, index, bootstrap.as_deref()).await;
        let (node, p2p) = match started {
            Ok(started) => started,
            Err(err) => {
                stop_all(&mut nodes).await;
                return Err(err);
            }
        };
        println!(
            "node {index}: dashboard {}  (log {})",
            node.dashboard,
            log_path(args, index).display()
        );
        bootstrap.get_or_insert(p2p);
        nodes.push(node);
    }
    println!("{} nodes running; Ctrl-C stops them", nodes.len());
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        outcome = watch(&mut nodes, args.every) => outcome,
    };
    println!("stopping {} nodes", nodes.len());
    stop_all(&mut nodes).await;
    outcome
}

fn log_path(args: &Args, index: usize) -> PathBuf {
    args.dir.join(format!("node-{index}.log"))
}

/// Starts node `index` and waits for its dashboard and p2p address lines.
async fn start_node(
    exe: &Path,
    args: &Args,
    index: usize,
    bootstrap: Option<&str>,
) -> anyhow::Result<(Running, String)> {
    let data_dir = args.dir.join(format!("node-{index}"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let source = args.genesis.join("genesis.toml");
    // Only the first node is given the dataset; the others get the genesis file alone.
    let genesis = if index == 0 {
        source
    } else {
        let copy = data_dir.join("genesis.toml");
        std::fs::copy(&source, &copy).with_context(|| format!("copying {}", source.display()))?;
        copy
    };
    // Appended to, so a restarted network keeps the earlier runs' logs.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(args, index))
        .context("opening the node log")?;
    let port = if args.http_port == 0 {
        0
    } else {
        args.http_port + index as u16
    };
    let mut command = Command::new(exe);
    command
        .arg("node")
        .arg("--genesis")
        .arg(&genesis)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--exit-on-stdin-close"])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .args(["--min-peers", &(args.nodes - 1).to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    if let Some(addr) = bootstrap {
        command.args(["--bootstrap", addr]);
    }
    let mut child = command.spawn().context("starting `neuroshard node`")?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (dashboard, p2p) = tokio::time::timeout(Duration::from_secs(120), read_addresses(stdout))
        .await
        .with_context(|| {
            format!(
                "node {index} did not start in time; see {}",
                log_path(args, index).display()
            )
        })??;
    Ok((Running { child, dashboard }, p2p))
}

/// Reads a node's start-up lines: its dashboard URL and its first p2p address.
async fn read_addresses(stdout: tokio::process::ChildStdout) -> anyhow::Result<(String, String)> {
    let mut lines = BufReader::new(stdout).lines();
    let mut dashboard = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(url) = line.strip_prefix("dashboard ") {
            dashboard = Some(url.to_owned());
        } else if let (Some(p2p), Some(url)) = (line.strip_prefix("p2p "), &dashboard) {
            return Ok((url.clone(), p2p.to_owned()));
        }
    }
    bail!("the node exited before printing its addresses")
}

/// Prints one status line per node every `every` seconds; returns if a node exits.
async fn watch(nodes: &mut [Running], every: u64) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(Duration::from_secs(every.max(1)));
    loop {
        interval.tick().await;
        for (index, node) in nodes.iter_mut().enumerate() {
            if let Some(status) = node.child.try_wait()? {
                bail!("node {index} exited ({status}); see its log");
            }
            let line = match status_of(&node.dashboard).await {
                Ok(status) => summary(&status),
                Err(err) => format!("no status ({err:#})"),
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
    format!(
        "round {:>4}  step {:>5}  loss {}  val {}  peers {}  model {hash}",
        status["round"],
        status["inner_step"],
        num("loss"),
        num("val_loss"),
        status["peers"].as_array().map_or(0, Vec::len),
    )
}

/// `GET /api/status` from a dashboard URL like `http://127.0.0.1:8000/`.
async fn status_of(dashboard: &str) -> anyhow::Result<serde_json::Value> {
    let host = dashboard
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!("GET /api/status HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await??;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .context("no HTTP body")?;
    Ok(serde_json::from_str(body)?)
}

/// Closes every child's standard input (each then stops cleanly), waits, and kills stragglers.
async fn stop_all(nodes: &mut [Running]) {
    for node in nodes.iter_mut() {
        drop(node.child.stdin.take());
    }
    for node in nodes.iter_mut() {
        if tokio::time::timeout(Duration::from_secs(15), node.child.wait())
            .await
            .is_err()
        {
            let _ = node.child.kill().await;
        }
    }
}
