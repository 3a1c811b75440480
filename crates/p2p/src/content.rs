//! Content the node offers to peers, addressed by BLAKE3 hash, and the chunk plan that checks
//! what comes back from a fetch.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use neuroshard_primitives::Hash;

use crate::{Error, Result};

/// Smallest chunk size a network may be configured with (tests use small chunks).
pub const MIN_CHUNK: usize = 64 * 1024;
/// Largest chunk size: also the largest chunk a peer may send us.
pub const MAX_CHUNK: usize = 16 * 1024 * 1024;
/// The default chunk size.
pub const DEFAULT_CHUNK: usize = 8 * 1024 * 1024;

/// What the network serves to peers that ask for a payload by hash.
///
/// The network calls [`ContentProvider::get`] on its own task for every chunk request, so it
/// must be quick (an in-memory lookup). [`MemoryStore`] is the usual implementation.
pub trait ContentProvider: Send + Sync + 'static {
    /// The bytes whose BLAKE3 hash is `key`, if this node holds them.
    fn get(&self, key: &Hash) -> Option<Arc<Vec<u8>>>;
}

/// An in-memory content store the node fills with what it announces (pseudo-gradients,
/// checkpoints, shards). Cheap to clone: clones share the same map.
#[derive(Clone, Default)]
pub struct MemoryStore {
    items: Arc<RwLock<HashMap<Hash, Arc<Vec<u8>>>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MemoryStore({} items)", self.read().len())
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers `bytes` to peers and returns their hash, the key peers fetch them by.
    pub fn insert(&self, bytes: Vec<u8>) -> Hash {
        let key = Hash::of(&bytes);
        self.write().insert(key, Arc::new(bytes));
        key
    }

    /// Stops offering `key`; returns whether it was held.
    pub fn remove(&self, key: &Hash) -> bool {
        self.write().remove(key).is_some()
    }

    /// Keys currently offered.
    pub fn keys(&self) -> Vec<Hash> {
        self.read().keys().copied().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Hash, Arc<Vec<u8>>>> {
        // A panic while holding the lock cannot leave the map half-written: every write is one
        // insert or remove. Recover the guard instead of propagating the poison.
        self.items
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Hash, Arc<Vec<u8>>>> {
        self.items
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl ContentProvider for MemoryStore {
    fn get(&self, key: &Hash) -> Option<Arc<Vec<u8>>> {
        self.read().get(key).cloned()
    }
}

/// The bytes of chunk `index` of `bytes` cut into `chunk_size` pieces, or `None` past the end.
/// An empty payload has one empty chunk.
pub(crate) fn chunk_of(bytes: &[u8], chunk_size: usize, index: u32) -> Option<&[u8]> {
    let start = (index as usize).checked_mul(chunk_size)?;
    if start > bytes.len() || (start == bytes.len() && index > 0) {
        return None;
    }
    Some(&bytes[start..(start + chunk_size).min(bytes.len())])
}

/// How a payload is cut, learned from its first chunk, used to check every other chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkPlan {
    /// Total payload length.
    pub(crate) total: u64,
    /// Length of every chunk but the last.
    pub(crate) chunk_size: u64,
    /// Number of chunks.
    pub(crate) count: u32,
}

impl ChunkPlan {
    /// The plan implied by a first chunk of `first_len` bytes out of `total`, refused when the
    /// sizes are impossible or over `max_payload`.
    pub(crate) fn from_first(
        total: u64,
        first_len: usize,
        max_payload: u64,
    ) -> Result<Self, String> {
        let first = first_len as u64;
        if total > max_payload {
            return Err(format!(
                "claims {total} bytes, over the {max_payload}-byte cap"
            ));
        }
        if first > total || first > MAX_CHUNK as u64 {
            return Err(format!(
                "first chunk of {first} bytes for a {total}-byte payload"
            ));
        }
        if first < total && first < MIN_CHUNK as u64 {
            return Err(format!(
                "first chunk of {first} bytes is under the {MIN_CHUNK}-byte minimum"
            ));
        }
        let count = if total == 0 { 1 } else { total.div_ceil(first) };
        let count = u32::try_from(count).map_err(|_| format!("{count} chunks is too many"))?;
        Ok(Self {
            total,
            chunk_size: first,
            count,
        })
    }

    /// The length chunk `index` must have.
    pub(crate) fn expected_len(&self, index: u32) -> u64 {
        let start = u64::from(index) * self.chunk_size;
        self.chunk_size.min(self.total.saturating_sub(start))
    }

    /// Checks chunk `index` against the plan.
    pub(crate) fn check(&self, index: u32, total: u64, len: usize) -> Result<(), String> {
        if total != self.total {
            return Err(format!(
                "chunk {index} claims {total} bytes in all, not {}",
                self.total
            ));
        }
        if len as u64 != self.expected_len(index) {
            return Err(format!(
                "chunk {index} has {len} bytes, not {}",
                self.expected_len(index)
            ));
        }
        Ok(())
    }
}

/// Turns a plan failure into the error the caller sees.
pub(crate) fn bad_payload(peer: &libp2p::PeerId, key: Hash, reason: String) -> Error {
    Error::BadPayload {
        peer: peer.to_string(),
        key,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn store_keys_by_hash() {
        let store = MemoryStore::new();
        let key = store.insert(b"abc".to_vec());
        assert_eq!(key, Hash::of(b"abc"));
        assert_eq!(store.get(&key).unwrap().as_slice(), b"abc");
        assert!(store.remove(&key));
        assert!(store.get(&key).is_none());
    }

    #[test]
    fn plan_refuses_impossible_sizes() {
        assert!(ChunkPlan::from_first(10, 11, 100).is_err());
        assert!(ChunkPlan::from_first(1000, 10, 100).is_err());
        assert!(ChunkPlan::from_first(10, 0, 100).is_err());
        assert!(
            ChunkPlan::from_first(1 << 30, 1, u64::MAX).is_err(),
            "tiny chunks refused"
        );
        let c = MIN_CHUNK as u64;
        let plan = ChunkPlan::from_first(2 * c + 2, MIN_CHUNK, u64::MAX).unwrap();
        assert_eq!(plan.count, 3);
        assert!(plan.check(2, 2 * c + 2, 2).is_ok());
        assert!(plan.check(2, 2 * c + 2, 4).is_err());
        assert!(plan.check(1, 2 * c + 3, MIN_CHUNK).is_err());
        assert_eq!(ChunkPlan::from_first(0, 0, 100).unwrap().count, 1);
    }

    proptest! {
        #[test]
        fn chunks_reassemble_and_fit_the_plan(len in 0usize..300_000, chunk in MIN_CHUNK..MIN_CHUNK + 700) {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let first = chunk_of(&bytes, chunk, 0).unwrap();
            let plan = ChunkPlan::from_first(len as u64, first.len(), u64::MAX).unwrap();
            let mut joined = Vec::new();
            for index in 0..plan.count {
                let piece = chunk_of(&bytes, chunk, index).unwrap();
                prop_assert!(plan.check(index, len as u64, piece.len()).is_ok());
                joined.extend_from_slice(piece);
            }
            prop_assert!(chunk_of(&bytes, chunk, plan.count).is_none());
            prop_assert_eq!(joined, bytes);
        }
    }
}
