//! Which training shards a node works on in a round: rendezvous hashing, pure and seeded.
//!
//! Every shard gets a score `BLAKE3(genesis id, round, node, shard)` read as a `u64`, and the
//! node takes the `per_node` shards with the lowest scores. Anyone can recompute another node's
//! assignment; it changes every round; and since each node's choice is an independent uniform
//! subset, shard loads over many nodes are binomial around `nodes * per_node / n_shards`.

use neuroshard_primitives::{Hash, NodeId};

/// The shards (indices into the manifest's training shards) that `node` trains on in `round`,
/// lowest score first. Gives every shard when `per_node >= n_shards`.
pub fn assign(
    genesis_id: Hash,
    round: u64,
    node: NodeId,
    n_shards: usize,
    per_node: usize,
) -> Vec<usize> {
    let mut prefix = blake3::Hasher::new();
    prefix.update(b"neuroshard-data/assign");
    prefix.update(&genesis_id.0);
    prefix.update(&round.to_le_bytes());
    prefix.update(&node.0);
    let mut scored: Vec<(u64, usize)> = (0..n_shards)
        .map(|shard| {
            let mut hasher = prefix.clone();
            hasher.update(&(shard as u64).to_le_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
            (u64::from_le_bytes(first), shard)
        })
        .collect();
    scored.sort_unstable();
    scored
        .into_iter()
        .take(per_node)
        .map(|(_, shard)| shard)
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn nodes(count: usize) -> Vec<NodeId> {
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        (0..count)
            .map(|_| {
                let mut id = [0u8; 32];
                rng.fill_bytes(&mut id);
                NodeId(id)
            })
            .collect()
    }

    /// Loads over 1 000 random node ids: the most loaded shard carries at most 1.5× the least
    /// loaded one (expected load 125 per shard, binomial spread about ±11).
    #[test]
    fn load_is_even_within_a_factor_of_1_5() {
        let genesis = Hash::of(b"genesis");
        for round in 0..5 {
            let mut load = [0usize; 16];
            for node in nodes(1000) {
                let shards = assign(genesis, round, node, 16, 2);
                assert_eq!(shards.len(), 2);
                assert_ne!(shards[0], shards[1]);
                for shard in shards {
                    load[shard] += 1;
                }
            }
            let (min, max) = (*load.iter().min().unwrap(), *load.iter().max().unwrap());
            assert!(max * 2 <= min * 3, "round {round}: loads {load:?}");
        }
    }

    #[test]
    fn assignment_changes_every_round_and_is_reproducible() {
        let genesis = Hash::of(b"genesis");
        let node = nodes(1)[0];
        let rounds: Vec<Vec<usize>> = (0..10).map(|r| assign(genesis, r, node, 64, 4)).collect();
        for pair in rounds.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
        assert_eq!(rounds[3], assign(genesis, 3, node, 64, 4));
        assert_ne!(rounds[3], assign(Hash::of(b"other"), 3, node, 64, 4));
    }

    #[test]
    fn small_and_degenerate_sizes() {
        let node = nodes(1)[0];
        let mut all = assign(Hash::default(), 0, node, 3, 10);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2]);
        assert!(assign(Hash::default(), 0, node, 0, 2).is_empty());
    }
}
