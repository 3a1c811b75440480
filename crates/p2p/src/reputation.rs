//! Peer reputation: misbehaviour costs points; past a threshold the peer is banned.
//!
//! Pure bookkeeping (no clock, no I/O): the driver reports offences and acts on the verdict.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Something a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offence {
    /// A message that does not decode, or is over its size limit.
    Malformed,
    /// An announcement whose signature does not verify or whose signer is not its author.
    BadSignature,
    /// A fetched payload with inconsistent chunks or the wrong hash.
    BadPayload,
    /// Something the node judged invalid at the application level (wrong namespace, stale round…).
    Invalid,
    /// A peer of another network (its identify protocol version differs): banned at once.
    WrongNetwork,
}

impl Offence {
    /// Points this offence costs; [`Offence::WrongNetwork`] bans outright.
    pub fn cost(self) -> i64 {
        match self {
            Offence::Malformed => 20,
            Offence::BadSignature => 25,
            Offence::BadPayload => 50,
            Offence::Invalid => 10,
            Offence::WrongNetwork => i64::MAX / 2,
        }
    }
}

/// What the driver should do after an offence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep the peer.
    Keep,
    /// Disconnect the peer and refuse it from now on.
    Ban,
}

/// Scores per peer; every peer starts at 0 and is banned once its penalties reach `threshold`.
#[derive(Debug)]
pub(crate) struct Reputation<P> {
    penalties: HashMap<P, i64>,
    banned: HashSet<P>,
    threshold: i64,
}

impl<P: Eq + Hash + Clone> Reputation<P> {
    /// A table that bans at `threshold` penalty points.
    pub(crate) fn new(threshold: i64) -> Self {
        assert!(threshold > 0, "the ban threshold must be positive");
        Self {
            penalties: HashMap::new(),
            banned: HashSet::new(),
            threshold,
        }
    }

    /// Records `offence` by `peer`.
    pub(crate) fn penalise(&mut self, peer: &P, offence: Offence) -> Verdict {
        let total = self.penalties.entry(peer.clone()).or_default();
        *total = total.saturating_add(offence.cost());
        if *total >= self.threshold {
            self.banned.insert(peer.clone());
            Verdict::Ban
        } else {
            Verdict::Keep
        }
    }

    /// Forgives `points` of every peer's penalties (called on a timer), so rare honest
    /// mistakes do not add up to a ban. Banned peers stay banned.
    pub(crate) fn forgive(&mut self, points: i64) {
        self.penalties.retain(|_, total| {
            *total = total.saturating_sub(points);
            *total > 0
        });
    }

    /// Whether `peer` is banned.
    pub(crate) fn is_banned(&self, peer: &P) -> bool {
        self.banned.contains(peer)
    }

    /// Current penalty points of `peer`.
    #[cfg(test)]
    pub(crate) fn penalty(&self, peer: &P) -> i64 {
        self.penalties.get(peer).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_garbage_bans_and_time_forgives() {
        let mut table = Reputation::new(100);
        for _ in 0..4 {
            assert_eq!(table.penalise(&1, Offence::Malformed), Verdict::Keep);
        }
        table.forgive(30);
        assert_eq!(table.penalty(&1), 50);
        assert_eq!(table.penalise(&1, Offence::BadPayload), Verdict::Ban);
        assert!(table.is_banned(&1));
        assert!(!table.is_banned(&2));
        table.forgive(1000);
        assert!(table.is_banned(&1), "bans are not forgiven");
    }

    #[test]
    fn wrong_network_bans_at_once() {
        let mut table = Reputation::new(100);
        assert_eq!(table.penalise(&"x", Offence::WrongNetwork), Verdict::Ban);
    }
}
