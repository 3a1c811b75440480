//! Real `neuroshard node` processes on 127.0.0.1 for the binary's end-to-end tests: a small
//! generated-corpus genesis, nodes on ports the OS chooses (killed when dropped), and bounded
//! polling of their `/api/status`.
//!
//! The functions take the binary's path, which only the binary's own tests know
//! (`env!("CARGO_BIN_EXE_neuroshard")`).

// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `genesis init` flags for a small, quick network: every node trains at batch 4, lr 0.01,
/// five warm-up steps.
pub const SMALL_INNER: [&str; 6] = ["--batch-size", "4", "--lr", "0.01", "--warmup-steps", "5"];

/// Node flags for a small, quick node: two validation batches.
pub const SMALL_TRAINING: [&str; 2] = ["--val-batches", "2"];

/// A running `neuroshard node`: killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    /// `host:port` of its HTTP API and dashboard.
    pub dashboard: String,
    /// Its first p2p address, with `/p2p/…`: what others bootstrap from.
    pub p2p: String,
    /// The file its stderr (the log) goes to.
    pub log: PathBuf,
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl NodeProcess {
    /// Starts `exe node` named `name`: data in `work/name`, log in `work/name.log`, the p2p and
    /// HTTP ports chosen by the OS on 127.0.0.1, `args` (training flags, `--bootstrap …`) after
    /// those. Returns once the node printed its addresses; panics with its log if it does not
    /// within two minutes.
    pub fn start(
        exe: &Path,
        name: &str,
        work: &Path,
        genesis: &Path,
        args: &[&str],
    ) -> NodeProcess {
        let data_dir = work.join(name);
        std::fs::create_dir_all(&data_dir).expect("creating the node's data directory");
        let log = work.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("creating the node's log");
        let mut child = Command::new(exe)
            .args([
                "node",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--http",
                "127.0.0.1:0",
            ])
            .arg("--genesis")
            .arg(genesis)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--exit-on-stdin-close")
            .args(args)
            .env("RAYON_NUM_THREADS", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("the neuroshard binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (dashboard, p2p) = read_addresses(stdout, &log);
        NodeProcess {
            child,
            dashboard,
            p2p,
            log,
        }
    }

    /// Its `/api/status`, or `None` when it does not answer.
    pub fn status(&self) -> Option<Value> {
        http_get_json(&self.dashboard, "/api/status")
    }

    /// The last 25 lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Whether it has exited (by itself, or killed from outside).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Kills it with SIGKILL and reaps it: no chance to say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes its standard input, which tells it to stop cleanly, and waits up to 30 s for it to
    /// exit; whether it did (it is killed otherwise).
    pub fn stop(&mut self) -> bool {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }
}

/// The `dashboard …` and first `p2p …` lines a node prints at start.
fn read_addresses(stdout: ChildStdout, log: &Path) -> (String, String) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut dashboard = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some(url) = line.strip_prefix("dashboard http://") {
            dashboard = Some(url.trim_end_matches('/').to_owned());
        } else if let (Some(p2p), Some(url)) = (line.strip_prefix("p2p "), &dashboard) {
            return (url.clone(), p2p.to_owned());
        }
    }
    panic!(
        "node did not print its addresses; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// `GET path` from `host` parsed as JSON; `None` on any failure.
pub fn http_get_json(host: &str, path: &str) -> Option<Value> {
    serde_json::from_str(&http_get(host, path)?).ok()
}

/// The body of `GET path` from `host`; `None` on any failure.
pub fn http_get(host: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}

/// `POST path` to `host` with the JSON `body`, within `limit`: the status code and the body
/// (a chunked body, a server-sent event stream say, keeps its chunk-size lines).
pub fn http_post(host: &str, path: &str, body: &str, limit: Duration) -> (u16, String) {
    let mut stream = TcpStream::connect(host).expect("the node accepts a connection");
    stream
        .set_read_timeout(Some(limit))
        .expect("a read timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("the request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the node answers in time");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok());
    (code.expect("a status line"), body.to_owned())
}

/// Polls until `done` holds for the nodes' statuses, or panics with their logs after `limit`.
pub fn wait_for(
    what: &str,
    nodes: &[&NodeProcess],
    limit: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let statuses: Option<Vec<Value>> = nodes.iter().map(|n| n.status()).collect();
        if let Some(statuses) = statuses {
            if done(&statuses) {
                return statuses;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = nodes.iter().map(|n| n.log_tail()).collect();
                panic!(
                    "timed out waiting for {what}; statuses {statuses:#?}\nlogs:\n{}",
                    logs.join("\n-----\n")
                );
            }
        } else if Instant::now() > deadline {
            panic!("timed out waiting for {what}: a node does not answer");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Polls the `/api/status` of the node at `dashboard` (`host:port`) until `done` holds for it, or
/// panics with the last status after `limit`.
pub fn wait_for_dashboard(
    what: &str,
    dashboard: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        match http_get_json(dashboard, "/api/status") {
            Some(status) if done(&status) => return status,
            last if Instant::now() > deadline => {
                panic!("timed out waiting for {what}; last status {last:#?}")
            }
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// All statuses at the same round ≥ `round` with the same model hash.
pub fn agree_at(statuses: &[Value], round: u64) -> bool {
    let first = &statuses[0];
    first["round"].as_u64().is_some_and(|r| r >= round)
        && statuses.iter().all(|s| {
            s["round"] == first["round"]
                && s["model_hash"] == first["model_hash"]
                && !s["model_hash"].is_null()
        })
}

/// The round a status reports (0 when absent).
pub fn round_of(status: &Value) -> u64 {
    status["round"].as_u64().unwrap_or(0)
}

/// A corpus of generated sentences: a small grammar, so the model has something to learn.
fn write_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).expect("creating the corpus directory");
    let subjects = [
        "the cat",
        "a dog",
        "my friend",
        "the old man",
        "a small bird",
        "the river",
    ];
    let verbs = ["sees", "likes", "follows", "finds", "remembers", "carries"];
    let objects = [
        "the moon",
        "a red ball",
        "the quiet house",
        "an apple",
        "the long road",
        "a song",
    ];
    let mut state = 12345u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    for doc in 0..60 {
        let mut text = String::new();
        for _ in 0..120 {
            text.push_str(&format!(
                "{} {} {}. ",
                subjects[next(6)],
                verbs[next(6)],
                objects[next(6)]
            ));
        }
        std::fs::write(dir.join(format!("doc-{doc:03}.txt")), text).expect("writing the corpus");
    }
}

/// Runs `exe args` to completion; panics with its stderr if it fails.
pub fn run_ok(exe: &Path, args: &[&str]) {
    let output = Command::new(exe)
        .args(args)
        .output()
        .expect("neuroshard runs");
    assert!(
        output.status.success(),
        "neuroshard {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds a small genesis in `work/genesis` from a generated corpus (vocabulary 384, shards of
/// 8,000 tokens, the nano model) with `init` (`--inner-steps`, `--round-deadline-secs`, …) added
/// to `genesis init`; returns the path of its genesis file.
pub fn build_genesis(exe: &Path, work: &Path, init: &[&str]) -> PathBuf {
    let corpus = work.join("corpus");
    write_corpus(&corpus);
    let dir = work.join("genesis");
    let dir_s = dir.to_str().expect("a UTF-8 temporary path");
    run_ok(
        exe,
        &[
            "genesis",
            "build",
            "--out",
            dir_s,
            "--corpus",
            corpus.to_str().expect("a UTF-8 temporary path"),
            "--vocab-size",
            "384",
            "--shard-tokens",
            "8000",
            "--validation-fraction",
            "0.1",
        ],
    );
    init_genesis(exe, &dir, init)
}

/// [`build_genesis`] for a small, quick network: [`SMALL_INNER`], then `init`.
pub fn build_small_genesis(exe: &Path, work: &Path, init: &[&str]) -> PathBuf {
    build_genesis(exe, work, &[&SMALL_INNER[..], init].concat())
}

/// A copy in `work/genesis` of the genesis directory `built` (a real corpus's, say), with its
/// genesis file rewritten by `neuroshard genesis init <init…>`.
pub fn copy_genesis(exe: &Path, built: &Path, work: &Path, init: &[&str]) -> PathBuf {
    let dir = work.join("genesis");
    std::fs::create_dir_all(&dir).expect("creating the genesis directory");
    for entry in std::fs::read_dir(built).expect("reading the built genesis directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_file() {
            let name = path.file_name().expect("a file name");
            std::fs::copy(&path, dir.join(name)).expect("copying a genesis file");
        }
    }
    init_genesis(exe, &dir, init)
}

/// Rewrites the genesis file of the built directory `dir` with `neuroshard genesis init <init…>`.
fn init_genesis(exe: &Path, dir: &Path, init: &[&str]) -> PathBuf {
    let dir_s = dir.to_str().expect("a UTF-8 path");
    let mut args = vec!["genesis", "init", "--dir", dir_s, "--force"];
    args.extend_from_slice(init);
    run_ok(exe, &args);
    dir.join("genesis.toml")
}

/// A copy of the genesis file alone (no dataset) in `work/<name>-genesis`: a node started with
/// it must fetch its shards from peers.
pub fn bare_genesis(genesis: &Path, work: &Path, name: &str) -> PathBuf {
    let dir = work.join(format!("{name}-genesis"));
    std::fs::create_dir_all(&dir).expect("creating the genesis copy's directory");
    let copy = dir.join("genesis.toml");
    std::fs::copy(genesis, &copy).expect("copying the genesis file");
    copy
}
