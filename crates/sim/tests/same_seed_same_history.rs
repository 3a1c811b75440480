//! Determinism: the same seed gives the same history, byte for byte; another seed does not.

use std::time::Duration;

use neuroshard_sim::adversary::{Attack, AttackKind};
use neuroshard_sim::presets::{run_toy, tiny_config, tiny_workload};
use neuroshard_sim::{Change, ChurnEvent, Link, Sim, SimReport};

/// A run with everything random switched on: jitter, loss, attackers with noise.
fn run(seed: u64) -> SimReport {
    let mut config = tiny_config(seed, 5);
    config.rounds = 3;
    config.byzantine = 1;
    config.attack = Attack::with_defaults(AttackKind::Noise, 5, 1);
    config.link = Link {
        jitter_s: 0.005,
        loss: 0.01,
        ..Link::internet()
    };
    Sim::new(config.clone(), tiny_workload(&config).unwrap())
        .unwrap()
        .run()
        .unwrap()
}

#[test]
fn same_seed_same_history() {
    let first = run(42);
    let second = run(42);
    assert_eq!(first.digest, second.digest, "SIM_SEED=42");
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap(),
        "SIM_SEED=42"
    );
    assert_ne!(first.digest, run(43).digest);
}

/// Every kind of churn on a jittery, lossy network, with a silent attacker.
fn run_with_churn(seed: u64) -> SimReport {
    let mut config = tiny_config(seed, 6);
    config.rounds = 12;
    config.byzantine = 1;
    config.attack = Attack::with_defaults(AttackKind::Silent, 6, 1);
    config.link = Link {
        jitter_s: 0.005,
        loss: 0.01,
        ..Link::internet()
    };
    let mid_round = Duration::from_millis(300);
    config.churn = vec![
        ChurnEvent::at_round(1, Change::Join(5)).after(mid_round),
        ChurnEvent::at_round(2, Change::Crash(1)).after(mid_round),
        ChurnEvent::at_round(3, Change::Partition(vec![vec![0, 2, 3], vec![4, 5]])),
        ChurnEvent::at_round(5, Change::Restart(1)).after(mid_round),
        ChurnEvent::at_round(6, Change::Heal).after(mid_round),
        ChurnEvent::at_round(8, Change::Leave(2)).after(mid_round),
    ];
    run_toy(config.clone()).unwrap()
}

#[test]
fn same_seed_same_history_under_churn() {
    let first = run_with_churn(42);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&run_with_churn(42)).unwrap(),
        "SIM_SEED=42"
    );
    assert_ne!(first.digest, run_with_churn(43).digest);
}
