//! `neuroshard sim --table`: every aggregation rule under every attack, the rule × attack
//! table. Each cell is one full simulated run (no baselines); the reference for a rule is the
//! same rule with no attack, and each attack's best rule is also compared with plain mean
//! without attack (ordinary DiLoCo).

use anyhow::Result;
use neuroshard_aggregate::{Rule, RuleKind};
use neuroshard_sim::adversary::AttackKind;
use neuroshard_sim::{DataPlan, ModelWorkload, Sim, SimConfig};

use super::Args;

/// One row: a rule and the final validation loss under each attack (`None`: diverged).
struct Row {
    kind: RuleKind,
    /// `Err(requirement)` when the rule cannot run with this many attackers.
    losses: Result<Vec<Option<f32>>, &'static str>,
}

/// Runs the grid and prints it; `config` gives the scenario for an attack and a rule.
pub(super) fn run<D: DataPlan + Clone>(
    args: &Args,
    workload: &ModelWorkload<D>,
    config: impl Fn(AttackKind, RuleKind) -> Result<SimConfig>,
) -> Result<()> {
    // No attack first: it is every row's reference.
    let attacks: Vec<AttackKind> = std::iter::once(AttackKind::None)
        .chain(
            AttackKind::ALL
                .into_iter()
                .filter(|a| *a != AttackKind::None),
        )
        .collect();
    let mut rows = Vec::new();
    for kind in RuleKind::ALL {
        if Rule::for_attackers(kind, args.nodes, args.byzantine).is_err() {
            rows.push(Row {
                kind,
                losses: Err(kind.requirement()),
            });
            continue;
        }
        let mut losses = Vec::new();
        for &attack in &attacks {
            let report = Sim::new(config(attack, kind)?, workload.fresh()?)?.run()?;
            eprintln!(
                "{kind} under {attack}: final val loss {}",
                show(report.final_val_loss)
            );
            losses.push(report.final_val_loss);
        }
        rows.push(Row {
            kind,
            losses: Ok(losses),
        });
    }
    print_markdown(args, &attacks, &rows);
    if args.json {
        println!("{}", serde_json::to_string(&json(args, &attacks, &rows))?);
    }
    Ok(())
}

fn show(loss: Option<f32>) -> String {
    loss.map_or_else(|| "diverged".to_owned(), |l| format!("{l:.3}"))
}

/// `loss / reference`, when both exist.
fn ratio(loss: Option<f32>, reference: Option<f32>) -> Option<f32> {
    loss.zip(reference).map(|(l, r)| l / r)
}

fn print_markdown(args: &Args, attacks: &[AttackKind], rows: &[Row]) {
    println!(
        "{} nodes, {} attackers, {} rounds x {} inner steps, {} preset, codec {}, seed {}",
        args.nodes,
        args.byzantine,
        args.rounds,
        args.inner_steps,
        args.preset,
        args.codec,
        args.seed
    );
    println!("final validation loss (ratio to the same rule with no attack)\n");
    let names: Vec<&str> = attacks.iter().map(|a| a.name()).collect();
    println!("| rule | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(attacks.len()));
    for row in rows {
        let cells = match &row.losses {
            Err(needs) => format!("cannot run: needs {needs} |"),
            Ok(losses) => losses
                .iter()
                .map(|l| match ratio(*l, losses[0]) {
                    Some(r) => format!("{} ({r:.2}) |", show(*l)),
                    None => format!("{} |", show(*l)),
                })
                .collect::<Vec<_>>()
                .join(" "),
        };
        println!("| {} | {cells}", row.kind);
    }
    let reference = mean_without_attack(rows);
    println!(
        "\nbest rule per attack, against mean with no attack ({}):",
        show(reference)
    );
    for (i, attack) in attacks.iter().enumerate() {
        if let Some((kind, loss)) = best(rows, i) {
            let r = ratio(Some(loss), reference).map_or("-".to_owned(), |r| format!("{r:.3}"));
            println!("  {attack}: {kind} {loss:.3} (ratio {r})");
        }
    }
}

/// Plain mean's loss with no attack: ordinary DiLoCo.
fn mean_without_attack(rows: &[Row]) -> Option<f32> {
    let mean = rows.iter().find(|r| r.kind == RuleKind::Mean)?;
    mean.losses.as_ref().ok()?.first().copied().flatten()
}

/// The robust rule (not plain mean) with the lowest loss under attack column `i`.
fn best(rows: &[Row], i: usize) -> Option<(RuleKind, f32)> {
    rows.iter()
        .filter(|r| r.kind != RuleKind::Mean)
        .filter_map(|r| Some((r.kind, r.losses.as_ref().ok()?[i]?)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

fn json(args: &Args, attacks: &[AttackKind], rows: &[Row]) -> serde_json::Value {
    let cells: Vec<serde_json::Value> = rows
        .iter()
        .flat_map(|row| {
            attacks.iter().enumerate().map(move |(i, attack)| {
                let loss = row.losses.as_ref().ok().map(|l| l[i]);
                serde_json::json!({
                    "rule": row.kind.name(),
                    "attack": attack.name(),
                    "runs": loss.is_some(),
                    "final_val_loss": loss.flatten(),
                })
            })
        })
        .collect();
    serde_json::json!({
        "nodes": args.nodes,
        "byzantine": args.byzantine,
        "rounds": args.rounds,
        "inner_steps": args.inner_steps,
        "seed": args.seed,
        "mean_without_attack": mean_without_attack(rows),
        "cells": cells,
    })
}
