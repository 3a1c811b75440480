//! `genesis.toml`: the network's founding settings, and the network id derived from them.
//!
//! # Canonical form and network id
//!
//! The parsed [`Genesis`] is turned into JSON with every object's keys sorted (bytewise), no
//! whitespace, absent optional fields left out, numbers as `serde_json` prints them (shortest
//! round-trip form for floats). The network id is the BLAKE3 hash of those bytes. Comments,
//! key order and formatting of the TOML file therefore do not change the id; any value does.

use std::collections::BTreeMap;
use std::path::Path;

use neuroshard_ledger::Rules;
pub use neuroshard_pool::{GrowthSpec, GrowthStepSpec};
use neuroshard_primitives::{Hash, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manifest::Manifest;
use crate::{Error, Result};

/// The genesis format this crate writes and reads.
pub const GENESIS_FORMAT_VERSION: u32 = 1;

/// File name, in the genesis directory, of the initial weights that `model.init` names: the
/// model's flat parameters (canonical order) as little-endian `f32`, nothing else, so the file's
/// BLAKE3 hash is the round-0 model hash every node agrees on.
pub const INIT_FILE: &str = "init.f32";

/// Everything the network agrees on before its first round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// [`GENESIS_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// The network's root seed (model initialisation, round seeds); below 2^63 to fit TOML.
    pub seed: u64,
    /// Seconds a round may last before late contributions are dropped.
    pub round_deadline_secs: u64,
    /// The model to train.
    pub model: ModelSpec,
    /// The dataset, by hash.
    pub data: DataSpec,
    /// The DiLoCo outer loop.
    pub diloco: DilocoSpec,
    /// Every node's inner loop. Absent: [`InnerSpec::DEFAULT`]; written only when it differs, so
    /// files and network ids from before the section stand.
    #[serde(default, skip_serializing_if = "InnerSpec::is_default")]
    pub inner: InnerSpec,
    /// How contributions are combined.
    pub aggregation: AggregationSpec,
    /// How pseudo-gradients are compressed on the wire.
    pub compression: CompressionSpec,
    /// The NEURO ledger's genesis: its first validators and allocations. A network without it
    /// trains without a ledger (rounds agree by deadline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<LedgerSpec>,
    /// Differential privacy for every node's inner steps (DP-SGD). A network without it trains
    /// without DP (`neuroshard train`, alone, takes `--dp-clip`/`--dp-noise` instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacySpec>,
    /// The growth schedule: the model's depth as a function of the pool's total memory. A
    /// network without it never grows (and keeps the id it had before the section existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<GrowthSpec>,
}

/// DP-SGD settings of the whole network: every inner step clips each sequence's gradient to
/// `clip` and adds Gaussian noise of `noise × clip`; ε is reported at `delta`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// Per-example L2 clipping norm C, > 0.
    pub clip: f64,
    /// Noise multiplier σ, ≥ 0.
    pub noise: f64,
    /// The δ of the (ε, δ) guarantee reported, in (0, 1).
    pub delta: f64,
}

impl PrivacySpec {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(self.clip.is_finite() && self.clip > 0.0) {
            return Err("field `privacy.clip` must be a positive number".into());
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return Err("field `privacy.noise` must be a number ≥ 0".into());
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err("field `privacy.delta` must be in (0, 1)".into());
        }
        Ok(())
    }
}

/// The ledger's first state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSpec {
    /// Epoch 0's validators, as hex node ids (ed25519 public keys); each starts with the
    /// validator bond staked.
    pub committee: Vec<String>,
    /// Spendable NEURO at genesis, in micro-NEURO, by hex node id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocations: BTreeMap<String, u64>,
    /// Blocks per committee epoch (`Rules::epoch_blocks`); `Rules::DEFAULT`'s when absent, and
    /// always written. A local test network sets a short one.
    #[serde(default = "default_epoch_blocks")]
    pub epoch_blocks: u64,
    /// Blocks from an unstake to the release of its amount (`Rules::unbonding_blocks`), at least
    /// two epochs; `Rules::DEFAULT`'s when absent, and always written.
    #[serde(default = "default_unbonding_blocks")]
    pub unbonding_blocks: u64,
    /// Blocks between two plan boundaries of the pipeline's pool roll (`Rules::pool_blocks`), at
    /// least 1; `Rules::DEFAULT`'s when absent, and written only when it differs, so files and
    /// network ids from before the setting stand.
    #[serde(
        default = "default_pool_blocks",
        skip_serializing_if = "is_default_pool_blocks"
    )]
    pub pool_blocks: u64,
    /// Blocks a pool roll entry lasts without a renewal (`Rules::pool_ttl_blocks`), at least two
    /// `pool_blocks`; written only when it differs from the default, as `pool_blocks`.
    #[serde(
        default = "default_pool_ttl_blocks",
        skip_serializing_if = "is_default_pool_ttl_blocks"
    )]
    pub pool_ttl_blocks: u64,
}

fn default_epoch_blocks() -> u64 {
    Rules::DEFAULT.epoch_blocks
}

fn default_unbonding_blocks() -> u64 {
    Rules::DEFAULT.unbonding_blocks
}

fn default_pool_blocks() -> u64 {
    Rules::DEFAULT.pool_blocks
}

fn is_default_pool_blocks(blocks: &u64) -> bool {
    *blocks == default_pool_blocks()
}

fn default_pool_ttl_blocks() -> u64 {
    Rules::DEFAULT.pool_ttl_blocks
}

fn is_default_pool_ttl_blocks(blocks: &u64) -> bool {
    *blocks == default_pool_ttl_blocks()
}

impl LedgerSpec {
    /// A section for `committee` and `allocations` with the default rules.
    pub fn new(committee: Vec<String>, allocations: BTreeMap<String, u64>) -> Self {
        Self {
            committee,
            allocations,
            epoch_blocks: default_epoch_blocks(),
            unbonding_blocks: default_unbonding_blocks(),
            pool_blocks: default_pool_blocks(),
            pool_ttl_blocks: default_pool_ttl_blocks(),
        }
    }

    /// The ledger's rules: `Rules::DEFAULT` with this section's settings, checked by
    /// `Rules::validate`; the error names the section.
    pub fn rules(&self) -> std::result::Result<Rules, String> {
        let rules = Rules {
            epoch_blocks: self.epoch_blocks,
            unbonding_blocks: self.unbonding_blocks,
            pool_blocks: self.pool_blocks,
            pool_ttl_blocks: self.pool_ttl_blocks,
            ..Rules::DEFAULT
        };
        rules
            .validate()
            .map_err(|why| format!("section `ledger`: {why}"))?;
        Ok(rules)
    }

    /// The committee as node ids; the error names the bad entry.
    pub fn committee_ids(&self) -> std::result::Result<Vec<NodeId>, String> {
        self.committee
            .iter()
            .map(|hex| parse_id(hex).map_err(|why| format!("field `ledger.committee`: {why}")))
            .collect()
    }

    /// The allocations as (node id, amount).
    pub fn allocation_ids(&self) -> std::result::Result<Vec<(NodeId, u64)>, String> {
        self.allocations
            .iter()
            .map(|(hex, amount)| {
                let id =
                    parse_id(hex).map_err(|why| format!("field `ledger.allocations`: {why}"))?;
                Ok((id, *amount))
            })
            .collect()
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.committee.is_empty() {
            return Err("field `ledger.committee` must name at least one validator".into());
        }
        self.committee_ids()?;
        self.allocation_ids()?;
        self.rules().map(|_| ())
    }
}

/// A node id from 64 hex digits.
fn parse_id(hex: &str) -> std::result::Result<NodeId, String> {
    let bytes = hex::decode(hex).map_err(|_| format!("`{hex}` is not hex"))?;
    let id: [u8; 32] = bytes
        .try_into()
        .map_err(|_| format!("`{hex}` is not 32 bytes"))?;
    Ok(NodeId(id))
}

/// The model: a preset name with the vocabulary size, or explicit sizes (which, next to a
/// preset, override it). The numbers are stored here so that the model crate's `Config` can
/// be built from them without this crate depending on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A preset of the model crate (`nano`, `tiny`, `small`, `base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    /// Vocabulary size; must equal the tokenizer's.
    pub vocab_size: usize,
    /// Hidden width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_model: Option<usize>,
    /// Transformer blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_layers: Option<usize>,
    /// Attention heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_heads: Option<usize>,
    /// Key/value heads (grouped-query attention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_kv_heads: Option<usize>,
    /// SwiGLU hidden width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_ff: Option<usize>,
    /// Training sequence length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// RoPE base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// RMSNorm epsilon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_eps: Option<f64>,
    /// The initial weights: BLAKE3 of [`INIT_FILE`] (and so the round-0 model hash). Absent, the
    /// network starts from weights drawn from `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Hash>,
}

/// The dataset the network trains on, named by its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The manifest's `merkle_root` over training shards.
    pub merkle_root: Hash,
    /// The manifest's `validation_root`.
    pub validation_root: Hash,
    /// BLAKE3 of `tokenizer.json`.
    pub tokenizer_hash: Hash,
}

/// The DiLoCo outer loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DilocoSpec {
    /// Inner (local AdamW) steps per round.
    pub inner_steps: u64,
    /// Outer Nesterov learning rate.
    pub outer_lr: f64,
    /// Outer Nesterov momentum, in `[0, 1)`.
    pub outer_momentum: f64,
}

impl DilocoSpec {
    /// The defaults, chosen by measurement at our scale
    /// (`docs/experiments/2026-11-30-defaults.md`): 100 inner steps, and the replicas' average as
    /// the new model (outer lr 1, no momentum). With the paper's outer Nesterov (0.7, 0.9) and
    /// H = 500 the network's model ended worse than one node training alone; plain averaging at
    /// H = 100 falls every round and stays below it.
    pub const DEFAULT: Self = Self {
        inner_steps: 100,
        outer_lr: 1.0,
        outer_momentum: 0.0,
    };
}

/// The inner loop every node trains with: network-wide, since auditors replay a node's steps
/// with it (a node on another learning rate would fail every audit) and a pipeline's stages
/// split the same batch and are planned for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InnerSpec {
    /// Sequences per inner step.
    pub batch_size: u64,
    /// Peak AdamW learning rate.
    pub lr: f64,
    /// Inner steps of linear learning-rate warm-up.
    pub warmup_steps: u64,
    /// Rounds the cosine learning-rate decay spans.
    pub schedule_rounds: u64,
}

impl InnerSpec {
    /// What nodes trained with before the section existed.
    pub const DEFAULT: Self = Self {
        batch_size: 8,
        lr: 3e-3,
        warmup_steps: 50,
        schedule_rounds: 200,
    };

    fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let fail = |field: &str, why: &str| Err(format!("field `inner.{field}` {why}"));
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return fail("batch_size", &format!("must be in 1..={MAX_BATCH_SIZE}"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return fail("lr", "must be a number in (0, 1]");
        }
        if self.schedule_rounds == 0 {
            return fail("schedule_rounds", "must be at least 1");
        }
        Ok(())
    }
}

impl Default for InnerSpec {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The largest batch a genesis may set: far beyond what a node's memory holds at our scale, and
/// small enough that nothing derived from it overflows.
const MAX_BATCH_SIZE: u64 = 1 << 16;

/// The robust aggregation rule and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationSpec {
    /// The rule's name, as the aggregation crate spells it (e.g. `trimmed-mean`).
    pub rule: String,
    /// Named numeric parameters of the rule (e.g. `trim_fraction`).
    #[serde(default)]
    pub params: BTreeMap<String, f64>,
}

/// The pseudo-gradient codec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionSpec {
    /// The codec's name, as the compression crate spells it (e.g. `topk-int8`).
    pub codec: String,
}

impl Genesis {
    /// A genesis for the dataset in `manifest` with model `preset` and the default settings:
    /// [`DilocoSpec::DEFAULT`], trimmed mean (20 %), `int4`, 600-second rounds.
    pub fn new(manifest: &Manifest, preset: &str, seed: u64) -> Self {
        Self {
            format_version: GENESIS_FORMAT_VERSION,
            seed,
            round_deadline_secs: 600,
            model: ModelSpec::preset(preset, manifest.vocab_size),
            data: DataSpec::of(manifest),
            diloco: DilocoSpec::DEFAULT,
            inner: InnerSpec::DEFAULT,
            aggregation: AggregationSpec {
                rule: "trimmed-mean".into(),
                params: BTreeMap::from([("trim_fraction".into(), 0.2)]),
            },
            compression: CompressionSpec {
                codec: "int4".into(),
            },
            ledger: None,
            privacy: None,
            growth: None,
        }
    }

    /// Parses and validates TOML text; errors name the offending field.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let genesis: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Reads and validates `genesis.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io("reading", path))?;
        Self::parse(&text).map_err(|reason| Error::BadGenesis {
            path: path.to_owned(),
            reason,
        })
    }

    /// The TOML text written to `genesis.toml`, with a header comment.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).expect("a validated genesis always serialises");
        format!(
            "# NeuroShard genesis file: the network id is the BLAKE3 hash of this file's \
             canonical JSON form.\n# Changing any value makes a different network.\n\n{body}"
        )
    }

    /// Checks ranges and the model section; the error names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let fail = |field: &str, why: &str| Err(format!("field `{field}` {why}"));
        if self.format_version != GENESIS_FORMAT_VERSION {
            return fail(
                "format_version",
                &format!("must be {GENESIS_FORMAT_VERSION}"),
            );
        }
        if self.seed > i64::MAX as u64 {
            return fail("seed", "must be below 2^63");
        }
        if self.round_deadline_secs == 0 {
            return fail("round_deadline_secs", "must be at least 1");
        }
        if self.diloco.inner_steps == 0 {
            return fail("diloco.inner_steps", "must be at least 1");
        }
        if !(self.diloco.outer_lr.is_finite() && self.diloco.outer_lr > 0.0) {
            return fail("diloco.outer_lr", "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.diloco.outer_momentum) {
            return fail("diloco.outer_momentum", "must be in [0, 1)");
        }
        self.inner.validate()?;
        if self.aggregation.rule.is_empty() {
            return fail("aggregation.rule", "must name a rule");
        }
        if self.compression.codec.is_empty() {
            return fail("compression.codec", "must name a codec");
        }
        if let Some(ledger) = &self.ledger {
            ledger.validate()?;
        }
        if let Some(privacy) = &self.privacy {
            privacy.validate()?;
        }
        if let Some(growth) = &self.growth {
            growth.validate()?;
        }
        self.model.validate()
    }

    /// The network id: BLAKE3 of the canonical form (see the module docs).
    pub fn network_id(&self) -> Hash {
        Hash::of(self.canonical().as_bytes())
    }

    /// The canonical JSON form: sorted keys, no whitespace.
    pub fn canonical(&self) -> String {
        let value = serde_json::to_value(self).expect("a genesis always converts to JSON");
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }
}

impl DataSpec {
    /// The data section naming `manifest`.
    pub fn of(manifest: &Manifest) -> Self {
        Self {
            merkle_root: manifest.merkle_root,
            validation_root: manifest.validation_root,
            tokenizer_hash: manifest.tokenizer_hash,
        }
    }
}

impl ModelSpec {
    /// A preset with the tokenizer's vocabulary size and no overrides.
    pub fn preset(name: &str, vocab_size: usize) -> Self {
        Self {
            preset: Some(name.to_owned()),
            vocab_size,
            d_model: None,
            n_layers: None,
            n_heads: None,
            n_kv_heads: None,
            d_ff: None,
            seq_len: None,
            rope_theta: None,
            norm_eps: None,
            init: None,
        }
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.vocab_size == 0 {
            return Err("field `model.vocab_size` must be at least 1".into());
        }
        if self.preset.is_some() {
            return Ok(());
        }
        let explicit = [
            ("d_model", self.d_model.is_some()),
            ("n_layers", self.n_layers.is_some()),
            ("n_heads", self.n_heads.is_some()),
            ("n_kv_heads", self.n_kv_heads.is_some()),
            ("d_ff", self.d_ff.is_some()),
            ("seq_len", self.seq_len.is_some()),
            ("rope_theta", self.rope_theta.is_some()),
            ("norm_eps", self.norm_eps.is_some()),
        ];
        match explicit.iter().find(|(_, present)| !present) {
            Some((field, _)) => Err(format!(
                "field `model.{field}` is missing: give `model.preset` or every model size"
            )),
            None => Ok(()),
        }
    }
}

/// JSON with object keys sorted bytewise at every level and no whitespace.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Genesis {
        let manifest: Manifest = crate::dir::tests::tiny_manifest();
        Genesis::new(&manifest, "nano", 7)
    }

    #[test]
    fn toml_round_trips_and_the_id_ignores_formatting() {
        let genesis = sample();
        let text = genesis.to_toml();
        let parsed = Genesis::parse(&text).unwrap();
        assert_eq!(parsed, genesis);
        let reordered = format!("# a comment\n\n{}", text.replace("seed = 7\n", "")).replacen(
            "format_version = 1\n",
            "format_version = 1\nseed   =   7\n",
            1,
        );
        assert_eq!(
            Genesis::parse(&reordered).unwrap().network_id(),
            genesis.network_id()
        );
        let mut other = genesis.clone();
        other.diloco.outer_lr = 0.71;
        assert_ne!(other.network_id(), genesis.network_id());
        assert!(genesis.canonical().starts_with("{\"aggregation\":"));
    }

    /// Conformance: the shipped example parses, and its id is the one the default build printed.
    /// A deliberate change to the genesis format or the default data updates this hash.
    #[test]
    fn the_example_file_has_the_default_network_id() {
        let example = Genesis::parse(include_str!("../../../config/genesis.toml")).unwrap();
        assert_eq!(
            example.network_id().to_hex(),
            "15d57930fa5c5173cc7a32f991cf119664bd332ef1a3ab45a327f29404bb2f78"
        );
    }

    #[test]
    fn a_ledger_section_round_trips_changes_the_id_and_names_bad_keys() {
        let plain = sample();
        let mut genesis = plain.clone();
        genesis.ledger = Some(LedgerSpec::new(
            vec!["ab".repeat(32)],
            BTreeMap::from([("cd".repeat(32), 5)]),
        ));
        let parsed = Genesis::parse(&genesis.to_toml()).unwrap();
        assert_eq!(parsed, genesis);
        assert_ne!(genesis.network_id(), plain.network_id());
        let ledger = genesis.ledger.as_ref().unwrap();
        assert_eq!(ledger.committee_ids().unwrap(), vec![NodeId([0xab; 32])]);
        assert_eq!(
            ledger.allocation_ids().unwrap(),
            vec![(NodeId([0xcd; 32]), 5)]
        );
        let bad = genesis.to_toml().replace(&"ab".repeat(32), "abc");
        let err = Genesis::parse(&bad).unwrap_err();
        assert!(err.contains("ledger.committee"), "{err}");
    }

    #[test]
    fn the_ledger_rules_are_written_change_the_id_and_are_checked() {
        let mut genesis = sample();
        genesis.ledger = Some(LedgerSpec::new(vec!["ab".repeat(32)], BTreeMap::new()));
        let text = genesis.to_toml();
        assert!(text.contains("epoch_blocks = 300"), "{text}");
        assert!(text.contains("unbonding_blocks = 1000"), "{text}");
        // A file written before the settings existed reads as the defaults.
        let older = text
            .replace("epoch_blocks = 300\n", "")
            .replace("unbonding_blocks = 1000\n", "");
        assert_eq!(Genesis::parse(&older).unwrap(), genesis);
        let ledger = genesis.ledger.as_ref().unwrap();
        assert_eq!(ledger.rules().unwrap(), Rules::DEFAULT);

        let short = text.replace("epoch_blocks = 300", "epoch_blocks = 20");
        let short = Genesis::parse(&short).unwrap();
        assert_ne!(short.network_id(), genesis.network_id());
        assert_eq!(short.ledger.unwrap().rules().unwrap().epoch_blocks, 20);
        for (from, to) in [
            ("epoch_blocks = 300", "epoch_blocks = 1"),
            ("unbonding_blocks = 1000", "unbonding_blocks = 599"),
            ("epoch_blocks = 300", "epoch_blocks = 300\npool_blocks = 0"),
        ] {
            let err = Genesis::parse(&text.replace(from, to)).unwrap_err();
            assert!(err.contains("section `ledger`"), "{to}: {err}");
        }
    }

    #[test]
    fn the_pool_settings_are_written_and_change_the_id_only_when_not_the_default() {
        let mut genesis = sample();
        genesis.ledger = Some(LedgerSpec::new(vec!["ab".repeat(32)], BTreeMap::new()));
        let text = genesis.to_toml();
        for field in ["pool_blocks", "pool_ttl_blocks"] {
            assert!(!text.contains(field), "the default: not written");
            assert!(
                !genesis.canonical().contains(field),
                "the default: the old id"
            );
        }
        let explicit = text.replace("epoch_blocks = 300", "epoch_blocks = 300\npool_blocks = 20");
        let explicit = Genesis::parse(&explicit).unwrap();
        assert_eq!(explicit.network_id(), genesis.network_id());

        let ledger = genesis.ledger.as_mut().unwrap();
        ledger.pool_blocks = 6;
        let text = genesis.to_toml();
        assert!(text.contains("pool_blocks = 6"), "{text}");
        let parsed = Genesis::parse(&text).unwrap();
        assert_eq!(parsed, genesis);
        assert_ne!(parsed.network_id(), explicit.network_id());
        assert_eq!(parsed.ledger.unwrap().rules().unwrap().pool_blocks, 6);

        let ledger = genesis.ledger.as_mut().unwrap();
        ledger.pool_ttl_blocks = 12;
        let text = genesis.to_toml();
        assert!(text.contains("pool_ttl_blocks = 12"), "{text}");
        let rules = Genesis::parse(&text)
            .unwrap()
            .ledger
            .unwrap()
            .rules()
            .unwrap();
        assert_eq!((rules.pool_blocks, rules.pool_ttl_blocks), (6, 12));
        let err = Genesis::parse(&text.replace("pool_ttl_blocks = 12", "pool_ttl_blocks = 11"));
        assert!(err.unwrap_err().contains("pool_ttl_blocks"));
    }

    #[test]
    fn the_inner_section_is_written_and_changes_the_id_only_when_not_the_default() {
        let plain = sample();
        let text = plain.to_toml();
        assert!(
            !text.contains("[inner]"),
            "the default: not written\n{text}"
        );
        let explicit = format!("{text}\n[inner]\nbatch_size = 8\n");
        let explicit = Genesis::parse(&explicit).unwrap();
        assert_eq!(explicit.network_id(), plain.network_id());

        let mut genesis = plain.clone();
        genesis.inner.batch_size = 4;
        genesis.inner.lr = 0.01;
        let text = genesis.to_toml();
        assert!(text.contains("batch_size = 4"), "{text}");
        assert_eq!(Genesis::parse(&text).unwrap(), genesis);
        assert_ne!(genesis.network_id(), plain.network_id());
        for (from, to, field) in [
            ("batch_size = 4", "batch_size = 0", "inner.batch_size"),
            ("batch_size = 4", "batch_size = 65537", "inner.batch_size"),
            ("lr = 0.01", "lr = -1.0", "inner.lr"),
            ("lr = 0.01", "lr = nan", "inner.lr"),
            (
                "schedule_rounds = 200",
                "schedule_rounds = 0",
                "inner.schedule_rounds",
            ),
            ("lr = 0.01", "lr = 0.01\nbatch = 2", "batch"),
        ] {
            let err = Genesis::parse(&text.replace(from, to)).unwrap_err();
            assert!(err.contains(field), "{to}: {err}");
        }
    }

    #[test]
    fn a_privacy_section_round_trips_changes_the_id_and_refuses_bad_values() {
        let plain = sample();
        let mut genesis = plain.clone();
        genesis.privacy = Some(PrivacySpec {
            clip: 1.0,
            noise: 0.8,
            delta: 1e-5,
        });
        assert_eq!(Genesis::parse(&genesis.to_toml()).unwrap(), genesis);
        assert_ne!(genesis.network_id(), plain.network_id());
        let spec = genesis.privacy.unwrap();
        for (bad, field) in [
            (PrivacySpec { clip: 0.0, ..spec }, "privacy.clip"),
            (
                PrivacySpec {
                    noise: -1.0,
                    ..spec
                },
                "privacy.noise",
            ),
            (
                PrivacySpec {
                    noise: f64::NAN,
                    ..spec
                },
                "privacy.noise",
            ),
            (PrivacySpec { delta: 1.0, ..spec }, "privacy.delta"),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(err.contains(field), "expected `{field}` in: {err}");
        }
    }

    #[test]
    fn a_growth_section_round_trips_changes_the_id_and_refuses_bad_schedules() {
        let plain = sample();
        assert!(!plain.canonical().contains("growth"), "absent: the old id");
        let step = |min_pool_bytes, n_layers| GrowthStepSpec {
            min_pool_bytes,
            n_layers,
        };
        let mut genesis = plain.clone();
        genesis.growth = Some(GrowthSpec {
            sustain_rounds: 3,
            steps: vec![step(8 << 30, 4), step(32 << 30, 8)],
        });
        let text = genesis.to_toml();
        assert!(text.contains("[[growth.steps]]"), "{text}");
        assert_eq!(Genesis::parse(&text).unwrap(), genesis);
        assert_ne!(genesis.network_id(), plain.network_id());
        for (bad, why) in [
            (
                GrowthSpec {
                    sustain_rounds: 0,
                    steps: vec![step(1, 2)],
                },
                "sustain_rounds",
            ),
            (
                GrowthSpec {
                    sustain_rounds: 1,
                    steps: vec![],
                },
                "growth.steps",
            ),
            (
                GrowthSpec {
                    sustain_rounds: 1,
                    steps: vec![step(2, 4), step(1, 8)],
                },
                "increase",
            ),
            (
                GrowthSpec {
                    sustain_rounds: 1,
                    steps: vec![step(1, 4), step(2, 4)],
                },
                "increase",
            ),
            (
                GrowthSpec {
                    sustain_rounds: 1,
                    steps: vec![step(u64::MAX, 4)],
                },
                "2^63",
            ),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(err.contains(why), "expected `{why}` in: {err}");
        }
    }

    #[test]
    fn initial_weights_round_trip_and_change_the_id_only_when_named() {
        let plain = sample();
        assert!(!plain.to_toml().contains("init"), "absent: not written");
        assert!(!plain.canonical().contains("init"), "absent: the old id");
        let mut genesis = plain.clone();
        genesis.model.init = Some(Hash::of(b"weights"));
        let text = genesis.to_toml();
        assert!(text.contains(&format!("init = \"{}\"", Hash::of(b"weights").to_hex())));
        assert_eq!(Genesis::parse(&text).unwrap(), genesis);
        assert_ne!(genesis.network_id(), plain.network_id());
        let bad = text.replace(&Hash::of(b"weights").to_hex(), "abc");
        assert!(Genesis::parse(&bad).unwrap_err().contains("init"));
    }

    #[test]
    fn malformed_files_name_the_field() {
        let text = sample().to_toml();
        let cases = [
            (
                text.replace("inner_steps = 100", "inner_steps = \"many\""),
                "inner_steps",
            ),
            (
                text.replace("outer_lr = 1.0", "outer_lr = -1.0"),
                "diloco.outer_lr",
            ),
            (text.replace("[diloco]", "[diloco]\nwarmup = 3"), "warmup"),
            (text.replace("codec = \"int4\"", ""), "codec"),
            (
                text.replace("preset = \"nano\"", "d_model = 64"),
                "model.n_layers",
            ),
            (text.replace("seed = 7", "seed = 9223372036854775807"), ""),
        ];
        for (bad, field) in cases.iter().take(5) {
            let err = Genesis::parse(bad).unwrap_err();
            assert!(err.contains(field), "expected `{field}` in: {err}");
        }
        assert!(
            Genesis::parse(&cases[5].0).is_ok(),
            "2^63 - 1 is a valid seed"
        );
    }
}
