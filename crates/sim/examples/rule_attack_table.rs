//! Prints a markdown table of final validation loss for every aggregation rule under every
//! attack, relative to the same rule with no attack: the issue-4 Byzantine figure.
//!
//! `cargo run --release -p neuroshard-sim --example rule_attack_table -- [nodes] [byzantine] [rounds] [inner_steps] [seed]`
//! (defaults 8 2 6 20 1). The model is the `nano` preset on the synthetic Markov corpus
//! (vocabulary 256), int8 codec, datacentre links.

use neuroshard_aggregate::{Rule, RuleKind};
use neuroshard_compress::{Codec, CompressConfig};
use neuroshard_model::Config;
use neuroshard_node::InnerConfig;
use neuroshard_sim::adversary::{Attack, AttackKind};
use neuroshard_sim::presets::tiny_config;
use neuroshard_sim::{MemoryData, ModelWorkload, Sim, SimConfig, markov_corpus};
use neuroshard_train::{AdamWConfig, LrSchedule};

const VOCAB: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: u64| -> u64 {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (nodes, f) = (arg(1, 8) as usize, arg(2, 2) as usize);
    let (rounds, inner_steps, seed) = (arg(3, 6), arg(4, 20) as usize, arg(5, 1));
    let attacks: Vec<AttackKind> = AttackKind::ALL
        .into_iter()
        .filter(|k| *k != AttackKind::None)
        .collect();
    println!(
        "{nodes} nodes, {f} attackers, {rounds} rounds x {inner_steps} inner steps, nano on a synthetic corpus, int8, seed {seed}"
    );
    println!("final val loss, and in brackets its ratio to the same rule without attack\n");
    let header: Vec<&str> = attacks.iter().map(|k| k.name()).collect();
    println!("| rule | no attack | {} |", header.join(" | "));
    println!("|---|---|{}", "---|".repeat(attacks.len()));
    for kind in RuleKind::ALL {
        let Ok(rule) = Rule::for_attackers(kind, nodes, f) else {
            println!("| {} | needs {} | |", kind.name(), kind.requirement());
            continue;
        };
        let run = |attack: AttackKind| -> Result<Option<f32>, Box<dyn std::error::Error>> {
            let mut config = scenario(nodes, f, rounds, inner_steps, seed, rule);
            config.attack = Attack::with_defaults(attack, nodes, f);
            let workload = workload(&config)?;
            Ok(Sim::new(config, workload)?.run()?.final_val_loss)
        };
        let clean = run(AttackKind::None)?;
        let cells: Vec<String> = attacks
            .iter()
            .map(|a| {
                run(*a).map(|loss| match (loss, clean) {
                    (Some(l), Some(c)) => format!("{l:.3} ({:.2})", l / c),
                    _ => "diverged".to_owned(),
                })
            })
            .collect::<Result<_, _>>()?;
        let clean = clean.map_or("diverged".to_owned(), |c| format!("{c:.3}"));
        println!("| {} | {clean} | {} |", kind.name(), cells.join(" | "));
    }
    Ok(())
}

fn scenario(
    nodes: usize,
    f: usize,
    rounds: u64,
    inner_steps: usize,
    seed: u64,
    rule: Rule,
) -> SimConfig {
    let mut config = tiny_config(seed, nodes);
    config.byzantine = f;
    config.rounds = rounds;
    config.node.inner_steps = inner_steps;
    config.node.aggregator = rule;
    config.node.compress = CompressConfig::new(Codec::Int8);
    config.tokens_per_sec = vec![20_000.0; nodes];
    config
}

fn workload(config: &SimConfig) -> Result<ModelWorkload<MemoryData>, Box<dyn std::error::Error>> {
    let model = Config::preset("nano", VOCAB)?;
    let data = MemoryData::new(
        markov_corpus(VOCAB, 1_000_000, config.seed),
        config.nodes,
        0.05,
    );
    let total = config.rounds * config.node.inner_steps as u64;
    let inner = InnerConfig {
        batch_size: 8,
        seq_len: model.seq_len,
        adamw: AdamWConfig::NEUROSHARD,
        schedule: LrSchedule::new(total / 10, total, 3e-3, 3e-4)?,
        clip_norm: 1.0,
    };
    Ok(ModelWorkload::new(model, config.seed, inner, data, 8)?)
}
