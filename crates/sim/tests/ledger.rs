//! Rounds through the NEURO ledger in the simulator: every honest replica applies the ledger's
//! lists and stays on one model; rewards are minted with the supply invariant intact after
//! every block; a cheater loses stake within three rounds and no honest node loses any.

use neuroshard_ledger::Rules;
use neuroshard_sim::presets::{tiny_config, tiny_workload};
use neuroshard_sim::{Cheat, CheatKind, Sim, SimConfig, SimReport};
use neuroshard_verify::AuditConfig;

const NODES: usize = 4;

fn config(seed: u64) -> SimConfig {
    let mut config = tiny_config(seed, NODES);
    config.rounds = 6;
    config.node.round_timeout = std::time::Duration::from_secs(4);
    config.node.audit = Some(AuditConfig {
        segments: 5,
        ..AuditConfig::DEFAULT
    });
    config.ledger = true;
    config
}

fn run(config: SimConfig) -> SimReport {
    Sim::new(config.clone(), tiny_workload(&config).unwrap())
        .unwrap()
        .run()
        .unwrap()
}

#[test]
fn honest_rounds_close_through_the_ledger_and_earn() {
    let report = run(config(5));
    report.assert_clean();
    let ledger = report.ledger.clone().unwrap();
    eprintln!("{ledger:?}");
    assert!(
        ledger.rounds_closed >= 6,
        "every round closed on the ledger"
    );
    assert!(ledger.slashes.is_empty());
    assert_eq!(ledger.burned, 0);
    assert!(ledger.minted > 0);
    let bond = Rules::DEFAULT.validator_bond;
    assert!(
        ledger.stakes.iter().all(|s| *s > bond),
        "every node earned: {:?}",
        ledger.stakes
    );
    assert!(report.rounds.iter().all(|r| r.included == NODES));
}

#[test]
fn a_lazy_cheater_loses_stake_within_three_rounds() {
    let mut config = config(11);
    config.cheat = Some(Cheat {
        kind: CheatKind::Lazy,
        strength: CheatKind::Lazy.full(),
    });
    config.cheaters = 1;
    let cheater = config.cheaters()[0];
    let report = run(config);
    report.assert_clean();
    let ledger = report.ledger.clone().unwrap();
    eprintln!("{ledger:?}");
    let slash = &ledger.slashes[0];
    assert_eq!(slash.node, cheater);
    assert!(
        slash.open_round <= 3,
        "slashed while round {} was open",
        slash.open_round
    );
    assert!(
        ledger.slashes.iter().all(|s| s.node == cheater),
        "no honest node is slashed"
    );
    let bond = Rules::DEFAULT.validator_bond;
    assert!(ledger.stakes[cheater] < bond);
    assert!(ledger.burned > 0);
}
