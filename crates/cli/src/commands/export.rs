//! `neuroshard export`: a checkpoint as a Hugging Face Llama directory that `transformers` loads.
//!
//! The source is a training run's checkpoint (`meta.json`, from `neuroshard train`) or a node's
//! data directory (`state.safetensors`, from `neuroshard node`), whose model sizes come from
//! the genesis file. The files come from `neuroshard_model::hf` (config, weights) and
//! `neuroshard_data::Tokenizer::hf_files` (the genesis tokenizer); this module reads the
//! checkpoint and writes the directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_data::{Genesis, GenesisDir, Tokenizer};
use neuroshard_model::hf::{self, SpecialIds};
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_train::checkpoint;

/// Arguments of `neuroshard export`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A checkpoint directory written by `neuroshard train`, or a node's data directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The Genesis directory whose tokenizer (and, for a node, genesis.toml) the model uses.
    #[arg(long, default_value = ".neuroshard/genesis")]
    genesis: PathBuf,
    /// The directory to write; it must not exist or be empty.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `neuroshard export`.
pub(crate) fn run(args: Args) -> Result<()> {
    let tokenizer_path = args.genesis.join(neuroshard_data::TOKENIZER_FILE);
    let tokenizer = Tokenizer::load(&tokenizer_path)
        .with_context(|| format!("loading the tokenizer {}", tokenizer_path.display()))?;
    let model = load(&args.checkpoint, &args.genesis, &tokenizer)?;
    let files = files(&model, &tokenizer)?;
    write_dir(&args.out, &files)?;
    tracing::info!(
        params = model.n_params(),
        "exported {} to {}",
        args.checkpoint.display(),
        args.out.display()
    );
    Ok(())
}

/// The model in `dir`: a training checkpoint (checked against the tokenizer) or a node's state.
fn load(dir: &Path, genesis: &Path, tokenizer: &Tokenizer) -> Result<NeuroLlm> {
    if dir.join(checkpoint::META_FILE).exists() {
        let (meta, model) = checkpoint::load_model(dir, &Device::Cpu)
            .with_context(|| format!("loading the checkpoint in {}", dir.display()))?;
        anyhow::ensure!(
            meta.spec.tokenizer_hash == tokenizer.hash(),
            "the checkpoint in {} was trained with another tokenizer than {}; pass --genesis with the run's genesis directory",
            dir.display(),
            genesis.display()
        );
        return Ok(model);
    }
    let state = dir.join(neuroshard_daemon::CHECKPOINT_FILE);
    anyhow::ensure!(
        state.exists(),
        "{} holds neither a training checkpoint ({}) nor a node's {}",
        dir.display(),
        checkpoint::META_FILE,
        neuroshard_daemon::CHECKPOINT_FILE
    );
    let genesis_dir = GenesisDir::open(genesis)
        .with_context(|| format!("opening the genesis in {}", genesis.display()))?;
    let cfg = model_config(genesis_dir.genesis())?;
    let params = node_params(&state)?;
    let mut model = NeuroLlm::new(&cfg, 0, &Device::Cpu)?;
    model.set_flat_params(&params).with_context(|| {
        format!(
            "{} does not fit the genesis model; pass the node's --genesis directory",
            state.display()
        )
    })?;
    Ok(model)
}

/// The model sizes a genesis file names: its preset, then any explicit size (as the node reads
/// them in `neuroshard-daemon`'s settings).
pub(crate) fn model_config(genesis: &Genesis) -> Result<Config> {
    let spec = &genesis.model;
    let mut cfg = Config::preset(spec.preset.as_deref().unwrap_or("nano"), spec.vocab_size)?;
    let sizes = [
        (&mut cfg.d_model, spec.d_model),
        (&mut cfg.n_layers, spec.n_layers),
        (&mut cfg.n_heads, spec.n_heads),
        (&mut cfg.n_kv_heads, spec.n_kv_heads),
        (&mut cfg.d_ff, spec.d_ff),
        (&mut cfg.seq_len, spec.seq_len),
    ];
    for (field, value) in sizes {
        if let Some(value) = value {
            *field = value;
        }
    }
    if let Some(theta) = spec.rope_theta {
        cfg.rope_theta = theta as f32;
    }
    if let Some(eps) = spec.norm_eps {
        cfg.norm_eps = eps as f32;
    }
    cfg.validate().context("the genesis file's model section")?;
    Ok(cfg)
}

/// The flat parameters of a node's `state.safetensors`, checked against its recorded hash.
fn node_params(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let parse = || -> Result<Vec<f32>> {
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)?;
        let recorded = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("model_hash"))
            .context("its metadata has no model_hash")?
            .clone();
        let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
        let params = tensors.tensor("params")?;
        anyhow::ensure!(
            params.dtype() == safetensors::Dtype::F32,
            "its params are not f32"
        );
        anyhow::ensure!(
            neuroshard_primitives::Hash::of(params.data()).to_hex() == recorded,
            "its params do not match the recorded model hash"
        );
        Ok(params
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    parse().with_context(|| format!("reading the node checkpoint {}", path.display()))
}

/// Every file of the Hugging Face directory for `model` and `tokenizer`, `config.json` last.
pub(crate) fn files(
    model: &NeuroLlm,
    tokenizer: &Tokenizer,
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let ids = SpecialIds {
        bos: tokenizer.bos_id(),
        eos: tokenizer.eos_id(),
        pad: tokenizer.pad_id(),
    };
    anyhow::ensure!(
        tokenizer.vocab_size() == model.config().vocab_size,
        "the tokenizer has {} tokens but the model {}; pass the model's genesis directory",
        tokenizer.vocab_size(),
        model.config().vocab_size
    );
    let mut files = tokenizer.hf_files(model.config().seq_len);
    files.extend(hf::export(model, ids).context("exporting the weights")?);
    // A directory with config.json in it is complete: a loader finds nothing before that.
    files.sort_by_key(|(name, _)| *name == hf::CONFIG_FILE);
    Ok(files)
}

/// Writes `files` into `dir`, which must not exist or be empty, each file atomically.
pub(crate) fn write_dir(dir: &Path, files: &[(&'static str, Vec<u8>)]) -> Result<()> {
    if dir.exists() {
        let mut entries =
            std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} is not empty; choose a new --out directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        neuroshard_daemon::write_atomic(&path, bytes, neuroshard_daemon::Durability::Durable)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_model::hf::HfConfig;

    fn tokenizer() -> Tokenizer {
        let texts = (0..50).map(|i| format!("document {i}: to be or not to be, {}", i * 7));
        neuroshard_data::train_tokenizer(texts, 300).unwrap()
    }

    #[test]
    fn the_exported_directory_is_a_llama_that_imports_back_exactly() {
        let tok = tokenizer();
        let cfg = Config::preset("nano", tok.vocab_size()).unwrap();
        let model = NeuroLlm::new(&cfg, 9, &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("hf");
        write_dir(&out, &files(&model, &tok).unwrap()).unwrap();

        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "config.json",
                "generation_config.json",
                "model.safetensors",
                "special_tokens_map.json",
                "tokenizer.json",
                "tokenizer_config.json"
            ]
        );
        let read = |name: &str| std::fs::read(out.join(name)).unwrap();
        assert_eq!(read("tokenizer.json"), tok.json());
        let hf_cfg = HfConfig::from_json(&read("config.json")).unwrap();
        assert_eq!(hf_cfg.architectures, ["LlamaForCausalLM"]);
        assert_eq!(hf_cfg.to_config().unwrap(), cfg);

        let back = hf::import(
            &read("config.json"),
            &read("model.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(back.param_hash().unwrap(), model.param_hash().unwrap());
        let again = dir.path().join("again");
        write_dir(&again, &files(&back, &tok).unwrap()).unwrap();
        assert_eq!(
            std::fs::read(again.join("model.safetensors")).unwrap(),
            read("model.safetensors")
        );
        let err = write_dir(&out, &files(&model, &tok).unwrap()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }

    /// A node checkpoint as `neuroshard-daemon`'s `checkpoint::save` lays it out.
    fn node_state(params: &[f32], recorded: &[f32]) -> Vec<u8> {
        let bytes: Vec<u8> = params.iter().flat_map(|v| v.to_le_bytes()).collect();
        let hashed: Vec<u8> = recorded.iter().flat_map(|v| v.to_le_bytes()).collect();
        let metadata = std::collections::HashMap::from([
            ("format_version".to_owned(), "1".to_owned()),
            (
                "model_hash".to_owned(),
                neuroshard_primitives::Hash::of(&hashed).to_hex(),
            ),
        ]);
        let view = |dtype, len, data| safetensors::tensor::TensorView::new(dtype, vec![len], data);
        let tensors = [
            ("outer", view(safetensors::Dtype::U8, 0, &[][..]).unwrap()),
            (
                "params",
                view(safetensors::Dtype::F32, params.len(), &bytes).unwrap(),
            ),
        ];
        safetensors::serialize(tensors, Some(metadata)).unwrap()
    }

    #[test]
    fn a_node_checkpoint_gives_its_parameters_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(neuroshard_daemon::CHECKPOINT_FILE);
        let params = [1.0f32, -2.5, 3.25];
        std::fs::write(&path, node_state(&params, &params)).unwrap();
        assert_eq!(node_params(&path).unwrap(), params);
        std::fs::write(&path, node_state(&params, &[1.0, -2.5, 3.5])).unwrap();
        let err = node_params(&path).unwrap_err();
        assert!(format!("{err:#}").contains("model hash"), "{err:#}");
        std::fs::write(&path, b"garbage").unwrap();
        assert!(node_params(&path).is_err());
    }

    #[test]
    fn the_genesis_model_section_gives_the_node_model() {
        let hash = neuroshard_primitives::Hash::of(b"x");
        let mut genesis: neuroshard_data::Genesis = serde_json::from_value(serde_json::json!({
            "format_version": 1, "seed": 0, "round_deadline_secs": 30,
            "model": {"preset": "tiny", "vocab_size": 300},
            "data": {"merkle_root": hash, "validation_root": hash, "tokenizer_hash": hash},
            "diloco": {"inner_steps": 2, "outer_lr": 0.7, "outer_momentum": 0.9},
            "aggregation": {"rule": "mean"},
            "compression": {"codec": "none"},
        }))
        .unwrap();
        assert_eq!(
            model_config(&genesis).unwrap(),
            Config::preset("tiny", 300).unwrap()
        );
        genesis.model.n_layers = Some(3);
        assert_eq!(model_config(&genesis).unwrap().n_layers, 3);
    }

    #[test]
    fn a_tokenizer_of_another_size_is_refused() {
        let tok = tokenizer();
        let cfg = Config::preset("nano", 400).unwrap();
        let model = NeuroLlm::new(&cfg, 9, &Device::Cpu).unwrap();
        let err = files(&model, &tok).unwrap_err();
        assert!(err.to_string().contains("300 tokens"), "{err}");
    }
}
