//! Step 3: collect the round's contributions: announcements, fetches by hash, checked payloads.

use std::time::Duration;

use neuroshard_primitives::{Hash, NodeId};
use neuroshard_verify::{Commitment, Segments};

use crate::Timestamp;
use crate::message::{Announcement, Message, Round};
use crate::node::{Entry, Inbox, Node, Output, penalize};
use crate::phase::train;

/// A peer announced a Δ: remember it and fetch it from the announcer.
///
/// Announcements from non-members and for past rounds are dropped; of those for rounds beyond
/// the next, each signer's latest is kept aside (a node catching up adopts them when it reaches
/// their round, see [`adopt_ahead`]). A second, different announcement from the same signer for
/// the same round is equivocation: the signer is penalised and its first announcement stands.
pub(crate) fn on_announce(
    node: &mut Node,
    signer: NodeId,
    announcement: Announcement,
) -> Vec<Output> {
    if !node.members.contains(&signer) || signer == node.id {
        return Vec::new();
    }
    // The network's cut, over the whole job or (a pipeline stage whose lane broke) fewer steps.
    let plan = train::chain_plan(node);
    let cut = |c: &Commitment, p: &Segments| c.segments.len == p.len && c.segments.steps <= p.steps;
    let committed = match (&plan, &announcement.commitment) {
        (None, _) => true,
        (Some(p), Some(c)) => cut(c, p),
        (Some(_), None) => false,
    };
    let round = announcement.round;
    if !committed {
        refuse(node, signer, round);
        return vec![penalize(
            signer,
            "announced a Δ without a commitment to the network's chain plan",
        )];
    }
    let max_frame = node.config.max_frame as u64;
    let Some(inbox) = inbox_for(node, round) else {
        keep_ahead(node, signer, announcement);
        return Vec::new();
    };
    if let Some(existing) = inbox.get(&signer) {
        return if existing.announcement == announcement {
            Vec::new()
        } else {
            vec![penalize(
                signer,
                format!("two different announcements for round {round}"),
            )]
        };
    }
    if announcement.delta_len > max_frame {
        refuse(node, signer, round);
        return vec![penalize(
            signer,
            "announced a Δ larger than the frame limit",
        )];
    }

    let delta = announcement.delta;
    inbox.insert(
        signer,
        Entry {
            announcement,
            delta: None,
        },
    );
    vec![Output::Send(
        signer,
        node.seal(&Message::Fetch { round, delta }),
    )]
}

/// How long an announced Δ may be missing before this node asks its announcer again: a tenth
/// of the round deadline, at least a second.
fn refetch_every(node: &Node) -> Duration {
    (node.config.round_timeout / 10).max(Duration::from_secs(1))
}

/// Asks again for this round's Δs announced (from this node's model) and not arrived, once
/// they have been missing for [`refetch_every`], and again each time as long after. A request
/// or the Δ can be lost on the way (a stuck gossip path lost every frame between two replicas
/// of a 12-node run), and without another request the round would wait for that Δ until its
/// deadline. The announcer serves its recent Δs to whoever asks; one that arrives twice is
/// taken once.
pub(crate) fn refetch(node: &mut Node, now: Timestamp) -> Vec<Output> {
    let round = node.round;
    let missing: Vec<(NodeId, Hash)> = (node.inbox.iter())
        .filter(|(id, entry)| **id != node.id && entry.delta.is_none())
        .filter(|(_, entry)| entry.announcement.base == node.model_hash)
        .map(|(id, entry)| (*id, entry.announcement.delta))
        .collect();
    if missing.is_empty() {
        node.refetch_at = None;
        return Vec::new();
    }
    let next = (round, now + refetch_every(node));
    match node.refetch_at.filter(|(r, _)| *r == round) {
        Some((_, at)) if now < at => return Vec::new(),
        Some(_) => node.refetch_at = Some(next),
        None => {
            // Missing since the last tick: asked for once already, at the announcement.
            node.refetch_at = Some(next);
            return Vec::new();
        }
    }
    (missing.into_iter())
        .map(|(id, delta)| Output::Send(id, node.seal(&Message::Fetch { round, delta })))
        .collect()
}

/// Notes that this node refused `signer`'s announcement for `round`, if that round has an inbox
/// (see `Node::refused`).
fn refuse(node: &mut Node, signer: NodeId, round: Round) {
    if inbox_for_round(node, round) {
        let current = node.round;
        node.refused.retain(|r, _| *r >= current);
        node.refused.entry(round).or_default().insert(signer);
    }
}

/// Keeps `signer`'s announcement for a round beyond the next one, if it is its latest.
fn keep_ahead(node: &mut Node, signer: NodeId, announcement: Announcement) {
    let beyond_next = node
        .round
        .checked_add(1)
        .is_some_and(|next| announcement.round > next);
    let later = node
        .ahead
        .get(&signer)
        .is_some_and(|kept| kept.round >= announcement.round);
    if beyond_next && !later {
        node.ahead.insert(signer, announcement);
    }
}

/// The node just moved to a later round without training up to it (it installed the network's
/// state): takes the announcements kept aside for this round and the next as if they had just
/// arrived, and fetches their Δs.
pub(crate) fn adopt_ahead(node: &mut Node) -> Vec<Output> {
    let now_due: Vec<(NodeId, Announcement)> = node
        .ahead
        .iter()
        .filter(|(_, a)| inbox_for_round(node, a.round))
        .map(|(id, a)| (*id, a.clone()))
        .collect();
    let current = node.round;
    node.ahead
        .retain(|_, a| a.round > current.saturating_add(1));
    now_due
        .into_iter()
        .flat_map(|(signer, announcement)| on_announce(node, signer, announcement))
        .collect()
}

/// A peer asked for an encoded Δ: serve it if it is one of this node's recent ones.
pub(crate) fn on_fetch(node: &mut Node, peer: NodeId, round: Round, delta: Hash) -> Vec<Output> {
    match node.served.get(&round) {
        Some((hash, payload)) if *hash == delta => {
            let reply = Message::Delta {
                round,
                payload: payload.clone(),
            };
            vec![Output::Send(peer, node.seal(&reply))]
        }
        _ => Vec::new(),
    }
}

/// An encoded Δ arrived: attach it to every announcement of that hash, once decoded and checked.
///
/// A payload that fails to decode, or decodes to the wrong length, is the announcer's fault: it
/// is penalised and its entry stays without a Δ, so it is not included this round.
pub(crate) fn on_delta(node: &mut Node, round: Round, payload: &[u8]) -> Vec<Output> {
    let n_params = node.params.len();
    let hash = Hash::of(payload);
    let Some(inbox) = inbox_for(node, round) else {
        return Vec::new();
    };
    let waiting: Vec<NodeId> = inbox
        .iter()
        .filter(|(_, entry)| entry.delta.is_none() && entry.announcement.delta == hash)
        .map(|(id, _)| *id)
        .collect();
    if waiting.is_empty() {
        return Vec::new();
    }
    match neuroshard_compress::decode(payload, n_params) {
        Ok(delta) if delta.len() == n_params => {
            for id in &waiting {
                inbox.get_mut(id).expect("collected above").delta = Some(delta.clone());
            }
            Vec::new()
        }
        outcome => {
            let reason = match outcome {
                Ok(delta) => format!("Δ of {} values for a model of {n_params}", delta.len()),
                Err(err) => err.to_string(),
            };
            waiting
                .into_iter()
                .map(|id| penalize(id, &reason))
                .collect()
        }
    }
}

/// The inbox for `round`: the current one, or the early one for the next round.
fn inbox_for(node: &mut Node, round: Round) -> Option<&mut Inbox> {
    if round == node.round {
        Some(&mut node.inbox)
    } else if node.round.checked_add(1) == Some(round) {
        Some(&mut node.early)
    } else {
        None
    }
}

/// Whether `round` has an inbox now (this round or the next).
fn inbox_for_round(node: &Node, round: Round) -> bool {
    round == node.round || node.round.checked_add(1) == Some(round)
}
