//! Proof of Neural Work in the simulator: honest work always passes its audits and learning is
//! unchanged by them; every kind of cheater is caught and excluded by every honest node.

use neuroshard_sim::presets::{tiny_config, tiny_workload};
use neuroshard_sim::{Cheat, CheatKind, Sim, SimConfig, SimReport};
use neuroshard_verify::AuditConfig;

const NODES: usize = 5;

fn config(seed: u64, audit: bool) -> SimConfig {
    let mut config = tiny_config(seed, NODES);
    config.rounds = 6;
    config.node.round_timeout = std::time::Duration::from_secs(4);
    config.node.audit = audit.then_some(AuditConfig {
        segments: 5,
        ..AuditConfig::DEFAULT
    });
    config
}

fn run(config: SimConfig) -> SimReport {
    Sim::new(config.clone(), tiny_workload(&config).unwrap())
        .unwrap()
        .run()
        .unwrap()
}

#[test]
fn honest_work_passes_and_learning_is_unchanged() {
    let on = run(config(3, true));
    let off = run(config(3, false));
    let ponw = on.ponw.clone().unwrap();
    eprintln!("{ponw:?}");
    on.assert_clean();
    assert!(ponw.honest_passed > 0, "audits ran");
    assert_eq!((ponw.honest_failed, ponw.honest_excluded), (0, 0));
    assert_eq!(on.final_val_loss, off.final_val_loss);
    assert_eq!(
        on.rounds.iter().map(|r| r.model_hash).collect::<Vec<_>>(),
        off.rounds.iter().map(|r| r.model_hash).collect::<Vec<_>>()
    );
}

/// The auditors repeat the low-bit codecs' encodings (sparse and dense, fixed and per-chunk
/// widths, entropy-coded), error-feedback decay included: a replay that left the decay out would find every
/// honest Δ mis-encoded.
#[test]
fn honest_work_passes_under_the_low_bit_codecs_with_decay() {
    for codec in [
        "topk-int2:k=0.05,decay=0.9",
        "int2:decay=0.9",
        "ternary:decay=0",
        "hint2:decay=0.9",
        "hbits:bits=2.1,decay=0.9",
        "hent:bits=2.1,decay=0.9",
    ] {
        let mut config = config(5, true);
        config.node.compress = codec.parse().unwrap();
        let report = run(config);
        let ponw = report.ponw.clone().unwrap();
        report.assert_clean();
        assert!(ponw.honest_passed > 0, "{codec}: audits ran");
        assert_eq!(
            (ponw.honest_failed, ponw.honest_excluded),
            (0, 0),
            "{codec}"
        );
    }
}

#[test]
fn every_cheat_is_caught() {
    for kind in CheatKind::ALL {
        let mut config = config(11, true);
        config.cheat = Some(Cheat {
            kind,
            strength: kind.full(),
        });
        config.cheaters = 1;
        let report = run(config);
        let ponw = report.ponw.clone().unwrap();
        eprintln!(
            "{kind}: {ponw:?} included {:?}",
            report.rounds.iter().map(|r| r.included).collect::<Vec<_>>()
        );
        report.assert_clean();
        assert_eq!((ponw.honest_failed, ponw.honest_excluded), (0, 0), "{kind}");
        assert!(
            ponw.rounds_to_detection[0].is_some(),
            "{kind} was never caught"
        );
        assert!(
            ponw.cheaters_excluded > 0,
            "{kind}: nobody excluded the cheater"
        );
    }
}
