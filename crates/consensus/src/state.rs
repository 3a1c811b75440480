//! What a validator holds in memory: post-states of blocks in flight, the last finalized block,
//! the mempool, and the subscribers to finalized blocks.

use crate::{
    Error, Machine,
    block::{Block, Digest, MAX_BODY_BYTES, hex32},
    machine::Header,
};
use commonware_cryptography::{Hasher as _, Sha256};
use futures::channel::mpsc;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
};

/// The most transactions a mempool holds; `submit` refuses more.
pub const MAX_MEMPOOL_TXS: usize = 10_000;
/// Finalized blocks a transaction may wait in the mempool without being included; then it is
/// dropped (one the machine refuses would otherwise stay for ever, and a mempool full of those
/// would refuse every new transaction). Whoever still wants it submits it again.
pub const MEMPOOL_TTL_BLOCKS: u64 = 64;
/// The largest transaction `submit` accepts, in bytes.
pub const MAX_TX_BYTES: usize = 64 * 1024;

/// A finalized block, reported in height order after it is durable in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalized {
    /// The block header.
    pub header: Header,
    /// The block body.
    pub body: Vec<u8>,
    /// The block digest.
    pub digest: [u8; 32],
    /// The encoded finalization certificate whose payload is this block's digest.
    ///
    /// `None` when simplex finalized the block only through a finalized descendant (its own
    /// view was notarized but not finalized, which happens after timeouts): the block is final
    /// because a later certified block's parent links reach it. A follower keeps such a block
    /// until that descendant arrives ([`crate::Follower`] does this).
    pub certificate: Option<Vec<u8>>,
}

impl Finalized {
    /// The block's canonical encoding (what [`crate::verify_finalized`] takes).
    pub fn block_bytes(&self) -> Vec<u8> {
        Block {
            header: self.header.clone(),
            body: self.body.clone(),
        }
        .to_bytes()
    }
}

/// The post-state of a block this node verified, built or applied.
pub(crate) struct Entry<S> {
    pub(crate) state: Arc<S>,
    pub(crate) header: Header,
    /// Hashes of the transactions the block carries.
    pub(crate) txs: Vec<Digest>,
}

impl<S> Clone for Entry<S> {
    fn clone(&self) -> Self {
        Self {
            state: self.state.clone(),
            header: self.header.clone(),
            txs: self.txs.clone(),
        }
    }
}

#[derive(Default)]
struct Mempool {
    next: u64,
    order: BTreeMap<u64, (Digest, Vec<u8>)>,
    index: HashMap<Digest, u64>,
    /// The finalized height at which each transaction (by sequence number) arrived.
    arrived: BTreeMap<u64, u64>,
}

impl Mempool {
    fn remove(&mut self, seq: u64) {
        if let Some((hash, _)) = self.order.remove(&seq) {
            self.index.remove(&hash);
        }
        self.arrived.remove(&seq);
    }

    /// Drops the transactions that have waited [`MEMPOOL_TTL_BLOCKS`] by `height`.
    fn expire(&mut self, height: u64) {
        let expired: Vec<u64> = self
            .arrived
            .iter()
            .take_while(|(_, at)| at.saturating_add(MEMPOOL_TTL_BLOCKS) <= height)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            self.remove(seq);
        }
    }
}

pub(crate) struct Inner<S> {
    /// Post-states by block digest: the last finalized block and the blocks above it in flight.
    states: HashMap<Digest, Entry<S>>,
    /// The last finalized (applied) block.
    finalized: (Digest, Header),
    mempool: Mempool,
    subscribers: Vec<mpsc::UnboundedSender<Finalized>>,
    failure: Option<String>,
}

/// State shared by the application (propose/verify), the finalizer and the handle.
pub(crate) struct Shared<M: Machine> {
    pub(crate) machine: M,
    inner: Mutex<Inner<M::State>>,
}

pub(crate) fn tx_hash(tx: &[u8]) -> Digest {
    Sha256::hash(&[tx])
}

/// Executes `block` on a copy of `parent`'s post-state and checks the header's epoch (the one
/// its height belongs to) and state root.
pub(crate) fn execute<M: Machine>(
    machine: &M,
    parent: &M::State,
    block: &Block,
) -> Result<M::State, Error> {
    let height = block.header.height;
    let expected = crate::epoch::epoch_of(machine.epoch_length(), height);
    if block.header.epoch != expected {
        return Err(Error::HeaderEpoch {
            height,
            header: block.header.epoch,
            expected,
        });
    }
    let mut state = parent.clone();
    machine
        .execute(&mut state, &block.header, &block.body)
        .map_err(|reason| Error::Execute {
            height: block.header.height,
            reason,
        })?;
    let root = machine.root(&state);
    if root != block.header.state_root {
        return Err(Error::StateRoot {
            height: block.header.height,
            header: hex32(&block.header.state_root),
            computed: hex32(&root),
        });
    }
    Ok(state)
}

impl<M: Machine> Shared<M> {
    pub(crate) fn new(machine: M, block: &Block, state: M::State) -> Self {
        let digest = commonware_cryptography::Digestible::digest(block);
        let entry = Entry {
            state: Arc::new(state),
            header: block.header.clone(),
            txs: Vec::new(),
        };
        let mut states = HashMap::new();
        states.insert(digest, entry);
        Self {
            machine,
            inner: Mutex::new(Inner {
                states,
                finalized: (digest, block.header.clone()),
                mempool: Mempool::default(),
                subscribers: Vec::new(),
                failure: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<M::State>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn entry(&self, digest: &Digest) -> Option<Entry<M::State>> {
        self.lock().states.get(digest).cloned()
    }

    pub(crate) fn insert(&self, digest: Digest, entry: Entry<M::State>) {
        let mut inner = self.lock();
        // A block at or below the finalized height is either finalized (already present) or
        // on a dead fork; keep neither.
        if entry.header.height > inner.finalized.1.height {
            inner.states.insert(digest, entry);
        }
    }

    /// The last finalized block: digest and header.
    pub(crate) fn finalized(&self) -> (Digest, Header) {
        self.lock().finalized.clone()
    }

    /// The post-state of the last finalized block.
    pub(crate) fn finalized_state(&self) -> Arc<M::State> {
        let inner = self.lock();
        let digest = inner.finalized.0;
        inner
            .states
            .get(&digest)
            .map(|e| e.state.clone())
            .unwrap_or_else(|| unreachable!("the finalized entry is never pruned"))
    }

    /// Records a durable finalized block: it becomes the base, states below it are dropped, its
    /// transactions leave the mempool, and subscribers hear of it.
    pub(crate) fn finalize(&self, digest: Digest, entry: Entry<M::State>, out: Finalized) {
        let mut inner = self.lock();
        let height = entry.header.height;
        for tx in &entry.txs {
            if let Some(&seq) = inner.mempool.index.get(tx) {
                inner.mempool.remove(seq);
            }
        }
        inner.mempool.expire(height);
        inner.finalized = (digest, entry.header.clone());
        inner.states.insert(digest, entry);
        inner
            .states
            .retain(|d, e| e.header.height > height || *d == digest);
        inner
            .subscribers
            .retain(|s| s.unbounded_send(out.clone()).is_ok());
    }

    /// Transactions a proposer may include on top of `parent`: the mempool in submission order,
    /// less those carried by `parent` and its unfinalized ancestors, up to about half a body.
    pub(crate) fn pending(&self, parent: &Digest) -> Vec<Vec<u8>> {
        let inner = self.lock();
        let mut included = HashSet::new();
        let mut cursor = *parent;
        while cursor != inner.finalized.0 {
            let Some(entry) = inner.states.get(&cursor) else {
                break;
            };
            included.extend(entry.txs.iter().copied());
            cursor = commonware_cryptography::sha256::Digest(entry.header.parent);
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for (hash, tx) in inner.mempool.order.values() {
            if included.contains(hash) {
                continue;
            }
            if bytes + tx.len() > MAX_BODY_BYTES / 2 {
                break;
            }
            bytes += tx.len();
            out.push(tx.clone());
        }
        out
    }

    pub(crate) fn submit(&self, tx: Vec<u8>) -> Result<(), Error> {
        if tx.is_empty() || tx.len() > MAX_TX_BYTES {
            return Err(Error::Mempool(format!(
                "a transaction holds 1 to {MAX_TX_BYTES} bytes, this one {}",
                tx.len()
            )));
        }
        let mut inner = self.lock();
        if let Some(reason) = &inner.failure {
            return Err(Error::Mempool(format!("the engine failed: {reason}")));
        }
        let hash = tx_hash(&tx);
        if inner.mempool.index.contains_key(&hash) {
            return Ok(());
        }
        if inner.mempool.order.len() >= MAX_MEMPOOL_TXS {
            return Err(Error::Mempool(format!(
                "the mempool is full ({MAX_MEMPOOL_TXS} transactions)"
            )));
        }
        let seq = inner.mempool.next;
        inner.mempool.next += 1;
        let height = inner.finalized.1.height;
        inner.mempool.order.insert(seq, (hash, tx));
        inner.mempool.index.insert(hash, seq);
        inner.mempool.arrived.insert(seq, height);
        Ok(())
    }

    pub(crate) fn mempool_len(&self) -> usize {
        self.lock().mempool.order.len()
    }

    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<Finalized> {
        let (tx, rx) = mpsc::unbounded();
        self.lock().subscribers.push(tx);
        rx
    }

    /// Records a fatal failure (a finalized block that does not re-execute, a store error):
    /// the node stops applying blocks and says why.
    pub(crate) fn fail(&self, reason: String) {
        let mut inner = self.lock();
        inner.failure.get_or_insert(reason);
        inner.subscribers.clear();
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }
}

/// Hashes of the transactions `body` carries.
pub(crate) fn body_txs<M: Machine>(machine: &M, body: &[u8]) -> Vec<Digest> {
    machine
        .transactions(body)
        .iter()
        .map(|t| tx_hash(t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::Rows;
    use commonware_cryptography::Digestible as _;

    /// Counts one-byte transactions.
    #[derive(Clone)]
    struct Counter;

    impl Machine for Counter {
        type State = u64;
        fn genesis(&self) -> u64 {
            0
        }
        fn committee(&self, _: &u64) -> Vec<[u8; 32]> {
            Vec::new()
        }
        fn build(&self, _: &u64, _: &Header, pending: &[Vec<u8>]) -> Vec<u8> {
            pending.concat()
        }
        fn transactions(&self, body: &[u8]) -> Vec<Vec<u8>> {
            body.iter().map(|b| vec![*b]).collect()
        }
        fn execute(&self, n: &mut u64, _: &Header, body: &[u8]) -> Result<(), String> {
            *n += body.len() as u64;
            Ok(())
        }
        fn root(&self, n: &u64) -> [u8; 32] {
            let mut root = [0; 32];
            root[..8].copy_from_slice(&n.to_be_bytes());
            root
        }
        fn changes(&self, _: &u64, after: &u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
            vec![(b"n".to_vec(), Some(after.to_be_bytes().to_vec()))]
        }
        fn load(&self, rows: Rows) -> Result<u64, String> {
            Ok(rows.len() as u64)
        }
    }

    fn child(parent: &Block, body: &[u8]) -> Block {
        let parent_state = u64::from_be_bytes(parent.header.state_root[..8].try_into().unwrap());
        Block {
            header: Header {
                height: parent.header.height + 1,
                epoch: 0,
                parent: parent.id(),
                timestamp_ms: 0,
                proposer: [0; 32],
                state_root: Counter.root(&(parent_state + body.len() as u64)),
            },
            body: body.to_vec(),
        }
    }

    fn entry(block: &Block) -> Entry<u64> {
        let n = u64::from_be_bytes(block.header.state_root[..8].try_into().unwrap());
        Entry {
            state: Arc::new(n),
            header: block.header.clone(),
            txs: body_txs(&Counter, &block.body),
        }
    }

    #[test]
    fn mempool_skips_in_flight_and_drops_finalized_transactions() {
        let genesis = Block::genesis(Counter.root(&0));
        let shared = Shared::new(Counter, &genesis, 0);
        for tx in [[1u8], [2], [3], [2]] {
            shared.submit(tx.to_vec()).unwrap();
        }
        assert_eq!(
            shared.mempool_len(),
            3,
            "a repeated transaction is kept once"
        );
        assert!(shared.submit(Vec::new()).is_err());
        assert!(shared.submit(vec![0; MAX_TX_BYTES + 1]).is_err());

        // Block 1 (in flight) carries tx 1; a proposal on it must not carry it again.
        let one = child(&genesis, &[1]);
        shared.insert(one.digest(), entry(&one));
        assert_eq!(shared.pending(&one.digest()), vec![vec![2], vec![3]]);
        assert_eq!(shared.pending(&genesis.digest()).len(), 3);

        // Finalizing block 1 drops tx 1 from the mempool and tells subscribers.
        let mut subscriber = shared.subscribe();
        let out = Finalized {
            header: one.header.clone(),
            body: one.body.clone(),
            digest: one.id(),
            certificate: None,
        };
        shared.finalize(one.digest(), entry(&one), out.clone());
        assert_eq!(shared.mempool_len(), 2);
        assert_eq!(subscriber.try_recv().unwrap(), out);
        assert_eq!(shared.finalized().1.height, 1);
        assert_eq!(*shared.finalized_state(), 1);
        // Entries at or below the finalized height are not kept.
        let stale = child(&genesis, &[9]);
        shared.insert(stale.digest(), entry(&stale));
        assert!(shared.entry(&stale.digest()).is_none());

        // Transactions no block carries (they arrived at height 0) are dropped once the
        // finalized height reaches MEMPOOL_TTL_BLOCKS.
        let mut parent = one;
        while parent.header.height < MEMPOOL_TTL_BLOCKS {
            assert_eq!(shared.mempool_len(), 2, "still waiting");
            let next = child(&parent, &[]);
            let out = Finalized {
                header: next.header.clone(),
                body: next.body.clone(),
                digest: next.id(),
                certificate: None,
            };
            shared.finalize(next.digest(), entry(&next), out);
            parent = next;
        }
        assert_eq!(shared.mempool_len(), 0, "expired");
    }

    #[test]
    fn execute_checks_the_state_root() {
        let genesis = Block::genesis(Counter.root(&0));
        let mut block = child(&genesis, &[7, 8]);
        assert_eq!(execute(&Counter, &0, &block).unwrap(), 2);
        block.header.state_root = [9; 32];
        assert!(matches!(
            execute(&Counter, &0, &block),
            Err(Error::StateRoot { height: 1, .. })
        ));
    }
}
