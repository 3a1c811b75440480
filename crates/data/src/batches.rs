//! Batches read from shards: addressed by `(shard, offset, length)`, chosen by index.
//!
//! Training batch `index` draws each row at a pseudo-random window of the assigned shards,
//! from a ChaCha8 stream keyed by BLAKE3(`seed`, `index`), so anyone with the same shards
//! re-reads exactly the same rows. Validation batches walk fixed consecutive windows.

use neuroshard_primitives::{Batch, BatchSource};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::shard::TokenWidth;
use crate::{Error, Result};

/// A run of tokens: `length` tokens from `offset` in training (or validation) shard `shard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchAddress {
    /// The shard's index in its split of the manifest.
    pub shard: usize,
    /// The first token's position in the shard.
    pub offset: u64,
    /// How many tokens.
    pub length: u64,
}

/// One shard's bytes, already checked against the manifest.
#[derive(Debug, Clone)]
pub struct ShardData {
    index: usize,
    bytes: Vec<u8>,
    width: TokenWidth,
}

impl ShardData {
    /// Wraps the bytes of shard `index` (their hash is the caller's to check).
    pub fn new(index: usize, bytes: Vec<u8>, width: TokenWidth) -> Result<Self> {
        width.count(&format!("shard {index}"), &bytes)?;
        Ok(Self {
            index,
            bytes,
            width,
        })
    }

    /// Tokens in the shard.
    pub fn tokens(&self) -> u64 {
        (self.bytes.len() / self.width.bytes()) as u64
    }

    /// The tokens at `offset..offset + length`, or an error when out of range.
    pub fn read(&self, offset: u64, length: u64) -> Result<Vec<u32>> {
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= self.tokens());
        let Some(end) = end else {
            return Err(Error::BadSetting {
                field: "offset",
                reason: format!(
                    "{offset}+{length} runs past shard {} of {} tokens",
                    self.index,
                    self.tokens()
                ),
            });
        };
        Ok((offset as usize..end as usize)
            .map(|at| self.width.read(&self.bytes, at))
            .collect())
    }
}

/// Reads the tokens of an address from the shard list it refers to.
fn read(shards: &[ShardData], address: BatchAddress) -> Result<Vec<u32>> {
    let shard = shards
        .iter()
        .find(|s| s.index == address.shard)
        .ok_or_else(|| Error::BadSetting {
            field: "shard",
            reason: format!("shard {} is not loaded here", address.shard),
        })?;
    shard.read(address.offset, address.length)
}

/// Training batches over a set of shards (all of them, or a node's assignment).
#[derive(Debug, Clone)]
pub struct TrainBatches {
    shards: Vec<ShardData>,
    seed: u64,
}

impl TrainBatches {
    /// Batches over `shards` (in the given order), keyed by `seed`.
    pub fn new(shards: Vec<ShardData>, seed: u64) -> Self {
        Self { shards, seed }
    }

    /// The manifest indices of the shards drawn from.
    pub fn shard_indices(&self) -> Vec<usize> {
        self.shards.iter().map(|s| s.index).collect()
    }

    /// Where the rows of batch `index` come from: `batch` windows of `seq + 1` tokens.
    pub fn addresses(&self, index: u64, batch: usize, seq: usize) -> Result<Vec<BatchAddress>> {
        let row = seq as u64 + 1;
        // Window starts per shard: a shard of n tokens holds n - row + 1 of them.
        let starts: Vec<u64> = self
            .shards
            .iter()
            .map(|s| (s.tokens() + 1).saturating_sub(row))
            .collect();
        let total: u64 = starts.iter().sum();
        if total == 0 {
            return Err(Error::NotEnoughTokens {
                needed: row as usize,
            });
        }
        let mut key = blake3::Hasher::new();
        key.update(b"neuroshard-data/train-batch");
        key.update(&self.seed.to_le_bytes());
        key.update(&index.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(*key.finalize().as_bytes());
        let rows = (0..batch).map(|_| {
            // Multiply-shift maps a uniform u64 onto 0..total; the bias is below total / 2^64.
            let mut pick = ((u128::from(rng.next_u64()) * u128::from(total)) >> 64) as u64;
            let (slot, count) = starts
                .iter()
                .enumerate()
                .find(|&(_, &count)| {
                    let here = pick < count;
                    if !here {
                        pick -= count;
                    }
                    here
                })
                .expect("pick < total lands in some shard");
            debug_assert!(pick < *count);
            BatchAddress {
                shard: self.shards[slot].index,
                offset: pick,
                length: row,
            }
        });
        Ok(rows.collect())
    }

    /// The tokens at `address` (it must name a shard of this set).
    pub fn read(&self, address: BatchAddress) -> Result<Vec<u32>> {
        read(&self.shards, address)
    }
}

impl BatchSource for TrainBatches {
    type Error = Error;

    fn batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch> {
        let addresses = self.addresses(index, batch, seq)?;
        let mut tokens = Vec::with_capacity(batch * (seq + 1));
        for address in addresses {
            tokens.extend(self.read(address)?);
        }
        Ok(Batch::new(tokens, batch, seq))
    }
}

/// Validation batches: consecutive windows of `seq + 1` tokens at stride `seq` through each
/// validation shard, so every token but the first of a shard is a target exactly once per pass.
/// Batch `index` takes positions `index * batch ..` (wrapping around) of a fixed walk over the
/// windows that strides across the whole split.
#[derive(Debug, Clone)]
pub struct ValidationBatches {
    shards: Vec<ShardData>,
}

impl ValidationBatches {
    /// Batches over the validation shards, in order.
    pub fn new(shards: Vec<ShardData>) -> Self {
        Self { shards }
    }

    /// Windows per shard for sequence length `seq`.
    fn windows(&self, seq: usize) -> Vec<u64> {
        let seq = seq.max(1) as u64;
        self.shards
            .iter()
            .map(|s| s.tokens().saturating_sub(1) / seq)
            .collect()
    }

    /// How many batches cover every window once.
    pub fn n_batches(&self, batch: usize, seq: usize) -> u64 {
        let total: u64 = self.windows(seq).iter().sum();
        total.div_ceil(batch.max(1) as u64)
    }

    /// Where the rows of validation batch `index` come from.
    pub fn addresses(&self, index: u64, batch: usize, seq: usize) -> Result<Vec<BatchAddress>> {
        let windows = self.windows(seq);
        let total: u64 = windows.iter().sum();
        if total == 0 || seq == 0 {
            return Err(Error::NotEnoughTokens { needed: seq + 1 });
        }
        let first = index.wrapping_mul(batch as u64);
        let step = stride(total);
        let rows = (0..batch as u64).map(|r| {
            let position = first.wrapping_add(r) % total;
            let mut window = (u128::from(position) * u128::from(step) % u128::from(total)) as u64;
            let slot = windows
                .iter()
                .position(|&count| {
                    let here = window < count;
                    if !here {
                        window -= count;
                    }
                    here
                })
                .expect("window < total lands in some shard");
            BatchAddress {
                shard: self.shards[slot].index,
                offset: window * seq as u64,
                length: seq as u64 + 1,
            }
        });
        Ok(rows.collect())
    }
}

/// The step between consecutive validation windows: coprime with `total`, so every window comes
/// once per pass, and near the golden section of it, so that the first few batches (all a node
/// measures) sample the whole split rather than its first document.
fn stride(total: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut step = ((total as f64 * 0.618_033_988_75) as u64).max(1);
    while gcd(step, total) != 1 {
        step += 1;
    }
    step
}

impl BatchSource for ValidationBatches {
    type Error = Error;

    fn batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch> {
        let mut tokens = Vec::with_capacity(batch * (seq + 1));
        for address in self.addresses(index, batch, seq)? {
            tokens.extend(read(&self.shards, address)?);
        }
        Ok(Batch::new(tokens, batch, seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: usize, tokens: std::ops::Range<u32>) -> ShardData {
        let tokens: Vec<u32> = tokens.collect();
        ShardData::new(index, TokenWidth::U16.encode(&tokens), TokenWidth::U16).unwrap()
    }

    #[test]
    fn train_batches_are_deterministic_and_in_range() {
        let source = TrainBatches::new(vec![shard(3, 0..100), shard(5, 1000..1010)], 42);
        let a = source.batch(7, 16, 8).unwrap();
        assert_eq!(a, source.batch(7, 16, 8).unwrap());
        assert_ne!(a, source.batch(8, 16, 8).unwrap());
        assert_ne!(
            a,
            TrainBatches::new(source.shards.clone(), 43)
                .batch(7, 16, 8)
                .unwrap()
        );
        for row in a.tokens.chunks(9) {
            // Rows are consecutive runs inside one shard.
            assert!(row.windows(2).all(|w| w[1] == w[0] + 1), "{row:?}");
        }
        for address in source.addresses(7, 16, 8).unwrap() {
            assert!([3, 5].contains(&address.shard));
            assert!(address.offset + address.length <= if address.shard == 3 { 100 } else { 10 });
        }
    }

    #[test]
    fn every_window_start_can_be_drawn() {
        let source = TrainBatches::new(vec![shard(0, 0..12)], 1);
        let mut seen = std::collections::BTreeSet::new();
        for index in 0..200 {
            for a in source.addresses(index, 4, 9).unwrap() {
                seen.insert(a.offset);
            }
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn too_short_shards_are_an_error() {
        let source = TrainBatches::new(vec![shard(0, 0..5)], 1);
        assert!(matches!(
            source.batch(0, 1, 5),
            Err(Error::NotEnoughTokens { needed: 6 })
        ));
        assert!(
            source
                .read(BatchAddress {
                    shard: 0,
                    offset: 3,
                    length: 3
                })
                .is_err()
        );
    }

    #[test]
    fn a_few_validation_batches_span_the_whole_split() {
        let source = ValidationBatches::new(vec![shard(0, 0..4001)]);
        let windows = 1000;
        assert_eq!(source.n_batches(10, 4), 100);
        let first: Vec<u64> = source
            .addresses(0, 10, 4)
            .unwrap()
            .iter()
            .map(|a| a.offset / 4)
            .collect();
        let spread = first.iter().max().unwrap() - first.iter().min().unwrap();
        assert!(spread > windows / 2, "the first batch covers {first:?}");
        // Still every window once per pass.
        let mut all: Vec<u64> = (0..100)
            .flat_map(|i| source.addresses(i, 10, 4).unwrap())
            .map(|a| a.offset / 4)
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..windows).collect::<Vec<_>>());
    }

    #[test]
    fn validation_walks_fixed_windows_and_wraps() {
        let source = ValidationBatches::new(vec![shard(0, 0..9), shard(1, 100..105)]);
        // seq 4: shard 0 has windows at 0 and 4, shard 1 one window at 0.
        assert_eq!(source.n_batches(2, 4), 2);
        let first = source.batch(0, 2, 4).unwrap();
        assert_eq!(first.tokens, vec![0, 1, 2, 3, 4, 4, 5, 6, 7, 8]);
        let second = source.batch(1, 2, 4).unwrap();
        assert_eq!(second.tokens, vec![100, 101, 102, 103, 104, 0, 1, 2, 3, 4]);
    }
}
