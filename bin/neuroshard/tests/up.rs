//! `neuroshard up --nodes 2` keeps its network up: a child node killed with SIGKILL is reported
//! (pid, exit status, the end of its log) and restarted after the back-off on the same data
//! directory; it answers on its dashboard again and trains on to later rounds. Ctrl-C (SIGINT)
//! then stops `up` and both children. Run again on its directory with every checkpoint gone, the
//! network trains on from the ledger's round.
//!
//! A small generated-corpus genesis (nano, H = 16) in a temporary directory; `--http-port 0`, so
//! every port is the OS's choice. Every wait is bounded, and `up` is killed when the test ends,
//! pass or fail (its children then stop by themselves: their standard input closes).

// Real processes: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use neuroshard_testkit::nodes::{build_genesis, round_of, wait_for_dashboard};
use neuroshard_testkit::up::{Up, alive, signal, started};

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");

/// `up`'s arguments here: two nodes, every port the OS's choice, a checkpoint every round.
const ARGS: [&str; 6] = ["--nodes", "2", "--http-port", "0", "--every", "1"];

/// The small genesis directory, built in `work` once.
fn small_genesis(work: &Path) -> PathBuf {
    let genesis = work.join("genesis");
    if !genesis.exists() {
        build_genesis(
            Path::new(EXE),
            work,
            &["--inner-steps", "16", "--round-deadline-secs", "10"],
        );
    }
    genesis
}

/// `up` with [`ARGS`] on the small genesis, writing into `work/up`.
fn up_two_nodes(work: &Path) -> Up {
    Up::start(
        Path::new(EXE),
        &ARGS,
        &small_genesis(work),
        &work.join("up"),
    )
}

#[test]
fn up_restarts_a_killed_node_and_it_trains_on() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let mut up = up_two_nodes(work);
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

/// `up` stopped with Ctrl-C and run again on its directory after every node lost its
/// checkpoint: each node builds its round core from round 0's model at the ledger's round
/// (`round_core::fresh`), not at round 0, where it would wait forever for a list (the ledger
/// takes claims for its open round only), and the network trains on past the first run.
#[test]
fn up_run_again_without_its_checkpoints_trains_on_from_the_ledgers_round() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let limit = Duration::from_secs(180);
    let mut up = up_two_nodes(work);
    let first = up.started(2, limit);
    let mut before = 0;
    for (_, dashboard) in &first {
        let status = wait_for_dashboard("round 3", dashboard, limit, |s| round_of(s) >= 3);
        before = before.max(round_of(&status));
    }
    assert!(up.interrupt().success(), "up stops cleanly");
    for node in 0..2 {
        let checkpoint = work.join(format!("up/node-{node}/state.safetensors"));
        std::fs::remove_file(&checkpoint).expect("each node wrote a checkpoint");
    }

    let mut up = up_two_nodes(work);
    for (_, dashboard) in up.started(2, limit) {
        wait_for_dashboard("rounds past the first run's", &dashboard, limit, |s| {
            round_of(s) >= before + 2
        });
    }
    let log = std::fs::read_to_string(work.join("up/node-0.log")).unwrap();
    assert!(
        !log.contains("resuming from the checkpoint"),
        "no checkpoint to resume"
    );
    assert!(up.interrupt().success(), "up stops cleanly");
}

/// A node that cannot start (here its ledger store is damaged): `up` stops with an error that
/// names the node and ends with the end of its log, where the node says why.
#[test]
fn up_says_why_a_node_did_not_start() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let mut up = up_two_nodes(work);
    up.started(2, Duration::from_secs(180));
    assert!(up.interrupt().success(), "up stops cleanly");
    std::fs::write(work.join("up/node-0/ledger/ledger.redb"), "not a store").unwrap();

    let mut up = Command::new(EXE)
        .arg("up")
        .args(ARGS)
        .arg("--genesis")
        .arg(small_genesis(work))
        .arg("--dir")
        .arg(work.join("up"))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            up.kill().unwrap();
            panic!("up did not stop within 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    up.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    println!("{stderr}");
    assert!(!status.success());
    assert!(
        stderr.contains("node 0 did not start; the end of"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ledger: store:"),
        "the node's own error: {stderr}"
    );
}
