//! The attackers' side of a run: who attacks, what each has learnt, and forging at send time.
//!
//! An attacker trains honestly. Its honest Δ is recorded with the simulated time it became
//! available; when the attacker's training "finishes", it forges its Δ from what it knows by
//! then: its own honest Δ, those of its colluding group that are ready, its own previous Δ, and
//! the latest Δ an honest node announced.

use std::collections::BTreeMap;

use neuroshard_node::{Round, Timestamp};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::SimConfig;
use crate::adversary::{Attack, AttackKind, Knowledge, forge};
use crate::rng::RngTree;

/// Roles and the attackers' shared memory.
#[derive(Debug)]
pub(crate) struct Byzantine {
    attack: Attack,
    /// The colluding group of each node, `None` for honest nodes.
    group: Vec<Option<usize>>,
    /// Attackers' honest Δs per round, with the time each became available.
    honest: BTreeMap<(Round, usize), (Timestamp, Vec<f32>)>,
    /// Each attacker's honest Δ from its previous round.
    stale: BTreeMap<usize, Vec<f32>>,
    /// The latest Δ an honest node announced, and when.
    victim: Option<(Timestamp, Vec<f32>)>,
    rng: ChaCha8Rng,
}

impl Byzantine {
    /// Picks `byzantine` of `nodes` at random (seeded) and splits them into `groups`.
    pub(crate) fn new(
        nodes: usize,
        byzantine: usize,
        groups: usize,
        attack: Attack,
        mut rng: ChaCha8Rng,
    ) -> Self {
        let mut order: Vec<usize> = (0..nodes).collect();
        order.shuffle(&mut rng);
        let mut group = vec![None; nodes];
        if attack.kind != AttackKind::None {
            for (k, node) in order.into_iter().take(byzantine).enumerate() {
                group[node] = Some(k % groups.max(1));
            }
        }
        Self {
            attack,
            group,
            honest: BTreeMap::new(),
            stale: BTreeMap::new(),
            victim: None,
            rng,
        }
    }

    /// The roles a run of `config` draws from its seed.
    pub(crate) fn for_config(config: &SimConfig) -> Self {
        Self::new(
            config.nodes,
            config.byzantine,
            config.groups,
            config.attack,
            RngTree::new(config.seed).stream("byzantine", 0),
        )
    }

    /// The attackers' indices, ascending.
    pub(crate) fn attackers(&self) -> Vec<usize> {
        (0..self.group.len())
            .filter(|node| self.is_attacker(*node))
            .collect()
    }

    /// Whether node `node` attacks.
    pub(crate) fn is_attacker(&self, node: usize) -> bool {
        self.group[node].is_some()
    }

    /// Notes a Δ computed (honestly) by `node` for `round`, available from `ready`.
    pub(crate) fn trained(&mut self, node: usize, round: Round, ready: Timestamp, delta: &[f32]) {
        if self.is_attacker(node) {
            self.honest.insert((round, node), (ready, delta.to_vec()));
            self.honest.retain(|(r, _), _| *r + 1 >= round);
        }
    }

    /// Notes a Δ an honest node announced at `at` (a replay attacker copies the latest).
    pub(crate) fn announced(&mut self, at: Timestamp, delta: &[f32]) {
        self.victim = Some((at, delta.to_vec()));
    }

    /// The Δ attacker `node` sends for `round` at `now`, in place of its honest `own`.
    pub(crate) fn forge(
        &mut self,
        node: usize,
        round: Round,
        now: Timestamp,
        own: &[f32],
    ) -> Vec<f32> {
        let group_id = self.group[node].expect("only attackers forge");
        let group: Vec<&[f32]> = self
            .honest
            .iter()
            .filter(|((r, member), (ready, _))| {
                *r == round && self.group[*member] == Some(group_id) && *ready <= now
            })
            .map(|(_, (_, delta))| delta.as_slice())
            .collect();
        let group = if group.is_empty() { vec![own] } else { group };
        let knows = Knowledge {
            own,
            group: &group,
            stale: self.stale.get(&node).map(Vec::as_slice),
            victim: self
                .victim
                .as_ref()
                .filter(|(at, _)| *at <= now)
                .map(|(_, d)| d.as_slice()),
        };
        let forged = forge(self.attack, &knows, &mut self.rng);
        self.stale.insert(node, own.to_vec());
        forged
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn picks_the_requested_number_of_attackers() {
        let attack = Attack::with_defaults(AttackKind::SignFlip, 8, 3);
        let byz = Byzantine::new(8, 3, 2, attack, ChaCha8Rng::seed_from_u64(0));
        assert_eq!((0..8).filter(|n| byz.is_attacker(*n)).count(), 3);
        let none = Attack::with_defaults(AttackKind::None, 8, 3);
        let honest = Byzantine::new(8, 3, 2, none, ChaCha8Rng::seed_from_u64(0));
        assert!((0..8).all(|n| !honest.is_attacker(n)));
    }

    #[test]
    fn colluders_share_what_is_ready() {
        let attack = Attack {
            kind: AttackKind::Ipm,
            strength: 1.0,
        };
        let mut byz = Byzantine::new(2, 2, 1, attack, ChaCha8Rng::seed_from_u64(0));
        byz.trained(0, 0, Timestamp(1), &[2.0]);
        byz.trained(1, 0, Timestamp(5), &[4.0]);
        // At time 2 only node 0's Δ is ready: −1 × 2.
        assert_eq!(byz.forge(1, 0, Timestamp(2), &[4.0]), vec![-2.0]);
        // At time 5 both are: −1 × mean(2, 4).
        assert_eq!(byz.forge(0, 0, Timestamp(5), &[2.0]), vec![-3.0]);
    }
}
