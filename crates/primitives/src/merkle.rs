//! A Merkle tree over hashes: its root, and inclusion proofs for single leaves (shards of the
//! Genesis manifest, checkpoints of a training chain).
//!
//! # Shape
//!
//! 1. The leaves are hashes, in the caller's order (the shards' hashes in shard order).
//! 2. Each level pairs neighbours left to right: `parent = Hash::pair(left, right)`.
//! 3. **Odd node:** when a level has an odd count, its last node is carried up unchanged (it is
//!    *not* paired with itself, so no two different leaf lists share a root the way Bitcoin's
//!    duplicate-last-node rule allows).
//! 4. The root of one leaf is that leaf; the root of no leaves is the all-zero hash.
//!
//! A proof carries the leaf count, so its path length is fixed by (index, count): an inner node
//! cannot be passed off as a leaf by a shorter proof.

use crate::Hash;
use serde::{Deserialize, Serialize};

/// The Merkle root of `leaves` (see the module docs for the shape).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::default();
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => Hash::pair(left, right),
            [odd] => *odd,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

/// Proof that one leaf is at `index` in a tree of `n_leaves` leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MerkleProof {
    /// The leaf's position.
    pub index: usize,
    /// How many leaves the tree has.
    pub n_leaves: usize,
    /// The sibling at each level where the node has one, bottom up.
    pub siblings: Vec<Hash>,
}

impl MerkleProof {
    /// The proof for leaf `index` of `leaves`, or `None` when `index` is out of range.
    pub fn prove(leaves: &[Hash], index: usize) -> Option<Self> {
        if index >= leaves.len() {
            return None;
        }
        let mut siblings = Vec::new();
        let mut level = leaves.to_vec();
        let mut at = index;
        while level.len() > 1 {
            if let Some(sibling) = sibling_of(at, level.len()) {
                siblings.push(level[sibling]);
            }
            level = next_level(&level);
            at /= 2;
        }
        Some(Self {
            index,
            n_leaves: leaves.len(),
            siblings,
        })
    }

    /// Whether `leaf` at this proof's position hashes up to `root`.
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> bool {
        self.root_of(leaf).is_some_and(|computed| computed == *root)
    }

    /// The root `leaf` at this proof's position hashes up to, or `None` when the proof's shape
    /// does not fit its position and leaf count.
    pub fn root_of(&self, leaf: &Hash) -> Option<Hash> {
        if self.index >= self.n_leaves {
            return None;
        }
        let mut node = *leaf;
        let mut siblings = self.siblings.iter();
        let (mut at, mut width) = (self.index, self.n_leaves);
        while width > 1 {
            if let Some(sibling_at) = sibling_of(at, width) {
                let sibling = siblings.next()?;
                node = if sibling_at < at {
                    Hash::pair(sibling, &node)
                } else {
                    Hash::pair(&node, sibling)
                };
            }
            at /= 2;
            width = width.div_ceil(2);
        }
        siblings.next().is_none().then_some(node)
    }
}

/// The index of `at`'s sibling in a level of `width` nodes, if it has one.
fn sibling_of(at: usize, width: usize) -> Option<usize> {
    let sibling = at ^ 1;
    (sibling < width).then_some(sibling)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| Hash::of(&i.to_le_bytes())).collect()
    }

    #[test]
    fn small_trees_have_the_documented_shape() {
        let l = leaves(3);
        assert_eq!(merkle_root(&[]), Hash::default());
        assert_eq!(merkle_root(&l[..1]), l[0]);
        assert_eq!(merkle_root(&l[..2]), Hash::pair(&l[0], &l[1]));
        assert_eq!(
            merkle_root(&l),
            Hash::pair(&Hash::pair(&l[0], &l[1]), &l[2])
        );
    }

    #[test]
    fn duplicating_the_last_leaf_changes_the_root() {
        let l = leaves(3);
        let mut dup = l.clone();
        dup.push(l[2]);
        assert_ne!(merkle_root(&l), merkle_root(&dup));
    }

    #[test]
    fn tampered_proofs_fail() {
        let l = leaves(7);
        let root = merkle_root(&l);
        let proof = MerkleProof::prove(&l, 4).unwrap();
        assert!(proof.verify(&l[4], &root));
        assert!(!proof.verify(&l[5], &root), "wrong leaf");
        let mut bad = proof.clone();
        bad.siblings[0].0[0] ^= 1;
        assert!(!bad.verify(&l[4], &root), "flipped sibling bit");
        let mut moved = proof.clone();
        moved.index = 5;
        assert!(!moved.verify(&l[4], &root), "wrong index");
        let mut short = proof.clone();
        short.siblings.pop();
        assert!(!short.verify(&l[4], &root), "missing sibling");
        let mut long = proof.clone();
        long.siblings.push(l[0]);
        assert!(!long.verify(&l[4], &root), "extra sibling");
        // Where the leaf count matters (the carried-up last leaf), a wrong one fails.
        let mut resized = MerkleProof::prove(&l, 6).unwrap();
        assert!(resized.verify(&l[6], &root));
        resized.n_leaves = 8;
        assert!(!resized.verify(&l[6], &root), "wrong leaf count");
        assert!(MerkleProof::prove(&l, 7).is_none());
    }

    #[test]
    fn an_inner_node_is_not_a_leaf() {
        let l = leaves(4);
        let root = merkle_root(&l);
        let inner = Hash::pair(&l[0], &l[1]);
        let forged = MerkleProof {
            index: 0,
            n_leaves: 4,
            siblings: vec![Hash::pair(&l[2], &l[3])],
        };
        assert!(!forged.verify(&inner, &root));
    }

    proptest! {
        #[test]
        fn every_leaf_proves_against_the_root(n in 1usize..70, pick in 0usize..70) {
            let l = leaves(n);
            let index = pick % n;
            let root = merkle_root(&l);
            let proof = MerkleProof::prove(&l, index).unwrap();
            prop_assert!(proof.verify(&l[index], &root));
        }
    }
}
