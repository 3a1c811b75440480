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

use std::path::Path;
use std::time::{Duration, Instant};

use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, agree_at, bare_genesis, build_small_genesis, round_of, wait_for,
};
use neuroshard_testkit::{attr, chromium, run_chromium};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
/// Rounds the first three nodes train together before the checks.
const ROUNDS: u64 = 3;

/// Starts node `name`, bootstrapping from `bootstrap` if given, waiting for `min_peers` peers (at
/// most 20 s) before its first round.
fn start(
    name: &str,
    genesis: &Path,
    work: &Path,
    bootstrap: Option<&str>,
    min_peers: usize,
) -> NodeProcess {
    let min_peers = min_peers.to_string();
    let mut args = SMALL_TRAINING.to_vec();
    args.extend(["--min-peers", &min_peers, "--start-grace-secs", "20"]);
    if let Some(addr) = bootstrap {
        args.extend(["--bootstrap", addr]);
    }
    NodeProcess::start(Path::new(EXE), name, work, genesis, &args)
}

/// Loads `node`'s dashboard in headless Chromium and checks that the plots show the losses the
/// node reports (its replica's training loss; its network model's validation loss against
/// tokens); skipped, with the reason printed, where Chromium is absent.
fn dashboard_plots_the_node_loss(node: &NodeProcess) {
    let Some(chromium) = chromium() else {
        println!("browser check skipped: no chromium on PATH (apt-get install chromium)");
        return;
    };
    let dom = run_chromium(
        &chromium,
        &format!("http://{}/", node.dashboard),
        &["--dump-dom"],
    );
    let values = |id| -> Vec<f64> {
        attr(&dom, id, "data-values")
            .unwrap_or_default()
            .split(',')
            .filter_map(|v| v.parse().ok())
            .collect()
    };
    let status = node.status().unwrap();
    let served = |series: &str, field: &str| -> Vec<f64> {
        status[series]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p[field].as_f64())
            .collect()
    };
    let reported = |plotted: &[f64], served: &[f64]| {
        plotted
            .iter()
            .all(|v| served.iter().any(|s| (s - v).abs() < 1e-9))
    };
    let (plotted, served_model) = (values("loss-line"), served("model_history", "val_loss"));
    let served = served("history", "loss");
    let model = values("model-line");
    assert!(
        !model.is_empty() && reported(&model, &served_model),
        "the network model's plot shows its reported validation losses: {model:?} vs {served_model:?}"
    );
    assert!(
        plotted.len() >= 2,
        "the plot shows the live loss: {plotted:?}"
    );
    assert!(
        reported(&plotted, &served),
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

#[test]
fn nodes_train_together_join_and_survive_a_crash() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_small_genesis(
        Path::new(EXE),
        work,
        &["--inner-steps", "48", "--round-deadline-secs", "30"],
    );
    let a = start("a", &genesis, work, None, 2);
    let b = start(
        "b",
        &bare_genesis(&genesis, work, "b"),
        work,
        Some(&a.p2p),
        2,
    );
    let c = start(
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
    let tokens: Vec<u64> = statuses[0]["model_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["tokens"].as_u64())
        .collect();
    assert!(
        tokens.len() >= 2 && tokens.windows(2).all(|w| w[0] < w[1]),
        "the network model's tokens grow round by round: {tokens:?}"
    );
    println!(
        "three nodes agree at round {}; val loss {vals:?}",
        round_of(&statuses[0])
    );
    dashboard_plots_the_node_loss(&a);

    // A fourth node joins mid-training, fetches data and state from peers, and agrees.
    let joined_at = Instant::now();
    let d = start(
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
    b.kill();
    let before = round_of(&a.status().unwrap());
    wait_for(
        "the others to finish rounds without b",
        &[&a, &c, &d],
        limit,
        |s| agree_at(s, before + 2) && contributors(s) == [3; 3],
    );
    let b_dir_genesis = work.join("b-genesis/genesis.toml");
    drop(b);
    let b = start("b", &b_dir_genesis, work, Some(&a.p2p), 0);
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
