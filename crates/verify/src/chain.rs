//! A training job as a chain: checkpoints every k inner steps, the losses between them, and the
//! Merkle root an announcement commits to.
//!
//! Leaf j (0 ≤ j ≤ S) holds the hash of the checkpoint after j segments and the per-step losses
//! of segment j − 1 (none for leaf 0); for a pipeline stage also the hash of segment j − 1's
//! batches and frames ([`crate::stage`]). Leaf 0's parameters are the round's global model; leaf S's
//! are the ones the Δ was taken from: Δ = θ_start − θ_S.

use neuroshard_primitives::{Hash, MerkleProof, merkle_root};
use serde::{Deserialize, Serialize};

use crate::{Checkpoint, Error, Result};

/// How a job of `steps` inner steps is cut into segments of `len` steps (the last one may be
/// shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segments {
    /// Inner steps H of the job.
    pub steps: u64,
    /// Steps per segment k.
    pub len: u64,
}

impl Segments {
    /// At most `segments` segments of equal length over `steps` inner steps.
    pub fn new(steps: u64, segments: u64) -> Result<Self> {
        if steps == 0 || segments == 0 {
            return Err(Error::InvalidConfig(
                "a chain needs at least one inner step and one segment".into(),
            ));
        }
        Ok(Self {
            steps,
            len: steps.div_ceil(segments),
        })
    }

    /// The number of segments S.
    pub fn count(&self) -> u64 {
        self.steps.div_ceil(self.len)
    }

    /// The first step of segment `j` (counted within the job) and its length.
    pub fn segment(&self, j: u64) -> (u64, u64) {
        let first = j.saturating_mul(self.len).min(self.steps);
        (first, self.len.min(self.steps - first))
    }
}

/// One leaf of a chain: a checkpoint's hash and the losses of the segment that ended there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaf {
    /// Hash of the checkpoint's wire form.
    pub checkpoint: Hash,
    /// The mean loss of each inner step of the segment that ended at this checkpoint, in order
    /// (`NaN` for a pipeline stage that does not see the loss).
    pub losses: Vec<f32>,
    /// For a pipeline stage, the hash of the segment's batches and frames
    /// ([`crate::stage::segment_hash`]); the zero hash for a whole model's job and for leaf 0.
    pub work: Hash,
}

impl Leaf {
    /// The Merkle leaf for position `index`.
    pub fn hash(&self, index: u64) -> Hash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"neuroshard-verify/leaf");
        hasher.update(&index.to_le_bytes());
        hasher.update(&self.checkpoint.0);
        hasher.update(&(self.losses.len() as u64).to_le_bytes());
        for loss in &self.losses {
            hasher.update(&loss.to_le_bytes());
        }
        hasher.update(&self.work.0);
        Hash(*hasher.finalize().as_bytes())
    }
}

/// What a contribution commits to, carried in its announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// How the job was cut.
    pub segments: Segments,
    /// The Merkle root over the S + 1 leaves.
    pub root: Hash,
    /// Hash of the error-feedback residual added to Δ before encoding (little-endian f32; the
    /// hash of no values when the residual was empty).
    pub residual_before: Hash,
    /// Hash of the residual the encoding left.
    pub residual_after: Hash,
}

/// A chain as it is recorded: one leaf per checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    leaves: Vec<Leaf>,
}

impl Chain {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// A chain of the given leaves.
    pub fn from_leaves(leaves: Vec<Leaf>) -> Self {
        Self { leaves }
    }

    /// Appends the checkpoint reached after the segment with `losses` (none for the start) and,
    /// for a pipeline stage, the hash of the segment's work (zero otherwise).
    pub fn push(&mut self, checkpoint: &Checkpoint, losses: Vec<f32>, work: Hash) {
        self.leaves.push(Leaf {
            checkpoint: checkpoint.hash(),
            losses,
            work,
        });
    }

    /// The leaves so far.
    pub fn leaves(&self) -> &[Leaf] {
        &self.leaves
    }

    /// The Merkle root over the leaves.
    pub fn root(&self) -> Hash {
        merkle_root(&self.leaf_hashes())
    }

    /// Leaf `index` with its inclusion proof, if it exists.
    pub fn open(&self, index: u64) -> Option<(Leaf, MerkleProof)> {
        let at = usize::try_from(index).ok()?;
        let proof = MerkleProof::prove(&self.leaf_hashes(), at)?;
        Some((self.leaves[at].clone(), proof))
    }

    /// The losses of every step, in order.
    pub fn losses(&self) -> impl Iterator<Item = f32> + '_ {
        self.leaves
            .iter()
            .flat_map(|leaf| leaf.losses.iter().copied())
    }

    fn leaf_hashes(&self) -> Vec<Hash> {
        self.leaves
            .iter()
            .enumerate()
            .map(|(i, leaf)| leaf.hash(i as u64))
            .collect()
    }
}

/// The hash a commitment gives an error-feedback residual.
pub fn residual_hash(residual: &[f32]) -> Hash {
    Hash::of_f32(residual)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_job_exactly() {
        for (steps, wanted) in [(10, 4), (40, 40), (500, 40), (7, 10), (1, 1)] {
            let plan = Segments::new(steps, wanted).unwrap();
            assert!(plan.count() <= wanted);
            let covered: u64 = (0..plan.count()).map(|j| plan.segment(j).1).sum();
            assert_eq!(covered, steps, "{steps} steps in {wanted}");
            assert!((0..plan.count()).all(|j| plan.segment(j).1 > 0));
        }
        assert!(Segments::new(0, 3).is_err() && Segments::new(3, 0).is_err());
    }

    #[test]
    fn an_opened_leaf_proves_against_the_root() {
        let mut chain = Chain::new();
        for i in 0..5 {
            let c = Checkpoint {
                step: i,
                adam_steps: i,
                params: vec![i as f32],
                m: vec![0.0],
                v: vec![0.0],
            };
            chain.push(&c, vec![i as f32; i as usize], Hash::default());
        }
        let root = chain.root();
        let (leaf, proof) = chain.open(3).unwrap();
        assert!(proof.verify(&leaf.hash(3), &root));
        assert!(!proof.verify(&leaf.hash(2), &root), "the index is bound");
        let mut forged = leaf.clone();
        forged.losses[0] += 1.0;
        assert!(!proof.verify(&forged.hash(3), &root));
        assert!(chain.open(5).is_none());
    }
}
