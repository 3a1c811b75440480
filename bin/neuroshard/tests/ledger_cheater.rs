//! End to end: a lazy cheater (`--cheat lazy`) that bonded stake through the wallet loses half
//! of it within three rounds on a real local network whose rounds close on the NEURO ledger; the
//! rewards a settled round paid are exactly what `docs/economics.md` computes from that round's
//! list, verdicts and slashes.
//!
//! Only in test builds with the binary's `cheat` feature (`.ci/run` enables it).
#![cfg(feature = "cheat")]
// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use neuroshard_testkit::ledger::{Committee, ledger_get, write_key};
use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, bare_genesis, build_genesis, round_of, wait_for,
};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
const NEURO: u64 = 1_000_000;
const LIMIT: Duration = Duration::from_secs(300);

fn start(
    name: &str,
    genesis: &Path,
    work: &Path,
    bootstrap: Option<&str>,
    extra: &[String],
) -> NodeProcess {
    let mut args: Vec<&str> = SMALL_TRAINING.to_vec();
    args.extend(["--min-peers", "3", "--start-grace-secs", "30"]);
    if let Some(addr) = bootstrap {
        args.extend(["--bootstrap", addr]);
    }
    args.extend(extra.iter().map(String::as_str));
    NodeProcess::start(Path::new(EXE), name, work, genesis, &args)
}

fn stake_of(node: &NodeProcess, id: &str) -> u64 {
    ledger_get(&node.dashboard, &format!("account/{id}"))
        .map_or(0, |a| a["stake"].as_u64().unwrap_or(0))
}

/// What `docs/economics.md` says round `view` pays: 80 NEURO over the verified contributions
/// (passed by an auditor, not slashed) by weight (50 when every verdict found the Δ harmful,
/// else 100), 20 NEURO over the verdicts; integer division throughout.
fn expected_rewards(view: &Value) -> BTreeMap<String, u64> {
    let audits = view["audits"].as_array().unwrap();
    let slashed: Vec<&str> = view["slashed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let weight = |who: &str| -> u128 {
        let mine: Vec<&Value> = audits.iter().filter(|a| a["contributor"] == who).collect();
        let passed = mine.iter().any(|a| a["passed"].as_bool().unwrap());
        if slashed.contains(&who) || !passed {
            0
        } else if mine.iter().all(|a| a["gain"].as_i64().unwrap() < 0) {
            50
        } else {
            100
        }
    };
    let contributors: Vec<&str> = view["included"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contributor"].as_str().unwrap())
        .collect();
    let total: u128 = contributors.iter().map(|c| weight(c)).sum();
    let mut due: BTreeMap<String, u128> = BTreeMap::new();
    for who in &contributors {
        *due.entry((*who).to_owned()).or_default() +=
            u128::from(80 * NEURO) * weight(who) / total.max(1);
    }
    for audit in audits {
        let auditor = audit["auditor"].as_str().unwrap().to_owned();
        *due.entry(auditor).or_default() += u128::from(20 * NEURO) / audits.len() as u128;
    }
    due.into_iter()
        .filter(|(_, amount)| *amount > 0)
        .map(|(who, amount)| (who, amount as u64))
        .collect()
}

#[test]
fn a_lazy_cheater_loses_stake_and_honest_rewards_follow_the_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let committee = Committee::new(work, &["a", "b", "c"]);
    let cheater = write_key(work, "x", 9);
    let mut init: Vec<String> = ["--inner-steps", "48", "--round-deadline-secs", "30"]
        .map(str::to_owned)
        .to_vec();
    init.extend(committee.genesis_flags(200 * NEURO, &[&cheater]));
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    let genesis = build_genesis(Path::new(EXE), work, &init);

    let a = start("a", &genesis, work, None, &committee.node_flags("a"));
    let copy = |name: &str| bare_genesis(&genesis, work, name);
    let b = start(
        "b",
        &copy("b"),
        work,
        Some(&a.p2p),
        &committee.node_flags("b"),
    );
    let c = start(
        "c",
        &copy("c"),
        work,
        Some(&a.p2p),
        &committee.node_flags("c"),
    );
    let cheat = ["--cheat".to_owned(), "lazy".to_owned()];
    let x = start("x", &copy("x"), work, Some(&a.p2p), &cheat);
    // The cheater bonds 100 NEURO through its wallet.
    let staked = Command::new(EXE)
        .args([
            "wallet",
            "--node",
            &format!("http://{}/", x.dashboard),
            "--data-dir",
        ])
        .arg(work.join("x"))
        .args(["stake", "100"])
        .output()
        .unwrap();
    assert!(staked.status.success(), "{staked:?}");
    wait_for("the cheater's bond on the ledger", &[&a], LIMIT, |_| {
        stake_of(&a, &cheater) >= 100 * NEURO
    });

    let statuses = wait_for("the cheater slashed", &[&a, &b, &c], LIMIT, |_| {
        stake_of(&a, &cheater) < 100 * NEURO
    });
    let round = statuses.iter().map(round_of).max().unwrap();
    assert!(round <= 3, "slashed by round {round}");
    println!("the cheater was slashed while the honest nodes were at round {round}");
    assert!(
        stake_of(&a, &cheater) <= 50 * NEURO,
        "half the bond is gone"
    );

    // Round 0 settles when round 2 closes: its payout must follow the rules.
    wait_for("round 0 settled", &[&a], LIMIT, |_| {
        ledger_get(&a.dashboard, "round/0").is_some_and(|v| v["settled"] == true)
    });
    let view = ledger_get(&a.dashboard, "round/0").unwrap();
    let paid: BTreeMap<String, u64> = view["rewards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let who = r["account"].as_str().unwrap().to_owned();
            (who, r["amount"].as_u64().unwrap())
        })
        .collect();
    println!("round 0: {view:#}");
    assert_eq!(
        paid,
        expected_rewards(&view),
        "round 0 pays what the rules say"
    );
    for honest in ["a", "b", "c"] {
        assert!(
            stake_of(&a, committee.id(honest)) > 1_000 * NEURO,
            "{honest} earned"
        );
    }
}
