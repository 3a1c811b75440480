//! Plain mean has no defence: one node in five scaling its Δ by 100 (or sending noise) wrecks
//! the model, where the trimmed mean on the same run barely notices.

use neuroshard_aggregate::{Rule, RuleKind};
use neuroshard_sim::adversary::{Attack, AttackKind};
use neuroshard_sim::presets::{tiny_config, tiny_workload};
use neuroshard_sim::{Sim, SimReport};

fn run(kind: RuleKind, attack: AttackKind) -> SimReport {
    let mut config = tiny_config(3, 5);
    config.byzantine = 1;
    config.attack = Attack::with_defaults(attack, 5, 1);
    config.node.aggregator = Rule::for_attackers(kind, 5, 1).unwrap();
    Sim::new(config.clone(), tiny_workload(&config).unwrap())
        .unwrap()
        .run()
        .unwrap()
}

fn final_loss(report: &SimReport) -> f32 {
    report.final_val_loss.unwrap_or(f32::INFINITY)
}

#[test]
fn mean_fails_under_scaling() {
    let robust = run(RuleKind::TrimmedMean, AttackKind::Scale);
    robust.assert_clean();
    let initial = robust.initial_val_loss.unwrap();
    assert!(final_loss(&robust) < 0.8 * initial);
    for attack in [AttackKind::Scale, AttackKind::Noise] {
        let broken = run(RuleKind::Mean, attack);
        assert!(
            final_loss(&broken) > 1.5 * final_loss(&robust),
            "{attack}: mean reached {} vs trimmed mean {}, SIM_SEED={}",
            final_loss(&broken),
            final_loss(&robust),
            broken.seed
        );
    }
}
