//! In-memory data for fast scenarios: a learnable synthetic language and per-node slices of it.

use std::convert::Infallible;
use std::sync::Arc;

use neuroshard_primitives::{Batch, BatchSource, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;
use crate::workload::DataPlan;

/// Successors each token may have in [`markov_corpus`]: few enough that a small model learns
/// the chain quickly, so loss curves separate honest from attacked runs within a few rounds.
const SUCCESSORS: usize = 3;

/// `len` tokens from a seeded sparse Markov chain over `vocab` ids: each token is followed by
/// one of a few fixed successors, the first far more often than the others. Its entropy is well
/// below `ln(vocab)`, so training visibly lowers the loss.
pub fn markov_corpus(vocab: usize, len: usize, seed: u64) -> Vec<u32> {
    assert!(vocab >= 2, "a corpus needs at least two token ids");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let next: Vec<[u32; SUCCESSORS]> = (0..vocab)
        .map(|_| std::array::from_fn(|_| rng.random_range(0..vocab as u32)))
        .collect();
    let mut tokens = Vec::with_capacity(len);
    let mut current = 0u32;
    for _ in 0..len {
        tokens.push(current);
        let pick = match rng.random_range(0..10) {
            0..7 => 0,
            7..9 => 1,
            _ => 2,
        };
        current = next[current as usize][pick];
    }
    tokens
}

/// Each node trains on its own contiguous slice of a token vector; validation uses a held-out
/// tail none of them sees.
#[derive(Debug, Clone)]
pub struct MemoryData {
    tokens: Arc<[u32]>,
    nodes: usize,
    val_start: usize,
}

impl MemoryData {
    /// Splits `tokens`: the last `val_fraction` for validation, the rest evenly over `nodes`.
    pub fn new(tokens: Vec<u32>, nodes: usize, val_fraction: f64) -> Self {
        assert!(nodes > 0, "memory data for at least one node");
        let val_start = ((tokens.len() as f64) * (1.0 - val_fraction)) as usize;
        Self {
            tokens: tokens.into(),
            nodes,
            val_start,
        }
    }
}

impl DataPlan for MemoryData {
    type Source = MemorySource;

    fn source(&self, node: usize, _id: NodeId) -> Result<MemorySource> {
        let share = self.val_start / self.nodes;
        Ok(MemorySource {
            tokens: self.tokens.clone(),
            start: node * share,
            len: share,
            salt: node as u64,
        })
    }

    fn val_batches(&self, count: usize, batch: usize, seq: usize) -> Result<Vec<Batch>> {
        let val = MemorySource {
            tokens: self.tokens.clone(),
            start: self.val_start,
            len: self.tokens.len() - self.val_start,
            salt: u64::MAX,
        };
        Ok((0..count as u64)
            .map(|i| {
                val.batch(i, batch, seq)
                    .unwrap_or_else(|never| match never {})
            })
            .collect())
    }
}

/// One slice of a token vector; batch `index` is a seeded pick of windows inside it.
#[derive(Debug, Clone)]
pub struct MemorySource {
    tokens: Arc<[u32]>,
    start: usize,
    len: usize,
    salt: u64,
}

impl BatchSource for MemorySource {
    type Error = Infallible;

    fn batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch, Infallible> {
        assert!(
            self.len > seq + 1,
            "a data slice holds at least one window of seq + 1 tokens"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(self.salt.rotate_left(32) ^ index);
        let mut tokens = Vec::with_capacity(batch * (seq + 1));
        for _ in 0..batch {
            let at = self.start + rng.random_range(0..self.len - seq - 1);
            tokens.extend_from_slice(&self.tokens[at..at + seq + 1]);
        }
        Ok(Batch::new(tokens, batch, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_seeded_and_in_range() {
        let a = markov_corpus(16, 1000, 1);
        assert_eq!(a, markov_corpus(16, 1000, 1));
        assert_ne!(a, markov_corpus(16, 1000, 2));
        assert!(a.iter().all(|t| *t < 16));
    }

    #[test]
    fn nodes_read_disjoint_slices_and_batches_are_addressed() {
        let data = MemoryData::new((0..1000).collect(), 4, 0.2);
        let id = NodeId([0; 32]);
        let first = data.source(0, id).unwrap().batch(3, 2, 8).unwrap();
        assert_eq!(first, data.source(0, id).unwrap().batch(3, 2, 8).unwrap());
        assert!(first.tokens.iter().all(|t| *t < 200));
        let last = data.source(3, id).unwrap().batch(3, 2, 8).unwrap();
        assert!(last.tokens.iter().all(|t| (600..800).contains(t)));
        let val = data.val_batches(2, 2, 8).unwrap();
        assert!(val.iter().flat_map(|b| &b.tokens).all(|t| *t >= 800));
    }
}
