//! A node that joins a network 300 rounds in holds the network's model within one round of
//! connecting and contributes soon after; no round waits for it on the way.

use neuroshard_sim::presets::{run_toy, tiny_config};
use neuroshard_sim::{Change, ChurnEvent};

const NODES: usize = 4;
const JOINER: usize = 3;
const JOIN_AT: u64 = 300;

#[test]
fn join_after_hundreds_of_rounds() {
    let mut config = tiny_config(21, NODES);
    config.rounds = JOIN_AT + 6;
    config.churn = vec![ChurnEvent::at_round(JOIN_AT, Change::Join(JOINER))];
    let report = run_toy(config.clone()).unwrap();
    report.assert_clean();
    let seed = report.seed;
    // It connects while the network is in round 300, so it counts from round 301 on.
    let expected: Vec<usize> = (0..config.rounds)
        .map(|round| if round > JOIN_AT { NODES } else { NODES - 1 })
        .collect();
    assert_eq!(report.replicas(), expected, "SIM_SEED={seed}");
    // It installs the network's state, observes a round, then trains with everyone.
    let late = &report.rounds[JOIN_AT as usize + 2..];
    assert!(
        late.iter().all(|record| record.included == NODES),
        "the joiner's Δs count from round {}: {:?}, SIM_SEED={seed}",
        JOIN_AT + 2,
        late.iter().map(|r| r.included).collect::<Vec<_>>()
    );
    assert_eq!(
        report.deadline_rounds(),
        Vec::<u64>::new(),
        "SIM_SEED={seed}"
    );
    assert!(report.resyncs[JOINER] >= 1, "SIM_SEED={seed}");
}
