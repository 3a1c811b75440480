//! Four honest nodes: the replicas agree every round and the validation loss falls.

use neuroshard_sim::Sim;
use neuroshard_sim::presets::{tiny_config, tiny_workload};

#[test]
fn honest_converges() {
    let config = tiny_config(11, 4);
    let report = Sim::new(config.clone(), tiny_workload(&config).unwrap())
        .unwrap()
        .run()
        .unwrap();
    report.assert_clean();
    let start = report.initial_val_loss.unwrap();
    let end = report.final_val_loss.unwrap();
    assert!(
        end < 0.8 * start,
        "loss {start} -> {end}, SIM_SEED={}",
        report.seed
    );
    assert!(report.rounds.iter().all(|r| r.agreed && r.included == 4));
    assert!(
        report
            .rounds
            .iter()
            .all(|r| r.bytes_sent > 0 && r.sim_time_s > 0.0)
    );
}
