//! A batch of token sequences and the trait every data source implements.

/// `batch` rows of `seq + 1` tokens each, row-major: row `r` predicts `tokens[r][1..]` from
/// `tokens[r][..seq]`. A batch decoded from a peer (serde) is not checked: see
/// [`Batch::is_well_formed`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    /// Row-major token ids, `batch * (seq + 1)` of them.
    pub tokens: Vec<u32>,
    /// Number of rows.
    pub batch: usize,
    /// Sequence length the model sees (each row holds one extra token for the last target).
    pub seq: usize,
}

impl Batch {
    /// Builds a batch, checking that `tokens` has `batch * (seq + 1)` entries.
    pub fn new(tokens: Vec<u32>, batch: usize, seq: usize) -> Self {
        assert_eq!(
            tokens.len(),
            batch * (seq + 1),
            "batch of {batch}x{seq} needs {} tokens",
            batch * (seq + 1)
        );
        Self { tokens, batch, seq }
    }

    /// Whether the batch is `batch` rows of `seq + 1` tokens below `vocab`, as a batch of that
    /// shape from a peer must be before anything indexes it.
    pub fn is_well_formed(&self, batch: usize, seq: usize, vocab: usize) -> bool {
        let rows = batch.checked_mul(seq.saturating_add(1));
        (self.batch, self.seq) == (batch, seq)
            && rows == Some(self.tokens.len())
            && self.tokens.iter().all(|&t| (t as usize) < vocab)
    }

    /// The model's inputs: the first `seq` tokens of each row, row-major.
    pub fn inputs(&self) -> Vec<u32> {
        self.rows()
            .flat_map(|row| row[..self.seq].iter().copied())
            .collect()
    }

    /// The targets: the last `seq` tokens of each row, row-major.
    pub fn targets(&self) -> Vec<u32> {
        self.rows()
            .flat_map(|row| row[1..].iter().copied())
            .collect()
    }

    /// Number of predicted tokens, `batch * seq`.
    pub fn n_tokens(&self) -> usize {
        self.batch * self.seq
    }

    fn rows(&self) -> impl Iterator<Item = &[u32]> {
        self.tokens.chunks_exact(self.seq + 1)
    }
}

/// Anything that yields training batches: the Genesis shards, or an in-memory corpus in tests.
///
/// Batches are addressed by index rather than drawn from a cursor: the same index always gives
/// the same tokens, so a resumed run, a re-executing verifier and a simulation replay all see
/// exactly the data the original run saw.
pub trait BatchSource {
    /// The error a source can fail with (I/O, a corrupt shard).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The `index`-th batch of `batch` rows of `seq + 1` tokens.
    fn batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch, Self::Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_targets_are_shifted_rows() {
        let batch = Batch::new(vec![1, 2, 3, 4, 5, 6], 2, 2);
        assert_eq!(batch.inputs(), vec![1, 2, 4, 5]);
        assert_eq!(batch.targets(), vec![2, 3, 5, 6]);
        assert_eq!(batch.n_tokens(), 4);
    }
}
