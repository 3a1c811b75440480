//! `neuroshard generate`: continue a prompt with a trained checkpoint.
//!
//! `--json --logits` prints the prompt's logits too, which `bench/interop.sh` compares with
//! `transformers` on the exported model.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Tensor;
use neuroshard_data::Tokenizer;
use neuroshard_model::{NeuroLlm, SamplingConfig};
use neuroshard_train::{Error as TrainError, checkpoint};

/// Arguments of `neuroshard generate`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A checkpoint directory written by `neuroshard train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The Genesis directory whose tokenizer the checkpoint was trained with.
    #[arg(long, default_value = ".neuroshard/genesis")]
    genesis: PathBuf,
    /// The text to continue.
    #[arg(long)]
    prompt: String,
    /// Most tokens to generate (stops early at end of text).
    #[arg(long, default_value_t = 100)]
    max_tokens: usize,
    /// Softmax temperature; 0 always picks the most likely token.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability.
    #[arg(long)]
    top_p: Option<f32>,
    /// Keep only the k most likely tokens.
    #[arg(long)]
    top_k: Option<usize>,
    /// Sampling seed: the same seed, checkpoint and prompt give the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON object (prompt ids, generated ids, text) instead of the text.
    #[arg(long)]
    json: bool,
    /// With --json, also the logits at every prompt position (to compare engines; see
    /// bench/interop.sh).
    #[arg(long, requires = "json")]
    logits: bool,
}

/// Runs `neuroshard generate`: prints the prompt and its continuation to stdout.
pub(crate) fn run(args: Args) -> Result<()> {
    super::set_threads(args.threads)?;
    let (meta, model) = checkpoint::load_model(&args.checkpoint, &candle_core::Device::Cpu)
        .with_context(|| format!("loading the checkpoint in {}", args.checkpoint.display()))?;
    let tokenizer_path = args.genesis.join("tokenizer.json");
    let tokenizer = Tokenizer::load(&tokenizer_path)
        .with_context(|| format!("loading the tokenizer {}", tokenizer_path.display()))?;
    if tokenizer.hash() != meta.spec.tokenizer_hash {
        return Err(TrainError::TokenizerMismatch {
            checkpoint: meta.spec.tokenizer_hash,
            current: tokenizer.hash(),
        })
        .with_context(|| {
            format!(
                "checking {} against the checkpoint",
                tokenizer_path.display()
            )
        });
    }
    let prompt = tokenizer
        .encode(&args.prompt)
        .context("encoding the prompt")?;
    anyhow::ensure!(
        !prompt.is_empty(),
        "the prompt is empty; give some text with --prompt"
    );
    let sampling = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    };
    let tokens = neuroshard_model::generate(
        &model,
        &prompt,
        args.max_tokens,
        &sampling,
        Some(tokenizer.eos_id()),
    )
    .context("generating")?;
    let text = tokenizer
        .decode(&tokens)
        .context("decoding the generated tokens")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut line = serde_json::json!({
            "prompt_ids": prompt,
            "token_ids": tokens,
            "text": text,
        });
        if args.logits {
            line["logits"] = prompt_logits(&model, &prompt)?.into();
        }
        writeln!(out, "{line}").context("writing to stdout")?;
    } else {
        writeln!(out, "{}{text}", args.prompt).context("writing to stdout")?;
    }
    tracing::info!(step = meta.step, tokens = tokens.len(), "generated");
    Ok(())
}

/// The model's logits (f32) at every position of `prompt`, one row per position.
fn prompt_logits(model: &NeuroLlm, prompt: &[u32]) -> Result<Vec<Vec<f32>>> {
    let tokens = Tensor::from_vec(prompt.to_vec(), (1, prompt.len()), model.device())?;
    let logits = model.forward(&tokens)?.squeeze(0)?;
    Ok(logits.to_vec2::<f32>()?)
}
