//! The Hugging Face Llama format: `config.json` for `LlamaForCausalLM`, the standard tensor names,
//! `generation_config.json`, and the way back.
//!
//! NeuroLLM is a Llama: pre-norm RMSNorm, rotate-half RoPE (the `transformers` convention, so the
//! q and k rows need no permutation), grouped-query attention, a SwiGLU MLP (`silu(gate) * up`),
//! no biases, an untied head. So export renames tensors and writes the sizes; nothing is
//! recomputed, and import of an exported model gives back the same bits.
//!
//! | ours                               | `transformers`                                    |
//! |------------------------------------|---------------------------------------------------|
//! | `embed.weight`                     | `model.embed_tokens.weight`                       |
//! | `layers.NN.attn_norm.weight`       | `model.layers.N.input_layernorm.weight`           |
//! | `layers.NN.attn.{q,k,v,o}.weight`  | `model.layers.N.self_attn.{q,k,v,o}_proj.weight`  |
//! | `layers.NN.mlp_norm.weight`        | `model.layers.N.post_attention_layernorm.weight`  |
//! | `layers.NN.mlp.{gate,up,down}.weight` | `model.layers.N.mlp.{gate,up,down}_proj.weight` |
//! | `norm.weight`                      | `model.norm.weight`                               |
//! | `head.weight`                      | `lm_head.weight`                                  |
//!
//! Import takes any Llama this engine computes exactly: it refuses biases, rope scaling, another
//! activation, a head dimension other than `hidden_size / num_attention_heads`, and sharded
//! weights. A tied embedding is imported as an untied head holding a copy of it.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::block::layer_index_width;
use crate::{Config, Error, NeuroLlm, Result};

/// File name of the model's `config.json`.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the generation defaults.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The ids of the special tokens that `config.json` and `generation_config.json` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: u32,
    /// End of document: generation stops there.
    pub eos: u32,
    /// Padding.
    pub pad: u32,
}

/// `config.json` of a `LlamaForCausalLM`, as far as this engine reads and writes it. Unknown
/// keys are kept in `extra` and ignored, so a config from a newer `transformers` still loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HfConfig {
    /// `["LlamaForCausalLM"]`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// `"llama"`.
    pub model_type: String,
    /// Token ids.
    pub vocab_size: usize,
    /// Residual width (`d_model`).
    pub hidden_size: usize,
    /// SwiGLU hidden width (`d_ff`).
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads; `transformers` defaults it to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Channels per head; must be `hidden_size / num_attention_heads` here.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// The MLP's activation; only `silu` (SwiGLU) is supported.
    #[serde(default = "silu")]
    pub hidden_act: String,
    /// Longest sequence; ours is the training length (RoPE itself has no maximum).
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling; only `null` (plain RoPE) is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// RoPE as `transformers` 5 writes it (`rope_theta`, `rope_type`); only the `default` type is
    /// supported, and its `rope_theta` wins over the top-level one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// Biases on q, k, v, o; only `false` is supported.
    #[serde(default)]
    pub attention_bias: bool,
    /// Biases in the MLP; only `false` is supported.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Attention dropout (inference ignores it).
    #[serde(default)]
    pub attention_dropout: f64,
    /// Whether the head shares the embedding's weights (`transformers` defaults it to false
    /// for Llama).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// `<|bos|>`.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// `<|eos|>` (a list in some configs, hence a value).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// `<|pad|>`.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// The dtype of the weights in the file.
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// The standard deviation of the initialisation, for `transformers`' own init.
    #[serde(default)]
    pub initializer_range: Option<f64>,
    /// Tensor-parallel slices of the pre-training (1: none).
    #[serde(default)]
    pub pretraining_tp: Option<usize>,
    /// Whether generation keeps a key/value cache.
    #[serde(default)]
    pub use_cache: Option<bool>,
    /// Everything else in the file.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn silu() -> String {
    "silu".into()
}

fn default_rope_theta() -> f64 {
    10_000.0
}

/// The f32 as the f64 with the same shortest decimal form, so `1e-5` is written `1e-5`.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

impl HfConfig {
    /// The `config.json` of a model with sizes `cfg` and special tokens `ids`.
    pub fn from_config(cfg: &Config, ids: SpecialIds) -> Self {
        Self {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: "llama".into(),
            vocab_size: cfg.vocab_size,
            hidden_size: cfg.d_model,
            intermediate_size: cfg.d_ff,
            num_hidden_layers: cfg.n_layers,
            num_attention_heads: cfg.n_heads,
            num_key_value_heads: Some(cfg.n_kv_heads),
            head_dim: Some(cfg.head_dim()),
            hidden_act: silu(),
            max_position_embeddings: cfg.seq_len,
            rms_norm_eps: decimal(cfg.norm_eps),
            rope_theta: decimal(cfg.rope_theta),
            rope_scaling: None,
            rope_parameters: None,
            attention_bias: false,
            mlp_bias: false,
            attention_dropout: 0.0,
            tie_word_embeddings: false,
            bos_token_id: Some(ids.bos),
            eos_token_id: Some(ids.eos.into()),
            pad_token_id: Some(ids.pad),
            torch_dtype: Some("float32".into()),
            initializer_range: Some(decimal(crate::block::INIT_STD)),
            pretraining_tp: Some(1),
            use_cache: Some(true),
            extra: serde_json::Map::new(),
        }
    }

    /// Our config for this one, or why this engine cannot compute the model exactly.
    pub fn to_config(&self) -> Result<Config> {
        let unsupported = |what: String| Err(Error::UnsupportedHf(what));
        if self.model_type != "llama" {
            return unsupported(format!("model_type {:?} (only \"llama\")", self.model_type));
        }
        if let Some(arch) = self.architectures.iter().find(|a| *a != "LlamaForCausalLM") {
            return unsupported(format!("architecture {arch:?} (only LlamaForCausalLM)"));
        }
        if self.hidden_act != "silu" {
            return unsupported(format!(
                "hidden_act {:?} (only \"silu\", SwiGLU)",
                self.hidden_act
            ));
        }
        if self.attention_bias || self.mlp_bias {
            return unsupported("biases (attention_bias or mlp_bias is true)".into());
        }
        if let Some(scaling) = self.rope_scaling.as_ref().filter(|s| !s.is_null()) {
            return unsupported(format!("rope_scaling {scaling} (only plain RoPE)"));
        }
        let rope_theta = self.rope_theta()?;
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return unsupported(format!(
                "hidden_size {} with {} attention heads (the heads must divide it)",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let head_dim = self.hidden_size / self.num_attention_heads;
        if let Some(declared) = self.head_dim.filter(|d| *d != head_dim) {
            return unsupported(format!(
                "head_dim {declared} (only hidden_size / num_attention_heads = {head_dim})"
            ));
        }
        let cfg = Config {
            vocab_size: self.vocab_size,
            d_model: self.hidden_size,
            n_layers: self.num_hidden_layers,
            n_heads: self.num_attention_heads,
            n_kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            d_ff: self.intermediate_size,
            seq_len: self.max_position_embeddings,
            rope_theta: rope_theta as f32,
            norm_eps: self.rms_norm_eps as f32,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The RoPE base: `rope_parameters.rope_theta` (`transformers` 5) or `rope_theta`.
    fn rope_theta(&self) -> Result<f64> {
        let Some(params) = self.rope_parameters.as_ref().filter(|p| !p.is_null()) else {
            return Ok(self.rope_theta);
        };
        let unsupported =
            || Error::UnsupportedHf(format!("rope_parameters {params} (only plain RoPE)"));
        let map = params.as_object().ok_or_else(unsupported)?;
        let plain = map.iter().all(|(key, value)| match key.as_str() {
            "rope_type" => value == "default",
            "rope_theta" => value.is_number(),
            _ => false,
        });
        if !plain {
            return Err(unsupported());
        }
        Ok(map
            .get("rope_theta")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(self.rope_theta))
    }

    /// `config.json`'s bytes, pretty-printed as `transformers` writes it.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a config of plain values serializes")
    }

    /// Parses `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::BadHfFile {
            file: CONFIG_FILE,
            reason: e.to_string(),
        })
    }
}

/// `generation_config.json`: the special tokens, and greedy decoding by default like ours.
pub fn generation_config_json(ids: SpecialIds) -> Vec<u8> {
    let value = serde_json::json!({
        "bos_token_id": ids.bos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
        "do_sample": false,
    });
    serde_json::to_vec_pretty(&value).expect("a json value serializes")
}

/// Our whole-model parameters and their `transformers` names.
const TOP_NAMES: [(&str, &str); 3] = [
    ("embed.weight", "model.embed_tokens.weight"),
    ("norm.weight", "model.norm.weight"),
    ("head.weight", "lm_head.weight"),
];

/// Our per-layer parameters and their `transformers` names, after `layers.N.` /
/// `model.layers.N.`.
const LAYER_NAMES: [(&str, &str); 9] = [
    ("attn_norm.weight", "input_layernorm.weight"),
    ("mlp_norm.weight", "post_attention_layernorm.weight"),
    ("attn.q.weight", "self_attn.q_proj.weight"),
    ("attn.k.weight", "self_attn.k_proj.weight"),
    ("attn.v.weight", "self_attn.v_proj.weight"),
    ("attn.o.weight", "self_attn.o_proj.weight"),
    ("mlp.gate.weight", "mlp.gate_proj.weight"),
    ("mlp.up.weight", "mlp.up_proj.weight"),
    ("mlp.down.weight", "mlp.down_proj.weight"),
];

/// The other side of `name` in `table`, looked up on side `from` (0: ours, 1: `transformers`).
fn lookup(table: &[(&'static str, &'static str)], name: &str, from: usize) -> Option<&'static str> {
    table
        .iter()
        .find(|pair| [pair.0, pair.1][from] == name)
        .map(|pair| [pair.0, pair.1][1 - from])
}

/// The `transformers` name of our parameter `name`.
pub fn hf_name(name: &str) -> Option<String> {
    if let Some(hf) = lookup(&TOP_NAMES, name, 0) {
        return Some(hf.into());
    }
    let (index, part) = name.strip_prefix("layers.")?.split_once('.')?;
    let index: usize = index.parse().ok()?;
    Some(format!(
        "model.layers.{index}.{}",
        lookup(&LAYER_NAMES, part, 0)?
    ))
}

/// Our name of the `transformers` parameter `name`, in a model of `n_layers` layers.
fn our_name(name: &str, n_layers: usize) -> Option<String> {
    if let Some(ours) = lookup(&TOP_NAMES, name, 1) {
        return Some(ours.into());
    }
    let (index, part) = name.strip_prefix("model.layers.")?.split_once('.')?;
    let index: usize = index.parse().ok().filter(|i| *i < n_layers)?;
    let width = layer_index_width(n_layers);
    Some(format!(
        "layers.{index:0width$}.{}",
        lookup(&LAYER_NAMES, part, 1)?
    ))
}

/// The model's weights under their `transformers` names, sorted, as f32 on the CPU.
pub fn hf_tensors(model: &NeuroLlm) -> Result<Vec<(String, Tensor)>> {
    let mut out = model
        .named_tensors()?
        .into_iter()
        .map(|(name, tensor)| {
            let hf = hf_name(&name).expect("every parameter of NeuroLLM has a Llama name");
            Ok((hf, tensor.to_dtype(DType::F32)?.to_device(&Device::Cpu)?))
        })
        .collect::<Result<Vec<_>>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The files of a `transformers` Llama directory for `model`, except the tokenizer's:
/// `config.json`, `generation_config.json` and `model.safetensors` (f32).
pub fn export(model: &NeuroLlm, ids: SpecialIds) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let weights =
        safetensors::serialize(hf_tensors(model)?, None).map_err(|e| Error::BadHfFile {
            file: WEIGHTS_FILE,
            reason: e.to_string(),
        })?;
    Ok(vec![
        (
            CONFIG_FILE,
            HfConfig::from_config(model.config(), ids).to_json(),
        ),
        (GENERATION_CONFIG_FILE, generation_config_json(ids)),
        (WEIGHTS_FILE, weights),
    ])
}

/// The model in a `transformers` Llama's `config.json` and `model.safetensors` bytes, on
/// `device`. Every tensor must be there with its shape, and nothing else may be.
pub fn import(config_json: &[u8], weights: &[u8], device: &Device) -> Result<NeuroLlm> {
    let hf = HfConfig::from_json(config_json)?;
    let cfg = hf.to_config()?;
    let tensors = candle_core::safetensors::load_buffer(weights, &Device::Cpu).map_err(|e| {
        Error::BadHfFile {
            file: WEIGHTS_FILE,
            reason: e.to_string(),
        }
    })?;
    let mut ours = HashMap::with_capacity(tensors.len() + 1);
    for (name, tensor) in tensors {
        // A tied model may still carry the head; the embedding is what it computes with.
        if hf.tie_word_embeddings && name == "lm_head.weight" {
            continue;
        }
        let Some(our) = our_name(&name, cfg.n_layers) else {
            return Err(Error::UnexpectedTensor { name });
        };
        if !matches!(tensor.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            return Err(Error::UnsupportedHf(format!(
                "tensor {name:?} of dtype {:?} (only f32, f16, bf16)",
                tensor.dtype()
            )));
        }
        ours.insert(our, tensor);
    }
    if hf.tie_word_embeddings
        && let Some(embed) = ours.get("embed.weight").cloned()
    {
        ours.insert("head.weight".into(), embed);
    }
    // The seed does not matter: every weight is overwritten.
    let mut model = NeuroLlm::new(&cfg, 0, device)?;
    model.load_named(&ours).map_err(|e| match e {
        Error::MissingTensor { name } => Error::MissingTensor {
            name: hf_name(&name).unwrap_or(name),
        },
        Error::ShapeMismatch {
            name,
            expected,
            got,
        } => Error::ShapeMismatch {
            name: hf_name(&name).unwrap_or(name),
            expected,
            got,
        },
        other => other,
    })?;
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::micro;

    const IDS: SpecialIds = SpecialIds {
        bos: 0,
        eos: 1,
        pad: 2,
    };

    fn file<'a>(files: &'a [(&'static str, Vec<u8>)], name: &str) -> &'a [u8] {
        &files.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// The tensors `transformers`' `LlamaForCausalLM` holds for `cfg` (untied), with shapes.
    fn llama_tensors(cfg: &Config) -> Vec<(String, Vec<usize>)> {
        let (v, d, kv, ff) = (cfg.vocab_size, cfg.d_model, cfg.kv_dim(), cfg.d_ff);
        let mut out = vec![
            ("model.embed_tokens.weight".to_owned(), vec![v, d]),
            ("model.norm.weight".to_owned(), vec![d]),
            ("lm_head.weight".to_owned(), vec![v, d]),
        ];
        for i in 0..cfg.n_layers {
            let p = format!("model.layers.{i}");
            out.extend([
                (format!("{p}.input_layernorm.weight"), vec![d]),
                (format!("{p}.post_attention_layernorm.weight"), vec![d]),
                (format!("{p}.self_attn.q_proj.weight"), vec![d, d]),
                (format!("{p}.self_attn.k_proj.weight"), vec![kv, d]),
                (format!("{p}.self_attn.v_proj.weight"), vec![kv, d]),
                (format!("{p}.self_attn.o_proj.weight"), vec![d, d]),
                (format!("{p}.mlp.gate_proj.weight"), vec![ff, d]),
                (format!("{p}.mlp.up_proj.weight"), vec![ff, d]),
                (format!("{p}.mlp.down_proj.weight"), vec![d, ff]),
            ]);
        }
        out.sort();
        out
    }

    #[test]
    fn config_json_has_the_llama_fields() {
        let cfg = Config::preset("nano", 300).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&HfConfig::from_config(&cfg, IDS).to_json()).unwrap();
        let expect = serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": 300,
            "hidden_size": 64,
            "intermediate_size": 192,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "hidden_act": "silu",
            "max_position_embeddings": 64,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": null,
            "attention_bias": false,
            "mlp_bias": false,
            "attention_dropout": 0.0,
            "tie_word_embeddings": false,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 2,
            "torch_dtype": "float32",
            "initializer_range": 0.02,
            "pretraining_tp": 1,
            "use_cache": true,
        });
        assert_eq!(json, expect);
        let gen_cfg: serde_json::Value =
            serde_json::from_slice(&generation_config_json(IDS)).unwrap();
        assert_eq!(gen_cfg["eos_token_id"], 1);
        assert_eq!(gen_cfg["do_sample"], false);
    }

    #[test]
    fn weights_carry_every_llama_tensor_in_f32() {
        let cfg = Config {
            n_layers: 11,
            ..micro()
        };
        let model = NeuroLlm::new(&cfg, 3, &Device::Cpu).unwrap();
        let files = export(&model, IDS).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [CONFIG_FILE, GENERATION_CONFIG_FILE, WEIGHTS_FILE]);
        let st = safetensors::SafeTensors::deserialize(file(&files, WEIGHTS_FILE)).unwrap();
        let mut got: Vec<(String, Vec<usize>)> = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
                (name, view.shape().to_vec())
            })
            .collect();
        got.sort();
        assert_eq!(got, llama_tensors(&cfg));
    }

    #[test]
    fn import_of_export_is_bit_exact_with_the_same_logits() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 5, &Device::Cpu).unwrap();
        let files = export(&model, IDS).unwrap();
        let back = import(
            file(&files, CONFIG_FILE),
            file(&files, WEIGHTS_FILE),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(back.config(), model.config());
        let bits = |m: &NeuroLlm| -> Vec<u32> {
            m.flat_params()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect()
        };
        assert_eq!(bits(&back), bits(&model));
        let tokens = Tensor::new(&[[1u32, 7, 3, 30, 2, 2]], &Device::Cpu).unwrap();
        let logits = |m: &NeuroLlm| {
            m.forward(&tokens)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(logits(&back), logits(&model));
    }

    #[test]
    fn a_tied_model_gets_its_embedding_as_head() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 6, &Device::Cpu).unwrap();
        let mut hf = HfConfig::from_config(&cfg, IDS);
        hf.tie_word_embeddings = true;
        let tensors: Vec<_> = hf_tensors(&model)
            .unwrap()
            .into_iter()
            .filter(|(n, _)| n != "lm_head.weight")
            .collect();
        let weights = safetensors::serialize(tensors, None).unwrap();
        let back = import(&hf.to_json(), &weights, &Device::Cpu).unwrap();
        let named: HashMap<String, Tensor> = back.named_tensors().unwrap().into_iter().collect();
        let vec = |n: &str| named[n].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(vec("head.weight"), vec("embed.weight"));
    }

    #[test]
    fn configs_we_cannot_compute_are_refused() {
        let cfg = micro();
        let ok = HfConfig::from_config(&cfg, IDS);
        let refused = |f: fn(&mut HfConfig)| {
            let mut hf = ok.clone();
            f(&mut hf);
            hf.to_config().unwrap_err()
        };
        type Change = fn(&mut HfConfig);
        let cases: [(Change, &str); 7] = [
            (|c| c.hidden_act = "gelu".into(), "hidden_act"),
            (|c| c.attention_bias = true, "biases"),
            (|c| c.mlp_bias = true, "biases"),
            (
                |c| c.rope_scaling = Some(serde_json::json!({"rope_type": "llama3"})),
                "rope_scaling",
            ),
            (|c| c.model_type = "mistral".into(), "model_type"),
            (|c| c.head_dim = Some(8), "head_dim"),
            (|c| c.num_attention_heads = 3, "attention heads"),
        ];
        for (change, word) in cases {
            let err = refused(change);
            assert!(matches!(err, Error::UnsupportedHf(_)), "{err}");
            assert!(err.to_string().contains(word), "{err}");
        }
        assert!(matches!(
            refused(|c| c.num_key_value_heads = Some(3)),
            Error::KvHeadsDoNotDivide { .. }
        ));
        assert_eq!(ok.to_config().unwrap(), cfg);
        // Defaults of `transformers` fill what an older config leaves out.
        let minimal = br#"{"model_type": "llama", "vocab_size": 37, "hidden_size": 16,
            "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
            "max_position_embeddings": 8, "rms_norm_eps": 1e-5, "some_new_key": 1}"#;
        let parsed = HfConfig::from_json(minimal).unwrap().to_config().unwrap();
        assert_eq!(parsed.n_kv_heads, 4);
        assert_eq!(parsed.rope_theta, 10_000.0);
        // `transformers` 5 writes RoPE as `rope_parameters`.
        let mut v5 = ok.clone();
        v5.rope_parameters =
            Some(serde_json::json!({"rope_theta": 500000.0, "rope_type": "default"}));
        assert_eq!(v5.to_config().unwrap().rope_theta, 500_000.0);
        v5.rope_parameters =
            Some(serde_json::json!({"rope_theta": 1e4, "rope_type": "yarn", "factor": 4.0}));
        let err = v5.to_config().unwrap_err();
        assert!(err.to_string().contains("rope_parameters"), "{err}");
    }

    #[test]
    fn bad_weights_are_errors_not_panics() {
        let cfg = micro();
        let model = NeuroLlm::new(&cfg, 7, &Device::Cpu).unwrap();
        let files = export(&model, IDS).unwrap();
        let config = file(&files, CONFIG_FILE);
        let err = import(config, b"garbage", &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::BadHfFile { .. }), "{err}");
        let err = import(b"{", file(&files, WEIGHTS_FILE), &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::BadHfFile { .. }), "{err}");
        let without = |skip: &str| {
            let tensors: Vec<_> = hf_tensors(&model)
                .unwrap()
                .into_iter()
                .filter(|(n, _)| n != skip)
                .collect();
            safetensors::serialize(tensors, None).unwrap()
        };
        let err = import(config, &without("model.norm.weight"), &Device::Cpu).unwrap_err();
        assert!(
            matches!(&err, Error::MissingTensor { name } if name == "model.norm.weight"),
            "{err}"
        );
        let mut extra = hf_tensors(&model).unwrap();
        extra.push((
            "model.layers.0.self_attn.q_proj.bias".into(),
            Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap(),
        ));
        let weights = safetensors::serialize(extra, None).unwrap();
        let err = import(config, &weights, &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::UnexpectedTensor { .. }), "{err}");
    }

    #[test]
    fn names_map_both_ways() {
        let cfg = Config {
            n_layers: 12,
            ..micro()
        };
        let model = NeuroLlm::new(&cfg, 8, &Device::Cpu).unwrap();
        for (name, _) in model.param_shapes() {
            let hf = hf_name(&name).unwrap();
            assert_eq!(our_name(&hf, cfg.n_layers).as_deref(), Some(name.as_str()));
        }
        assert_eq!(our_name("model.layers.12.mlp.up_proj.weight", 12), None);
    }
}
