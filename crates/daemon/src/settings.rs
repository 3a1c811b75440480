//! From the genesis file to what the node core, the model and the worker are built with.

use std::time::Duration;

use neuroshard_aggregate::{Overrides, Rule, RuleKind, Trim};
use neuroshard_compress::CompressConfig;
use neuroshard_data::{Genesis, ModelSpec};
use neuroshard_model::Config;
use neuroshard_train::{AdamWConfig, DpConfig, InnerConfig, LrSchedule, OuterConfig};

use crate::grow::Depths;

/// Everything derived from the genesis file.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The model every replica trains.
    pub(crate) model: Config,
    /// The protocol settings every member shares.
    pub(crate) protocol: neuroshard_node::NodeConfig,
    /// How this node trains between outer steps.
    pub(crate) inner: InnerConfig,
    /// The genesis `[growth]` schedule, if the model grows.
    pub(crate) growth: Option<neuroshard_pool::GrowthSchedule>,
    /// The depths the model can have: its own and the schedule's.
    pub(crate) depths: Depths,
}

impl Settings {
    /// Resolves `genesis`; the error says which genesis field is unusable.
    pub(crate) fn resolve(genesis: &Genesis) -> Result<Self, String> {
        let model = model_config(&genesis.model)?;
        let compress: CompressConfig = genesis
            .compression
            .codec
            .parse()
            .map_err(|err| format!("field `compression.codec`: {err}"))?;
        let growth = growth_schedule(genesis)?;
        let depths = Depths::new(&model, growth.as_ref());
        // Frames must hold the deepest model's Δs and states.
        let max_frame = neuroshard_node::NodeConfig::max_frame_for(depths.max_params(), &compress)
            .map_err(|err| format!("field `compression.codec`: {err}"))?;
        let outer = OuterConfig::new(
            genesis.diloco.outer_lr as f32,
            genesis.diloco.outer_momentum as f32,
        )
        .map_err(|err| format!("section `diloco`: {err}"))?;
        let protocol = neuroshard_node::NodeConfig {
            inner_steps: genesis.diloco.inner_steps as usize,
            round_timeout: Duration::from_secs(genesis.round_deadline_secs),
            compress,
            aggregator: rule(&genesis.aggregation)?,
            outer,
            max_frame,
            audit: Some(neuroshard_verify::AuditConfig::DEFAULT),
        };
        let inner = inner_config(genesis, model.seq_len)
            .map_err(|err| format!("training settings: {err}"))?;
        Ok(Self {
            model,
            protocol,
            inner,
            growth,
            depths,
        })
    }
}

/// The depths a genesis file's model can have: its own, and each of its `[growth]` schedule's
/// (what a node's checkpoint may hold).
pub fn model_depths(genesis: &Genesis) -> Result<Depths, String> {
    let model = model_config(&genesis.model)?;
    Ok(Depths::new(&model, growth_schedule(genesis)?.as_ref()))
}

/// The genesis `[growth]` schedule, if the model grows.
fn growth_schedule(genesis: &Genesis) -> Result<Option<neuroshard_pool::GrowthSchedule>, String> {
    let Some(spec) = &genesis.growth else {
        return Ok(None);
    };
    neuroshard_pool::GrowthSchedule::new(spec)
        .map(Some)
        .map_err(|err| format!("section `growth`: {err}"))
}

/// The model crate's config for a genesis model section: the preset, then any explicit size.
pub fn model_config(spec: &ModelSpec) -> Result<Config, String> {
    let base = spec.preset.as_deref().unwrap_or("nano");
    let mut config = Config::preset(base, spec.vocab_size)
        .map_err(|err| format!("field `model.preset`: {err}"))?;
    let sizes = [
        (&mut config.d_model, spec.d_model),
        (&mut config.n_layers, spec.n_layers),
        (&mut config.n_heads, spec.n_heads),
        (&mut config.n_kv_heads, spec.n_kv_heads),
        (&mut config.d_ff, spec.d_ff),
        (&mut config.seq_len, spec.seq_len),
    ];
    for (field, value) in sizes {
        if let Some(value) = value {
            *field = value;
        }
    }
    if let Some(theta) = spec.rope_theta {
        config.rope_theta = theta as f32;
    }
    if let Some(eps) = spec.norm_eps {
        config.norm_eps = eps as f32;
    }
    config
        .validate()
        .map_err(|err| format!("section `model`: {err}"))?;
    Ok(config)
}

/// The aggregation rule named in the genesis file, with its named parameters: `trim_fraction`
/// or `trim` (trimmed mean), `f` (Krum, Multi-Krum, Bulyan), `m` (Multi-Krum).
///
/// The rule is checked here against a network large enough for its `f`; the actual number of
/// contributions is checked every round by the aggregator, and a round it refuses is skipped.
fn rule(spec: &neuroshard_data::AggregationSpec) -> Result<Rule, String> {
    let kind: RuleKind = spec
        .rule
        .parse()
        .map_err(|err| format!("field `aggregation.rule`: {err}"))?;
    let count = |name: &str| spec.params.get(name).map(|v| *v as usize);
    let trim = match (spec.params.get("trim_fraction"), count("trim")) {
        (Some(beta), _) => Some(Trim::Fraction(*beta)),
        (None, trim) => trim.map(Trim::Count),
    };
    let f = count("f").unwrap_or(0);
    let overrides = Overrides {
        trim,
        f: Some(f),
        m: count("m"),
        ..Overrides::default()
    };
    let large_enough = 4 * f + 3 + count("m").unwrap_or(0);
    Rule::configure(kind, large_enough, f, &overrides)
        .map_err(|err| format!("section `aggregation`: {err}"))
}

/// The inner loop of the genesis `[inner]` section: AdamW with warm-up and a cosine decay over
/// its `schedule_rounds` rounds; DP-SGD when the genesis file has a `[privacy]` section, with the
/// noise keyed by the network's seed.
///
/// DP is network-wide, never a node's own choice: auditors replay a node's steps with the
/// network's recipe, so a node that trained with DP the others do not use would fail every audit.
fn inner_config(genesis: &Genesis, seq_len: usize) -> neuroshard_train::Result<InnerConfig> {
    let inner = &genesis.inner;
    let schedule = LrSchedule::over_rounds(
        inner.warmup_steps,
        inner.schedule_rounds,
        genesis.diloco.inner_steps,
        inner.lr as f32,
    )?;
    Ok(InnerConfig {
        batch_size: inner.batch_size as usize,
        seq_len,
        adamw: AdamWConfig::NEUROSHARD,
        schedule,
        clip_norm: 1.0,
        dp: genesis
            .privacy
            .map(|p| DpConfig::new(p.clip as f32, p.noise as f32, genesis.seed))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use neuroshard_data::AggregationSpec;

    use super::*;

    fn spec(rule: &str, params: &[(&str, f64)]) -> AggregationSpec {
        AggregationSpec {
            rule: rule.into(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn genesis_rules_map_to_aggregator_rules() {
        let trimmed = rule(&spec("trimmed-mean", &[("trim_fraction", 0.2)])).unwrap();
        assert_eq!(
            trimmed,
            Rule::TrimmedMean {
                trim: Trim::Fraction(0.2)
            }
        );
        assert_eq!(
            rule(&spec("krum", &[("f", 1.0)])).unwrap(),
            Rule::Krum { f: 1 }
        );
        assert_eq!(rule(&spec("median", &[])).unwrap(), Rule::Median);
        assert!(rule(&spec("no-such-rule", &[])).is_err());
    }

    #[test]
    fn explicit_sizes_override_the_preset() {
        let mut spec = ModelSpec::preset("nano", 300);
        spec.seq_len = Some(32);
        let config = model_config(&spec).unwrap();
        assert_eq!(config.seq_len, 32);
        assert_eq!(config.vocab_size, 300);
        assert_eq!(config.d_model, Config::preset("nano", 300).unwrap().d_model);
    }
}
