//! Steps 4 and 5: agree on the round's inclusion list, aggregate it robustly, apply the outer step.

use std::collections::{BTreeMap, BTreeSet};

use neuroshard_primitives::{Hash, NodeId};

use crate::Timestamp;
use crate::agreement::RoundView;
use crate::node::{Node, Phase, RoundSummary};

/// What the agreement decided for a round: whom it waited for, and whose Δs count.
#[derive(Debug)]
pub(crate) struct Closing {
    /// The members the round waited for.
    expected: BTreeSet<NodeId>,
    /// The contributors to apply, in canonical order.
    included: Vec<NodeId>,
}

impl Closing {
    /// The contributors to apply, in canonical order.
    pub(crate) fn included(&self) -> &[NodeId] {
        &self.included
    }
}

/// The inclusion list, if the agreement lets the round close now.
///
/// The round waits for the members that are on this node's model and have standing: in round
/// r > 0 those that voted, for round r − 1, the hash this node starts r from, or have not voted
/// yet but had their Δ counted in r − 1 (their vote may still be on its way when a round's
/// training is shorter than its transfers); in round 0 every member, all start from genesis;
/// less those that missed an earlier round's deadline and have not had a Δ counted since. A
/// joining or lagging member is therefore not waited for
/// until it has voted the network's model, and a member that stays silent costs at most one
/// deadline. Only Δs trained from the model this node holds count: a contributor that
/// announced a Δ from another model (it diverged, or resynced during the round, or restarted
/// from scratch and trained before it resynced) is neither waited for nor included, even when
/// the ledger lists its claim. The sides of a split on the model hash therefore never mix; the
/// hash votes settle it. A node observing a round it installed does not close it while it is
/// already fetching a later state (the network moved on meanwhile).
pub(crate) fn agree(node: &mut Node, now: Timestamp) -> Option<Closing> {
    let waiting_for_state = node.phase == Phase::Observing && node.pending_sync.is_some();
    if !matches!(node.phase, Phase::Exchange | Phase::Observing) || waiting_for_state {
        return None;
    }
    let expected = expected(node);
    let announced_refused = node.refused.get(&node.round).into_iter().flatten();
    let refused: BTreeSet<NodeId> = (node.inbox.keys())
        .filter(|id| other_base(node, id) || node.audits.excluded.contains_key(id))
        .chain(announced_refused)
        .copied()
        .collect();
    let delivered: BTreeMap<NodeId, Hash> = node
        .inbox
        .iter()
        .filter(|(id, entry)| entry.delta.is_some() && !refused.contains(id))
        .map(|(id, entry)| (*id, entry.announcement.delta))
        .collect();
    let view = RoundView {
        round: node.round,
        now,
        deadline: node.deadline,
        members: &expected,
        delivered: &delivered,
        refused: &refused,
    };
    let mut included = node.agreement.decide(&view)?;
    // A list from outside is checked against what this node holds before anything indexes it.
    included.retain(|id| delivered.contains_key(id));
    Some(Closing { expected, included })
}

/// The members the round waits for (see [`agree`]).
fn expected(node: &Node) -> BTreeSet<NodeId> {
    let previous = node.round.checked_sub(1).map(|r| node.votes.get(&r));
    let on_model = |id: &NodeId| match previous {
        None => true,
        Some(votes) => match votes.and_then(|v| v.get(id)) {
            Some(hash) => *hash == node.model_hash,
            None => node.included_last.contains(id),
        },
    };
    let mut expected: BTreeSet<NodeId> = node
        .members
        .iter()
        .filter(|id| **id != node.id && on_model(id) && !node.missed.contains(id))
        .filter(|id| !node.audits.excluded.contains_key(id))
        .filter(|id| !other_base(node, id))
        .copied()
        .collect();
    if node.inbox.contains_key(&node.id) && !other_base(node, &node.id) {
        expected.insert(node.id);
    }
    expected
}

/// Whether `id` announced a Δ for this round trained from another model than the node's.
fn other_base(node: &Node, id: &NodeId) -> bool {
    node.inbox
        .get(id)
        .is_some_and(|entry| entry.announcement.base != node.model_hash)
}

/// Whether the round waits for somebody and every one of them has announced its Δ: an
/// observing node in that position closes the round itself once it has fetched them.
pub(crate) fn all_announced(node: &Node) -> bool {
    let expected = expected(node);
    !expected.is_empty() && expected.iter().all(|id| node.inbox.contains_key(id))
}

/// Aggregates the included Δs in the listed order, applies the outer step, and moves the node
/// to the next round. A rule that refuses the inputs (too few for its tolerance) leaves the
/// model unchanged for the round, the same on every honest node.
pub(crate) fn outer_step(node: &mut Node, now: Timestamp, closing: Closing) -> RoundSummary {
    let Closing { expected, included } = closing;
    let deltas: Vec<&[f32]> = included
        .iter()
        .map(|id| {
            node.inbox
                .get(id)
                .and_then(|entry| entry.delta.as_deref())
                .expect("the agreement lists only delivered contributions")
        })
        .collect();
    let skipped = match neuroshard_aggregate::aggregate(&node.config.aggregator, &deltas) {
        Ok(update) => {
            node.outer.step(&mut node.params, &update);
            None
        }
        Err(err) => Some(err.to_string()),
    };
    node.model_hash = Hash::of_f32(&node.params);
    let train_loss = included
        .iter()
        .map(|id| node.inbox[id].announcement.loss_end)
        .sum::<f32>()
        / included.len().max(1) as f32;
    let tokens = if skipped.is_none() {
        included
            .iter()
            .map(|id| node.inbox[id].announcement.tokens)
            .fold(0u64, u64::saturating_add)
    } else {
        0
    };
    let missed: Vec<NodeId> = expected
        .iter()
        .filter(|id| !included.contains(id))
        .copied()
        .collect();
    node.missed.extend(missed.iter().copied());
    for id in &included {
        node.missed.remove(id);
    }
    node.included_last = included.iter().copied().collect();
    let summary = RoundSummary {
        round: node.round,
        included,
        missed,
        skipped,
        model_hash: node.model_hash,
        train_loss,
        tokens,
        closed_at: now,
        growth: None,
    };
    node.inbox = std::mem::take(&mut node.early);
    node.round = node.round.saturating_add(1);
    summary
}
