//! One `neuroshard node` child of `neuroshard up`, and the task that keeps it running: it says
//! when the child exits (exit status, the end of its log) and restarts it after the back-off, on
//! the same data directory and key, until `up` stops.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
// Tokio's clock, not `std::time::Instant::now` (banned in the cores): how long a child ran.
use tokio::time::Instant;

use super::Args;
use super::backoff::RESTART;
use super::committee::Committee;

/// How the keepers start nodes, and where each node listens while it is up.
pub(super) struct Network {
    exe: PathBuf,
    args: Args,
    committee: Committee,
    addresses: Mutex<Vec<Addresses>>,
}

/// Where a node listens; both `None` while it is down.
#[derive(Debug, Clone, Default)]
struct Addresses {
    dashboard: Option<String>,
    p2p: Option<String>,
}

/// A running child node.
pub(super) struct Running {
    child: Child,
    /// Held apart from `child`, whose `wait` would close it: the node stops when it closes.
    stdin: Option<ChildStdin>,
    pid: u32,
    started: Instant,
}

impl Network {
    pub(super) fn new(exe: &Path, args: Args, committee: Committee) -> Network {
        let addresses = Mutex::new(vec![Addresses::default(); args.nodes]);
        Network {
            exe: exe.to_owned(),
            args,
            committee,
            addresses,
        }
    }

    pub(super) fn args(&self) -> &Args {
        &self.args
    }

    /// Node `index`'s dashboard URL; `None` while it is down.
    pub(super) fn dashboard(&self, index: usize) -> Option<String> {
        self.addresses.lock().expect("no keeper panics")[index]
            .dashboard
            .clone()
    }

    fn set(&self, index: usize, addresses: Addresses) {
        self.addresses.lock().expect("no keeper panics")[index] = addresses;
    }

    fn bootstrap_for(&self, index: usize) -> Option<String> {
        bootstrap_for(index, &self.addresses.lock().expect("no keeper panics"))
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.args.dir.join(format!("node-{index}.log"))
    }
}

/// The p2p address a starting node `index` dials: the lowest-numbered other node that is up
/// (node 0, the data holder, while it is up).
fn bootstrap_for(index: usize, addresses: &[Addresses]) -> Option<String> {
    (addresses.iter().enumerate())
        .filter(|&(i, _)| i != index)
        .find_map(|(_, node)| node.p2p.clone())
}

/// Runs `work` unless `stop` turns true (or its sender goes) first; `None` when it does.
pub(super) async fn unless_stopped<T>(
    stop: &mut watch::Receiver<bool>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        out = work => Some(out),
        _ = stop.wait_for(|&stopped| stopped) => None,
    }
}

/// Keeps node `index` running until `stop`: each time it exits, says so and restarts it after
/// the back-off. On `stop` it stops the node cleanly.
pub(super) async fn keep(
    net: Arc<Network>,
    index: usize,
    mut node: Running,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_wait = None;
    loop {
        let Some(status) = unless_stopped(&mut stop, node.child.wait()).await else {
            return node.stop().await;
        };
        net.set(index, Addresses::default());
        report_exit(&net, index, &node, status);
        let wait = RESTART.delay(last_wait, node.started.elapsed());
        let Some((next, wait)) = restart(&net, index, wait, &mut stop).await else {
            return;
        };
        (node, last_wait) = (next, Some(wait));
    }
}

/// Restarts node `index` after `wait`, waiting longer after each failed start; the node and the
/// wait before its successful start, or `None` on `stop`.
async fn restart(
    net: &Network,
    index: usize,
    mut wait: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Option<(Running, Duration)> {
    let down = Instant::now();
    loop {
        println!("node {index}: restarting in {}", seconds(wait));
        unless_stopped(stop, tokio::time::sleep(wait)).await?;
        match start(net, index, stop).await {
            Ok(Some(node)) => {
                println!("node {index}: back after {} down", seconds(down.elapsed()));
                return Some((node, wait));
            }
            Ok(None) => return None,
            Err(err) => println!("node {index}: failed to restart: {err:#}"),
        }
        wait = RESTART.delay(Some(wait), Duration::ZERO);
    }
}

/// Prints which node exited, how, after how long, and the end of its log.
fn report_exit(net: &Network, index: usize, node: &Running, status: std::io::Result<ExitStatus>) {
    let status = match status {
        Ok(status) => status.to_string(),
        Err(err) => format!("not known: {err}"),
    };
    let log = net.log_path(index);
    println!(
        "node {index} (pid {}) exited ({status}) after {}; the end of {}:",
        node.pid,
        seconds(node.started.elapsed()),
        log.display()
    );
    println!("{}", log_end(&log));
}

/// The end of the log at `path`, each line indented, for a report.
fn log_end(path: &Path) -> String {
    match log_tail(path) {
        Ok(tail) => (tail.lines().map(|line| format!("    {line}")))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => format!("    (unreadable: {err})"),
    }
}

/// A duration as people read it: `1 s`, `2.5 s`.
fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64()).replace(".0 s", " s")
}

/// The last lines of a log that may have grown large: at most 10, from its last 8 KiB.
fn log_tail(path: &Path) -> std::io::Result<String> {
    const BYTES: u64 = 8 * 1024;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(BYTES)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(last_lines(&String::from_utf8_lossy(&bytes), 10).to_owned())
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> &str {
    let text = text.trim_end_matches('\n');
    let Some(skip) = n.checked_sub(1) else {
        return "";
    };
    (text.rmatch_indices('\n').nth(skip)).map_or(text, |(at, _)| &text[at + 1..])
}

/// Starts node `index`, prints its start line, and marks it up; `None` when `stop` came first
/// (the half-started node is then stopped cleanly).
pub(super) async fn start(
    net: &Network,
    index: usize,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<Running>> {
    let mut child = spawn(net, index)?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let pid = child.id().context("the node exited at once")?;
    let mut node = Running {
        stdin: child.stdin.take(),
        child,
        pid,
        started: Instant::now(),
    };
    let limit = Duration::from_secs(120);
    let Some(read) =
        unless_stopped(stop, tokio::time::timeout(limit, read_addresses(stdout))).await
    else {
        node.stop().await;
        return Ok(None);
    };
    let log = net.log_path(index);
    let (dashboard, p2p) = read
        .with_context(|| format!("node {index} did not start in time; see {}", log.display()))?
        .with_context(|| {
            let end = log_end(&log);
            format!(
                "node {index} did not start; the end of {}:\n{end}\n",
                log.display()
            )
        })?;
    println!(
        "node {index}: pid {pid}, dashboard {dashboard}  (log {})",
        log.display()
    );
    let (dashboard, p2p) = (Some(dashboard), Some(p2p));
    net.set(index, Addresses { dashboard, p2p });
    Ok(Some(node))
}

/// Spawns `neuroshard node` for node `index`: its own data directory (key, checkpoint), its log
/// appended to, the dataset for node 0 only, and another node that is up as its bootstrap peer.
fn spawn(net: &Network, index: usize) -> anyhow::Result<Child> {
    let args = &net.args;
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
    // Appended to, so restarts (of a node, or of the network) keep the earlier runs' logs.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(net.log_path(index))
        .context("opening the node log")?;
    let port = if args.http_port == 0 {
        0
    } else {
        args.http_port + index as u16
    };
    net.committee.release(index);
    let mut command = Command::new(&net.exe);
    command
        .arg("node")
        .arg("--genesis")
        .arg(&genesis)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--exit-on-stdin-close"])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .args(["--min-peers", &(args.nodes - 1).to_string()])
        .args(net.committee.flags(index))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    // A process group of its own, so a terminal's Ctrl-C reaches `up` alone: `up` then stops
    // every child cleanly, and none of them exits first and is taken for a crash.
    #[cfg(unix)]
    command.process_group(0);
    if let Some(addr) = net.bootstrap_for(index) {
        command.args(["--bootstrap", &addr]);
    }
    if let Some(budget) = args.memory_budget {
        command.args(["--memory-budget", &budget.to_string()]);
    }
    if let Some(speed) = args.work_per_sec {
        command.args(["--work-per-sec", &speed.to_string()]);
    }
    command.spawn().context("starting `neuroshard node`")
}

/// Reads a node's start-up lines: its dashboard URL and its first p2p address.
async fn read_addresses(stdout: ChildStdout) -> anyhow::Result<(String, String)> {
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

impl Running {
    /// Closes the child's standard input (it then stops cleanly), waits up to 15 s, and kills it
    /// if it is still running.
    async fn stop(&mut self) {
        drop(self.stdin.take());
        let limit = Duration::from_secs(15);
        if tokio::time::timeout(limit, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(p2p: &str) -> Addresses {
        Addresses {
            dashboard: Some(format!("http://{p2p}/")),
            p2p: Some(p2p.to_owned()),
        }
    }

    #[test]
    fn a_node_bootstraps_from_the_lowest_other_node_that_is_up() {
        let down = Addresses::default();
        let nodes = [up("a"), down.clone(), up("c")];
        assert_eq!(bootstrap_for(1, &nodes).as_deref(), Some("a"));
        assert_eq!(bootstrap_for(0, &nodes).as_deref(), Some("c"));
        assert_eq!(bootstrap_for(0, &[up("a"), down.clone()]), None);
        assert_eq!(bootstrap_for(0, &[up("a")]), None);
    }

    #[test]
    fn the_last_lines_are_whole_lines() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(last_lines("a\nb\n", 0), "");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn seconds_drop_a_zero_fraction() {
        assert_eq!(seconds(Duration::from_secs(1)), "1 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
    }
}
