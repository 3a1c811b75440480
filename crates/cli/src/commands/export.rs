//! `neuroshard export`: a checkpoint as a Hugging Face Llama directory that `transformers` loads.
//!
//! The source is a training run's checkpoint (`meta.json`, from `neuroshard train`) or a node's
//! data directory (`state.safetensors`, from `neuroshard node`), whose model sizes come from
//! the genesis file: its model at the genesis depth or, on a network that grew, at the depth of
//! the checkpoint, one of those the genesis `[growth]` schedule allows. The files come from
//! `neuroshard_model::hf` (config, weights) and `neuroshard_data::Tokenizer::hf_files` (the
//! genesis tokenizer); this module reads the checkpoint and writes the directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_data::{GenesisDir, Tokenizer};
use neuroshard_model::NeuroLlm;
use neuroshard_model::hf::{self, SpecialIds};
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
    let genesis = genesis_dir.genesis();
    let depths = neuroshard_daemon::model_depths(genesis)
        .map_err(anyhow::Error::msg)
        .context("the genesis file's model and growth sections")?;
    // Any size loads (the network id and the hashes are checked); the depth is checked below.
    let snapshot = neuroshard_daemon::load_checkpoint(&state, genesis.network_id(), |_| true, None)
        .with_context(|| {
            format!(
                "reading the node checkpoint {}; pass the node's --genesis directory",
                state.display()
            )
        })?
        .with_context(|| format!("{} is gone", state.display()))?;
    let n_params = snapshot.params.len();
    let cfg = depths.config_for(n_params).with_context(|| {
        format!(
            "the node checkpoint {} holds {n_params} parameters, which is no depth this genesis allows ({:?} layers); pass the node's --genesis directory",
            state.display(),
            depths.layers()
        )
    })?;
    tracing::info!(
        round = snapshot.round,
        n_layers = cfg.n_layers,
        "the node checkpoint's model"
    );
    let mut model = NeuroLlm::new(&cfg, 0, &Device::Cpu)?;
    model.set_flat_params(&snapshot.params)?;
    Ok(model)
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
    use neuroshard_model::Config;
    use neuroshard_model::hf::HfConfig;

    fn tokenizer() -> Tokenizer {
        let texts = (0..50).map(|i| format!("document {i}: to be or not to be, {}", i * 7));
        neuroshard_data::train_tokenizer(texts, 300).unwrap()
    }

    #[test]
    fn the_exported_directory_is_a_llama_that_imports_back_exactly() {
        let tok = tokenizer();
        let cfg = neuroshard_model::Config::preset("nano", tok.vocab_size()).unwrap();
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

    #[test]
    fn a_node_checkpoint_gives_its_parameters_checked() {
        let dir = tempfile::tempdir().unwrap();
        let genesis_dir = crate::commands::train::tests::small_genesis(dir.path(), 300);
        let genesis = GenesisDir::open(&genesis_dir).unwrap();
        let cfg = neuroshard_daemon::model_config(&genesis.genesis().model).unwrap();
        let model = NeuroLlm::new(&cfg, 5, &Device::Cpu).unwrap();
        let node = dir.path().join("node");
        std::fs::create_dir_all(&node).unwrap();
        let snapshot = neuroshard_node::Snapshot {
            round: 3,
            params: model.flat_params().unwrap(),
            outer: Vec::new(),
            excluded: Default::default(),
            pool: Vec::new(),
        };
        let state = node.join(neuroshard_daemon::CHECKPOINT_FILE);
        let network = genesis.genesis().network_id();
        neuroshard_daemon::save_checkpoint(&state, network, &snapshot, None).unwrap();
        let tokenizer = genesis.tokenizer();
        let loaded = load(&node, &genesis_dir, tokenizer).unwrap();
        assert_eq!(loaded.flat_params().unwrap(), snapshot.params);
        let other = NeuroLlm::new(&cfg, 6, &Device::Cpu)
            .unwrap()
            .flat_params()
            .unwrap();
        let theirs = neuroshard_primitives::Hash::of(b"another network");
        let foreign = neuroshard_node::Snapshot {
            params: other,
            ..snapshot
        };
        neuroshard_daemon::save_checkpoint(&state, theirs, &foreign, None).unwrap();
        let err = load(&node, &genesis_dir, tokenizer).unwrap_err();
        assert!(format!("{err:#}").contains("network"), "{err:#}");
        // The node's advice (delete it, resync) is not an export's.
        assert!(!format!("{err:#}").contains("delete it"), "{err:#}");
    }

    /// A node's state after growth: the genesis (with a `[growth]` schedule) admits the deeper
    /// model, the export writes it at its depth, and the weights load back exactly; a size no
    /// depth has is refused with the depths allowed.
    #[test]
    fn a_grown_node_checkpoint_exports_at_its_depth() {
        let dir = tempfile::tempdir().unwrap();
        let genesis_dir = crate::commands::train::tests::small_genesis(dir.path(), 300);
        let toml = genesis_dir.join("genesis.toml");
        let mut text = std::fs::read_to_string(&toml).unwrap();
        text.push_str("\n[growth]\nsustain_rounds = 2\n\n[[growth.steps]]\nmin_pool_bytes = 1000\nn_layers = 4\n");
        std::fs::write(&toml, text).unwrap();
        let genesis = GenesisDir::open(&genesis_dir).unwrap();
        let cfg = neuroshard_daemon::model_config(&genesis.genesis().model).unwrap();
        assert_eq!(cfg.n_layers, 2, "nano");
        // Grown as the round core grows it (`NeuroLlm::grown`), saved as a node saves its state.
        let grown = NeuroLlm::new(&cfg, 5, &Device::Cpu)
            .unwrap()
            .grown(4, 11)
            .unwrap();
        let node = dir.path().join("node");
        std::fs::create_dir_all(&node).unwrap();
        let snapshot = neuroshard_node::Snapshot {
            round: 9,
            params: grown.flat_params().unwrap(),
            outer: Vec::new(),
            excluded: Default::default(),
            pool: vec![2000, 2000],
        };
        let state = node.join(neuroshard_daemon::CHECKPOINT_FILE);
        let network = genesis.genesis().network_id();
        neuroshard_daemon::save_checkpoint(&state, network, &snapshot, None).unwrap();
        let loaded = load(&node, &genesis_dir, genesis.tokenizer()).unwrap();
        assert_eq!(loaded.config().n_layers, 4);
        let out = dir.path().join("hf");
        write_dir(&out, &files(&loaded, genesis.tokenizer()).unwrap()).unwrap();
        let read = |name: &str| std::fs::read(out.join(name)).unwrap();
        let hf_cfg = HfConfig::from_json(&read("config.json")).unwrap();
        assert_eq!(hf_cfg.num_hidden_layers, 4);
        let back = hf::import(
            &read("config.json"),
            &read("model.safetensors"),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(back.param_hash().unwrap(), grown.param_hash().unwrap());

        // Three layers is no depth of this genesis.
        let odd = NeuroLlm::new(&Config { n_layers: 3, ..cfg }, 5, &Device::Cpu).unwrap();
        let stray = neuroshard_node::Snapshot {
            params: odd.flat_params().unwrap(),
            ..snapshot
        };
        neuroshard_daemon::save_checkpoint(&state, network, &stray, None).unwrap();
        let err = load(&node, &genesis_dir, genesis.tokenizer()).unwrap_err();
        assert!(
            format!("{err:#}").contains("no depth this genesis allows ([2, 4] layers)"),
            "{err:#}"
        );
    }

    #[test]
    fn a_tokenizer_of_another_size_is_refused() {
        let tok = tokenizer();
        let cfg = neuroshard_model::Config::preset("nano", 400).unwrap();
        let model = NeuroLlm::new(&cfg, 9, &Device::Cpu).unwrap();
        let err = files(&model, &tok).unwrap_err();
        assert!(err.to_string().contains("300 tokens"), "{err}");
    }
}
