//! The genesis data on this node: what it holds and serves, and how it gets the rest from peers.
//!
//! Only one node needs the built dataset. Every node that holds any of it offers the files in its
//! content store and gossips its [`Holdings`] (the manifest's hash and the shards it has). A node
//! that lacks data fetches, from those holders: the manifest (checked against the genesis
//! file's Merkle roots and tokenizer hash), the tokenizer, the validation shards, and for each
//! round the training shards `neuroshard_data::assign` gives it, each checked with its Merkle
//! inclusion proof against the genesis root. What it fetched it serves in turn.
//!
//! When the genesis file names initial weights (`model.init`), the node needs them before it
//! can build its round-0 model, so before the driver runs and hears any holdings: it asks each
//! connected peer for the init file by hash ([`DataSync::initial_params`]), checks it like any
//! other piece, keeps it in the genesis directory and offers it in turn.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use neuroshard_data::{Genesis, GenesisDir, INIT_FILE, Manifest, assign};
use neuroshard_p2p::{MemoryStore, NetworkHandle, Offence, PeerId};
use neuroshard_primitives::{Hash, Keypair, NodeId};
use tokio::sync::Notify;

use crate::atomic::{Durability, write_atomic};
use crate::wire::{self, DATA_TOPIC, HOLDINGS_NS, Holdings};
use crate::{Error, Result};

/// How long a node waits for a holder of data it needs before giving up on a job.
const DATA_TIMEOUT: Duration = Duration::from_secs(300);

/// One file of the dataset, by what it is and the hash it must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    Manifest(Hash),
    Tokenizer(Hash),
    Train(usize, Hash),
    Validation(usize, Hash),
    /// The initial weights the genesis file's `model.init` names.
    Init(Hash),
}

/// The dataset files in one directory, with what of it is present and verified.
#[derive(Debug)]
pub(crate) struct Dataset {
    genesis: Genesis,
    dir: PathBuf,
    manifest: Option<(Manifest, Vec<u8>)>,
    train: BTreeSet<usize>,
    validation: bool,
}

impl Dataset {
    /// Opens the dataset for the genesis file at `genesis_path`: its own directory when that
    /// holds a built dataset, otherwise `data_dir/genesis` (created, with a copy of the file).
    pub(crate) fn open(genesis_path: &Path, data_dir: &Path) -> Result<Self> {
        let genesis = Genesis::load(genesis_path)?;
        let home = genesis_path.parent().unwrap_or(Path::new("."));
        let dir = if home.join("manifest.json").exists() {
            GenesisDir::open(home)?;
            home.to_owned()
        } else {
            let dir = data_dir.join("genesis");
            std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
            let text = std::fs::read(genesis_path).map_err(Error::io("reading", genesis_path))?;
            write_atomic(&dir.join("genesis.toml"), &text, Durability::Durable)?;
            copy_init(home, &dir)?;
            dir
        };
        let mut dataset = Self {
            genesis,
            dir,
            manifest: None,
            train: BTreeSet::new(),
            validation: false,
        };
        dataset.scan();
        Ok(dataset)
    }

    /// The genesis file.
    pub(crate) fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The directory training reads from.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The initial weights on disk, if the genesis file names them and they are here: checked
    /// against `model.init` and the model's size; a wrong file is an error, not a fallback.
    fn local_init(&self, n_params: usize) -> Result<Option<Vec<f32>>> {
        let Some(hash) = self.genesis.model.init else {
            return Ok(None);
        };
        let path = self.dir.join(INIT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io("reading", &path)(err)),
        };
        let bad = |reason: String| Error::BadInit {
            path: path.clone(),
            reason,
        };
        let got = Hash::of(&bytes);
        if got != hash {
            return Err(bad(format!(
                "its hash {got} is not the genesis `model.init` {hash}"
            )));
        }
        crate::checkpoint::params_from_bytes(&bytes, n_params)
            .map(Some)
            .map_err(bad)
    }

    /// Finds what is already present and intact (after a restart, or in the builder's directory).
    fn scan(&mut self) {
        let Ok(bytes) = std::fs::read(self.dir.join("manifest.json")) else {
            return;
        };
        if self
            .accept(Piece::Manifest(Hash::of(&bytes)), &bytes)
            .is_err()
        {
            return;
        }
        let manifest = &self.manifest.as_ref().expect("accepted above").0;
        let files: Vec<(Piece, String)> = std::iter::once((
            Piece::Tokenizer(manifest.tokenizer_hash),
            "tokenizer.json".to_owned(),
        ))
        .chain(
            manifest
                .shards
                .iter()
                .enumerate()
                .map(|(i, e)| (Piece::Train(i, e.hash), e.name.clone())),
        )
        .chain(
            manifest
                .validation_shards
                .iter()
                .enumerate()
                .map(|(i, e)| (Piece::Validation(i, e.hash), e.name.clone())),
        )
        .collect();
        let mut validation_ok = true;
        for (piece, name) in files {
            let intact = std::fs::read(self.dir.join(&name))
                .is_ok_and(|bytes| Hash::of(&bytes) == key(piece));
            match piece {
                Piece::Train(i, _) if intact => {
                    self.train.insert(i);
                }
                Piece::Validation(..) => validation_ok &= intact,
                _ => {}
            }
        }
        self.validation = validation_ok;
    }

    /// Tokens in the training shards a node is assigned per round, once the manifest is known:
    /// the pool its batches are drawn from, for the privacy accountant's sampling rate.
    fn round_pool_tokens(&self, per_node: usize) -> Option<u64> {
        let (manifest, _) = self.manifest.as_ref()?;
        Some(manifest.shard_tokens as u64 * per_node as u64)
    }

    /// What this node can offer peers, once it has a manifest.
    pub(crate) fn holdings(&self) -> Option<Holdings> {
        let (_, bytes) = self.manifest.as_ref()?;
        Some(Holdings {
            manifest: Hash::of(bytes),
            train: self.train.iter().map(|i| *i as u32).collect(),
            validation: self.validation,
        })
    }

    /// Puts every file this node holds into `store`, so peers can fetch them by hash.
    pub(crate) fn offer(&self, store: &MemoryStore) -> Result<()> {
        if self.genesis.model.init.is_some()
            && let Ok(bytes) = std::fs::read(self.dir.join(INIT_FILE))
        {
            store.insert(bytes);
        }
        let Some((manifest, bytes)) = &self.manifest else {
            return Ok(());
        };
        store.insert(bytes.clone());
        let mut names = vec!["tokenizer.json".to_owned()];
        names.extend(self.train.iter().map(|i| manifest.shards[*i].name.clone()));
        if self.validation {
            names.extend(manifest.validation_shards.iter().map(|e| e.name.clone()));
        }
        for name in names {
            let path = self.dir.join(name);
            if let Ok(bytes) = std::fs::read(&path) {
                store.insert(bytes);
            }
        }
        Ok(())
    }

    /// The files still missing for `node` to train `round` and measure its validation loss.
    fn needs(&self, round: u64, node: NodeId, per_node: usize) -> Option<Vec<Piece>> {
        let (manifest, _) = self.manifest.as_ref()?;
        let mut needs = Vec::new();
        if !self.dir.join("tokenizer.json").exists() {
            needs.push(Piece::Tokenizer(manifest.tokenizer_hash));
        }
        if !self.validation {
            let val = manifest.validation_shards.iter().enumerate();
            needs.extend(val.map(|(i, e)| Piece::Validation(i, e.hash)));
        }
        let shards = assign(
            self.genesis.network_id(),
            round,
            node,
            manifest.shards.len(),
            per_node,
        );
        let missing = shards.into_iter().filter(|i| !self.train.contains(i));
        needs.extend(missing.map(|i| Piece::Train(i, manifest.shards[i].hash)));
        Some(needs)
    }

    /// Checks `bytes` as `piece` and writes it into the directory.
    fn accept(&mut self, piece: Piece, bytes: &[u8]) -> Result<()> {
        if Hash::of(bytes) != key(piece) {
            return Err(Error::BadData(format!("{piece:?}: wrong hash")));
        }
        let name = match piece {
            Piece::Manifest(_) => {
                let manifest = self.check_manifest(bytes)?;
                self.manifest = Some((manifest, bytes.to_vec()));
                "manifest.json".to_owned()
            }
            Piece::Tokenizer(_) => "tokenizer.json".to_owned(),
            Piece::Init(_) => INIT_FILE.to_owned(),
            Piece::Train(index, hash) => {
                let (manifest, _) = self
                    .manifest
                    .as_ref()
                    .expect("shards are needed only after the manifest");
                let proof = manifest
                    .proof(index)
                    .ok_or_else(|| Error::BadData(format!("no shard {index}")))?;
                if !proof.verify(&hash, &self.genesis.data.merkle_root) {
                    return Err(Error::BadData(format!(
                        "shard {index} fails its Merkle proof"
                    )));
                }
                self.train.insert(index);
                manifest.shards[index].name.clone()
            }
            Piece::Validation(index, _) => {
                let (manifest, _) = self
                    .manifest
                    .as_ref()
                    .expect("shards are needed only after the manifest");
                manifest.validation_shards[index].name.clone()
            }
        };
        write_atomic(&self.dir.join(name), bytes, Durability::Durable)?;
        if let (Piece::Validation(..), Some((manifest, _))) = (piece, &self.manifest) {
            self.validation = manifest
                .validation_shards
                .iter()
                .all(|e| self.dir.join(&e.name).exists());
        }
        Ok(())
    }

    /// A manifest from a peer: well formed, internally consistent, and the genesis file's.
    fn check_manifest(&self, bytes: &[u8]) -> Result<Manifest> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|err| Error::BadData(format!("manifest: {err}")))?;
        manifest
            .check()
            .map_err(|err| Error::BadData(format!("manifest: {err}")))?;
        let data = &self.genesis.data;
        let matches = manifest.merkle_root == data.merkle_root
            && manifest.validation_root == data.validation_root
            && manifest.tokenizer_hash == data.tokenizer_hash
            && manifest.vocab_size == self.genesis.model.vocab_size;
        if !matches {
            return Err(Error::BadData(
                "the manifest does not match the genesis file's roots".into(),
            ));
        }
        Ok(manifest)
    }
}

fn key(piece: Piece) -> Hash {
    match piece {
        Piece::Manifest(h)
        | Piece::Tokenizer(h)
        | Piece::Train(_, h)
        | Piece::Validation(_, h)
        | Piece::Init(h) => h,
    }
}

/// Copies the init file kept next to a bare genesis file (`home`) into the node's genesis
/// directory `dir`, unless one is there already; checked when loaded.
fn copy_init(home: &Path, dir: &Path) -> Result<()> {
    let (from, to) = (home.join(INIT_FILE), dir.join(INIT_FILE));
    if to.exists() || !from.exists() {
        return Ok(());
    }
    let bytes = std::fs::read(&from).map_err(Error::io("reading", &from))?;
    write_atomic(&to, &bytes, Durability::Durable)
}

/// The dataset shared between the driver (which hears holders) and training jobs (which wait
/// for their shards). Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct DataSync(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    dataset: Mutex<Dataset>,
    holders: Mutex<BTreeMap<PeerId, Holdings>>,
    changed: Notify,
    net: NetworkHandle,
    store: MemoryStore,
    key: Keypair,
    per_node: usize,
}

impl DataSync {
    /// Shares `dataset`, offering what it holds in `store`.
    pub(crate) fn new(
        dataset: Dataset,
        net: NetworkHandle,
        store: MemoryStore,
        key: &Keypair,
        per_node: usize,
    ) -> Result<Self> {
        dataset.offer(&store)?;
        Ok(Self(Arc::new(Shared {
            dataset: Mutex::new(dataset),
            holders: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            net,
            store,
            key: Keypair::from_seed(key.secret_bytes()),
            per_node,
        })))
    }

    fn dataset(&self) -> MutexGuard<'_, Dataset> {
        self.0
            .dataset
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn holders(&self) -> MutexGuard<'_, BTreeMap<PeerId, Holdings>> {
        self.0
            .holders
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Tokens of the training shards this node draws a round's batches from (see
    /// [`Dataset::round_pool_tokens`]); `None` before the manifest is known.
    pub(crate) fn round_pool_tokens(&self) -> Option<u64> {
        self.dataset().round_pool_tokens(self.0.per_node)
    }

    /// A peer said what it holds.
    pub(crate) fn holder_announced(&self, peer: PeerId, holdings: Holdings) {
        self.holders().insert(peer, holdings);
        self.0.changed.notify_waiters();
    }

    /// A peer left.
    pub(crate) fn peer_left(&self, peer: &PeerId) {
        self.holders().remove(peer);
    }

    /// Gossips what this node holds (nothing while it has no manifest).
    pub(crate) async fn announce(&self) {
        let Some(holdings) = self.dataset().holdings() else {
            return;
        };
        let note =
            neuroshard_p2p::Announcement::sign(&self.0.key, HOLDINGS_NS, &wire::encode(&holdings));
        if let Err(err) = self.0.net.publish(DATA_TOPIC, &note).await {
            tracing::debug!(%err, "cannot announce holdings yet");
        }
    }

    /// Fetches, checks and stores whatever `node` still lacks to train `round`; waits for
    /// holders when none has it yet, up to a timeout.
    pub(crate) async fn ensure(&self, round: u64, node: NodeId) -> Result<()> {
        let deadline = tokio::time::Instant::now() + DATA_TIMEOUT;
        loop {
            let needs = self.dataset().needs(round, node, self.0.per_node);
            let needs = match needs {
                Some(needs) if needs.is_empty() => return Ok(()),
                Some(needs) => needs,
                None => self.manifest_offers(),
            };
            let mut progressed = false;
            for piece in needs {
                progressed |= self.fetch(piece).await;
            }
            if progressed {
                self.announce().await;
                continue;
            }
            let wait = self.0.changed.notified();
            if tokio::time::timeout_at(deadline, tokio::time::timeout(Duration::from_secs(2), wait))
                .await
                .is_err()
            {
                return Err(Error::DataUnavailable(format!(
                    "no peer offered the data for round {round}"
                )));
            }
        }
    }

    /// The round-0 parameters the genesis file names (`model.init`), from the genesis directory
    /// or else fetched by hash from the connected peers, checked, kept and offered; `None` when
    /// the genesis names none (the model is drawn from the seed). Waits for a peer that has
    /// them, up to a timeout.
    pub(crate) async fn initial_params(&self, n_params: usize) -> Result<Option<Vec<f32>>> {
        let Some(hash) = self.dataset().genesis.model.init else {
            return Ok(None);
        };
        let deadline = tokio::time::Instant::now() + DATA_TIMEOUT;
        loop {
            if let Some(params) = self.dataset().local_init(n_params)? {
                return Ok(Some(params));
            }
            let peers = self.0.net.peers().await?;
            if self.fetch_from(Piece::Init(hash), peers).await {
                continue;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::DataUnavailable(format!(
                    "no peer offered the genesis init file {hash}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every distinct manifest hash holders offer (a bad one is refused when checked).
    fn manifest_offers(&self) -> Vec<Piece> {
        let hashes: BTreeSet<Hash> = self.holders().values().map(|h| h.manifest).collect();
        hashes.into_iter().map(Piece::Manifest).collect()
    }

    /// Fetches `piece` from a holder that offers it; whether it was stored.
    async fn fetch(&self, piece: Piece) -> bool {
        let candidates: Vec<PeerId> = self
            .holders()
            .iter()
            .filter(|(_, h)| match piece {
                Piece::Manifest(hash) => h.manifest == hash,
                Piece::Tokenizer(_) | Piece::Init(_) => true,
                Piece::Train(i, _) => h.train.contains(&(i as u32)),
                Piece::Validation(..) => h.validation,
            })
            .map(|(peer, _)| *peer)
            .collect();
        self.fetch_from(piece, candidates).await
    }

    /// Fetches `piece` from the first of `candidates` that sends it intact; whether it was
    /// stored. A peer that sends something else is dropped as a holder and reported.
    async fn fetch_from(&self, piece: Piece, candidates: Vec<PeerId>) -> bool {
        for peer in candidates {
            let bytes = match self.0.net.fetch(peer, key(piece)).await {
                Ok(bytes) => bytes,
                Err(err) => {
                    tracing::debug!(%peer, %err, "fetching genesis data failed");
                    continue;
                }
            };
            let accepted = self.dataset().accept(piece, &bytes);
            match accepted {
                Ok(()) => {
                    tracing::info!(%peer, ?piece, bytes = bytes.len(), "fetched and verified genesis data");
                    self.0.store.insert(bytes);
                    return true;
                }
                Err(err) => {
                    tracing::warn!(%peer, %err, "refusing genesis data");
                    self.holders().remove(&peer);
                    let _ = self.0.net.report(peer, Offence::BadPayload).await;
                }
            }
        }
        false
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use neuroshard_data::{BuildOptions, CorpusChoice, NoProgress, build_genesis};

    use super::*;

    /// Builds a small genesis directory in `root/genesis` and returns its genesis file.
    pub(crate) fn small_genesis(root: &Path) -> PathBuf {
        let corpus = root.join("corpus");
        std::fs::create_dir_all(&corpus).unwrap();
        let words = [
            "alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta",
        ];
        for doc in 0..30 {
            let text: Vec<&str> = (0..400)
                .map(|i| words[(i * 7 + doc * 3 + i / 5) % words.len()])
                .collect();
            std::fs::write(corpus.join(format!("{doc}.txt")), text.join(" ")).unwrap();
        }
        let options = BuildOptions {
            corpus: CorpusChoice::Path(corpus),
            vocab_size: 300,
            shard_tokens: 1500,
            validation_fraction: 0.1,
            ..BuildOptions::new(root.join("genesis"))
        };
        build_genesis(&options, &NoProgress)
            .unwrap()
            .path()
            .join("genesis.toml")
    }

    /// Feeds `fetcher` each piece it needs from `holder`'s directory; returns how many.
    fn copy_needed(holder: &Dataset, fetcher: &mut Dataset, round: u64, node: NodeId) -> usize {
        let needs = fetcher.needs(round, node, 2).unwrap();
        let manifest = &holder.manifest.as_ref().unwrap().0;
        for piece in &needs {
            let name = match *piece {
                Piece::Tokenizer(_) => "tokenizer.json".to_owned(),
                Piece::Train(i, _) => manifest.shards[i].name.clone(),
                Piece::Validation(i, _) => manifest.validation_shards[i].name.clone(),
                Piece::Manifest(_) | Piece::Init(_) => unreachable!("not needed for a round"),
            };
            let bytes = std::fs::read(holder.dir().join(name)).unwrap();
            fetcher.accept(*piece, &bytes).unwrap();
        }
        needs.len()
    }

    #[test]
    fn a_node_without_data_fetches_and_verifies_what_it_needs() {
        let root = tempfile::tempdir().unwrap();
        let genesis = small_genesis(root.path());
        let holder = Dataset::open(&genesis, &root.path().join("holder")).unwrap();
        let holdings = holder.holdings().unwrap();
        assert!(holdings.validation && !holdings.train.is_empty());

        let bare = root.path().join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::copy(&genesis, bare.join("genesis.toml")).unwrap();
        let mut fetcher =
            Dataset::open(&bare.join("genesis.toml"), &root.path().join("fetcher")).unwrap();
        assert!(fetcher.holdings().is_none() && fetcher.needs(0, NodeId([5; 32]), 2).is_none());

        let (_, manifest_bytes) = holder.manifest.clone().unwrap();
        let mut forged = manifest_bytes.clone();
        let at = forged.iter().position(|b| b.is_ascii_digit()).unwrap();
        forged[at] = if forged[at] == b'9' {
            b'8'
        } else {
            forged[at] + 1
        };
        assert!(
            fetcher
                .accept(Piece::Manifest(Hash::of(&forged)), &forged)
                .is_err()
        );
        fetcher
            .accept(Piece::Manifest(holdings.manifest), &manifest_bytes)
            .unwrap();

        let node = NodeId([5; 32]);
        assert!(copy_needed(&holder, &mut fetcher, 0, node) > 0);
        assert_eq!(fetcher.needs(0, node, 2).unwrap(), Vec::new());
        GenesisDir::open(fetcher.dir())
            .unwrap()
            .validation_batches()
            .unwrap();

        let shard = Piece::Train(0, Hash::of(b"not the shard"));
        assert!(
            fetcher.accept(shard, b"not the shard").is_err(),
            "a leaf outside the Merkle tree is refused"
        );
        let reopened =
            Dataset::open(&bare.join("genesis.toml"), &root.path().join("fetcher")).unwrap();
        assert_eq!(
            reopened.holdings(),
            fetcher.holdings(),
            "a restart finds what was fetched"
        );
    }

    #[test]
    fn initial_weights_are_checked_copied_and_offered() {
        let root = tempfile::tempdir().unwrap();
        let genesis_file = small_genesis(root.path());
        let params = [1.0f32, -2.0, 0.5];
        let bytes = crate::checkpoint::params_bytes(&params);
        let mut genesis = Genesis::load(&genesis_file).unwrap();
        genesis.model.init = Some(Hash::of(&bytes));
        let bare = root.path().join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::write(bare.join("genesis.toml"), genesis.to_toml()).unwrap();
        let open = || Dataset::open(&bare.join("genesis.toml"), &root.path().join("node"));
        assert_eq!(open().unwrap().local_init(3).unwrap(), None, "to fetch");

        std::fs::write(bare.join(INIT_FILE), &bytes).unwrap();
        let dataset = open().unwrap();
        assert_eq!(dataset.local_init(3).unwrap(), Some(params.to_vec()));
        let store = MemoryStore::new();
        dataset.offer(&store).unwrap();
        assert_eq!(
            store.keys(),
            vec![Hash::of(&bytes)],
            "offered before any manifest"
        );
        assert!(matches!(dataset.local_init(4), Err(Error::BadInit { .. })));

        std::fs::write(dataset.dir().join(INIT_FILE), b"other weights").unwrap();
        let err = dataset.local_init(3).unwrap_err();
        assert!(err.to_string().contains("model.init"), "{err}");
        let mut fresh = open().unwrap();
        assert!(
            fresh
                .accept(Piece::Init(Hash::of(&bytes)), b"forged")
                .is_err()
        );
        fresh.accept(Piece::Init(Hash::of(&bytes)), &bytes).unwrap();
        assert_eq!(fresh.local_init(3).unwrap(), Some(params.to_vec()));
    }
}
