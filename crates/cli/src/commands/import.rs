//! `neuroshard import`: a Hugging Face Llama directory as a training checkpoint to start from.
//!
//! The output is what `neuroshard train` writes (`meta.json`, `model.safetensors`,
//! `optimizer.safetensors`) at step 0, with zero AdamW moments and `neuroshard train`'s default
//! run settings for the imported sizes on the given genesis. So `neuroshard generate` and
//! `neuroshard export` read it, and `neuroshard train --resume --checkpoint-dir OUT` continues
//! training it when the sizes are a preset's (pass that `--preset`). The model's
//! `tokenizer.json` must be the genesis tokenizer byte for byte: the token ids mean nothing
//! with another.
//!
//! With `--init` it instead makes the model a network's starting point: it writes the weights to
//! the genesis directory's `init.f32` (`neuroshard_data::INIT_FILE`) and sets the genesis file's
//! `model.init` to their hash, which makes a new network id. The genesis model section is not
//! changed: the model must have its sizes (all but `seq_len`, which only sets the training
//! context), so write the genesis with the model's preset first (`neuroshard genesis init`,
//! which drops any `init`), then import.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_daemon::{Durability, write_atomic};
use neuroshard_data::{Genesis, GenesisDir, INIT_FILE, TOKENIZER_FILE, Tokenizer};
use neuroshard_model::{Config, NeuroLlm, hf};
use neuroshard_primitives::Hash;
use neuroshard_train::{AdamW, Trainer, checkpoint};

/// Arguments of `neuroshard import`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A Hugging Face Llama directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// The Genesis directory to train on; its tokenizer must be the model's.
    #[arg(long, default_value = ".neuroshard/genesis")]
    genesis: PathBuf,
    /// The checkpoint directory to write; it must not hold a checkpoint.
    #[arg(long, required_unless_present = "init", conflicts_with = "init")]
    out: Option<PathBuf>,
    /// Instead of a checkpoint, make the model the network's initial weights: write
    /// `init.f32` into the genesis directory and name it in its genesis.toml (a new network).
    #[arg(long)]
    init: bool,
}

/// Runs `neuroshard import`.
pub(crate) fn run(args: Args) -> Result<()> {
    let genesis = GenesisDir::open(&args.genesis)
        .with_context(|| format!("opening the genesis in {}", args.genesis.display()))?;
    let model = read_model(&args.model, genesis.tokenizer())?;
    match &args.out {
        Some(out) => write_checkpoint(out, &genesis, model)?,
        None => {
            let written = write_init(&genesis, &model)?;
            println!(
                "initial weights {} in {}; network id {}",
                written.model.init.expect("just named"),
                genesis.path().join(INIT_FILE).display(),
                written.network_id()
            );
        }
    }
    tracing::info!("imported {}", args.model.display());
    Ok(())
}

/// Writes `model` as a training checkpoint at step 0 in `out`, which must not hold one.
fn write_checkpoint(out: &Path, genesis: &GenesisDir, model: NeuroLlm) -> Result<()> {
    anyhow::ensure!(
        !checkpoint::exists(out),
        "{} already holds a checkpoint; choose a new --out directory",
        out.display()
    );
    let spec = super::train::run_spec_for(
        model.config().clone(),
        &super::train::Args::defaults(),
        genesis,
    )?;
    let optimizer = AdamW::new(model.n_params(), spec.adamw)?;
    let trainer = Trainer::from_parts(spec, model, optimizer, 0)?;
    checkpoint::save(out, &trainer)
        .with_context(|| format!("writing the checkpoint in {}", out.display()))
}

/// Writes `model`'s parameters to the genesis directory's init file, then names their hash in
/// its genesis file (in that order: the genesis never names a missing file); returns that file.
fn write_init(genesis: &GenesisDir, model: &NeuroLlm) -> Result<Genesis> {
    let mut file = genesis.genesis().clone();
    let theirs = neuroshard_daemon::model_config(&file.model)
        .map_err(anyhow::Error::msg)
        .context("the genesis file's model section")?;
    check_sizes(model.config(), &theirs)?;
    let bytes = neuroshard_daemon::params_bytes(&model.flat_params()?);
    let hash = Hash::of(&bytes);
    let dir = genesis.path();
    write_atomic(&dir.join(INIT_FILE), &bytes, Durability::Durable)?;
    file.model.init = Some(hash);
    write_atomic(
        &dir.join("genesis.toml"),
        file.to_toml().as_bytes(),
        Durability::Durable,
    )?;
    Ok(file)
}

/// The imported model must have the genesis model's sizes; `seq_len` may differ (it is the
/// training context, not a weight shape).
fn check_sizes(ours: &Config, genesis: &Config) -> Result<()> {
    let ours = Config {
        seq_len: genesis.seq_len,
        ..ours.clone()
    };
    anyhow::ensure!(
        ours == *genesis,
        "the model's sizes {ours:?} are not the genesis model's {genesis:?}; write the genesis \
         with the model's preset (neuroshard genesis init --preset …), then import"
    );
    Ok(())
}

/// The model in the Hugging Face directory `dir`, whose tokenizer must be `tokenizer`.
pub(crate) fn read_model(dir: &Path, tokenizer: &Tokenizer) -> Result<NeuroLlm> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    anyhow::ensure!(
        !dir.join("model.safetensors.index.json").exists(),
        "{} holds sharded weights; import takes one model.safetensors",
        dir.display()
    );
    let theirs = Tokenizer::from_json(read(TOKENIZER_FILE)?)
        .with_context(|| format!("loading {}", dir.join(TOKENIZER_FILE).display()))?;
    anyhow::ensure!(
        theirs.hash() == tokenizer.hash(),
        "{} is not the genesis tokenizer; a model is trained and served with its genesis tokenizer",
        dir.join(TOKENIZER_FILE).display()
    );
    let model = hf::import(
        &read(hf::CONFIG_FILE)?,
        &read(hf::WEIGHTS_FILE)?,
        &Device::Cpu,
    )
    .with_context(|| format!("importing the model in {}", dir.display()))?;
    anyhow::ensure!(
        model.config().vocab_size == tokenizer.vocab_size(),
        "the model has {} token ids but its tokenizer {}",
        model.config().vocab_size,
        tokenizer.vocab_size()
    );
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::export::{files, write_dir};

    fn tokenizer(n: usize) -> Tokenizer {
        let texts = (0..50).map(|i| format!("document {i}: to be or not to be, {}", i * n));
        neuroshard_data::train_tokenizer(texts, 300).unwrap()
    }

    #[test]
    fn an_exported_directory_reads_back_and_another_tokenizer_is_refused() {
        let tok = tokenizer(7);
        let cfg = Config::preset("nano", tok.vocab_size()).unwrap();
        let model = NeuroLlm::new(&cfg, 4, &Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_dir(dir.path(), &files(&model, &tok).unwrap()).unwrap();
        let back = read_model(dir.path(), &tok).unwrap();
        assert_eq!(back.param_hash().unwrap(), model.param_hash().unwrap());
        let err = read_model(dir.path(), &tokenizer(11)).unwrap_err();
        assert!(
            format!("{err:#}").contains("not the genesis tokenizer"),
            "{err:#}"
        );
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        let err = read_model(dir.path(), &tok).unwrap_err();
        assert!(format!("{err:#}").contains("model.safetensors"), "{err:#}");
    }

    #[test]
    fn init_mode_writes_the_weights_and_names_them_in_the_genesis() {
        let dir = tempfile::tempdir().unwrap();
        let genesis_dir = crate::commands::train::tests::small_genesis(dir.path(), 300);
        let genesis = GenesisDir::open(&genesis_dir).unwrap();
        let before = genesis.network_id();
        let cfg = neuroshard_daemon::model_config(&genesis.genesis().model).unwrap();
        let model = NeuroLlm::new(&cfg, 5, &Device::Cpu).unwrap();
        let hf_dir = dir.path().join("hf");
        write_dir(&hf_dir, &files(&model, genesis.tokenizer()).unwrap()).unwrap();
        run(Args {
            model: hf_dir.clone(),
            genesis: genesis_dir.clone(),
            out: None,
            init: true,
        })
        .unwrap();

        let after = GenesisDir::open(&genesis_dir).unwrap();
        assert_ne!(after.network_id(), before);
        let hash = model.param_hash().unwrap();
        assert_eq!(after.genesis().model.init, Some(hash));
        let bytes = std::fs::read(genesis_dir.join(INIT_FILE)).unwrap();
        assert_eq!(Hash::of(&bytes), hash, "the file's hash is the model hash");
        assert_eq!(bytes.len(), 4 * cfg.n_params());

        let other = Config {
            d_ff: cfg.d_ff * 2,
            ..cfg.clone()
        };
        let err = check_sizes(&other, &cfg).unwrap_err();
        assert!(err.to_string().contains("genesis model"), "{err}");
        let longer = Config {
            seq_len: cfg.seq_len * 4,
            ..cfg.clone()
        };
        check_sizes(&longer, &cfg).unwrap();
    }
}
