//! End to end: three honest `neuroshard node` processes and one that cheats the work proof
//! (`--cheat lazy`: it skips its training and fakes its chain) train together on 127.0.0.1. The
//! honest nodes audit each other and the cheater, convict it with a fraud proof each checks for
//! itself, exclude it, and never exclude each other.
//!
//! Only in test builds with the binary's `cheat` feature (`.ci/run` enables it): a default build
//! has no `--cheat` flag.
#![cfg(feature = "cheat")]
// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::Duration;

use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, bare_genesis, build_small_genesis, wait_for,
};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");

fn start(
    name: &str,
    genesis: &Path,
    work: &Path,
    bootstrap: Option<&str>,
    extra: &[&str],
) -> NodeProcess {
    let mut args = SMALL_TRAINING.to_vec();
    args.extend(["--min-peers", "3", "--start-grace-secs", "30"]);
    if let Some(addr) = bootstrap {
        args.extend(["--bootstrap", addr]);
    }
    args.extend(extra);
    NodeProcess::start(Path::new(EXE), name, work, genesis, &args)
}

/// The node ids a status lists as excluded.
fn excluded(status: &Value) -> Vec<String> {
    status["audits"]["excluded"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| e["node"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn honest_nodes_convict_and_exclude_a_lazy_cheater() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let genesis = build_small_genesis(
        Path::new(EXE),
        work,
        &["--inner-steps", "48", "--round-deadline-secs", "30"],
    );
    let a = start("a", &genesis, work, None, &[]);
    let b = start(
        "b",
        &bare_genesis(&genesis, work, "b"),
        work,
        Some(&a.p2p),
        &[],
    );
    let c = start(
        "c",
        &bare_genesis(&genesis, work, "c"),
        work,
        Some(&a.p2p),
        &[],
    );
    let x = start(
        "x",
        &bare_genesis(&genesis, work, "x"),
        work,
        Some(&a.p2p),
        &["--cheat", "lazy"],
    );
    let cheater = x.status().unwrap()["node_id"].as_str().unwrap().to_owned();
    let honest = [&a, &b, &c];
    let statuses = wait_for(
        "every honest node to exclude the cheater",
        &honest,
        Duration::from_secs(240),
        |statuses| statuses.iter().all(|s| excluded(s).contains(&cheater)),
    );
    for status in &statuses {
        assert_eq!(
            excluded(status),
            vec![cheater.clone()],
            "an honest node excluded only the cheater: {:#}",
            status["audits"]
        );
    }
    let passed: u64 = statuses
        .iter()
        .map(|s| s["audits"]["passed"].as_u64().unwrap())
        .sum();
    let convicted: u64 = statuses
        .iter()
        .map(|s| {
            s["audits"]["failed"].as_u64().unwrap() + s["audits"]["proofs_upheld"].as_u64().unwrap()
        })
        .sum();
    assert!(
        convicted >= 1,
        "someone convicted the cheater: {statuses:#?}"
    );
    println!("honest audits passed {passed}, convictions {convicted}");
}
