//! Determinism: the same seed gives the same history, byte for byte; another seed does not.

use neuroshard_sim::adversary::{Attack, AttackKind};
use neuroshard_sim::presets::{tiny_config, tiny_workload};
use neuroshard_sim::{Link, Sim, SimReport};

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
