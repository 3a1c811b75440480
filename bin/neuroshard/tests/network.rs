//! End to end: real `neuroshard node` processes on 127.0.0.1 train together, a fourth joins
//! mid-training, one is killed with SIGKILL and restarted, and all end on the same model.
//!
//! One test, because every phase needs the network the previous one built. It builds a small
//! generated-corpus genesis (nano, small H) in a temporary directory, reads each node's dashboard
//! and p2p address from the lines it prints, polls `/api/status`, and loads one dashboard in
//! headless Chromium (skipped where it is absent). Every wait is bounded and
//! every child is killed when the test ends, pass or fail. The rounds are short (nano, H = 48):
//! the whole test takes seconds.

// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use neuroshard_testkit::{attr, chromium, run_chromium};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
/// Rounds the first three nodes train together before the checks.
const ROUNDS: u64 = 3;

/// A running node process: killed when dropped.
struct Node {
    child: Child,
    dashboard: String,
    p2p: String,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(
        name: &str,
        genesis: &Path,
        work: &Path,
        bootstrap: Option<&str>,
        min_peers: usize,
    ) -> Node {
        let data_dir = work.join(name);
        std::fs::create_dir_all(&data_dir).unwrap();
        let log = work.join(format!("{name}.log"));
        let mut command = Command::new(EXE);
        command
            .args([
                "node",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--http",
                "127.0.0.1:0",
            ])
            .args([
                "--batch-size",
                "4",
                "--val-batches",
                "2",
                "--lr",
                "0.01",
                "--warmup-steps",
                "5",
            ])
            .args([
                "--min-peers",
                &min_peers.to_string(),
                "--start-grace-secs",
                "20",
            ])
            .arg("--genesis")
            .arg(genesis)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--exit-on-stdin-close")
            .env("RAYON_NUM_THREADS", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        if let Some(addr) = bootstrap {
            command.args(["--bootstrap", addr]);
        }
        let mut child = command.spawn().expect("the neuroshard binary starts");
        let (dashboard, p2p) = read_addresses(child.stdout.take().unwrap(), &log);
        Node {
            child,
            dashboard,
            p2p,
            log,
        }
    }

    fn status(&self) -> Option<Value> {
        http_get_json(&self.dashboard, "/api/status")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

/// The `dashboard …` and first `p2p …` lines a node prints at start.
fn read_addresses(stdout: std::process::ChildStdout, log: &Path) -> (String, String) {
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

fn http_get_json(host: &str, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    serde_json::from_str(response.split_once("\r\n\r\n")?.1).ok()
}

/// Polls until `done` holds for the nodes' statuses, or panics with their logs after `limit`.
fn wait_for(
    what: &str,
    nodes: &[&Node],
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

/// All statuses at the same round ≥ `round` with the same model hash.
fn agree_at(statuses: &[Value], round: u64) -> bool {
    let first = &statuses[0];
    first["round"].as_u64().is_some_and(|r| r >= round)
        && statuses.iter().all(|s| {
            s["round"] == first["round"]
                && s["model_hash"] == first["model_hash"]
                && !s["model_hash"].is_null()
        })
}

/// Loads `node`'s dashboard in headless Chromium and checks that the plot shows the loss the
/// node reports; skipped, with the reason printed, where Chromium is absent.
fn dashboard_plots_the_node_loss(node: &Node) {
    let Some(chromium) = chromium() else {
        println!("browser check skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let dom = run_chromium(
        &chromium,
        &format!("http://{}/", node.dashboard),
        &["--dump-dom"],
    );
    let plotted: Vec<f64> = attr(&dom, "loss-line", "data-values")
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    let served: Vec<f64> = node.status().unwrap()["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["loss"].as_f64())
        .collect();
    assert!(
        plotted.len() >= 2,
        "the plot shows the live loss: {plotted:?}"
    );
    assert!(
        plotted
            .iter()
            .all(|v| served.iter().any(|s| (s - v).abs() < 1e-9)),
        "every plotted value is one the node reported: {plotted:?} vs {served:?}"
    );
}

/// How many contributions each node applied in its last closed round.
fn contributors(statuses: &[Value]) -> Vec<u64> {
    statuses
        .iter()
        .map(|s| s["contributors"].as_u64().unwrap_or(0))
        .collect()
}

fn round_of(status: &Value) -> u64 {
    status["round"].as_u64().unwrap_or(0)
}

/// A corpus of generated sentences: a small grammar, so the model has something to learn.
fn write_corpus(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
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
        std::fs::write(dir.join(format!("doc-{doc:03}.txt")), text).unwrap();
    }
}

fn neuroshard(args: &[&str]) {
    let output = Command::new(EXE)
        .args(args)
        .output()
        .expect("neuroshard runs");
    assert!(
        output.status.success(),
        "neuroshard {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds the genesis directory and returns the path of its genesis file.
fn build_genesis(work: &Path) -> PathBuf {
    let corpus = work.join("corpus");
    write_corpus(&corpus);
    let dir = work.join("genesis");
    let dir_s = dir.to_str().unwrap();
    neuroshard(&[
        "genesis",
        "build",
        "--out",
        dir_s,
        "--corpus",
        corpus.to_str().unwrap(),
        "--vocab-size",
        "384",
        "--shard-tokens",
        "8000",
        "--validation-fraction",
        "0.1",
    ]);
    neuroshard(&[
        "genesis",
        "init",
        "--dir",
        dir_s,
        "--force",
        "--inner-steps",
        "48",
        "--round-deadline-secs",
        "30",
    ]);
    dir.join("genesis.toml")
}

/// A copy of the genesis file alone (no dataset): that node must fetch its shards from peers.
fn bare_genesis(genesis: &Path, work: &Path, name: &str) -> PathBuf {
    let dir = work.join(format!("{name}-genesis"));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("genesis.toml");
    std::fs::copy(genesis, &copy).unwrap();
    copy
}

#[test]
fn nodes_train_together_join_and_survive_a_crash() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_genesis(work);
    let a = Node::start("a", &genesis, work, None, 2);
    let b = Node::start(
        "b",
        &bare_genesis(&genesis, work, "b"),
        work,
        Some(&a.p2p),
        2,
    );
    let c = Node::start(
        "c",
        &bare_genesis(&genesis, work, "c"),
        work,
        Some(&a.p2p),
        2,
    );
    let limit = Duration::from_secs(180);

    // Three nodes train ROUNDS rounds and agree; the validation loss falls.
    let statuses = wait_for("three nodes to agree", &[&a, &b, &c], limit, |s| {
        agree_at(s, ROUNDS)
    });
    let history = statuses[0]["history"].as_array().unwrap();
    let vals: Vec<f64> = history
        .iter()
        .filter_map(|p| p["val_loss"].as_f64())
        .collect();
    assert!(
        vals.len() >= 2 && vals.last() < vals.first(),
        "validation loss should fall: {vals:?}"
    );
    println!(
        "three nodes agree at round {}; val loss {vals:?}",
        round_of(&statuses[0])
    );
    dashboard_plots_the_node_loss(&a);

    // A fourth node joins mid-training, fetches data and state from peers, and agrees.
    let joined_at = Instant::now();
    let d = Node::start(
        "d",
        &bare_genesis(&genesis, work, "d"),
        work,
        Some(&a.p2p),
        0,
    );
    let target = round_of(&statuses[0]) + 1;
    wait_for("the fourth node to agree", &[&a, &b, &c, &d], limit, |s| {
        agree_at(s, target)
    });
    wait_for(
        "the fourth node to contribute",
        &[&a, &b, &c, &d],
        limit,
        |s| agree_at(s, target) && contributors(s) == [4; 4],
    );
    println!(
        "fourth node agreed after {:.1} s",
        joined_at.elapsed().as_secs_f64()
    );

    // Node b is killed mid-round; the others go on; restarted, it catches up from its checkpoint.
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let before = round_of(&a.status().unwrap());
    wait_for(
        "the others to finish rounds without b",
        &[&a, &c, &d],
        limit,
        |s| agree_at(s, before + 2) && contributors(s) == [3; 3],
    );
    let b_dir_genesis = work.join("b-genesis/genesis.toml");
    drop(b);
    let b = Node::start("b", &b_dir_genesis, work, Some(&a.p2p), 0);
    let now = round_of(&a.status().unwrap());
    wait_for(
        "the restarted node to catch up",
        &[&a, &b, &c, &d],
        limit,
        |s| agree_at(s, now + 1) && contributors(s) == [4; 4],
    );
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        log.contains("resuming from the checkpoint"),
        "b should resume from its checkpoint"
    );
}
