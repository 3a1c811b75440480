//! A wide-area network with jitter and 2 % loss, one node on a slow uplink and one slow trainer:
//! rounds take longer and cost retransmissions, but every round still includes everyone and the
//! replicas agree.

use neuroshard_sim::presets::{tiny_config, tiny_workload};
use neuroshard_sim::{Link, LinkOverride, Sim};

#[test]
fn slow_and_lossy_links() {
    let fast = {
        let config = tiny_config(5, 4);
        Sim::new(config.clone(), tiny_workload(&config).unwrap())
            .unwrap()
            .run()
            .unwrap()
    };
    let mut config = tiny_config(5, 4);
    config.link = Link {
        jitter_s: 0.02,
        loss: 0.02,
        ..Link::internet()
    };
    let slow_uplink = Link {
        bandwidth_bps: 50e3,
        ..config.link
    };
    config.link_overrides = (1..4)
        .map(|to| LinkOverride {
            from: 0,
            to,
            link: slow_uplink,
        })
        .collect();
    config.tokens_per_sec[3] = 300.0;
    let report = Sim::new(config.clone(), tiny_workload(&config).unwrap())
        .unwrap()
        .run()
        .unwrap();
    report.assert_clean();
    assert!(
        report.rounds.iter().all(|r| r.included == 4),
        "SIM_SEED={}",
        report.seed
    );
    assert!(report.sim_time_s() > 2.0 * fast.sim_time_s());
    assert!(report.traffic[0].bytes_sent > fast.traffic[0].bytes_sent);
    assert_eq!(
        report.final_val_loss, fast.final_val_loss,
        "same contributions, same model"
    );
}
