//! The agreement seam: which of a round's contributions count, and when the round may close.
//!
//! Every honest node must apply exactly the same contributions in the same order, or their
//! replicas diverge. Until the ledger exists this is [`DeadlineAgreement`]: everything that
//! arrived (announced, fetched, hash-checked and decoded) before the round's deadline counts, in
//! ascending node-id order, and the round closes early once every member has delivered. A node
//! that still ends up with a different model finds out from the model-hash votes and resyncs.
//! The ledger's consensus will be another implementation of [`Agreement`].

use std::collections::BTreeSet;
use std::fmt;

use neuroshard_primitives::NodeId;

use crate::{Round, Timestamp};

/// What a node knows about a round when it asks whether to close it.
#[derive(Debug, Clone, Copy)]
pub struct RoundView<'a> {
    /// The round.
    pub round: Round,
    /// Now.
    pub now: Timestamp,
    /// The round's deadline.
    pub deadline: Timestamp,
    /// Who is expected to contribute: the members, less those that announced a Δ trained from
    /// a model other than this node's.
    pub members: &'a BTreeSet<NodeId>,
    /// Who has delivered a valid contribution from this node's model so far (the node itself
    /// included).
    pub delivered: &'a BTreeSet<NodeId>,
}

/// Decides a round's inclusion list.
pub trait Agreement: fmt::Debug {
    /// `None` while the round should stay open; otherwise the contributors to apply, in the
    /// canonical order every honest node uses.
    fn decide(&mut self, view: &RoundView<'_>) -> Option<Vec<NodeId>>;
}

/// Deadline plus canonical order: the agreement used until the ledger takes over.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineAgreement;

impl Agreement for DeadlineAgreement {
    fn decide(&mut self, view: &RoundView<'_>) -> Option<Vec<NodeId>> {
        let everyone = view.members.iter().all(|m| view.delivered.contains(m));
        (everyone || view.now >= view.deadline).then(|| view.delivered.iter().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(bytes: &[u8]) -> BTreeSet<NodeId> {
        bytes.iter().map(|b| NodeId([*b; 32])).collect()
    }

    #[test]
    fn waits_for_everyone_or_the_deadline_then_sorts() {
        let members = ids(&[1, 2, 3]);
        let partial = ids(&[3, 1]);
        let mut agreement = DeadlineAgreement;
        let mut view = RoundView {
            round: 0,
            now: Timestamp(5),
            deadline: Timestamp(10),
            members: &members,
            delivered: &partial,
        };
        assert_eq!(agreement.decide(&view), None);
        view.now = Timestamp(10);
        assert_eq!(
            agreement.decide(&view),
            Some(vec![NodeId([1; 32]), NodeId([3; 32])])
        );
        view.now = Timestamp(0);
        view.delivered = &members;
        assert_eq!(agreement.decide(&view).map(|list| list.len()), Some(3));
    }
}
