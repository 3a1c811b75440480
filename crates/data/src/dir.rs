//! A built genesis directory: opening it, verifying every file, and reading batches from it.

use std::path::{Path, PathBuf};

use neuroshard_primitives::Hash;

use crate::batches::{ShardData, TrainBatches, ValidationBatches};
use crate::genesis::Genesis;
use crate::manifest::{Manifest, ShardEntry};
use crate::shard::TokenWidth;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// An opened genesis directory: its genesis file, manifest and tokenizer, cross-checked.
#[derive(Debug, Clone)]
pub struct GenesisDir {
    path: PathBuf,
    genesis: Genesis,
    manifest: Manifest,
    tokenizer: Tokenizer,
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Shard files re-hashed (training and validation).
    pub shards: usize,
    /// Training tokens.
    pub train_tokens: u64,
    /// Validation tokens.
    pub validation_tokens: u64,
    /// The recomputed Merkle root over training shards.
    pub merkle_root: Hash,
    /// The network id of `genesis.toml`.
    pub network_id: Hash,
}

impl GenesisDir {
    /// Opens `path`: parses the manifest (checking its roots against its listed hashes), the
    /// tokenizer (its hash must match the manifest) and `genesis.toml` (its data section must
    /// match the manifest). Shard files are not read; see [`GenesisDir::verify`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let manifest = Manifest::load(&path.join("manifest.json"))?;
        let tokenizer = Tokenizer::load(path.join("tokenizer.json"))?;
        if tokenizer.hash() != manifest.tokenizer_hash {
            return Err(Error::Verify {
                failures: vec![format!(
                    "tokenizer.json: hash {} does not match the manifest's {}",
                    tokenizer.hash(),
                    manifest.tokenizer_hash
                )],
            });
        }
        let genesis_path = path.join("genesis.toml");
        let genesis = Genesis::load(&genesis_path)?;
        check_genesis(&genesis, &manifest).map_err(|reason| Error::BadGenesis {
            path: genesis_path,
            reason,
        })?;
        Ok(Self {
            path,
            genesis,
            manifest,
            tokenizer,
        })
    }

    /// Re-hashes every file of the directory at `path` against its manifest and reports every
    /// mismatch by file name. Works even when the tokenizer or genesis file is too damaged to
    /// open.
    pub fn verify_path(path: &Path) -> Result<VerifyReport> {
        let manifest = Manifest::load(&path.join("manifest.json"))?;
        let mut failures = Vec::new();
        match std::fs::read(path.join("tokenizer.json")) {
            Ok(bytes) if Hash::of(&bytes) == manifest.tokenizer_hash => {}
            Ok(_) => failures.push("tokenizer.json: hash does not match the manifest".to_owned()),
            Err(err) => failures.push(format!("tokenizer.json: {err}")),
        }
        let entries = manifest.shards.iter().chain(&manifest.validation_shards);
        for entry in entries {
            if let Err(failure) = check_shard(path, entry, manifest.token_width) {
                failures.push(failure);
            }
        }
        let network_id = match Genesis::load(&path.join("genesis.toml")) {
            Ok(genesis) => {
                if let Err(reason) = check_genesis(&genesis, &manifest) {
                    failures.push(format!("genesis.toml: {reason}"));
                }
                if let Some(init) = genesis.model.init
                    && let Err(failure) = check_init(path, init)
                {
                    failures.push(failure);
                }
                genesis.network_id()
            }
            Err(err) => {
                failures.push(err.to_string());
                Hash::default()
            }
        };
        if !failures.is_empty() {
            return Err(Error::Verify { failures });
        }
        Ok(VerifyReport {
            shards: manifest.shards.len() + manifest.validation_shards.len(),
            train_tokens: manifest.train_tokens(),
            validation_tokens: manifest.validation_tokens(),
            merkle_root: manifest.merkle_root,
            network_id,
        })
    }

    /// [`GenesisDir::verify_path`] on this directory.
    pub fn verify(&self) -> Result<VerifyReport> {
        Self::verify_path(&self.path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The genesis file.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The network id: the hash of the genesis file's canonical form.
    pub fn network_id(&self) -> Hash {
        self.genesis.network_id()
    }

    /// Training batches over `shards` (manifest indices; `None` for all), keyed by `seed`.
    /// Each shard is read and checked against its manifest hash.
    pub fn train_batches(&self, shards: Option<&[usize]>, seed: u64) -> Result<TrainBatches> {
        let all: Vec<usize> = (0..self.manifest.shards.len()).collect();
        let chosen = shards.unwrap_or(&all);
        let data =
            chosen
                .iter()
                .map(|&index| {
                    let entry = self.manifest.shards.get(index).ok_or_else(|| {
                        Error::BadSetting {
                            field: "shards",
                            reason: format!(
                                "index {index} is out of range: the genesis has {} training shards",
                                self.manifest.shards.len()
                            ),
                        }
                    })?;
                    self.load_shard(index, entry)
                })
                .collect::<Result<Vec<_>>>()?;
        Ok(TrainBatches::new(data, seed))
    }

    /// The validation batches, over every validation shard (checked against the manifest).
    pub fn validation_batches(&self) -> Result<ValidationBatches> {
        let data = self
            .manifest
            .validation_shards
            .iter()
            .enumerate()
            .map(|(index, entry)| self.load_shard(index, entry))
            .collect::<Result<Vec<_>>>()?;
        Ok(ValidationBatches::new(data))
    }

    fn load_shard(&self, index: usize, entry: &ShardEntry) -> Result<ShardData> {
        let bytes =
            read_shard(&self.path, entry, self.manifest.token_width).map_err(|failure| {
                Error::Verify {
                    failures: vec![failure],
                }
            })?;
        ShardData::new(index, bytes, self.manifest.token_width)
    }
}

/// The genesis file must name this manifest's data, and the model its vocabulary.
fn check_genesis(genesis: &Genesis, manifest: &Manifest) -> std::result::Result<(), String> {
    let data = &genesis.data;
    if data.merkle_root != manifest.merkle_root {
        return Err("field `data.merkle_root` does not match manifest.json".into());
    }
    if data.validation_root != manifest.validation_root {
        return Err("field `data.validation_root` does not match manifest.json".into());
    }
    if data.tokenizer_hash != manifest.tokenizer_hash {
        return Err("field `data.tokenizer_hash` does not match manifest.json".into());
    }
    if genesis.model.vocab_size != manifest.vocab_size {
        return Err(format!(
            "field `model.vocab_size` is {} but the tokenizer has {}",
            genesis.model.vocab_size, manifest.vocab_size
        ));
    }
    Ok(())
}

/// The initial weights the genesis names: [`crate::INIT_FILE`] must hash to `init`.
fn check_init(dir: &Path, init: Hash) -> std::result::Result<(), String> {
    let name = crate::INIT_FILE;
    match std::fs::read(dir.join(name)) {
        Ok(bytes) if Hash::of(&bytes) == init => Ok(()),
        Ok(_) => Err(format!(
            "{name}: hash does not match genesis.toml's model.init"
        )),
        Err(err) => Err(format!("{name}: {err}")),
    }
}

fn check_shard(
    dir: &Path,
    entry: &ShardEntry,
    width: TokenWidth,
) -> std::result::Result<(), String> {
    read_shard(dir, entry, width).map(drop)
}

/// A shard's bytes if its length and hash match the manifest; otherwise a line naming it.
fn read_shard(
    dir: &Path,
    entry: &ShardEntry,
    width: TokenWidth,
) -> std::result::Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(dir.join(&entry.name)).map_err(|err| format!("{}: {err}", entry.name))?;
    let expected = entry.tokens as usize * width.bytes();
    if bytes.len() != expected {
        return Err(format!(
            "{}: {} bytes, the manifest says {expected}",
            entry.name,
            bytes.len()
        ));
    }
    let hash = Hash::of(&bytes);
    if hash != entry.hash {
        return Err(format!(
            "{}: hash {} does not match the manifest's {}",
            entry.name,
            hash.short(),
            entry.hash.short()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use neuroshard_primitives::merkle_root;

    /// A manifest with two fake shards, for tests of the files that refer to one.
    pub(crate) fn tiny_manifest() -> Manifest {
        let shards: Vec<ShardEntry> = (0..2)
            .map(|i| ShardEntry {
                name: crate::shard::train_name(i),
                tokens: 4,
                hash: Hash::of(&[i as u8]),
            })
            .collect();
        Manifest {
            format_version: crate::MANIFEST_FORMAT_VERSION,
            tokenizer_hash: Hash::of(b"tokenizer"),
            vocab_size: 512,
            token_width: TokenWidth::U16,
            eos_id: 1,
            shard_tokens: 4,
            validation_fraction: 0.01,
            documents: 2,
            validation_chunk_tokens: crate::shard::VALIDATION_CHUNK_TOKENS,
            validation_chunks: 0,
            merkle_root: merkle_root(&shards.iter().map(|s| s.hash).collect::<Vec<_>>()),
            shards,
            validation_root: Hash::default(),
            validation_shards: Vec::new(),
            sources: Vec::new(),
            packages: Vec::new(),
        }
    }

    #[test]
    fn tiny_manifest_checks_and_proves() {
        let manifest = tiny_manifest();
        assert_eq!(manifest.check(), Ok(()));
        let proof = manifest.proof(1).unwrap();
        assert!(proof.verify(&manifest.shards[1].hash, &manifest.merkle_root));
        let mut bad = manifest;
        bad.shards[0].hash.0[3] ^= 1;
        assert!(bad.check().unwrap_err().contains("merkle_root"));
    }
}
