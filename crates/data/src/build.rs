//! Building a genesis directory: fetch → tokenizer → shards → manifest → genesis file.
//!
//! The directory holds `tokenizer.json`, `shard-NNNNN.bin`, `val-NNNNN.bin`, `manifest.json`
//! (written after every shard, so its presence marks a finished build) and `genesis.toml`.
//! A second build with the same corpus and settings reuses the directory after verifying it.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::corpus::{Corpus, read_corpus};
use crate::dir::GenesisDir;
use crate::fetch::{Clients, PackageRecord, default_cache_dir, fetch_default_corpus};
use crate::genesis::{DataSpec, Genesis};
use crate::manifest::{MANIFEST_FORMAT_VERSION, Manifest, ShardEntry};
use crate::shard::{self, TokenWidth};
use crate::tokenizer::{Tokenizer, train_tokenizer};
use crate::{Error, Result};
use neuroshard_primitives::merkle_root;

/// The steps of a build, as shown by a [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Downloading and cleaning the default corpus (packages).
    Fetch,
    /// Reading the corpus files (no total).
    ReadCorpus,
    /// Training the BPE tokenizer (no total).
    TrainTokenizer,
    /// Tokenising documents (documents).
    Tokenize,
    /// Writing shard files (shards).
    WriteShards,
    /// Re-hashing an existing directory (files).
    Verify,
}

/// Watches a build. Called from several threads during tokenisation, hence `Sync`.
pub trait Progress: Sync {
    /// A stage starts; `total` is its unit count, 0 when unknown.
    fn begin(&self, stage: Stage, total: u64);
    /// `amount` more units of the current stage are done.
    fn advance(&self, amount: u64);
    /// The current stage is done; `summary` says what it produced.
    fn finish(&self, stage: Stage, summary: &str);
    /// Something the user should see (a skipped corpus line, a rebuild).
    fn warn(&self, message: &str);
}

/// A [`Progress`] that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: Stage, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self, _: Stage, _: &str) {}
    fn warn(&self, _: &str) {}
}

/// Where the text comes from.
#[derive(Debug, Clone)]
pub enum CorpusChoice {
    /// The default corpus, fetched into (or reused from) this cache directory.
    Default {
        /// The cache directory (default `~/.cache/neuroshard/corpus`).
        cache: PathBuf,
    },
    /// A directory (or file) of `.txt` and `.jsonl` files.
    Path(PathBuf),
}

/// The share of the corpus held out for validation by default: 2 % of the default corpus is
/// about 63 000 tokens in some 250 chunks, enough that the validation loss's standard error is a
/// small fraction of the differences between training settings (`docs/experiments/`).
pub const DEFAULT_VALIDATION_FRACTION: f64 = 0.02;

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The genesis directory to write.
    pub out: PathBuf,
    /// The corpus.
    pub corpus: CorpusChoice,
    /// Refuse a corpus with unreadable lines instead of skipping them.
    pub strict: bool,
    /// Tokenizer vocabulary size, specials included.
    pub vocab_size: usize,
    /// Most tokens per shard (each split is cut into equal shards no larger).
    pub shard_tokens: usize,
    /// Fraction of the corpus's chunks held out for validation, in `[0, 0.5]`.
    pub validation_fraction: f64,
    /// The model preset written to `genesis.toml`.
    pub preset: String,
    /// The network seed written to `genesis.toml`.
    pub seed: u64,
}

impl BuildOptions {
    /// The defaults: fetched corpus in [`default_cache_dir`], vocabulary 8 192, 1 000 000-token shards,
    /// 2 % validation, preset `nano`, seed 0.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            corpus: CorpusChoice::Default {
                cache: default_cache_dir(),
            },
            strict: false,
            vocab_size: 8192,
            shard_tokens: 1_000_000,
            validation_fraction: DEFAULT_VALIDATION_FRACTION,
            preset: "nano".into(),
            seed: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |field, reason: &str| {
            Err(Error::BadSetting {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.shard_tokens == 0 {
            return bad("shard_tokens", "must be at least 1");
        }
        if !(0.0..=0.5).contains(&self.validation_fraction) {
            return bad("validation_fraction", "must be in [0, 0.5]");
        }
        Ok(())
    }
}

/// Builds the genesis directory `options.out`, or reuses it when it already holds a verified
/// build of the same corpus and settings.
pub fn build_genesis(options: &BuildOptions, progress: &dyn Progress) -> Result<GenesisDir> {
    options.validate()?;
    let (corpus_dir, packages) = match &options.corpus {
        CorpusChoice::Default { cache } => {
            let record = fetch_default_corpus(cache, &Clients::system(), progress)?;
            (record.clean_dir, record.packages)
        }
        CorpusChoice::Path(path) => (path.clone(), Vec::new()),
    };
    let corpus = read(&corpus_dir, options.strict, progress)?;
    if let Some(dir) = reuse(options, &corpus, progress)? {
        return Ok(dir);
    }
    std::fs::create_dir_all(&options.out).map_err(Error::io("creating", &options.out))?;
    remove_old_build(&options.out)?;
    progress.begin(Stage::TrainTokenizer, 0);
    let texts = corpus.documents.iter().map(|d| d.text.as_str());
    let tokenizer = train_tokenizer(texts, options.vocab_size)?;
    write(&options.out.join("tokenizer.json"), tokenizer.json())?;
    progress.finish(
        Stage::TrainTokenizer,
        &format!(
            "vocabulary {}, hash {}",
            tokenizer.vocab_size(),
            tokenizer.hash().short()
        ),
    );
    let tokens = tokenize(&corpus, &tokenizer, progress)?;
    let manifest = write_shards(options, &corpus, &tokens, &tokenizer, packages, progress)?;
    write(&options.out.join("manifest.json"), &manifest.to_json())?;
    let genesis = Genesis::new(&manifest, &options.preset, options.seed);
    write(
        &options.out.join("genesis.toml"),
        genesis.to_toml().as_bytes(),
    )?;
    GenesisDir::open(&options.out)
}

fn read(corpus_dir: &Path, strict: bool, progress: &dyn Progress) -> Result<Corpus> {
    progress.begin(Stage::ReadCorpus, 0);
    let corpus = read_corpus(corpus_dir, strict)?;
    for problem in &corpus.skipped {
        progress.warn(&format!("skipped {problem}"));
    }
    if !corpus.skipped.is_empty() {
        progress.warn(&format!(
            "skipped {} unreadable line(s); pass --strict to refuse such a corpus",
            corpus.skipped.len()
        ));
    }
    let bytes: u64 = corpus.sources.iter().map(|s| s.bytes).sum();
    let summary = format!(
        "{} documents, {:.1} MB from {} file(s)",
        corpus.documents.len(),
        bytes as f64 / 1e6,
        corpus.sources.len()
    );
    progress.finish(Stage::ReadCorpus, &summary);
    Ok(corpus)
}

/// The existing directory, if it was built from this corpus with these settings and verifies.
fn reuse(
    options: &BuildOptions,
    corpus: &Corpus,
    progress: &dyn Progress,
) -> Result<Option<GenesisDir>> {
    let Ok(manifest) = Manifest::load(&options.out.join("manifest.json")) else {
        return Ok(None);
    };
    let same = manifest.sources == corpus.sources
        && manifest.vocab_size == options.vocab_size
        && manifest.shard_tokens == options.shard_tokens
        && manifest.validation_fraction == options.validation_fraction;
    if !same {
        progress.warn("the existing genesis was built from other data or settings; rebuilding");
        return Ok(None);
    }
    write_genesis_if_stale(options, &manifest, progress)?;
    progress.begin(Stage::Verify, 0);
    if let Err(err) = GenesisDir::verify_path(&options.out) {
        progress.warn(&format!("{err}; rebuilding"));
        return Ok(None);
    }
    progress.finish(Stage::Verify, "existing genesis verified, reused");
    GenesisDir::open(&options.out).map(Some)
}

/// Keeps a valid `genesis.toml` that names this manifest (it may carry edited settings), and
/// writes a fresh one otherwise.
fn write_genesis_if_stale(
    options: &BuildOptions,
    manifest: &Manifest,
    progress: &dyn Progress,
) -> Result<()> {
    let path = options.out.join("genesis.toml");
    match Genesis::load(&path) {
        Ok(current) if current.data == DataSpec::of(manifest) => {
            if current.model.preset.as_deref() != Some(options.preset.as_str())
                || current.seed != options.seed
            {
                progress.warn(
                    "kept the existing genesis.toml, whose preset or seed differ from this build's; \
                     `neuroshard genesis init --force` replaces it",
                );
            }
            Ok(())
        }
        stale => {
            if let Err(err) = stale
                && path.exists()
            {
                progress.warn(&format!("{err}; writing a fresh genesis.toml"));
            }
            let genesis = Genesis::new(manifest, &options.preset, options.seed);
            write(&path, genesis.to_toml().as_bytes())
        }
    }
}

/// Every document's tokens, in corpus order, tokenised in parallel.
fn tokenize(
    corpus: &Corpus,
    tokenizer: &Tokenizer,
    progress: &dyn Progress,
) -> Result<Vec<Vec<u32>>> {
    progress.begin(Stage::Tokenize, corpus.documents.len() as u64);
    let tokens = corpus
        .documents
        .par_iter()
        .map(|doc| {
            let ids = tokenizer.encode(&doc.text);
            progress.advance(1);
            ids
        })
        .collect::<Result<Vec<_>>>()?;
    let total: usize = tokens.iter().map(Vec::len).sum();
    progress.finish(Stage::Tokenize, &format!("{total} tokens"));
    Ok(tokens)
}

/// Splits, joins and cuts the documents, writes the shard files, returns the manifest.
fn write_shards(
    options: &BuildOptions,
    corpus: &Corpus,
    tokens: &[Vec<u32>],
    tokenizer: &Tokenizer,
    packages: Vec<PackageRecord>,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let texts: Vec<&str> = corpus.documents.iter().map(|d| d.text.as_str()).collect();
    let eos = tokenizer.eos_id();
    let width = TokenWidth::for_vocab(tokenizer.vocab_size());
    let stream = shard::join(tokens, &shard::shuffled(&texts), eos);
    let (train_stream, validation_stream, validation_chunks) =
        shard::split(&stream, options.validation_fraction);
    let n_shards = shard::balanced_chunks(&train_stream, options.shard_tokens).len()
        + shard::balanced_chunks(&validation_stream, options.shard_tokens).len();
    progress.begin(Stage::WriteShards, n_shards as u64);
    let shards = write_split(
        &options.out,
        &train_stream,
        options.shard_tokens,
        width,
        shard::train_name,
        progress,
    )?;
    let validation_shards = write_split(
        &options.out,
        &validation_stream,
        options.shard_tokens,
        width,
        shard::validation_name,
        progress,
    )?;
    let merkle = merkle_root(&shards.iter().map(|s| s.hash).collect::<Vec<_>>());
    progress.finish(Stage::WriteShards, &format!("merkle root {merkle}"));
    Ok(Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        tokenizer_hash: tokenizer.hash(),
        vocab_size: tokenizer.vocab_size(),
        token_width: width,
        eos_id: eos,
        shard_tokens: options.shard_tokens,
        validation_fraction: options.validation_fraction,
        documents: texts.len(),
        validation_chunk_tokens: shard::VALIDATION_CHUNK_TOKENS,
        validation_chunks,
        merkle_root: merkle,
        validation_root: merkle_root(&validation_shards.iter().map(|s| s.hash).collect::<Vec<_>>()),
        shards,
        validation_shards,
        sources: corpus.sources.clone(),
        packages,
    })
}

fn write_split(
    out: &Path,
    stream: &[u32],
    shard_tokens: usize,
    width: TokenWidth,
    name: fn(usize) -> String,
    progress: &dyn Progress,
) -> Result<Vec<ShardEntry>> {
    shard::balanced_chunks(stream, shard_tokens)
        .enumerate()
        .map(|(index, chunk)| {
            let bytes = width.encode(chunk);
            let entry = ShardEntry {
                name: name(index),
                tokens: chunk.len() as u64,
                hash: neuroshard_primitives::Hash::of(&bytes),
            };
            write(&out.join(&entry.name), &bytes)?;
            progress.advance(1);
            Ok(entry)
        })
        .collect()
}

/// Removes the manifest and shard files of an earlier build, so none outlives the new manifest.
fn remove_old_build(out: &Path) -> Result<()> {
    let entries = std::fs::read_dir(out).map_err(Error::io("listing", out))?;
    for entry in entries {
        let path = entry.map_err(Error::io("listing", out))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let old = name == "manifest.json"
            || (name.ends_with(".bin") && (name.starts_with("shard-") || name.starts_with("val-")));
        if old {
            std::fs::remove_file(&path).map_err(Error::io("removing", &path))?;
        }
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io("writing", path))
}
