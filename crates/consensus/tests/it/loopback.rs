//! Four validators on the tokio runtime over real TCP on 127.0.0.1 in one process.

use crate::machine::{ACCOUNTS, Bank, transfer};
use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519::PrivateKey};
use neuroshard_consensus::{
    Machine as _, Timing,
    node::{self, NodeConfig, NodeHandle},
};
use std::{net::SocketAddr, path::Path, thread::sleep, time::Duration};

const N: usize = 4;

fn secret(i: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&PrivateKey::from_seed(i as u64).encode());
    out
}

fn public(i: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(PrivateKey::from_seed(i as u64).public_key().as_ref());
    out
}

/// Ports the OS picks (bound, then released for the validators to bind).
fn free_addresses() -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners.iter().map(|l| l.local_addr().unwrap()).collect()
}

fn start(i: usize, addresses: &[SocketAddr], dir: &Path) -> NodeHandle<Bank> {
    node::start(NodeConfig {
        secret_key: secret(i),
        listen: addresses[i],
        peers: (0..N)
            .filter(|j| *j != i)
            .map(|j| (public(j), addresses[j]))
            .collect(),
        data_dir: dir.join(format!("node{i}")),
        machine: Bank::new((0..N).map(public).collect()),
        timing: Timing::default(),
    })
    .expect("validator starts")
}

/// Polls `done` every 50 ms for up to `seconds`.
fn wait(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..seconds * 20 {
        if done() {
            return true;
        }
        sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn loopback_four_validators_restart_and_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let addresses = free_addresses();
    let mut nodes: Vec<Option<NodeHandle<Bank>>> = (0..N)
        .map(|i| Some(start(i, &addresses, dir.path())))
        .collect();
    let mut id = 0u64;
    let mut submit = |nodes: &[Option<NodeHandle<Bank>>]| {
        for node in nodes.iter().flatten() {
            id += 1;
            let from = (id % ACCOUNTS as u64) as u32;
            let _ = node.submit(transfer(from, (from + 1) % ACCOUNTS, 1, id));
        }
    };
    let height = |nodes: &[Option<NodeHandle<Bank>>]| {
        nodes
            .iter()
            .flatten()
            .map(|n| n.finalized_height())
            .min()
            .unwrap_or(0)
    };
    let applied = |node: &NodeHandle<Bank>| node.validator().state().applied.len();

    submit(&nodes);
    assert!(
        wait(60, || {
            submit(&nodes);
            height(&nodes) >= 5 && applied(nodes[0].as_ref().unwrap()) > 0
        }),
        "no finality on loopback"
    );

    // One validator shuts down; the others go on without it.
    nodes[3].take().unwrap().shutdown();
    let target = height(&nodes) + 5;
    assert!(
        wait(60, || {
            submit(&nodes);
            height(&nodes) >= target
        }),
        "three of four did not finalize"
    );

    // It restarts from its store and catches up.
    nodes[3] = Some(start(3, &addresses, dir.path()));
    let resumed = nodes[3].as_ref().unwrap().finalized_height();
    assert!(
        resumed >= 5,
        "restarted validator lost its store (height {resumed})"
    );
    let target = nodes[0].as_ref().unwrap().finalized_height() + 3;
    assert!(
        wait(90, || {
            submit(&nodes);
            height(&nodes) >= target
        }),
        "restarted validator did not catch up"
    );

    // One chain, one state root.
    let nodes: Vec<_> = nodes.into_iter().flatten().collect();
    let common = nodes.iter().map(|n| n.finalized_height()).min().unwrap();
    let reference = nodes[0].validator().store().block(common).unwrap().unwrap();
    for node in &nodes {
        let block = node.validator().store().block(common).unwrap().unwrap();
        assert_eq!(block.id(), reference.id(), "fork at height {common}");
        let (head, _) = node.validator().finalized();
        let state = node.validator().state();
        assert_eq!(Bank::new(vec![]).root(&state), head.state_root);
        assert_eq!(state.supply(), crate::machine::SUPPLY);
        assert!(node.validator().failure().is_none());
    }
    assert!(applied(&nodes[0]) > 0);
    for node in nodes {
        node.shutdown();
    }
}

/// Finality latency on loopback (proposer's timestamp to durable delivery), printed.
/// Run with `cargo test -p neuroshard-consensus --release -- --ignored --nocapture latency`.
#[test]
#[ignore = "a measurement: prints finality latency, asserts nothing about it"]
fn loopback_finality_latency() {
    let dir = tempfile::tempdir().unwrap();
    let addresses = free_addresses();
    let nodes: Vec<_> = (0..N).map(|i| start(i, &addresses, dir.path())).collect();
    let mut finalized = futures::executor::block_on_stream(nodes[0].subscribe());
    let mut latencies = Vec::new();
    let mut id = 0;
    while latencies.len() < 200 {
        for node in &nodes {
            id += 1;
            let from = (id % ACCOUNTS as u64) as u32;
            let _ = node.submit(transfer(from, (from + 1) % ACCOUNTS, 1, id));
        }
        let Some(block) = finalized.next() else { break };
        // A measurement reads the wall clock (the proposer's timestamp came from its clock).
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        if block.header.height > 5 {
            latencies.push(now.saturating_sub(block.header.timestamp_ms));
        }
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "finality latency over {} blocks, 4 validators on loopback: p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    for node in nodes {
        node.shutdown();
    }
}
