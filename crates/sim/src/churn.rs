//! Churn: nodes joining, leaving, crashing and restarting, and partitions that heal, as a
//! schedule of changes keyed to the rounds the network reaches.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use neuroshard_node::Round;

use crate::{Error, Result};

/// One change to who is up and who can reach whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A node that was never up comes up with the genesis model at round 0 and catches up from
    /// its peers. A node with a `Join` in the schedule starts offline.
    Join(usize),
    /// A node leaves for good; its peers drop it from their members at once.
    Leave(usize),
    /// A node stops and loses everything it held in memory; its peers see the connection drop.
    Crash(usize),
    /// A crashed node comes back from its checkpoint (its state after the last round it closed
    /// or installed), as a real node resumes, or from the genesis model if it had none.
    Restart(usize),
    /// The network splits into these sides; frames between sides are lost. A node on no side
    /// is cut off from everyone.
    Partition(Vec<Vec<usize>>),
    /// Every node can reach every other again.
    Heal,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Join(node) => write!(f, "join of node {node}"),
            Change::Leave(node) => write!(f, "leave of node {node}"),
            Change::Crash(node) => write!(f, "crash of node {node}"),
            Change::Restart(node) => write!(f, "restart of node {node}"),
            Change::Partition(sides) => write!(f, "partition into {sides:?}"),
            Change::Heal => f.write_str("heal"),
        }
    }
}

/// A change and when it happens: once the network has begun `round` (an honest node on the
/// network's side of any partition started it; round 0 begins with the run), plus `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChurnEvent {
    /// The round whose start the change waits for.
    pub round: Round,
    /// Simulated time from that start to the change (a change in the middle of a round).
    pub after: Duration,
    /// What changes.
    pub change: Change,
}

impl ChurnEvent {
    /// `change` as soon as the network begins `round`.
    pub fn at_round(round: Round, change: Change) -> Self {
        Self {
            round,
            after: Duration::ZERO,
            change,
        }
    }

    /// The same change `after` later than its round's start.
    pub fn after(self, after: Duration) -> Self {
        Self { after, ..self }
    }
}

/// Refuses a schedule that names nodes out of range or puts a node on two sides.
pub(crate) fn validate(schedule: &[ChurnEvent], nodes: usize) -> Result<()> {
    for event in schedule {
        let named: Vec<usize> = match &event.change {
            Change::Join(node)
            | Change::Leave(node)
            | Change::Crash(node)
            | Change::Restart(node) => {
                vec![*node]
            }
            Change::Partition(sides) => sides.concat(),
            Change::Heal => Vec::new(),
        };
        let distinct: BTreeSet<usize> = named.iter().copied().collect();
        if named.iter().any(|node| *node >= nodes) || distinct.len() != named.len() {
            return Err(Error::InvalidConfig(format!(
                "churn: the {} names a node twice or one not among the {nodes} nodes",
                event.change
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_nodes_and_overlapping_sides() {
        let join = |node| ChurnEvent::at_round(1, Change::Join(node));
        assert!(validate(&[join(2)], 3).is_ok());
        assert!(validate(&[join(3)], 3).is_err());
        let split = |sides| vec![ChurnEvent::at_round(1, Change::Partition(sides))];
        assert!(validate(&split(vec![vec![0, 1], vec![2]]), 3).is_ok());
        assert!(validate(&split(vec![vec![0, 1], vec![1, 2]]), 3).is_err());
        let later = join(1).after(Duration::from_millis(5));
        assert_eq!((later.round, later.after), (1, Duration::from_millis(5)));
    }
}
