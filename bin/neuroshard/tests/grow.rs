//! Growth on a running network (issue 15, `docs/pool.md` "Growth on a running network"): two
//! whole-model nodes train under a genesis `[growth]` schedule whose threshold their budgets do
//! not reach; a third joins, the pool crosses it, and every node grows at the same round
//! boundary to the schedule's depth, on one model hash, with the validation loss unmoved by the
//! growth and falling after it; a node restarted after growth comes back at the grown depth.

// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, agree_at, bare_genesis, build_genesis, round_of, wait_for,
};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
/// Each node's budget: the nano model trains in far less, so every node holds it whole.
const BUDGET: &str = "4GB";
/// The threshold: above two budgets (8 GB), below three (12 GB).
const THRESHOLD: u64 = 10_000_000_000;
/// The nano preset's depth.
const FROM: usize = 2;
/// The schedule's depth.
const TO: usize = 4;
/// The target: the validation loss right after growth within 0.5 % of right before.
const LOSS_JUMP: f64 = 0.005;
/// The network's genesis settings: the small network's, at a thirtieth of its learning rate. A
/// joiner is counted some ten rounds after it starts (it listens to its peers, then takes its
/// place), and at the small network's rate the nano model has reached its validation minimum on
/// this corpus by then; growing there, the loss could not be seen to fall after growth. At this
/// rate it still falls when the model grows.
const INIT: [&str; 10] = [
    "--batch-size",
    "4",
    "--lr",
    "0.0003",
    "--warmup-steps",
    "5",
    "--inner-steps",
    "16",
    "--round-deadline-secs",
    "20",
];

/// Appends the `[growth]` section to the genesis file at `path`.
fn add_growth(path: &Path) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(&format!(
        "\n[growth]\nsustain_rounds = 2\n\n[[growth.steps]]\nmin_pool_bytes = {THRESHOLD}\nn_layers = {TO}\n"
    ));
    std::fs::write(path, text).unwrap();
}

fn start(name: &str, genesis: &Path, work: &Path, bootstrap: Option<&str>) -> NodeProcess {
    let mut args = SMALL_TRAINING.to_vec();
    args.extend(["--memory-budget", BUDGET, "--start-grace-secs", "20"]);
    match bootstrap {
        Some(addr) => args.extend(["--min-peers", "1", "--bootstrap", addr]),
        None => args.extend(["--min-peers", "1"]),
    }
    NodeProcess::start(Path::new(EXE), name, work, genesis, &args)
}

/// The round at whose end a node's model grew (from its closed rounds), if it did.
fn grew_at(status: &Value) -> Option<u64> {
    status["rounds"]
        .as_array()?
        .iter()
        .find(|r| r["grew_to"].as_u64().is_some())
        .and_then(|r| r["round"].as_u64())
}

#[test]
fn the_model_grows_when_a_joiner_makes_the_pool_cross_a_threshold() {
    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    let genesis = build_genesis(Path::new(EXE), work, &INIT);
    add_growth(&genesis);
    let limit = Duration::from_secs(240);
    let a = start("a", &genesis, work, None);
    let b = start("b", &bare_genesis(&genesis, work, "b"), work, Some(&a.p2p));

    // Two nodes train a few rounds: 8 GB of budgets stay below the threshold.
    let two = wait_for("two nodes to train three rounds", &[&a, &b], limit, |s| {
        agree_at(s, 3)
    });
    for status in &two {
        assert_eq!(status["n_layers"].as_u64(), Some(FROM as u64), "{status:#}");
        assert_eq!(
            grew_at(status),
            None,
            "two budgets do not reach the threshold"
        );
    }

    // A third node joins: once its Δs count for two boundaries, the pool (12 GB) has stayed
    // above the threshold long enough and every node grows at the same boundary.
    let joined_at = round_of(&two[0]);
    let c = start("c", &bare_genesis(&genesis, work, "c"), work, Some(&a.p2p));
    let nodes = [&a, &b, &c];
    let grown = wait_for("every node to grow", &nodes, limit, |s| {
        s.iter().all(|s| grew_at(s).is_some())
    });
    let at: Vec<Option<u64>> = grown.iter().map(grew_at).collect();
    println!("joined at round {joined_at}; grew at the end of rounds {at:?}");
    assert!(
        at.iter().all(|r| *r == at[0]),
        "one boundary for all: {at:?}"
    );
    let boundary = at[0].unwrap();
    assert!(boundary > joined_at, "not before the joiner counted");

    // One model hash after growth, at the new depth, and training goes on.
    let after = wait_for("the grown network to agree", &nodes, limit, |s| {
        agree_at(s, boundary + 4) && s.iter().all(|s| s["n_layers"] == TO as u64)
    });
    let growth = &after[0]["growths"][0];
    println!("growth on node a: {growth:#}");
    assert_eq!(growth["round"].as_u64(), Some(boundary + 1));
    assert_eq!(growth["from_layers"].as_u64(), Some(FROM as u64));
    let before = growth["val_before"].as_f64().expect("measured before");
    let right_after = growth["val_after"].as_f64().expect("measured after");
    let jump = (right_after - before).abs() / before;
    println!(
        "validation loss right before growth {before:.6}, right after {right_after:.6} ({:+.4} %)",
        100.0 * (right_after - before) / before
    );
    assert!(jump <= LOSS_JUMP, "the loss jumped {jump} at growth");

    // A restarted node comes back from its checkpoint at the grown depth. (Its peers may have
    // excluded it meanwhile for a challenge it could not answer while down, so only its own
    // depth and training are checked here.)
    let mut b = b;
    let stopped_at = round_of(&b.status().unwrap());
    assert!(b.stop(), "b stops cleanly");
    let b = start("b", &bare_genesis(&genesis, work, "b"), work, Some(&a.p2p));
    wait_for(
        "the restarted node to train at the grown depth",
        &[&b],
        limit,
        |s| round_of(&s[0]) > stopped_at + 1 && s[0]["n_layers"] == TO as u64,
    );
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(
        log.contains("resuming from the checkpoint"),
        "b resumed from its grown checkpoint"
    );
    assert!(
        !log.contains("the model grew at the round's end"),
        "b came back at 4 layers, not at 2 to grow again"
    );

    let later = wait_for("the loss to fall after growth", &[&a], limit, |s| {
        s[0]["model_history"].as_array().is_some_and(|points| {
            points.iter().any(|p| {
                p["round"].as_u64().is_some_and(|r| r > boundary + 1)
                    && p["val_loss"].as_f64().is_some_and(|v| v < right_after)
            })
        })
    });
    let losses: Vec<(u64, f64)> = later[0]["model_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["round"].as_u64()?, p["val_loss"].as_f64()?)))
        .collect();
    println!("validation loss by round on node a: {losses:?}");
}
