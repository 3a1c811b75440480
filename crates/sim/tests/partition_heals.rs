//! The network splits three against two in the middle of round 2 and heals in the middle of
//! round 6. Both sides keep training; after the heal the smaller side gives up its model for
//! the larger side's and counts again from the next round, and no round waits for a deadline.

use std::time::Duration;

use neuroshard_sim::presets::{run_toy, tiny_config};
use neuroshard_sim::{Change, ChurnEvent};

#[test]
fn partition_heals() {
    let mut config = tiny_config(17, 5);
    config.rounds = 10;
    let mid_round = Duration::from_millis(300);
    config.churn = vec![
        ChurnEvent::at_round(2, Change::Partition(vec![vec![0, 1, 2], vec![3, 4]]))
            .after(mid_round),
        ChurnEvent::at_round(6, Change::Heal).after(mid_round),
    ];
    let report = run_toy(config.clone()).unwrap();
    report.assert_clean();
    let seed = report.seed;
    // The smaller side is off the network from round 1 (it is cut off before that round's
    // words are final) and counts again from round 7.
    assert_eq!(
        report.replicas(),
        vec![5, 3, 3, 3, 3, 3, 3, 5, 5, 5],
        "SIM_SEED={seed}"
    );
    assert_eq!(
        report.resyncs[..3],
        [0, 0, 0],
        "the larger side keeps its model: {:?}, SIM_SEED={seed}",
        report.resyncs
    );
    assert!(
        report.resyncs[3] >= 1 && report.resyncs[4] >= 1,
        "the smaller side takes the larger side's model: {:?}, SIM_SEED={seed}",
        report.resyncs
    );
    assert_eq!(report.rounds[9].included, 5, "SIM_SEED={seed}");
    assert_eq!(
        report.deadline_rounds(),
        Vec::<u64>::new(),
        "SIM_SEED={seed}"
    );
}
