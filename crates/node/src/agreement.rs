//! The agreement seam: which of a round's contributions count, and when the round may close.
//!
//! Every honest node must apply exactly the same contributions in the same order, or their
//! replicas diverge. Two implementations:
//! - [`LedgerAgreement`]: the NEURO ledger's consensus decides the list (the claims of a closed
//!   round, in ledger order, `docs/economics.md`); the driver hands each decision in with
//!   [`crate::Input::Decided`], and every honest replica applies the same list.
//! - [`DeadlineAgreement`], for a network without a ledger (a simulation, one operator's
//!   machines): everything that arrived (announced, fetched, hash-checked and decoded) before
//!   the round's deadline counts, in ascending node-id order, and the round closes early once
//!   every member has delivered. A node that still ends up with a different model finds out
//!   from the model-hash votes and resyncs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use neuroshard_primitives::{Hash, NodeId};

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
    /// included), with the hash of the Δ delivered.
    pub delivered: &'a BTreeMap<NodeId, Hash>,
    /// Who announced a Δ this node will never count: one trained from another model than this
    /// node's, an excluded cheater's, or an announcement it refused (no commitment to the chain
    /// plan, over the frame limit).
    pub refused: &'a BTreeSet<NodeId>,
}

/// Decides a round's inclusion list.
pub trait Agreement: fmt::Debug {
    /// `None` while the round should stay open; otherwise the contributors to apply, in the
    /// canonical order every honest node uses. Only contributors in `view.delivered` may be
    /// listed.
    fn decide(&mut self, view: &RoundView<'_>) -> Option<Vec<NodeId>>;

    /// An outside decision on `round`'s list (contributor, Δ hash), in order; ignored by an
    /// agreement that decides alone.
    fn learn(&mut self, round: crate::Round, list: Vec<(NodeId, Hash)>) {
        let _ = (round, list);
    }
}

/// The ledger decides: a round closes once the ledger closed it, on its list, in its order.
///
/// A listed Δ counts only when this node holds a Δ with the listed hash. The round waits for
/// the listed Δs until its deadline, then applies those it holds: a contributor that claimed
/// but serves its Δ to nobody is left out by every honest node alike; one that serves only some
/// nodes splits them, and the hash votes settle the split (`docs/protocol.md`, step 6). It does
/// not wait for a listed contributor whose Δ it refused, which it would never hold: a replica
/// restarted from scratch that trained before it resynced (another model), or whose job stopped
/// before its chain held anything (no commitment), and whose claim the ledger took.
#[derive(Debug, Clone, Default)]
pub struct LedgerAgreement {
    decided: BTreeMap<crate::Round, Vec<(NodeId, Hash)>>,
}

/// Decisions kept for rounds behind the newest one (a node that is behind still finds its
/// round's list).
const DECISIONS_KEPT: u64 = 16;

impl Agreement for LedgerAgreement {
    fn decide(&mut self, view: &RoundView<'_>) -> Option<Vec<NodeId>> {
        let list = self.decided.get(&view.round)?;
        let held = |(id, hash): &&(NodeId, Hash)| view.delivered.get(id) == Some(hash);
        let settled = |entry: &(NodeId, Hash)| held(&entry) || view.refused.contains(&entry.0);
        (list.iter().all(settled) || view.now >= view.deadline)
            .then(|| list.iter().filter(held).map(|(id, _)| *id).collect())
    }

    fn learn(&mut self, round: crate::Round, list: Vec<(NodeId, Hash)>) {
        self.decided.insert(round, list);
        let newest = *self.decided.keys().next_back().expect("just inserted");
        let oldest = newest.saturating_sub(DECISIONS_KEPT);
        self.decided.retain(|r, _| *r >= oldest);
    }
}

/// Deadline plus canonical order: the agreement used until the ledger takes over.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineAgreement;

impl Agreement for DeadlineAgreement {
    fn decide(&mut self, view: &RoundView<'_>) -> Option<Vec<NodeId>> {
        let everyone = view.members.iter().all(|m| view.delivered.contains_key(m));
        (everyone || view.now >= view.deadline).then(|| view.delivered.keys().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(bytes: &[u8]) -> BTreeSet<NodeId> {
        bytes.iter().map(|b| NodeId([*b; 32])).collect()
    }

    fn delivered(bytes: &[u8]) -> BTreeMap<NodeId, Hash> {
        bytes
            .iter()
            .map(|b| (NodeId([*b; 32]), Hash([*b; 32])))
            .collect()
    }

    #[test]
    fn waits_for_everyone_or_the_deadline_then_sorts() {
        let members = ids(&[1, 2, 3]);
        let partial = delivered(&[3, 1]);
        let all = delivered(&[1, 2, 3]);
        let mut agreement = DeadlineAgreement;
        let mut view = RoundView {
            round: 0,
            now: Timestamp(5),
            deadline: Timestamp(10),
            members: &members,
            delivered: &partial,
            refused: &BTreeSet::new(),
        };
        assert_eq!(agreement.decide(&view), None);
        view.now = Timestamp(10);
        assert_eq!(
            agreement.decide(&view),
            Some(vec![NodeId([1; 32]), NodeId([3; 32])])
        );
        view.now = Timestamp(0);
        view.delivered = &all;
        assert_eq!(agreement.decide(&view).map(|list| list.len()), Some(3));
    }

    #[test]
    fn the_ledger_list_decides_in_its_order_and_only_held_deltas_count() {
        let members = ids(&[1, 2, 3]);
        let partial = delivered(&[3, 1]);
        let all = delivered(&[1, 2, 3]);
        let none = BTreeSet::new();
        let mut agreement = LedgerAgreement::default();
        let mut view = RoundView {
            round: 4,
            now: Timestamp(5),
            deadline: Timestamp(10),
            members: &members,
            delivered: &all,
            refused: &none,
        };
        assert_eq!(agreement.decide(&view), None, "nothing decided yet");
        let listed = |b: u8| (NodeId([b; 32]), Hash([b; 32]));
        // The ledger lists 3 then 1, and 2 with a Δ hash nobody holds.
        let forged = (NodeId([2; 32]), Hash([9; 32]));
        agreement.learn(4, vec![listed(3), listed(1), forged]);
        assert_eq!(
            agreement.decide(&view),
            None,
            "waits for the listed Δ until the deadline"
        );
        let order = vec![NodeId([3; 32]), NodeId([1; 32])];
        let refused = ids(&[2]);
        view.refused = &refused;
        assert_eq!(
            agreement.decide(&view),
            Some(order.clone()),
            "a Δ refused (from another model) is not waited for"
        );
        view.refused = &none;
        view.now = Timestamp(10);
        assert_eq!(agreement.decide(&view), Some(order.clone()));
        agreement.learn(5, vec![listed(3), listed(1)]);
        view.round = 5;
        view.now = Timestamp(0);
        view.delivered = &partial;
        assert_eq!(
            agreement.decide(&view),
            Some(order),
            "everything listed is held"
        );
    }
}
