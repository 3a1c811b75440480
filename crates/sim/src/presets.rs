//! Small, fast scenarios for tests and examples: a one-layer model on a synthetic corpus.

use std::time::Duration;

use neuroshard_aggregate::{Rule, RuleKind};
use neuroshard_compress::{Codec, CompressConfig};
use neuroshard_model::Config;
use neuroshard_node::NodeConfig;
use neuroshard_train::{AdamWConfig, InnerConfig, LrSchedule, OuterConfig};

use crate::adversary::{Attack, AttackKind};
use crate::memory::{MemoryData, markov_corpus};
use crate::network::Link;
use crate::workload::ModelWorkload;
use crate::{Result, Sim, SimConfig, SimReport, ToyWorkload};

/// Vocabulary of the tiny scenarios.
pub const TINY_VOCAB: usize = 64;

/// A model small enough that a four-node round takes milliseconds: one layer, width 32.
pub fn tiny_model() -> Config {
    Config {
        vocab_size: TINY_VOCAB,
        d_model: 32,
        n_layers: 1,
        n_heads: 4,
        n_kv_heads: 2,
        d_ff: 64,
        seq_len: 16,
        rope_theta: 10_000.0,
        norm_eps: 1e-5,
    }
}

/// `nodes` honest nodes, 4 rounds of 10 inner steps, trimmed mean with f = 0, int8 codec, a
/// datacentre network; change the fields a scenario is about.
pub fn tiny_config(seed: u64, nodes: usize) -> SimConfig {
    let compress = CompressConfig::new(Codec::Int8);
    let max_frame = NodeConfig::max_frame_for(tiny_model().n_params(), &compress)
        .expect("the int8 codec is valid");
    SimConfig {
        seed,
        nodes,
        byzantine: 0,
        attack: Attack::with_defaults(AttackKind::None, nodes, 0),
        groups: 1,
        rounds: 4,
        node: NodeConfig {
            inner_steps: 10,
            round_timeout: Duration::from_secs(30),
            compress,
            aggregator: Rule::for_attackers(RuleKind::Mean, nodes, 0).expect("mean takes any n"),
            outer: OuterConfig::DILOCO,
            max_frame,
            audit: None,
        },
        link: Link::datacentre(),
        link_overrides: Vec::new(),
        tokens_per_sec: vec![1_000.0; nodes],
        churn: Vec::new(),
        cheat: None,
        cheaters: 0,
        ledger: false,
    }
}

/// The tiny model on a synthetic Markov corpus split over `config.nodes` nodes.
pub fn tiny_workload(config: &SimConfig) -> Result<ModelWorkload<MemoryData>> {
    let corpus = markov_corpus(TINY_VOCAB, 200_000, config.seed);
    let data = MemoryData::new(corpus, config.nodes, 0.1);
    let total = config.rounds * config.node.inner_steps as u64;
    let inner = InnerConfig {
        batch_size: 4,
        seq_len: tiny_model().seq_len,
        adamw: AdamWConfig::NEUROSHARD,
        schedule: LrSchedule::new(total / 10, total, 1e-2, 1e-3)?,
        clip_norm: 1.0,
        dp: None,
    };
    ModelWorkload::new(tiny_model(), config.seed, inner, data, 4)
}

/// Runs `config` on the toy workload (seeded from the config): the protocol alone, hundreds of
/// rounds in milliseconds.
pub fn run_toy(config: SimConfig) -> Result<SimReport> {
    let workload = ToyWorkload::new(config.seed);
    Sim::new(config, workload)?.run()
}
