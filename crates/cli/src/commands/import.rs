//! `neuroshard import`: a Hugging Face Llama directory as a training checkpoint to start from.
//!
//! The output is what `neuroshard train` writes (`meta.json`, `model.safetensors`,
//! `optimizer.safetensors`) at step 0, with zero AdamW moments and `neuroshard train`'s default
//! run settings for the imported sizes on the given genesis. So `neuroshard generate` and
//! `neuroshard export` read it, and `neuroshard train --resume --checkpoint-dir OUT` continues
//! training it when the sizes are a preset's (pass that `--preset`). The model's
//! `tokenizer.json` must be the genesis tokenizer byte for byte: the token ids mean nothing
//! with another.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_data::{GenesisDir, TOKENIZER_FILE, Tokenizer};
use neuroshard_model::{NeuroLlm, hf};
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
    #[arg(long)]
    out: PathBuf,
}

/// Runs `neuroshard import`.
pub(crate) fn run(args: Args) -> Result<()> {
    anyhow::ensure!(
        !checkpoint::exists(&args.out),
        "{} already holds a checkpoint; choose a new --out directory",
        args.out.display()
    );
    let genesis = GenesisDir::open(&args.genesis)
        .with_context(|| format!("opening the genesis in {}", args.genesis.display()))?;
    let model = read_model(&args.model, genesis.tokenizer())?;
    let spec = super::train::run_spec_for(
        model.config().clone(),
        &super::train::Args::defaults(),
        &genesis,
    )?;
    let optimizer = AdamW::new(model.n_params(), spec.adamw)?;
    let trainer = Trainer::from_parts(spec, model, optimizer, 0)?;
    checkpoint::save(&args.out, &trainer)
        .with_context(|| format!("writing the checkpoint in {}", args.out.display()))?;
    tracing::info!(
        params = trainer.model().n_params(),
        "imported {} into {}",
        args.model.display(),
        args.out.display()
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
    use neuroshard_model::Config;

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
}
