//! `neuroshard node`: run one node of a network until Ctrl-C (or, under `neuroshard up`, until
//! standard input closes).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use neuroshard_daemon::{Daemon, MOVED_TO_GENESIS, NodeConfig, moved_to_genesis};

/// Arguments of `neuroshard node`; each overrides the same field of `--config`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Settings file (TOML, see config/node.toml); the flags below override it.
    #[arg(long, env = "NEUROSHARD_CONFIG")]
    config: Option<PathBuf>,
    /// The genesis file; its directory may hold the built dataset, otherwise peers supply it.
    #[arg(long, env = "NEUROSHARD_GENESIS")]
    genesis: Option<PathBuf>,
    /// Directory for the key (node.key, mode 0600), the checkpoint and fetched data.
    #[arg(long, env = "NEUROSHARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// libp2p listen address, e.g. /ip4/0.0.0.0/tcp/4001 (repeatable).
    #[arg(long)]
    listen: Vec<String>,
    /// A peer to dial at start, e.g. /ip4/10.0.0.1/tcp/4001/p2p/12D3Koo… (repeatable).
    #[arg(long)]
    bootstrap: Vec<String>,
    /// Discover peers on the local network with mDNS.
    #[arg(long)]
    mdns: bool,
    /// Address of the HTTP API and dashboard (port 0: chosen by the OS).
    #[arg(long, env = "NEUROSHARD_HTTP")]
    http: Option<SocketAddr>,
    /// Wait for this many peers before the first round…
    #[arg(long)]
    min_peers: Option<usize>,
    /// …but at most this many seconds.
    #[arg(long)]
    start_grace_secs: Option<f64>,
    /// Training shards assigned per round.
    #[arg(long)]
    shards_per_node: Option<usize>,
    /// Held-out batches for the validation loss (0: none).
    #[arg(long)]
    val_batches: Option<usize>,
    /// Bytes this node gives to training: a number with an optional unit (512MiB, 2GB, 1.5G).
    /// Below the model's training footprint the node trains one stage of a pipeline.
    #[arg(long, env = "NEUROSHARD_MEMORY_BUDGET", value_parser = parse_bytes)]
    memory_budget: Option<u64>,
    /// The speed this node announces, in parameter-tokens per second; unset, the node measures
    /// it at start-up. Pin it to make a pipeline's plan repeatable.
    #[arg(long, env = "NEUROSHARD_WORK_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    work_per_sec: Option<u64>,
    /// Where to listen for the other validators, when this node is in the ledger's committee
    /// (HOST:PORT).
    #[arg(long)]
    consensus_listen: Option<std::net::SocketAddr>,
    /// Another validator of the ledger's committee, `HEXKEY@HOST:PORT` (repeatable).
    #[arg(long = "validator")]
    validators: Vec<String>,
    /// Stop when standard input closes (set by `neuroshard up`).
    #[arg(long, hide = true)]
    exit_on_stdin_close: bool,
    /// Flags of the settings the genesis `[inner]` section holds now (`--batch-size`, `--lr`,
    /// `--warmup-steps`, `--schedule-rounds`): refused with where they went.
    #[arg(long = "batch-size", hide = true)]
    batch_size: Option<String>,
    #[arg(long = "lr", hide = true)]
    lr: Option<String>,
    #[arg(long = "warmup-steps", hide = true)]
    warmup_steps: Option<String>,
    #[arg(long = "schedule-rounds", hide = true)]
    schedule_rounds: Option<String>,
    /// Test builds only: cheat the work proof (lazy, withhold, forge-inputs or other-batch).
    #[cfg(feature = "cheat")]
    #[arg(long)]
    cheat: Option<neuroshard_daemon::Cheat>,
}

impl Args {
    /// The config file (or the defaults) with every given flag applied.
    fn resolve(self) -> anyhow::Result<NodeConfig> {
        let moved = [
            &self.batch_size,
            &self.lr,
            &self.warmup_steps,
            &self.schedule_rounds,
        ];
        if let Some((field, _)) = MOVED_TO_GENESIS
            .iter()
            .zip(moved)
            .find(|(_, v)| v.is_some())
        {
            anyhow::bail!("{}: leave the flag out", moved_to_genesis(field));
        }
        let mut config = match &self.config {
            Some(path) => NodeConfig::load(path)?,
            None => NodeConfig::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(value) = self.$field { config.$field = value; })* };
        }
        set!(genesis, data_dir, http, min_peers, start_grace_secs);
        set!(shards_per_node, val_batches);
        if !self.listen.is_empty() {
            config.listen = self.listen;
        }
        if !self.bootstrap.is_empty() {
            config.bootstrap = self.bootstrap;
        }
        config.mdns |= self.mdns;
        if self.consensus_listen.is_some() {
            config.consensus_listen = self.consensus_listen;
        }
        if !self.validators.is_empty() {
            config.validators = self.validators;
        }
        config.exit_on_stdin_close |= self.exit_on_stdin_close;
        if self.memory_budget.is_some() {
            config.memory_budget = self.memory_budget;
        }
        if self.work_per_sec.is_some() {
            config.work_per_sec = self.work_per_sec;
        }
        #[cfg(feature = "cheat")]
        {
            config.cheat = self.cheat;
        }
        config.validate()?;
        Ok(config)
    }
}

/// A byte count with an optional unit: `B`, decimal `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB`, or
/// binary `KiB`, `MiB`, `GiB`, `TiB` (case-insensitive); a fraction is allowed with a unit.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit {other:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count such as 512MiB"))?;
    let bytes = value * scale as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Runs `neuroshard node`.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let daemon = Daemon::start(&config)
        .await
        .with_context(|| format!("starting the node in {}", config.data_dir.display()))?;
    // Machine-readable lines: `neuroshard up` and the tests read them.
    println!("node {}", daemon.node_id());
    println!("dashboard http://{}/", daemon.http_addr());
    for addr in daemon.bootstrap_addrs() {
        println!("p2p {addr}");
    }
    daemon
        .run(shutdown(config.exit_on_stdin_close))
        .await
        .context("running the node")
}

/// Resolves on Ctrl-C, on SIGTERM, or (when asked) when standard input closes.
async fn shutdown(watch_stdin: bool) {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    if watch_stdin {
        // A plain thread: reading stdin blocks, and EOF means the parent (`neuroshard up`) is gone.
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while std::io::Read::read(&mut std::io::stdin(), &mut buf).is_ok_and(|n| n > 0) {}
            let _ = closed_tx.send(());
        });
    } else {
        std::mem::forget(closed_tx);
    }
    let stdin_closed = async {
        let _ = closed_rx.await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        () = terminated() => tracing::info!("terminated; stopping"),
        () = stdin_closed => tracing::info!("standard input closed; stopping"),
    }
}

#[cfg(unix)]
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Args, parse_bytes};

    #[derive(Parser)]
    struct Node {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn a_flag_the_genesis_holds_now_is_refused_with_where_it_went() {
        for (flag, field) in [("--batch-size", "inner.batch_size"), ("--lr", "inner.lr")] {
            let node = Node::try_parse_from(["node", flag, "4"]).unwrap();
            let err = node.args.resolve().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
        let node = Node::try_parse_from(["node", "--val-batches", "4"]).unwrap();
        assert_eq!(node.args.resolve().unwrap().val_batches, 4);
    }

    #[test]
    fn byte_counts_take_decimal_and_binary_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1.5g"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("3 KiB"), Ok(3072));
        for bad in ["", "MiB", "12 parsecs", "0", "-1", "1e30TB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
