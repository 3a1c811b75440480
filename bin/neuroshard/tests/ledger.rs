//! End to end: the NEURO ledger over real `neuroshard node` processes on 127.0.0.1. Four
//! validators (the genesis committee) and a follower train together with rounds closing on the
//! ledger; a wallet transfer goes through; a validator and then the follower are killed with
//! SIGKILL and restarted from their stores; afterwards every node holds the same finalized blocks
//! (digest and state root at a common height) and the transfer.
// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use neuroshard_testkit::ledger::{Committee, height_of, ledger_get, write_key};
use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, bare_genesis, build_genesis, round_of, wait_for,
};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
const NEURO: u64 = 1_000_000;
const LIMIT: Duration = Duration::from_secs(240);

fn start(
    name: &str,
    genesis: &Path,
    work: &Path,
    bootstrap: Option<&str>,
    extra: &[String],
) -> NodeProcess {
    let mut args: Vec<&str> = SMALL_TRAINING.to_vec();
    args.extend(["--min-peers", "4", "--start-grace-secs", "30"]);
    if let Some(addr) = bootstrap {
        args.extend(["--bootstrap", addr]);
    }
    args.extend(extra.iter().map(String::as_str));
    NodeProcess::start(Path::new(EXE), name, work, genesis, &args)
}

fn wallet(node: &NodeProcess, work: &Path, name: &str, args: &[&str]) -> String {
    let output = Command::new(EXE)
        .args([
            "wallet",
            "--node",
            &format!("http://{}/", node.dashboard),
            "--data-dir",
        ])
        .arg(work.join(name))
        .args(args)
        .output()
        .expect("the wallet runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wallet {args:?} failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

fn balance(node: &NodeProcess, id: &str) -> u64 {
    ledger_get(&node.dashboard, &format!("account/{id}"))
        .map_or(0, |a| a["balance"].as_u64().unwrap_or(0))
}

/// The finalized block at `height` as a node stores it: (digest, state root).
fn block_at(node: &NodeProcess, height: u64) -> (Value, Value) {
    let block = ledger_get(&node.dashboard, &format!("block/{height}")).expect("the node answers");
    (block["digest"].clone(), block["state_root"].clone())
}

#[test]
fn validators_and_a_follower_survive_kill_9_and_end_on_one_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let names = ["v0", "v1", "v2", "v3"];
    let committee = Committee::new(work, &names);
    let follower = write_key(work, "f", 9);
    let mut init: Vec<String> = ["--inner-steps", "16", "--round-deadline-secs", "30"]
        .map(str::to_owned)
        .to_vec();
    init.extend(committee.genesis_flags(100 * NEURO, &[&follower]));
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    let genesis = build_genesis(Path::new(EXE), work, &init);

    let v0 = start("v0", &genesis, work, None, &committee.node_flags("v0"));
    let copy = |name: &str| bare_genesis(&genesis, work, name);
    let v1 = start(
        "v1",
        &copy("v1"),
        work,
        Some(&v0.p2p),
        &committee.node_flags("v1"),
    );
    let v2 = start(
        "v2",
        &copy("v2"),
        work,
        Some(&v0.p2p),
        &committee.node_flags("v2"),
    );
    let mut v3 = start(
        "v3",
        &copy("v3"),
        work,
        Some(&v0.p2p),
        &committee.node_flags("v3"),
    );
    let mut f = start("f", &copy("f"), work, Some(&v0.p2p), &[]);

    wait_for(
        "a round closed on the ledger",
        &[&v0, &v1, &v2, &v3, &f],
        LIMIT,
        |s| s.iter().all(|s| height_of(s) >= 3 && round_of(s) >= 1),
    );
    let sent = wallet(&v0, work, "v0", &["send", &follower, "5"]);
    println!("{sent}");
    wait_for(
        "the transfer on the follower's ledger",
        &[&f],
        LIMIT,
        |_| balance(&f, &follower) == 105 * NEURO,
    );

    // A validator dies mid-block (blocks come every half second at most) and comes back.
    v3.kill();
    let at_kill = height_of(&v0.status().unwrap());
    wait_for(
        "three validators finalize on",
        &[&v0, &v1, &v2],
        LIMIT,
        |s| s.iter().all(|s| height_of(s) >= at_kill + 5),
    );
    v3 = start(
        "v3",
        &copy("v3-again"),
        work,
        Some(&v0.p2p),
        &committee.node_flags("v3"),
    );
    let target = height_of(&v0.status().unwrap());
    wait_for("the restarted validator caught up", &[&v3], LIMIT, |s| {
        height_of(&s[0]) >= target
    });

    // The follower dies and comes back.
    f.kill();
    f = start("f", &copy("f-again"), work, Some(&v0.p2p), &[]);
    let target = height_of(&v0.status().unwrap());
    wait_for("the restarted follower caught up", &[&f], LIMIT, |s| {
        height_of(&s[0]) >= target
    });

    // One chain: the same block at a height every node has; the transfer everywhere.
    let nodes = [&v0, &v1, &v2, &v3, &f];
    let common = nodes
        .iter()
        .map(|n| height_of(&n.status().unwrap()))
        .min()
        .unwrap();
    let reference = block_at(&v0, common);
    for node in nodes {
        assert_eq!(
            block_at(node, common),
            reference,
            "one block at height {common}"
        );
        assert_eq!(
            balance(node, &follower),
            105 * NEURO,
            "the transfer is on every node"
        );
    }
    assert_eq!(balance(&v0, committee.id("v0")), 95 * NEURO);
    println!("one chain at height {common}: {reference:?}");
}
