//! Steps 1 and 2: start a round's training job; turn its Δ into a compressed, announced
//! contribution.

use neuroshard_primitives::Hash;
use neuroshard_verify::{Chain, Commitment, Segments, residual_hash};

use crate::Timestamp;
use crate::message::{Announcement, Message, Round};
use crate::node::{Entry, Node, Output, Phase};
use crate::phase::audit;
use crate::work::{TrainingJob, TrainingResult};

/// How many recent rounds' encoded Δs a node keeps serving to late fetchers.
const SERVED_ROUNDS: u64 = 2;

/// Starts the current round: its deadline and the driver's training job. (The announcements
/// for it are already in the inbox: kept while the node was idle, or moved there from the early
/// inbox when the previous round closed.)
pub(crate) fn begin(node: &mut Node, now: Timestamp) -> Vec<Output> {
    node.phase = Phase::Training;
    node.deadline = now + node.config.round_timeout;
    let job = TrainingJob {
        round: node.round,
        steps: node.config.inner_steps,
        start: node.model_hash,
        chain: chain_plan(node),
    };
    vec![Output::Train(job), Output::WakeAt(node.deadline)]
}

/// The job for `round` gave no Δ: the node goes on to the exchange without one (it used to
/// stay in training until a resync moved it; when every replica of a pipeline stage lost its
/// job, the stage stood still for good). A failure of another round's job, or one that comes
/// while the node does not train, changes nothing.
pub(crate) fn abandon(node: &mut Node, round: Round) {
    if round == node.round && node.phase == Phase::Training {
        node.phase = Phase::Exchange;
    }
}

/// Compresses the Δ with error feedback, records it as this node's own entry, and announces it.
/// A result for another round (the node resynced meanwhile) is dropped; a Δ of another size than
/// the model (a pipeline stage that grew, or installed its mates' grown state, while the job
/// ran), a Δ the codec refuses (not finite: the replica diverged) and one without the commitment
/// the network's chain plan asks for are not contributed, and the node still takes part in the
/// rest of the round. The announcement names the model the job started from: after a resync
/// within the round that is no longer the node's model, so the Δ counts nowhere, but peers
/// learn not to wait for it.
pub(crate) fn contribute(node: &mut Node, result: TrainingResult) -> Vec<Output> {
    if result.round != node.round || node.phase != Phase::Training {
        return Vec::new();
    }
    node.phase = Phase::Exchange;
    if result.delta.len() != node.params.len() {
        return Vec::new();
    }
    // Peers refuse a Δ without the commitment the network's chain plan asks for: a job whose
    // chain holds nothing (it stopped before it recorded its start, or ran for a lane's sake
    // without one) is not contributed, nor claimed.
    let segments = trained_segments(node, &result.chain);
    if chain_plan(node).is_some() && segments.is_none() {
        return Vec::new();
    }
    let residual_before = node.residual.as_slice().to_vec();
    let Ok(packet) =
        neuroshard_compress::encode(&result.delta, &mut node.residual, &node.config.compress)
    else {
        node.residual.clear();
        return Vec::new();
    };
    let payload = packet.into_bytes();
    let own = neuroshard_compress::decode(&payload, node.params.len())
        .expect("a payload this node just encoded decodes");
    let announcement = Announcement {
        round: node.round,
        base: result.start,
        delta: Hash::of(&payload),
        delta_len: payload.len() as u64,
        tokens: result.tokens,
        loss_start: result.loss_start,
        loss_end: result.loss_end,
        commitment: None,
        memory_budget: node.pool.budget,
    };
    let announcement = match segments {
        Some(segments) => {
            let commitment = Commitment {
                segments,
                root: result.chain.root(),
                residual_before: residual_hash(&residual_before),
                residual_after: residual_hash(node.residual.as_slice()),
            };
            audit::keep_own(node, node.round, result.chain, commitment, residual_before);
            Announcement {
                commitment: Some(commitment),
                ..announcement
            }
        }
        None => announcement,
    };
    let frame = node.seal(&Message::Announce(announcement.clone()));
    node.inbox.insert(
        node.id,
        Entry {
            announcement: announcement.clone(),
            delta: Some(own),
        },
    );
    node.served
        .insert(node.round, (announcement.delta, payload));
    let keep_from = node.round.saturating_sub(SERVED_ROUNDS - 1);
    node.served.retain(|round, _| *round >= keep_from);
    let claim = Output::Claim {
        round: node.round,
        delta: announcement.delta,
        root: announcement.commitment.map(|c| c.root).unwrap_or_default(),
    };
    vec![Output::Broadcast(frame), claim]
}

/// How the job's chain is cut, when it committed one: the network's cut over the steps the
/// chain covers. That is the whole job's H unless a pipeline stage's lane broke and its job
/// stopped early (its chain then ends with the steps it trained, the last segment shorter, or
/// holds only its start: no step, nothing to audit).
fn trained_segments(node: &Node, chain: &Chain) -> Option<Segments> {
    let plan = chain_plan(node)?;
    let steps = chain.losses().count() as u64;
    let leaves = chain.leaves().len() as u64;
    (leaves > 0 && leaves == steps.div_ceil(plan.len) + 1).then_some(Segments {
        steps,
        len: plan.len,
    })
}

/// How the network cuts a training job into a committed chain, if it audits.
pub(crate) fn chain_plan(node: &Node) -> Option<Segments> {
    let audit = node.config.audit?;
    Segments::new(node.config.inner_steps as u64, audit.segments).ok()
}
