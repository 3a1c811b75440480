//! Step 6: model-hash votes, and resync from a peer when this node is not on the network's model.
//!
//! After each outer step every node gossips the hash of its parameters; a node repeats its latest
//! vote to each peer that connects and when it resumes from a checkpoint, so a node learns where
//! the network stands as soon as it meets it. From the votes it holds, a node finds the latest
//! round the members settled (see [`target`]) and asks a voter of that hash for its full state
//! when the network is ahead of it (it is joining, or came back from an absence of any length),
//! when its own hash for its last closed round lost, or when a majority built on another model
//! (it ran on alone in a partition). It installs the state once the hash checks out, then
//! observes one round (applies the others' Δs without training) and contributes from the next.

use std::collections::{BTreeMap, BTreeSet};
use std::mem;

use neuroshard_primitives::{Hash, NodeId};

use crate::Timestamp;
use crate::message::{Message, Round};
use crate::node::{
    Node, Output, PendingSync, Phase, f32_bytes, f32_values, outer_from_bytes, penalize,
};
use crate::phase::{aggregate, audit, exchange, grow};

/// All votes are kept for rounds this far behind the current one; for rounds further behind or
/// ahead, only each signer's latest.
const VOTES_BEHIND: u64 = 2;
/// This node's own votes are kept this many rounds, to tell a fork from a slow majority.
const OWN_VOTES_KEPT: u64 = 1024;

/// Records this node's hash for the round it just closed and returns the signed vote.
pub(crate) fn vote(node: &mut Node, round: Round) -> Vec<u8> {
    record_own(node, round, node.model_hash);
    prune(node);
    node.pending_sync = None;
    node.seal(&Message::ModelHash {
        round,
        hash: node.model_hash,
    })
}

/// This node's latest vote, signed again: what it tells a peer that connects, or the network
/// when it resumes from a checkpoint. `None` before it has closed or installed any round.
pub(crate) fn latest_vote(node: &Node) -> Option<Vec<u8>> {
    let (&round, &hash) = node.own_votes.last_key_value()?;
    Some(node.seal(&Message::ModelHash { round, hash }))
}

/// A peer's model-hash vote: record it, then check where this node stands.
///
/// Votes for the recent rounds (from [`VOTES_BEHIND`] back to the next one) are kept per signer
/// and round, the first one standing. Outside that window only each signer's latest vote is
/// kept: a node at round 0 learns that a network at round 20 000 is ahead, a node that ran on
/// alone learns where the majority stayed, and a peer cannot fill memory with votes for rounds
/// nobody has reached.
pub(crate) fn on_vote(
    node: &mut Node,
    now: Timestamp,
    signer: NodeId,
    round: Round,
    hash: Hash,
) -> Vec<Output> {
    if !node.members.contains(&signer) || signer == node.id {
        return Vec::new();
    }
    let later = node
        .votes
        .range(round.saturating_add(1)..)
        .any(|(_, votes)| votes.contains_key(&signer));
    if !in_window(node, round) && later {
        return Vec::new();
    }
    node.votes
        .entry(round)
        .or_default()
        .entry(signer)
        .or_insert(hash);
    prune(node);
    check(node, now)
}

/// Whether all votes for `round` are kept, not only each signer's latest.
fn in_window(node: &Node, round: Round) -> bool {
    round.saturating_add(VOTES_BEHIND) >= node.round && round <= node.round.saturating_add(1)
}

/// Drops, outside the window, every vote whose signer voted for a later round.
fn prune(node: &mut Node) {
    let mut seen: BTreeSet<NodeId> = BTreeSet::new();
    let window: BTreeSet<Round> = node
        .votes
        .keys()
        .copied()
        .filter(|round| in_window(node, *round))
        .collect();
    for (round, votes) in node.votes.iter_mut().rev() {
        if !window.contains(round) {
            votes.retain(|id, _| !seen.contains(id));
        }
        seen.extend(votes.keys().copied());
    }
    node.votes.retain(|_, votes| !votes.is_empty());
}

/// Asks a voter of the network's model for its state when this node is not on it (see
/// [`target`]); does nothing while a request is in flight.
pub(crate) fn check(node: &mut Node, now: Timestamp) -> Vec<Output> {
    if node.pending_sync.is_some() {
        return Vec::new();
    }
    let Some((round, hash)) = target(node) else {
        return Vec::new();
    };
    let voters = audit::voters(node);
    let holders: Vec<NodeId> = node.votes[&round]
        .iter()
        .filter(|(id, vote)| **vote == hash && **id != node.id && voters.contains(id))
        .map(|(id, _)| *id)
        .collect();
    // Spread resync load over the holders, deterministically; a retry asks the next one.
    let pick = round.wrapping_add(node.sync_attempts) as usize % holders.len().max(1);
    let Some(&source) = holders.get(pick) else {
        return Vec::new();
    };
    let retry_at = now + node.config.round_timeout / SYNC_PATIENCE_DIVISOR;
    node.pending_sync = Some(PendingSync {
        round,
        hash,
        retry_at,
    });
    vec![
        Output::Send(source, node.seal(&Message::SyncRequest { round })),
        Output::WakeAt(retry_at),
    ]
}

/// A state request is given up and asked of the next holder after this fraction of the round
/// deadline.
const SYNC_PATIENCE_DIVISOR: u32 = 4;

/// A state request that went unanswered too long is dropped, and the next holder asked.
pub(crate) fn retry(node: &mut Node, now: Timestamp) -> Vec<Output> {
    match node.pending_sync {
        Some(pending) if now >= pending.retry_at => {
            node.pending_sync = None;
            node.sync_attempts = node.sync_attempts.wrapping_add(1);
            check(node, now)
        }
        _ => Vec::new(),
    }
}

/// The round and hash this node should install, if it is not on the network's model.
///
/// The latest round with a settled hash decides (rounds without one are skipped):
/// - a round this node has not closed (it is ahead of the node, or the node's current round
///   while the node is neither exchanging its own Δ for it nor observing it with every awaited
///   announcement in hand): the node is behind. For such
///   rounds a hash vouched for by more than f members is enough, so the smaller side of a healed
///   partition follows the larger one even when neither holds a majority;
/// - the round the node closed last, with another hash than its own: it lost a split;
/// - an older round that a strict majority settled on a hash the node never held: the node
///   built on another model (it ran on alone in a partition) and goes back to the network's.
fn target(node: &Node) -> Option<(Round, Hash)> {
    let voters = audit::voters(node);
    let (round, hash, majority) = node.votes.iter().rev().find_map(|(round, votes)| {
        let open = *round >= node.round;
        settled_hash(votes, &voters, node.id, open).map(|(h, m)| (*round, h, m))
    })?;
    let open = round > node.round
        || (round == node.round
            && match node.phase {
                Phase::Exchange => false,
                Phase::Observing => !aggregate::all_announced(node),
                Phase::Idle | Phase::Training | Phase::Awaiting => true,
            });
    let own = node.own_votes.get(&round);
    let lost_split = round.saturating_add(1) == node.round && own != Some(&hash);
    let forked = round.saturating_add(1) < node.round && majority && own != Some(&hash);
    (open || lost_split || forked).then_some((round, hash))
}

/// A peer wants this node's state from `round` on: serve the latest closed-round state it
/// holds, if that is at least as recent and is the one it voted for.
pub(crate) fn on_request(node: &mut Node, peer: NodeId, round: Round) -> Vec<Output> {
    let Some(closed) = node.round.checked_sub(1) else {
        return Vec::new();
    };
    let holds = node.own_votes.get(&closed) == Some(&node.model_hash);
    if closed < round || !holds {
        return Vec::new();
    }
    let state = Message::SyncState {
        round: closed,
        params: f32_bytes(&node.params),
        outer: f32_bytes(node.outer.momentum()),
        missed: node.missed.iter().copied().collect(),
        pool: node.pool.history.clone(),
    };
    vec![Output::Send(peer, node.seal(&state))]
}

/// What a [`Message::SyncState`] carries.
#[derive(Debug)]
pub(crate) struct State<'a> {
    pub(crate) round: Round,
    pub(crate) params: &'a [u8],
    pub(crate) outer: &'a [u8],
    pub(crate) missed: &'a [NodeId],
    pub(crate) pool: &'a [u64],
}

/// What installing a peer's state did: its outputs, the round after the installed one when
/// the node is not in it (the caller moves the node there to observe it, see [`observe`]), and
/// whether it installed the start of the node's current round.
pub(crate) struct Installed {
    pub(crate) outputs: Vec<Output>,
    pub(crate) observe: Option<Round>,
    pub(crate) current: bool,
}

impl Installed {
    fn nothing(outputs: Vec<Output>) -> Self {
        Self {
            outputs,
            observe: None,
            current: false,
        }
    }
}

/// A peer's full state: install it if it is the one this node asked for (or a later one the
/// members settled) and its hash checks.
///
/// After a split within the node's round the round goes on; otherwise the node is to observe
/// the round after the installed one.
pub(crate) fn on_state(node: &mut Node, signer: NodeId, state: State<'_>) -> Installed {
    let Some(pending) = node.pending_sync else {
        return Installed::nothing(Vec::new());
    };
    let hash = Hash::of(state.params);
    let wanted = if state.round == pending.round {
        Some(pending.hash)
    } else if state.round > pending.round {
        node.votes
            .get(&state.round)
            .and_then(|votes| settled_hash(votes, &audit::voters(node), node.id, true))
            .map(|(hash, _)| hash)
    } else {
        None
    };
    let Some(wanted) = wanted else {
        return Installed::nothing(Vec::new());
    };
    let Some(next) = state.round.checked_add(1) else {
        return Installed::nothing(vec![penalize(
            signer,
            "sync state for the last possible round",
        )]);
    };
    // The size is checked against the depths the network can reach before anything is read:
    // a state of another size is a grown (or not yet grown) model only if the rule admits it.
    let n = state.params.len() / 4;
    if hash != wanted || !state.params.len().is_multiple_of(4) || !grow::admits(node, n) {
        return Installed::nothing(vec![penalize(
            signer,
            "sync state does not match the settled hash",
        )]);
    }
    let outer = match outer_from_bytes(node.config.outer, state.outer, n) {
        Ok(outer) => outer,
        Err(err) => return Installed::nothing(vec![penalize(signer, err)]),
    };
    if !grow::install_history(node, state.pool) {
        return Installed::nothing(vec![penalize(signer, "a pool history longer than kept")]);
    }
    if n != node.params.len() {
        grow::note_resize(node, state.round, node.params.len());
        node.residual.clear();
    }
    node.params = f32_values(state.params, n).expect("length checked above");
    node.outer = outer;
    node.model_hash = hash;
    node.own_votes.retain(|round, _| *round < state.round);
    for (_, votes) in node.votes.range_mut(next..) {
        votes.remove(&node.id);
    }
    record_own(node, state.round, hash);
    node.included_last.clear();
    node.missed = state
        .missed
        .iter()
        .filter(|id| node.members.contains(id))
        .copied()
        .collect();
    node.pending_sync = None;
    node.sync_attempts = 0;
    node.patience = None;
    Installed {
        outputs: vec![Output::Resynced {
            round: state.round,
            hash,
        }],
        observe: (node.round != next).then_some(next),
        current: node.round == next,
    }
}

/// Moves the node to `round`, just installed, to observe it: no training job (its own Δ would
/// come late and count nowhere); the Δs announced for it (kept early if the node was in the
/// round before, or kept aside as each member's latest announcement) are fetched and applied as
/// usual, and the node contributes from the round after.
pub(crate) fn observe(node: &mut Node, now: Timestamp, round: Round) -> Vec<Output> {
    let early = mem::take(&mut node.early);
    node.inbox = if node.round.checked_add(1) == Some(round) {
        early
    } else {
        BTreeMap::new()
    };
    node.round = round;
    node.phase = Phase::Observing;
    node.deadline = now + node.config.round_timeout;
    let mut outputs = vec![Output::WakeAt(node.deadline)];
    outputs.extend(exchange::adopt_ahead(node));
    outputs
}

/// Records this node's own hash for `round`, as a vote among the others and in its history.
pub(crate) fn record_own(node: &mut Node, round: Round, hash: Hash) {
    node.votes.entry(round).or_default().insert(node.id, hash);
    node.own_votes.insert(round, hash);
    let keep_from = round.saturating_sub(OWN_VOTES_KEPT);
    node.own_votes.retain(|r, _| *r >= keep_from);
}

/// The hash the members settled on for one round, from their `votes`, and whether a strict
/// majority voted it. The callers pass the members this node has not excluded.
///
/// A hash a strict majority voted. Failing that, for a round this node has not closed
/// (`open`): a hash more than max(f, ⌊(n − 1) / 2⌋) members vouch for (f = ⌊(n − 1) / 3⌋), the
/// most-voted, the lowest breaking a tie. For other rounds the same, but only once every member but `me` has voted
/// (honest nodes split, say two against two, when a contribution reached some of them before
/// their deadline and others after). Up to f Byzantine voters cannot put forward a model of
/// their own that way, only tip the choice between honest ones.
fn settled_hash(
    votes: &BTreeMap<NodeId, Hash>,
    members: &BTreeSet<NodeId>,
    me: NodeId,
    open: bool,
) -> Option<(Hash, bool)> {
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
        return Some((hash, true));
    }
    let f = n.saturating_sub(1) / 3;
    let everyone_voted = members.iter().all(|m| *m == me || votes.contains_key(m));
    // A round ahead needs half of the other members as well, so a lone fast node (f is 0 below
    // four members) cannot drag the others after it, and a minority that ran ahead in a
    // partition goes back to the majority rather than the other way round.
    let ahead = count > f.max(n.saturating_sub(1) / 2);
    let settled_split = everyone_voted && count > f;
    ((open && ahead) || settled_split).then_some((hash, false))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use neuroshard_aggregate::{Rule, RuleKind};
    use neuroshard_compress::{Codec, CompressConfig};
    use neuroshard_primitives::Keypair;
    use neuroshard_train::OuterConfig;

    use super::*;
    use crate::{DeadlineAgreement, NodeConfig};

    fn node_of(keys: &[Keypair]) -> Node {
        let members = keys.iter().map(Keypair::node_id).collect();
        let config = NodeConfig {
            inner_steps: 1,
            round_timeout: Duration::from_secs(10),
            compress: CompressConfig::new(Codec::None),
            aggregator: Rule::for_attackers(RuleKind::Mean, 4, 0).unwrap(),
            outer: OuterConfig::DILOCO,
            max_frame: 1 << 20,
            audit: None,
        };
        let key = Keypair::from_seed([1; 32]);
        Node::new(
            key,
            config,
            members,
            vec![0.0; 4],
            Box::new(DeadlineAgreement),
        )
        .unwrap()
    }

    #[test]
    fn a_peer_cannot_fill_memory_with_votes() {
        let keys: Vec<Keypair> = (1..=4).map(|i| Keypair::from_seed([i; 32])).collect();
        let mut node = node_of(&keys);
        let peer = keys[1].node_id();
        for round in (0..1000).chain([u64::MAX, u64::MAX - 1, 7]) {
            on_vote(&mut node, Timestamp::ZERO, peer, round, Hash::of(b"x"));
        }
        let kept: usize = node.votes.values().map(BTreeMap::len).sum();
        assert!(kept <= 3, "{kept} votes kept from one signer");
        assert!(node.votes.contains_key(&u64::MAX), "its latest vote stands");
    }

    /// Honest nodes that excluded a member at different moments can split two against two; the
    /// excluded member's vote, which may never come, must not hold the split open.
    #[test]
    fn an_excluded_member_neither_votes_nor_holds_a_split_open() {
        let keys: Vec<Keypair> = (1..=5).map(|i| Keypair::from_seed([i; 32])).collect();
        let ids: Vec<NodeId> = keys.iter().map(Keypair::node_id).collect();
        let mut node = node_of(&keys);
        let (mut low, mut high) = (Hash::of(b"a"), Hash::of(b"b"));
        if high < low {
            std::mem::swap(&mut low, &mut high);
        }
        node.round = 1;
        node.model_hash = high;
        record_own(&mut node, 0, high);
        for (id, hash) in [(ids[1], high), (ids[2], low), (ids[3], low)] {
            node.votes.entry(0).or_default().insert(id, hash);
        }
        assert_eq!(
            target(&node),
            None,
            "the fifth member's vote may still come"
        );
        node.audits.excluded.insert(ids[4], "withheld".into());
        assert_eq!(
            target(&node),
            Some((0, low)),
            "two against two, the lowest hash"
        );
        node.votes.entry(0).or_default().insert(ids[4], high);
        assert_eq!(
            target(&node),
            Some((0, low)),
            "an excluded member tips nothing"
        );
    }
}
