//! One node crashes in the middle of round 3 and restarts in round 6 from its checkpoint, three
//! rounds behind; another crashes before it ever closed a round and restarts from genesis. Both
//! hold the network's model from the round after they come back, and the rounds they were down
//! for close without waiting for them.

use std::time::Duration;

use neuroshard_sim::presets::{run_toy, tiny_config};
use neuroshard_sim::{Change, ChurnEvent};

const CHECKPOINTED: usize = 2;
const FRESH: usize = 4;

#[test]
fn crash_and_restart() {
    let mut config = tiny_config(13, 5);
    config.rounds = 10;
    let soon = Duration::from_millis(100);
    let mid_round = Duration::from_millis(300);
    config.churn = vec![
        ChurnEvent::at_round(0, Change::Crash(FRESH)).after(soon),
        ChurnEvent::at_round(2, Change::Restart(FRESH)).after(soon),
        ChurnEvent::at_round(3, Change::Crash(CHECKPOINTED)).after(mid_round),
        ChurnEvent::at_round(6, Change::Restart(CHECKPOINTED)).after(soon),
    ];
    let report = run_toy(config.clone()).unwrap();
    report.assert_clean();
    let seed = report.seed;
    // FRESH counts from round 3; CHECKPOINTED, down in round 3 before round 2's split could be
    // repaired, not from round 2 until round 7.
    assert_eq!(
        report.replicas(),
        vec![4, 4, 3, 4, 4, 4, 4, 5, 5, 5],
        "SIM_SEED={seed}"
    );
    assert!(
        report.resyncs[CHECKPOINTED] >= 1 && report.resyncs[FRESH] >= 1,
        "both caught up from their peers: {:?}, SIM_SEED={seed}",
        report.resyncs
    );
    assert_eq!(report.rounds[9].included, 5, "SIM_SEED={seed}");
    assert_eq!(
        report.deadline_rounds(),
        Vec::<u64>::new(),
        "SIM_SEED={seed}"
    );
}
