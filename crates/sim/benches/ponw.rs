//! How often Proof of Neural Work catches each kind of cheater, over many seeded runs: the share
//! of runs in which the cheater is caught within the first rounds, and the measured catch rate
//! per round (of the cheating acts in those rounds) against the design's prediction
//! (`docs/verification.md`).
//!
//! `bash bench/ponw.sh` runs it. Settings from the environment: `PONW_SEEDS` (runs per cheat,
//! 100), `PONW_NODES` (8), `PONW_ROUNDS` (3), `PONW_CHEATS` (comma-separated `KIND[:STRENGTH]`,
//! every kind at full strength and some partial ones by default).

use std::time::Duration;

use neuroshard_sim::presets::{tiny_config, tiny_workload};
use neuroshard_sim::{Cheat, CheatKind, Sim};
use neuroshard_verify::AuditConfig;

const DEFAULT_CHEATS: &str = "lazy:1,fabricate,copy,copy:0.01,replay,wrong-data,forge-loss,\
forge-loss:0.01,forge-loss:0.0005,false-accuse,withhold,lazy:0.25,lazy:0.1,withhold:0.5,false-accuse:0.5";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The chance one round catches the cheat, as the design predicts: each of the `others`
/// honest members audits with probability `rate`, and an audit finds the cheat with
/// probability `found`.
fn predicted(rate: f64, others: usize, found: f64) -> f64 {
    1.0 - (1.0 - rate * found).powi(others as i32)
}

/// The predicted per-round catch rate of `cheat`.
fn prediction(cheat: Cheat, rate: f64, others: usize, segments: u64) -> f64 {
    let found = found(cheat, segments);
    if cheat.kind == CheatKind::FalseAccuse {
        found
    } else {
        predicted(rate, others, found)
    }
}

/// The chance one audit of a cheating contribution finds it (for a false accuser: the chance an
/// accusation is caught).
fn found(cheat: Cheat, segments: u64) -> f64 {
    match cheat.kind {
        CheatKind::Lazy => {
            let skipped = (cheat.strength * segments as f64)
                .round()
                .clamp(1.0, segments as f64);
            skipped / segments as f64
        }
        CheatKind::ForgeLoss
            if cheat.strength <= f64::from(AuditConfig::DEFAULT.tolerance.loss) =>
        {
            0.0
        }
        CheatKind::Withhold => cheat.strength.min(1.0),
        // Every node checks every proof: a false one is always caught.
        CheatKind::FalseAccuse => 1.0,
        _ => 1.0,
    }
}

fn main() {
    let seeds: u64 = env("PONW_SEEDS", 100);
    let nodes: usize = env("PONW_NODES", 8);
    let rounds: u64 = env("PONW_ROUNDS", 3);
    let cheats: String = env("PONW_CHEATS", DEFAULT_CHEATS.to_owned());
    let audit = AuditConfig {
        segments: 10,
        ..AuditConfig::DEFAULT
    };
    let rate = audit.rate(nodes - 1);
    println!(
        "{nodes} nodes, 1 cheater, {rounds} rounds, {seeds} runs per cheat, {} segments, {} auditors per contribution",
        audit.segments, audit.auditors
    );
    println!(
        "{:<20} {:>10} {:>12} {:>12} {:>14} {:>13} {:>12}",
        "cheat", "caught", "per round", "predicted", "honest failed", "verification", "commitment"
    );
    for text in cheats.split(',').filter(|c| !c.is_empty()) {
        let cheat: Cheat = text.parse().expect("a cheat");
        let (mut caught_runs, mut acts, mut caught, mut honest_failed) = (0, 0, 0, 0);
        let (mut verification, mut commitment) = (0.0, 0.0);
        for seed in 0..seeds {
            let mut config = tiny_config(seed, nodes);
            // Two more rounds, so the audits of the last counted round finish inside the run.
            config.rounds = rounds + 2;
            config.node.round_timeout = Duration::from_secs(2);
            config.node.audit = Some(audit);
            config.cheat = Some(cheat);
            config.cheaters = 1;
            let workload = tiny_workload(&config).expect("the tiny workload");
            let report = Sim::new(config, workload)
                .and_then(Sim::run)
                .expect("a run");
            let ponw = report.ponw.expect("audits on");
            let in_time = ponw.rounds_to_detection[0].is_some_and(|r| r <= rounds);
            if !in_time {
                eprintln!("{cheat}: not caught within {rounds} rounds, SIM_SEED={seed}");
            }
            caught_runs += usize::from(in_time);
            let counted = ponw.rounds.iter().filter(|r| r.round < rounds);
            let (a, c) = counted.fold((0, 0), |(a, c), r| (a + r.cheating, c + r.caught));
            acts += a;
            caught += c;
            honest_failed += ponw.honest_failed + ponw.honest_excluded;
            verification += ponw.verification_fraction / seeds as f64;
            commitment = ponw.commitment_fraction;
        }
        let per_round = caught as f64 / acts.max(1) as f64;
        println!(
            "{:<20} {:>9.1}% {:>11.1}% {:>11.1}% {:>14} {:>12.1}% {:>11.3}%",
            cheat.to_string(),
            100.0 * caught_runs as f64 / seeds as f64,
            100.0 * per_round,
            100.0 * prediction(cheat, rate, nodes - 1, audit.segments),
            honest_failed,
            100.0 * verification,
            100.0 * commitment,
        );
    }
}
