//! An in-memory [`BatchSource`] over one token vector, for tests and small experiments.

use neuroshard_primitives::{Batch, BatchSource, Hash};

use crate::{Error, Result};

/// Batches cut from one token vector at pseudo-random offsets keyed by a seed and the batch
/// index, so `batch(i)` is the same every time it is asked for.
#[derive(Debug, Clone)]
pub struct InMemorySource {
    tokens: Vec<u32>,
    seed: u64,
}

impl InMemorySource {
    /// A source over `tokens`, with row offsets drawn from `seed`.
    pub fn new(tokens: Vec<u32>, seed: u64) -> Self {
        Self { tokens, seed }
    }

    /// A hash naming the tokens and seed, for a checkpoint's data identity.
    pub fn identity(&self) -> Hash {
        let mut bytes = self.seed.to_le_bytes().to_vec();
        bytes.extend(self.tokens.iter().flat_map(|t| t.to_le_bytes()));
        Hash::of(&bytes)
    }
}

/// SplitMix64: a tiny, well-mixed hash from one `u64` to another.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl BatchSource for InMemorySource {
    type Error = Error;

    fn batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch> {
        let row = seq + 1;
        if self.tokens.len() < row {
            return Err(Error::CorpusTooShort {
                tokens: self.tokens.len(),
                needed: row,
            });
        }
        let starts = (self.tokens.len() - row + 1) as u64;
        let mut out = Vec::with_capacity(batch * row);
        for r in 0..batch as u64 {
            let key = splitmix64(self.seed ^ splitmix64(index.wrapping_mul(1 << 20) ^ r));
            let start = (key % starts) as usize;
            out.extend_from_slice(&self.tokens[start..start + row]);
        }
        Ok(Batch::new(out, batch, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_addressed_by_index() {
        let source = InMemorySource::new((0..1000).collect(), 3);
        let a = source.batch(5, 4, 16).unwrap();
        assert_eq!(a, source.batch(5, 4, 16).unwrap());
        assert_ne!(a, source.batch(6, 4, 16).unwrap());
        assert_eq!(a.tokens.len(), 4 * 17);
        // Rows are contiguous windows of the corpus.
        for row in a.tokens.chunks(17) {
            assert!(row.windows(2).all(|w| w[1] == w[0] + 1));
        }
    }

    #[test]
    fn a_corpus_shorter_than_a_row_is_an_error() {
        let source = InMemorySource::new(vec![1, 2, 3], 0);
        assert!(matches!(
            source.batch(0, 1, 3),
            Err(Error::CorpusTooShort { .. })
        ));
        assert!(source.batch(0, 1, 2).is_ok());
    }

    #[test]
    fn identity_depends_on_tokens_and_seed() {
        let a = InMemorySource::new(vec![1, 2, 3], 0);
        assert_eq!(
            a.identity(),
            InMemorySource::new(vec![1, 2, 3], 0).identity()
        );
        assert_ne!(
            a.identity(),
            InMemorySource::new(vec![1, 2, 4], 0).identity()
        );
        assert_ne!(
            a.identity(),
            InMemorySource::new(vec![1, 2, 3], 1).identity()
        );
    }
}
