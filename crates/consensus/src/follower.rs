//! A non-validator that applies finalized blocks it received (from the project's libp2p network)
//! to its own store, after checking certificates, parent links and state roots.

use crate::{
    Error, Machine,
    block::{Block, Digest, hex32},
    certificate::verify_finalized,
    epoch::{epoch_of, handover},
    state::execute,
    store::Store,
};
use commonware_cryptography::Digestible as _;
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

/// The most blocks a follower keeps while it waits for the blocks that link them to its head.
pub const MAX_PENDING: usize = 1024;

/// A follower: the ledger state of a node that does not validate.
///
/// It trusts only the genesis committee (from [`Machine::committee`] of the genesis state) and
/// checks everything else: each certificate against the committee of its block's epoch, each
/// block's parent link to the last applied block, each block's re-execution and state root.
/// The committee of epoch `e+1` it learns from the chain itself, as [`Machine::committee`] of
/// the state after the last block of epoch `e`, which it applied only after checking it against
/// epoch `e`'s committee: a chain of custody from genesis, kept in the store so a restart keeps
/// it. A certificate of an epoch it has not reached is refused ([`Error::UnknownEpoch`]); the
/// sender repeats it once the follower has the blocks before it. Blocks may arrive out of order
/// or without a certificate (a block finalized through a descendant); they wait, up to
/// [`MAX_PENDING`], until a certified block links them to the head.
pub struct Follower<M: Machine> {
    machine: M,
    store: Store,
    /// Each known epoch's committee: genesis, then one per boundary block applied.
    committees: BTreeMap<u64, Vec<[u8; 32]>>,
    head: Block,
    head_digest: Digest,
    state: M::State,
    /// Blocks above the head by digest, with their certificate if they carry one (checked).
    pending: HashMap<Digest, (Block, Option<Vec<u8>>)>,
}

impl<M: Machine> std::fmt::Debug for Follower<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("height", &self.head.header.height)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<M: Machine> Follower<M> {
    /// Opens (or creates) the follower's store at `path` and resumes from it.
    pub fn open(path: &Path, machine: M) -> Result<Self, Error> {
        let store = Store::open(path)?;
        let resumed = store.resume(&machine)?;
        let mut committees: BTreeMap<_, _> = store.committees()?.into_iter().collect();
        committees.insert(0, machine.committee(&machine.genesis()));
        let next = epoch_of(machine.epoch_length(), resumed.block.header.height + 1);
        committees.insert(next, machine.committee(&resumed.state));
        let head_digest = resumed.block.digest();
        Ok(Self {
            machine,
            store,
            committees,
            head: resumed.block,
            head_digest,
            state: resumed.state,
            pending: HashMap::new(),
        })
    }

    /// The height of the last applied block.
    pub fn height(&self) -> u64 {
        self.head.header.height
    }

    /// The last applied block.
    pub fn head(&self) -> &Block {
        &self.head
    }

    /// The state after the last applied block.
    pub fn state(&self) -> &M::State {
        &self.state
    }

    /// The state root after the last applied block.
    pub fn root(&self) -> [u8; 32] {
        self.machine.root(&self.state)
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The committee whose certificates finalize blocks of `epoch`, if the follower has learned
    /// it (genesis, or the last block of the epoch before is applied).
    pub fn committee(&self, epoch: u64) -> Result<&[[u8; 32]], Error> {
        self.committees
            .get(&epoch)
            .map(Vec::as_slice)
            .ok_or(Error::UnknownEpoch(epoch))
    }

    /// Takes one finalized block (encoded) and its certificate, if it has one.
    ///
    /// A certified block is checked at once ([`verify_finalized`]); an error means the bytes are
    /// not a finalized block of this chain and should be dropped (and their sender distrusted).
    /// Then every block that now links to the head is applied, each in one store transaction.
    /// Returns how many blocks were applied (0 when the block waits for its ancestors).
    pub fn accept(&mut self, block: &[u8], certificate: Option<&[u8]>) -> Result<usize, Error> {
        let block = match certificate {
            Some(certificate) => {
                let epoch = Block::from_bytes(block)?.header.epoch;
                let committee = self.committee(epoch)?.to_vec();
                verify_finalized(&committee, epoch, block, certificate)?
            }
            None => Block::from_bytes(block)?,
        };
        if block.header.height <= self.head.header.height {
            return Ok(0);
        }
        if self.pending.len() >= MAX_PENDING {
            return Err(Error::NotNext {
                height: block.header.height,
                reason: format!("{MAX_PENDING} blocks already wait for their ancestors"),
            });
        }
        let digest = block.digest();
        let entry = self.pending.entry(digest).or_insert_with(|| (block, None));
        if entry.1.is_none() {
            entry.1 = certificate.map(<[u8]>::to_vec);
        }
        self.advance()
    }

    /// Applies chains of pending blocks that end in a certified block and start on the head.
    fn advance(&mut self) -> Result<usize, Error> {
        let mut applied = 0;
        loop {
            let mut certified: Vec<(u64, Digest)> = self
                .pending
                .iter()
                .filter(|(_, (_, c))| c.is_some())
                .map(|(d, (b, _))| (b.header.height, *d))
                .collect();
            certified.sort();
            let Some(chain) = certified.iter().find_map(|(_, d)| self.chain_to_head(*d)) else {
                break;
            };
            for digest in chain {
                let Some((block, certificate)) = self.pending.remove(&digest) else {
                    continue;
                };
                self.apply(block, certificate)?;
                applied += 1;
            }
            let head = self.head.header.height;
            self.pending.retain(|_, (b, _)| b.header.height > head);
        }
        Ok(applied)
    }

    /// The digests from the head's child up to `top`, if pending blocks link them.
    fn chain_to_head(&self, top: Digest) -> Option<Vec<Digest>> {
        let mut chain = vec![top];
        let mut cursor = top;
        loop {
            let (block, _) = self.pending.get(&cursor)?;
            if block.header.height == self.head.header.height + 1 {
                if block.header.parent != self.head_digest.0 {
                    return None;
                }
                chain.reverse();
                return Some(chain);
            }
            cursor = commonware_cryptography::sha256::Digest(block.header.parent);
            chain.push(cursor);
        }
    }

    fn apply(&mut self, block: Block, certificate: Option<Vec<u8>>) -> Result<(), Error> {
        if block.header.height != self.head.header.height + 1
            || block.header.parent != self.head_digest.0
        {
            return Err(Error::NotNext {
                height: block.header.height,
                reason: format!(
                    "head is {} at height {}",
                    hex32(&self.head_digest.0),
                    self.head.header.height
                ),
            });
        }
        let state = execute(&self.machine, &self.state, &block)?;
        let changes = self.machine.changes(&self.state, &state);
        let next = handover(&self.machine, block.header.height, &state);
        self.store
            .commit(&block, certificate.as_deref(), &changes, next.as_ref())?;
        if let Some((epoch, committee)) = next {
            self.committees.insert(epoch, committee);
        }
        self.head_digest = block.digest();
        self.head = block;
        self.state = state;
        Ok(())
    }
}
