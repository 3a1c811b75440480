//! No member holds a round hostage: an attacker that takes part in every round (it votes the
//! model hash) but never contributes a Δ makes the network wait for one deadline, not one per
//! round, whether it is a member from the start or joins later.

use neuroshard_sim::adversary::{Attack, AttackKind};
use neuroshard_sim::presets::{run_toy, tiny_config};
use neuroshard_sim::{Change, ChurnEvent, SimConfig, SimReport};

const NODES: usize = 5;

/// A run in which the node the seed makes the attacker runs `attack` (`None`: it is honest),
/// joining at `join_at` if given.
fn run(attack: AttackKind, join_at: Option<u64>) -> SimReport {
    let mut config: SimConfig = tiny_config(5, NODES);
    config.rounds = 10;
    config.byzantine = 1;
    config.attack = Attack::with_defaults(AttackKind::Silent, NODES, 1);
    let attacker = config.attackers()[0];
    config.attack = Attack::with_defaults(attack, NODES, 1);
    if let Some(round) = join_at {
        config.churn = vec![ChurnEvent::at_round(round, Change::Join(attacker))];
    }
    run_toy(config.clone()).unwrap()
}

/// At most one round closed at its deadline, only the attacker was missed, and the run took at
/// most one deadline longer than with the same node contributing honestly.
fn assert_one_deadline(join_at: Option<u64>) {
    let honest = run(AttackKind::None, join_at);
    let silent = run(AttackKind::Silent, join_at);
    silent.assert_clean();
    let seed = silent.seed;
    let deadlines = silent.deadline_rounds();
    assert!(
        deadlines.len() <= 1,
        "rounds {deadlines:?} waited for their deadline, SIM_SEED={seed}"
    );
    let missed: Vec<usize> = silent
        .rounds
        .iter()
        .flat_map(|r| r.missed.clone())
        .collect();
    assert!(
        missed.iter().all(|node| silent.attackers.contains(node)),
        "missed {missed:?}, attackers {:?}, SIM_SEED={seed}",
        silent.attackers
    );
    let timeout = tiny_config(5, NODES).node.round_timeout.as_secs_f64();
    assert!(
        silent.sim_time_s() <= honest.sim_time_s() + timeout + 1.0,
        "{} s against {} s with the node honest, SIM_SEED={seed}",
        silent.sim_time_s(),
        honest.sim_time_s()
    );
}

#[test]
fn silent_member_costs_one_deadline() {
    assert_one_deadline(None);
}

#[test]
fn silent_joiner_costs_one_deadline() {
    assert_one_deadline(Some(3));
}
