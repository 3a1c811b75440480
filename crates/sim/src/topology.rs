//! Who is up and who can reach whom: each node's life (offline, up, crashed, gone), a
//! generation that changes with every start and stop, and the sides of a partition.

use std::collections::BTreeMap;

use crate::churn::{Change, ChurnEvent};
use crate::{Error, Result};

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// Not joined yet.
    Offline,
    /// Running.
    Up,
    /// Crashed; may restart.
    Crashed,
    /// Left for good.
    Gone,
}

/// The liveness and reachability of every node.
#[derive(Debug)]
pub(crate) struct Topology {
    life: Vec<Life>,
    /// Bumped at every start and stop, so events of a node's earlier life are told apart.
    generation: Vec<u64>,
    /// The partition side of each node; everyone is on side 0 when healed.
    side: Vec<usize>,
}

impl Topology {
    /// `nodes` nodes, up except those the schedule joins later, on one side.
    pub(crate) fn new(nodes: usize, schedule: &[ChurnEvent]) -> Self {
        let mut life = vec![Life::Up; nodes];
        for event in schedule {
            if let Change::Join(node) = event.change {
                life[node] = Life::Offline;
            }
        }
        Self {
            life,
            generation: vec![0; nodes],
            side: vec![0; nodes],
        }
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> usize {
        self.life.len()
    }

    /// Whether `node` is running.
    pub(crate) fn is_up(&self, node: usize) -> bool {
        self.life[node] == Life::Up
    }

    /// The current generation of `node`.
    pub(crate) fn generation(&self, node: usize) -> u64 {
        self.generation[node]
    }

    /// Whether `node` is up in the generation an event was scheduled in.
    pub(crate) fn is_current(&self, node: usize, generation: u64) -> bool {
        self.is_up(node) && self.generation[node] == generation
    }

    /// Whether a frame from `from` gets to `to` now.
    pub(crate) fn reachable(&self, from: usize, to: usize) -> bool {
        self.is_up(from) && self.is_up(to) && self.side[from] == self.side[to]
    }

    /// The up nodes `node` reaches, itself included, in index order.
    pub(crate) fn peers(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |peer| *peer == node || self.reachable(node, *peer))
    }

    /// The up nodes on the network's side, ascending: the side with the most up nodes, or
    /// among equals the one holding the lowest-numbered up node.
    pub(crate) fn network(&self) -> Vec<usize> {
        let up = || (0..self.len()).filter(|node| self.is_up(*node));
        let mut sides: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for node in up() {
            sides.entry(self.side[node]).or_insert((0, node)).0 += 1;
        }
        let network = sides
            .into_iter()
            .max_by(|(_, (count_a, first_a)), (_, (count_b, first_b))| {
                count_a.cmp(count_b).then(first_b.cmp(first_a))
            })
            .map(|(side, _)| side);
        up().filter(|node| Some(self.side[*node]) == network)
            .collect()
    }

    /// Applies a change; a node that cannot make it (a restart of a node that did not crash,
    /// say) is a mistake in the schedule.
    pub(crate) fn apply(&mut self, change: &Change) -> Result<()> {
        let (node, from, to) = match change {
            Change::Join(node) => (*node, Life::Offline, Life::Up),
            Change::Leave(node) => (*node, Life::Up, Life::Gone),
            Change::Crash(node) => (*node, Life::Up, Life::Crashed),
            Change::Restart(node) => (*node, Life::Crashed, Life::Up),
            Change::Partition(sides) => {
                let cut_off = sides.len();
                for (node, side) in self.side.iter_mut().enumerate() {
                    *side = sides
                        .iter()
                        .position(|members| members.contains(&node))
                        .unwrap_or(cut_off + node);
                }
                return Ok(());
            }
            Change::Heal => {
                self.side.fill(0);
                return Ok(());
            }
        };
        if self.life[node] != from {
            return Err(Error::InvalidConfig(format!(
                "churn: the {change} comes while the node is {:?}; order the schedule so it is {from:?}",
                self.life[node]
            )));
        }
        self.life[node] = to;
        self.generation[node] += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lives_sides_and_the_network_side() {
        let schedule = [ChurnEvent::at_round(3, Change::Join(3))];
        let mut topology = Topology::new(4, &schedule);
        assert!(!topology.is_up(3) && topology.network() == vec![0, 1, 2]);
        assert!(topology.apply(&Change::Restart(3)).is_err());
        topology.apply(&Change::Join(3)).unwrap();
        assert!(topology.is_current(3, 1) && !topology.is_current(3, 0));
        topology
            .apply(&Change::Partition(vec![vec![0], vec![1, 2]]))
            .unwrap();
        assert!(topology.reachable(1, 2) && !topology.reachable(0, 1));
        assert!(!topology.reachable(3, 0) && !topology.reachable(3, 1));
        assert_eq!(topology.peers(1).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(topology.network(), vec![1, 2]);
        topology.apply(&Change::Crash(2)).unwrap();
        // Every side holds one up node now: the one with node 0 is the network's.
        assert_eq!(topology.network(), vec![0]);
        topology.apply(&Change::Heal).unwrap();
        assert!(topology.reachable(0, 3) && !topology.reachable(0, 2));
    }
}
