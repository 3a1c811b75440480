//! Step 6: model-hash votes, and resync from a peer when the majority holds another model.
//!
//! After each outer step every node gossips the hash of its parameters. A node compares its own
//! hash with the round's settled hash (see [`settled_hash`]): when the network settled on another
//! hash for its last closed round, or on a round it has not reached (it fell behind, or it is
//! joining), it asks one of those voters for the full state and installs it once the hash checks
//! out.

use std::collections::{BTreeMap, BTreeSet};

use neuroshard_primitives::{Hash, NodeId};

use crate::Timestamp;
use crate::message::{Message, Round};
use crate::node::{Node, Output, Phase, f32_bytes, f32_values, outer_from_bytes, penalize};
use crate::phase::train;

/// Votes are kept for rounds this far behind the current one.
const VOTES_BEHIND: u64 = 2;
/// Votes are accepted for rounds at most this far ahead (a node that fell behind).
const VOTES_AHEAD: u64 = 16;

/// Records this node's hash for the round it just closed and returns the signed vote.
pub(crate) fn vote(node: &mut Node, round: Round) -> Vec<u8> {
    node.votes
        .entry(round)
        .or_default()
        .insert(node.id, node.model_hash);
    let keep_from = node.round.saturating_sub(VOTES_BEHIND);
    node.votes.retain(|r, _| *r >= keep_from);
    node.pending_sync = None;
    node.seal(&Message::ModelHash {
        round,
        hash: node.model_hash,
    })
}

/// A peer's model-hash vote: record the first one per signer and round, then check.
pub(crate) fn on_vote(node: &mut Node, signer: NodeId, round: Round, hash: Hash) -> Vec<Output> {
    let in_window = round + VOTES_BEHIND >= node.round && round <= node.round + VOTES_AHEAD;
    if !node.members.contains(&signer) || !in_window {
        return Vec::new();
    }
    node.votes
        .entry(round)
        .or_default()
        .entry(signer)
        .or_insert(hash);
    check(node)
}

/// Asks a majority voter for its state if this node disagrees with the majority about the round
/// it closed last, or lags behind it: the majority closed a round this node has not started (or
/// any round, while this node has not started at all, as a node joining late).
pub(crate) fn check(node: &mut Node) -> Vec<Output> {
    if node.pending_sync.is_some() {
        return Vec::new();
    }
    let target = node
        .votes
        .range(node.round.saturating_sub(1)..)
        .rev()
        .find_map(|(round, votes)| {
            settled_hash(votes, &node.members, node.id).map(|hash| (*round, hash))
        });
    let Some((round, hash)) = target else {
        return Vec::new();
    };
    let mine = node.votes.get(&round).and_then(|votes| votes.get(&node.id));
    let closed_it = round + 1 == node.round;
    let behind = round > node.round || (round == node.round && node.phase == Phase::Idle);
    if (closed_it && mine == Some(&hash)) || !(closed_it || behind) {
        return Vec::new();
    }
    let holders: Vec<NodeId> = node.votes[&round]
        .iter()
        .filter(|(id, vote)| **vote == hash && **id != node.id)
        .map(|(id, _)| *id)
        .collect();
    // Spread resync load over the holders, deterministically.
    let Some(&source) = holders.get((round as usize) % holders.len().max(1)) else {
        return Vec::new();
    };
    node.pending_sync = Some((round, hash));
    vec![Output::Send(
        source,
        node.seal(&Message::SyncRequest { round }),
    )]
}

/// A peer wants this node's state after `round`: serve it while the node still holds it.
pub(crate) fn on_request(node: &mut Node, peer: NodeId, round: Round) -> Vec<Output> {
    let holds = round + 1 == node.round
        && node.votes.get(&round).and_then(|votes| votes.get(&node.id)) == Some(&node.model_hash);
    if !holds {
        return Vec::new();
    }
    let state = Message::SyncState {
        round,
        params: f32_bytes(&node.params),
        outer: f32_bytes(node.outer.momentum()),
    };
    vec![Output::Send(peer, node.seal(&state))]
}

/// A peer's full state: install it if it is the one this node asked for and its hash checks.
pub(crate) fn on_state(
    node: &mut Node,
    now: Timestamp,
    signer: NodeId,
    round: Round,
    params: &[u8],
    outer: &[u8],
) -> Vec<Output> {
    let Some((wanted, hash)) = node.pending_sync else {
        return Vec::new();
    };
    if round != wanted || node.round > round + 1 {
        return Vec::new();
    }
    if Hash::of(params) != hash || params.len() != 4 * node.params.len() {
        return vec![penalize(
            signer,
            "sync state does not match the majority hash",
        )];
    }
    let outer = match outer_from_bytes(node.config.outer, outer, node.params.len()) {
        Ok(outer) => outer,
        Err(err) => return vec![penalize(signer, err)],
    };
    node.params = f32_values(params, node.params.len()).expect("length checked above");
    node.outer = outer;
    node.model_hash = hash;
    node.votes.entry(round).or_default().insert(node.id, hash);
    node.pending_sync = None;
    let mut outputs = vec![Output::Resynced { round, hash }];
    if node.round <= round {
        if node.round < round {
            node.early.clear();
        }
        node.round = round + 1;
        outputs.extend(train::begin(node, now));
    }
    outputs
}

/// The hash the members settled on for one round, from their `votes`.
///
/// A hash a strict majority voted. Failing that (honest nodes split, say two against two, when a
/// contribution reached some of them before their deadline and others after), once every member
/// but `me` has voted: the most-voted hash among those vouched for by more than
/// f = ⌊(n − 1) / 3⌋ voters, the lowest hash breaking a tie. Up to f Byzantine voters cannot
/// put forward a model of their own that way, only tip the choice between honest ones; a member
/// that never votes holds such a split until it leaves.
fn settled_hash(
    votes: &BTreeMap<NodeId, Hash>,
    members: &BTreeSet<NodeId>,
    me: NodeId,
) -> Option<Hash> {
    let mut counts: BTreeMap<Hash, usize> = BTreeMap::new();
    for (_, hash) in votes.iter().filter(|(id, _)| members.contains(id)) {
        *counts.entry(*hash).or_default() += 1;
    }
    // Most votes first; among equals the lowest hash, which compares as the greatest here.
    let (&hash, &count) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    let n = members.len();
    if count > n / 2 {
        return Some(hash);
    }
    let everyone_voted = members.iter().all(|m| *m == me || votes.contains_key(m));
    (everyone_voted && count > n.saturating_sub(1) / 3).then_some(hash)
}
