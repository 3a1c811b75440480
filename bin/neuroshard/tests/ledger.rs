//! End to end: the NEURO ledger over real `neuroshard node` processes on 127.0.0.1. Four
//! validators (the genesis committee) and a follower train together with rounds closing on the
//! ledger; a wallet transfer goes through; a validator and then the follower are killed with
//! SIGKILL and restarted from their stores; afterwards every node holds the same finalized blocks
//! (digest and state root at a common height) and the transfer.
//!
//! A second network crosses committee epochs (20 blocks each, set in the genesis file): a fifth
//! node is sent NEURO, stakes the bond, registers its consensus address by itself, is elected
//! and votes; a genesis validator killed before a boundary catches up epochs later; the follower
//! and `wallet balance --verify` walk the committees from genesis.
//!
//! With the binary's `cheat` feature (`.ci/run` enables it): a lazy cheater (`--cheat lazy`) that
//! bonded stake through the wallet loses half of it within three rounds, and the rewards a settled
//! round paid are exactly what `docs/economics.md` computes from that round's list, verdicts and
//! slashes.
// Real processes over real sockets: the waits are bounded by wall time.
#![allow(clippy::disallowed_methods)]

#[cfg(feature = "cheat")]
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use neuroshard_testkit::ledger::{
    Committee, committee_of, free_port, height_of, ledger_get, validates, write_key,
};
use neuroshard_testkit::nodes::{
    NodeProcess, SMALL_TRAINING, bare_genesis, build_small_genesis, round_of, wait_for,
};
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
const NEURO: u64 = 1_000_000;
const LIMIT: Duration = Duration::from_secs(240);

/// Starts node `name`, which waits for `peers` peers (at most 30 s) before its first round;
/// with `None` it never trains (a ledger-only node, which spares the shared cores).
fn start(
    name: &str,
    genesis: &Path,
    work: &Path,
    bootstrap: Option<&str>,
    peers: Option<usize>,
    extra: &[String],
) -> NodeProcess {
    let (peers, grace) = match peers {
        Some(peers) => (peers.to_string(), "30"),
        None => ("1000".to_owned(), "1000000"),
    };
    let mut args: Vec<&str> = SMALL_TRAINING.to_vec();
    args.extend(["--min-peers", &peers, "--start-grace-secs", grace]);
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

/// A field of account `id` as `node` reports it (0 when it does not answer).
fn account(node: &NodeProcess, id: &str, field: &str) -> u64 {
    ledger_get(&node.dashboard, &format!("account/{id}"))
        .map_or(0, |a| a[field].as_u64().unwrap_or(0))
}

fn balance(node: &NodeProcess, id: &str) -> u64 {
    account(node, id, "balance")
}

/// The finalized block at `height` as a node stores it: (digest, state root).
fn block_at(node: &NodeProcess, height: u64) -> (Value, Value) {
    let block = ledger_get(&node.dashboard, &format!("block/{height}")).expect("the node answers");
    (block["digest"].clone(), block["state_root"].clone())
}

/// `wallet balance ID --verify GENESIS` through `node`: its output once the answer verifies. A
/// block finalized only through a later one has no certificate of its own: it asks again, for
/// up to ten seconds.
fn verified_balance(node: &NodeProcess, id: &str, genesis: &Path) -> String {
    let verified = (0..20).find_map(|_| {
        let output = Command::new(EXE)
            .args(["wallet", "--node", &format!("http://{}/", node.dashboard)])
            .args(["balance", id, "--verify"])
            .arg(genesis)
            .output()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    });
    verified.expect("the balance verifies against a certified block")
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
    let genesis = build_small_genesis(Path::new(EXE), work, &init);

    let v0 = start(
        "v0",
        &genesis,
        work,
        None,
        Some(4),
        &committee.node_flags("v0"),
    );
    let copy = |name: &str| bare_genesis(&genesis, work, name);
    let v1 = start(
        "v1",
        &copy("v1"),
        work,
        Some(&v0.p2p),
        Some(4),
        &committee.node_flags("v1"),
    );
    let v2 = start(
        "v2",
        &copy("v2"),
        work,
        Some(&v0.p2p),
        Some(4),
        &committee.node_flags("v2"),
    );
    let mut v3 = start(
        "v3",
        &copy("v3"),
        work,
        Some(&v0.p2p),
        Some(4),
        &committee.node_flags("v3"),
    );
    let mut f = start("f", &copy("f"), work, Some(&v0.p2p), Some(4), &[]);

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
        Some(4),
        &committee.node_flags("v3"),
    );
    let target = height_of(&v0.status().unwrap());
    wait_for("the restarted validator caught up", &[&v3], LIMIT, |s| {
        height_of(&s[0]) >= target
    });

    // The follower dies and comes back.
    f.kill();
    f = start("f", &copy("f-again"), work, Some(&v0.p2p), Some(4), &[]);
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
    // The follower's balance checked without trusting the node that serves it: the account's
    // proof against a certified block's state root, the certificate against the genesis
    // committee.
    let verified = verified_balance(&f, &follower, &genesis);
    assert!(
        verified.contains("verified") && verified.contains("105.000000"),
        "{verified}"
    );
    // Against another committee the same answer does not verify.
    let forged = work.join("other-committee.toml");
    let text = std::fs::read_to_string(&genesis).unwrap();
    std::fs::write(&forged, text.replace(committee.id("v0"), &follower)).unwrap();
    let refused = Command::new(EXE)
        .args(["wallet", "--node", &format!("http://{}/", f.dashboard)])
        .args(["balance", &follower, "--verify"])
        .arg(&forged)
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "another committee must not verify"
    );
    println!("one chain at height {common}: {reference:?}");
}

/// Blocks per epoch in the epochs test: about ten seconds at the idle rate of two blocks a
/// second, so a staker is seated (registration, election at the end of its epoch, a full epoch
/// of notice) within a minute or so.
const EPOCH: u64 = 20;

/// The first height after `boundaries` more epoch boundaries from `height`.
fn past_boundaries(height: u64, boundaries: u64) -> u64 {
    (height / EPOCH + boundaries) * EPOCH
}

/// Block-time gaps (ms) read from `node`: the gap into each of the first blocks of epochs 1..=
/// `epochs` (the hand-over) and every other gap, with each epoch's duration.
fn handover_gaps(node: &NodeProcess, epochs: u64) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let time = |height: u64| {
        let block = ledger_get(&node.dashboard, &format!("block/{height}")).expect("a block");
        block["time_ms"].as_u64().expect("a block time")
    };
    let times: Vec<u64> = (1..=epochs * EPOCH).map(time).collect();
    let (mut handovers, mut others) = (Vec::new(), Vec::new());
    for (i, pair) in times.windows(2).enumerate() {
        let height = i as u64 + 2;
        let gap = pair[1].saturating_sub(pair[0]);
        match height.is_multiple_of(EPOCH) {
            true => handovers.push(gap),
            false => others.push(gap),
        }
    }
    let durations = (1..epochs)
        .map(|e| time((e + 1) * EPOCH).saturating_sub(time(e * EPOCH)))
        .collect();
    (handovers, others, durations)
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// A real network crossing committee epochs: four genesis validators with 20-block epochs, a
/// follower, and a fifth node started as a follower with `--consensus-listen`. It is sent NEURO,
/// stakes the bond, registers by itself, is elected and validates: with one genesis validator
/// killed (SIGKILL) the remaining four of five are exactly a quorum, so the chain crossing two
/// more boundaries proves the newcomer votes. The killed validator restarts epochs later and
/// catches up epoch by epoch; the follower and `wallet balance --verify` walk the committees
/// from genesis; every node ends on one block and state root. The nodes do not train (ledger
/// only), to spare the shared cores.
#[test]
fn a_staker_is_elected_and_the_chain_crosses_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let committee = Committee::new(work, &["v0", "v1", "v2", "v3"]);
    let follower = write_key(work, "f", 9);
    let staker = write_key(work, "s", 10);
    let epoch = EPOCH.to_string();
    let unbonding = (3 * EPOCH).to_string();
    let mut init: Vec<String> = ["--epoch-blocks", &epoch, "--unbonding-blocks", &unbonding]
        .map(str::to_owned)
        .to_vec();
    init.extend(committee.genesis_flags(2_000 * NEURO, &[&follower]));
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    let genesis = build_small_genesis(Path::new(EXE), work, &init);
    let copy = |name: &str| bare_genesis(&genesis, work, name);
    let validator = |name: &str, genesis: &Path, bootstrap: Option<&str>| {
        start(
            name,
            genesis,
            work,
            bootstrap,
            None,
            &committee.node_flags(name),
        )
    };

    let v0 = validator("v0", &genesis, None);
    let v1 = validator("v1", &copy("v1"), Some(&v0.p2p));
    let v2 = validator("v2", &copy("v2"), Some(&v0.p2p));
    let mut v3 = validator("v3", &copy("v3"), Some(&v0.p2p));
    let f = start("f", &copy("f"), work, Some(&v0.p2p), None, &[]);
    let listen = ["--consensus-listen".to_owned(), free_port()];
    let s = start("s", &copy("s"), work, Some(&v0.p2p), None, &listen);
    let began = Instant::now();

    wait_for("the chain started", &[&v0, &f, &s], LIMIT, |st| {
        st.iter().all(|s| height_of(s) >= 3)
    });
    wallet(&v0, work, "v0", &["send", &staker, "1000"]);
    wait_for("the NEURO reached the staker", &[&s], LIMIT, |_| {
        balance(&s, &staker) >= 1_000 * NEURO
    });
    wallet(&s, work, "s", &["stake", "1000"]);
    let bonded = wait_for("the bond on the ledger", &[&s], LIMIT, |_| {
        account(&s, &staker, "stake") >= 1_000 * NEURO
    });
    let bonded = (height_of(&bonded[0]), Instant::now());

    // Registration, election at the end of its epoch, a full epoch of notice: about three
    // epochs.
    let all = [&v0, &v1, &v2, &v3, &f, &s];
    // (A genesis validator whose own registration missed the first election rejoins at the
    // next: wait for all five.)
    let seated = wait_for("the staker seated and validating", &all, LIMIT, |st| {
        validates(&st[5])
            && st.iter().all(|s| {
                let committee = committee_of(s);
                committee.len() == 5 && committee.contains(&staker.as_str())
            })
    });
    let seated = (height_of(&seated[5]), Instant::now());

    // Four of five is exactly a quorum: with v3 dead the chain moves only if the newcomer votes.
    v3.kill();
    let target = past_boundaries(height_of(&v0.status().unwrap()), 2) + 1;
    let live = [&v0, &v1, &v2, &f, &s];
    wait_for("two boundaries without v3", &live, LIMIT, |st| {
        st.iter().all(|s| height_of(s) >= target)
    });
    assert!(
        validates(&s.status().unwrap()),
        "the newcomer still validates"
    );

    // v3 comes back epochs later and catches up epoch by epoch, then votes again.
    let v3 = validator("v3", &copy("v3-again"), Some(&v0.p2p));
    let target = past_boundaries(height_of(&v0.status().unwrap()), 1) + 1;
    let all = [&v0, &v1, &v2, &v3, &f, &s];
    let last = wait_for("the restarted validator caught up", &all, LIMIT, |st| {
        st.iter().all(|s| height_of(s) >= target) && validates(&st[3])
    });

    // One chain: the same block and state root at a height every node has.
    let common = last.iter().map(height_of).min().unwrap();
    let reference = block_at(&v0, common);
    for node in all {
        assert_eq!(block_at(node, common), reference, "one block at {common}");
    }
    // Balances verified through the committees walked from genesis, across every boundary.
    let verified = verified_balance(&f, &follower, &genesis);
    assert!(verified.contains("2000.000000"), "{verified}");
    let verified = verified_balance(&s, &staker, &genesis);
    assert!(verified.contains("verified"), "{verified}");

    let (handovers, others, durations) = handover_gaps(&v0, common / EPOCH);
    println!(
        "epochs of {EPOCH} blocks: bonded at height {} , seated at {} after {:.1} s; \
         test ran {:.1} s to height {common}",
        bonded.0,
        seated.0,
        seated.1.duration_since(bonded.1).as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    println!(
        "block gap: median {} ms at a hand-over ({handovers:?}), {} ms elsewhere; epoch \
         durations {durations:?} ms",
        median(handovers.clone()),
        median(others)
    );
}

#[cfg(feature = "cheat")]
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

#[cfg(feature = "cheat")]
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
    let genesis = build_small_genesis(Path::new(EXE), work, &init);

    let a = start(
        "a",
        &genesis,
        work,
        None,
        Some(3),
        &committee.node_flags("a"),
    );
    let copy = |name: &str| bare_genesis(&genesis, work, name);
    let b = start(
        "b",
        &copy("b"),
        work,
        Some(&a.p2p),
        Some(3),
        &committee.node_flags("b"),
    );
    let c = start(
        "c",
        &copy("c"),
        work,
        Some(&a.p2p),
        Some(3),
        &committee.node_flags("c"),
    );
    let cheat = ["--cheat".to_owned(), "lazy".to_owned()];
    let x = start("x", &copy("x"), work, Some(&a.p2p), Some(3), &cheat);
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
        account(&a, &cheater, "stake") >= 100 * NEURO
    });

    let statuses = wait_for("the cheater slashed", &[&a, &b, &c], LIMIT, |_| {
        account(&a, &cheater, "stake") < 100 * NEURO
    });
    let round = statuses.iter().map(round_of).max().unwrap();
    assert!(round <= 3, "slashed by round {round}");
    println!("the cheater was slashed while the honest nodes were at round {round}");
    assert!(
        account(&a, &cheater, "stake") <= 50 * NEURO,
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
            account(&a, committee.id(honest), "stake") > 1_000 * NEURO,
            "{honest} earned"
        );
    }
}
