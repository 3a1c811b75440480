//! `manifest.json`: what the shards are, their hashes, and the Merkle roots over them.

use std::path::Path;

use neuroshard_primitives::Hash;
use serde::{Deserialize, Serialize};

use crate::corpus::SourceStats;
use crate::fetch::PackageRecord;
use crate::shard::{TokenWidth, train_name, validation_name};
use crate::{Error, Result};
use neuroshard_primitives::{MerkleProof, merkle_root};

/// The manifest format this crate writes and reads (2: training documents in hash order; 3: the
/// shards of a split of equal size; 4: validation drawn by chunks across the corpus), so a directory built by an older version is rebuilt rather
/// than reused.
pub const MANIFEST_FORMAT_VERSION: u32 = 4;

/// One shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    /// File name inside the genesis directory (`shard-NNNNN.bin` or `val-NNNNN.bin`).
    pub name: String,
    /// Tokens in the file.
    pub tokens: u64,
    /// BLAKE3 of the file's bytes.
    pub hash: Hash,
}

/// The dataset's table of contents. Its `merkle_root` is part of the network's identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// BLAKE3 of `tokenizer.json`.
    pub tokenizer_hash: Hash,
    /// The tokenizer's vocabulary size, specials included.
    pub vocab_size: usize,
    /// Bytes per token in the shard files.
    pub token_width: TokenWidth,
    /// The `<|eos|>` id that ends every document in the shards.
    pub eos_id: u32,
    /// Most tokens per shard: each split is cut into the fewest shards that respects it, of equal
    /// size to within one token.
    pub shard_tokens: usize,
    /// Fraction of the corpus's chunks held out for validation.
    pub validation_fraction: f64,
    /// Documents in the corpus (both splits draw from all of them).
    pub documents: usize,
    /// Tokens per validation chunk ([`crate::shard::VALIDATION_CHUNK_TOKENS`] when written).
    pub validation_chunk_tokens: usize,
    /// Chunks in the validation split.
    pub validation_chunks: usize,
    /// Merkle root over the training shards' hashes, in order (see [`crate::merkle_root`]).
    pub merkle_root: Hash,
    /// The training shards.
    pub shards: Vec<ShardEntry>,
    /// Merkle root over the validation shards' hashes.
    pub validation_root: Hash,
    /// The validation shards, listed apart: never used for training.
    pub validation_shards: Vec<ShardEntry>,
    /// The corpus files, with each one's text hash.
    pub sources: Vec<SourceStats>,
    /// The fetched packages the corpus came from (empty for a user corpus).
    pub packages: Vec<PackageRecord>,
}

impl Manifest {
    /// Reads and checks `manifest.json` (see [`Manifest::check`]).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
        let manifest: Self = serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        manifest.check().map_err(|reason| Error::BadManifest {
            path: path.to_owned(),
            reason,
        })?;
        Ok(manifest)
    }

    /// The manifest as pretty JSON with a trailing newline: its on-disk bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Checks the format version, the shard names and both roots against the listed hashes.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.format_version != MANIFEST_FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not the supported {MANIFEST_FORMAT_VERSION}",
                self.format_version
            ));
        }
        check_names(&self.shards, train_name)?;
        check_names(&self.validation_shards, validation_name)?;
        if merkle_root(&self.train_hashes()) != self.merkle_root {
            return Err("merkle_root does not match the listed shard hashes".into());
        }
        if merkle_root(&hashes(&self.validation_shards)) != self.validation_root {
            return Err("validation_root does not match the listed validation hashes".into());
        }
        if self.shards.is_empty() {
            return Err("no training shards are listed".into());
        }
        Ok(())
    }

    /// The training shards' hashes, in order: the Merkle leaves.
    pub fn train_hashes(&self) -> Vec<Hash> {
        hashes(&self.shards)
    }

    /// The inclusion proof of training shard `index`, or `None` out of range.
    pub fn proof(&self, index: usize) -> Option<MerkleProof> {
        MerkleProof::prove(&self.train_hashes(), index)
    }

    /// Tokens over all training shards.
    pub fn train_tokens(&self) -> u64 {
        self.shards.iter().map(|s| s.tokens).sum()
    }

    /// Tokens over all validation shards.
    pub fn validation_tokens(&self) -> u64 {
        self.validation_shards.iter().map(|s| s.tokens).sum()
    }
}

fn hashes(entries: &[ShardEntry]) -> Vec<Hash> {
    entries.iter().map(|s| s.hash).collect()
}

fn check_names(
    entries: &[ShardEntry],
    name: fn(usize) -> String,
) -> std::result::Result<(), String> {
    for (index, entry) in entries.iter().enumerate() {
        if entry.name != name(index) {
            return Err(format!(
                "shard {index} is named {:?}, expected {:?}",
                entry.name,
                name(index)
            ));
        }
    }
    Ok(())
}
