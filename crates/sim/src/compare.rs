//! One scenario with its two baselines, as `neuroshard sim` reports them: the run itself, the
//! same DiLoCo run with no attackers, and synchronous data-parallel training on the same tokens.

use serde::Serialize;

use crate::adversary::{Attack, AttackKind};
use crate::baseline::{BaselineReport, sync_data_parallel};
use crate::report::{RoundRecord, SimReport};
use crate::workload::{DataPlan, ModelWorkload};
use crate::{Result, Sim, SimConfig};

/// A run and its baselines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The scenario as configured.
    pub run: SimReport,
    /// The same run with every node honest (the run itself when it has no attack).
    pub no_attack: SimReport,
    /// Synchronous data-parallel training, gradients all-reduced as f32 every step.
    pub sync_dp: BaselineReport,
}

/// Which of the runs a progress callback is hearing about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The scenario itself.
    Run,
    /// The same run without attackers.
    NoAttack,
}

/// Runs `config` on `workload`, then both baselines on fresh copies of it; `on_round` hears of
/// every round of the two DiLoCo runs as it closes.
pub fn run_with_baselines<D: DataPlan + Clone>(
    config: &SimConfig,
    workload: &ModelWorkload<D>,
    mut on_round: impl FnMut(Stage, &RoundRecord),
) -> Result<Comparison> {
    let run = Sim::new(config.clone(), workload.fresh()?)?
        .run_observed(|record| on_round(Stage::Run, record))?;
    let attacked = config.attack.kind != AttackKind::None && config.byzantine > 0;
    let no_attack = if !attacked && config.cheaters == 0 {
        run.clone()
    } else {
        let honest = SimConfig {
            attack: Attack::with_defaults(AttackKind::None, config.nodes, 0),
            cheat: None,
            cheaters: 0,
            ..config.clone()
        };
        Sim::new(honest, workload.fresh()?)?
            .run_observed(|record| on_round(Stage::NoAttack, record))?
    };
    let sync_dp = sync_data_parallel(&mut workload.fresh()?, config)?;
    Ok(Comparison {
        run,
        no_attack,
        sync_dp,
    })
}
