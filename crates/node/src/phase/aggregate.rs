//! Steps 4 and 5: agree on the round's inclusion list, aggregate it robustly, apply the outer step.

use std::collections::BTreeSet;

use neuroshard_primitives::{Hash, NodeId};

use crate::Timestamp;
use crate::agreement::RoundView;
use crate::node::{Node, Phase, RoundSummary};

/// The inclusion list, if the agreement lets the round close now.
///
/// Only Δs trained from the model this node holds count: a contributor that announced a Δ from
/// another model (it diverged, or resynced during the round) is neither waited for nor included.
/// The sides of a split on the model hash therefore never mix; the hash votes settle it.
pub(crate) fn agree(node: &mut Node, now: Timestamp) -> Option<Vec<NodeId>> {
    if node.phase != Phase::Exchange {
        return None;
    }
    let other_base = |id: &NodeId| {
        node.inbox
            .get(id)
            .is_some_and(|entry| entry.announcement.base != node.model_hash)
    };
    let expected: BTreeSet<NodeId> = node
        .members
        .iter()
        .filter(|id| !other_base(id))
        .copied()
        .collect();
    let delivered: BTreeSet<NodeId> = node
        .inbox
        .iter()
        .filter(|(id, entry)| entry.delta.is_some() && !other_base(id))
        .map(|(id, _)| *id)
        .collect();
    let view = RoundView {
        round: node.round,
        now,
        deadline: node.deadline,
        members: &expected,
        delivered: &delivered,
    };
    node.agreement.decide(&view)
}

/// Aggregates the included Δs in the listed order, applies the outer step, and moves the node
/// to the next round. A rule that refuses the inputs (too few for its tolerance) leaves the
/// model unchanged for the round, the same on every honest node.
pub(crate) fn outer_step(node: &mut Node, now: Timestamp, included: Vec<NodeId>) -> RoundSummary {
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
    let summary = RoundSummary {
        round: node.round,
        included,
        skipped,
        model_hash: node.model_hash,
        train_loss,
        closed_at: now,
    };
    node.inbox.clear();
    node.round += 1;
    summary
}
