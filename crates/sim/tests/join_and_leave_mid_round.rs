//! A node joins in the middle of round 3 and another leaves in the middle of round 6: the
//! joiner holds the network's model from the next round on and contributes, the round the
//! leaver was training in closes without it, and no round waits for its deadline.

use std::time::Duration;

use neuroshard_sim::presets::{run_toy, tiny_config};
use neuroshard_sim::{Change, ChurnEvent};

const JOINER: usize = 4;
const LEAVER: usize = 1;

#[test]
fn join_and_leave_mid_round() {
    let mut config = tiny_config(8, 5);
    config.rounds = 10;
    // A round trains for 0.64 s (10 steps of 64 tokens at 1,000 tokens/s), then exchanges.
    let mid_round = Duration::from_millis(300);
    config.churn = vec![
        ChurnEvent::at_round(3, Change::Join(JOINER)).after(mid_round),
        ChurnEvent::at_round(6, Change::Leave(LEAVER)).after(mid_round),
    ];
    let report = run_toy(config.clone()).unwrap();
    report.assert_clean();
    let seed = report.seed;
    // Four nodes until the joiner counts (from round 4), five until the leaver goes in round 6
    // (its word on round 5 goes with it: it can no longer repair a split on that round).
    assert_eq!(
        report.replicas(),
        vec![4, 4, 4, 4, 5, 4, 4, 4, 4, 4],
        "SIM_SEED={seed}"
    );
    let included: Vec<usize> = report.rounds.iter().map(|r| r.included).collect();
    assert_eq!(included[5..], [5, 4, 4, 4, 4], "SIM_SEED={seed}");
    assert_eq!(
        report.deadline_rounds(),
        Vec::<u64>::new(),
        "SIM_SEED={seed}"
    );
    let (start, end) = (
        report.initial_val_loss.unwrap(),
        report.final_val_loss.unwrap(),
    );
    assert!(end < 0.5 * start, "loss {start} -> {end}, SIM_SEED={seed}");
}
