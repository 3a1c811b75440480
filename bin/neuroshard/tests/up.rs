//! `neuroshard up --nodes 2` keeps its network up: a child node killed with SIGKILL is reported
//! (pid, exit status, the end of its log) and restarted after the back-off on the same data
//! directory; it answers on its dashboard again and trains on to later rounds. Ctrl-C (SIGINT)
//! then stops `up` and both children.
//!
//! A small generated-corpus genesis (nano, H = 16) in a temporary directory; `--http-port 0`, so
//! every port is the OS's choice. Every wait is bounded, and `up` is killed when the test ends,
//! pass or fail (its children then stop by themselves: their standard input closes).

// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use neuroshard_testkit::nodes::{build_genesis, round_of, wait_for_dashboard};

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");

/// A running `neuroshard up`, its output lines on a channel; killed (SIGKILL) when dropped.
struct Up {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Up {
    /// Starts `neuroshard up --nodes 2` on the built genesis directory `genesis`, the nodes'
    /// directories and logs in `dir`.
    fn start(genesis: &Path, dir: &Path) -> Up {
        let mut child = Command::new(EXE)
            .args(["up", "--nodes", "2", "--http-port", "0", "--every", "1"])
            .arg("--genesis")
            .arg(genesis)
            .arg("--dir")
            .arg(dir)
            .env("RAYON_NUM_THREADS", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the neuroshard binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("up| {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Up {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until `pick` takes one, for at most `limit`; panics with every line so far.
    fn expect<T>(&mut self, what: &str, limit: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let picked = pick(&line);
            self.seen.push(line);
            if let Some(picked) = picked {
                return picked;
            }
        }
        panic!(
            "no line for {what} within {limit:?}; up printed:\n{}",
            self.seen.join("\n")
        );
    }

    /// Sends `up` SIGINT, as Ctrl-C does, and waits up to a minute for it to exit.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        signal("INT", self.child.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("waiting for up") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("up did not stop within a minute of SIGINT");
    }
}

/// The pid and dashboard (`host:port`) in node `index`'s start line,
/// `node 1: pid 4242, dashboard http://127.0.0.1:39011/  (log …)`.
fn started(line: &str, index: usize) -> Option<(u32, String)> {
    let rest = line.strip_prefix(&format!("node {index}: pid "))?;
    let (pid, rest) = rest.split_once(", dashboard http://")?;
    let host = rest.split('/').next()?;
    Some((pid.parse().ok()?, host.to_owned()))
}

/// Sends signal `name` (`KILL`, `INT`) to process `pid`.
fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Whether process `pid` still exists (a zombie counts).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn up_restarts_a_killed_node_and_it_trains_on() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_genesis(
        Path::new(EXE),
        work,
        &["--inner-steps", "16", "--round-deadline-secs", "10"],
    );
    let mut up = Up::start(genesis.parent().unwrap(), &work.join("up"));
    let start_limit = Duration::from_secs(180);
    let (pid_a, _) = up.expect("node 0 to start", start_limit, |l| started(l, 0));
    let (pid_b, b) = up.expect("node 1 to start", start_limit, |l| started(l, 1));
    let limit = Duration::from_secs(120);
    let before = round_of(&wait_for_dashboard("node 1's round 2", &b, limit, |s| {
        round_of(s) >= 2
    }));

    signal("KILL", pid_b);
    let report = format!("node 1 (pid {pid_b}) exited (");
    let exit = up.expect("the exit report", limit, |l| {
        l.starts_with(&report).then(|| l.to_owned())
    });
    assert!(exit.contains("signal: 9 (SIGKILL)"), "{exit}");
    let tail_line = |l: &str| l.starts_with("    ").then_some(());
    up.expect("the end of node 1's log", limit, tail_line);
    let notice = |l: &str| (l == "node 1: restarting in 1 s").then_some(());
    up.expect("the restart notice", limit, notice);
    let (pid_b2, b2) = up.expect("node 1 to start again", limit, |l| started(l, 1));
    assert_ne!(pid_b2, pid_b, "a new process");
    let back = |l: &str| l.strip_prefix("node 1: back after ").map(str::to_owned);
    let down = up.expect("how long node 1 was down", limit, back);
    assert!(down.ends_with(" s down"), "{down}");

    let target = before + 2;
    wait_for_dashboard("the restarted node to train on", &b2, limit, |s| {
        round_of(s) >= target
    });
    let log = std::fs::read_to_string(work.join("up/node-1.log")).unwrap();
    assert!(
        log.contains("resuming from the checkpoint"),
        "node 1 resumes from its checkpoint"
    );

    let status = up.interrupt();
    assert!(status.success(), "up exits cleanly on Ctrl-C: {status}");
    let stopping = |l: &str| (l == "stopping 2 nodes").then_some(());
    up.expect("up to say it stops the nodes", limit, stopping);
    for pid in [pid_a, pid_b2] {
        assert!(!alive(pid), "child {pid} stopped with up");
    }
}
