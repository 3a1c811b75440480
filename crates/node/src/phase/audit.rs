//! Step 7: audits. Challenge a drawn segment of some of the round's contributions, serve this
//! node's own, replay, and turn a failed replay into a fraud proof every node checks for itself.
//!
//! When a round closes, this node draws for each included contributor whether it audits it and
//! which segment (`neuroshard_verify::audit`), and challenges it. The contributor's driver reads
//! the segment's checkpoints; the contributor serves them as a signed [`Message::Opening`]. The
//! auditor checks the opening against the commitment, its driver replays the segment, and the
//! node judges the result: a pass is gossiped as a [`Message::Verdict`]; a failure as a
//! [`Message::FraudProof`]: the contributor's own signed announcement and opening. A node that
//! receives a proof checks and replays it itself: if it fails, the contributor is excluded; if it
//! passes, the accuser is, so one accuser's word never excludes anybody. A contributor that does
//! not serve its challenged segment in time is reported as withholding; every node that hears so
//! challenges it itself, and excludes it if it withholds from that node too.

use std::collections::{BTreeMap, BTreeSet};

use neuroshard_primitives::{Hash, NodeId, Signed};
use neuroshard_verify::audit::{TICKET_NAMESPACE, ticket_payload};
use neuroshard_verify::stage::LaneWork;
use neuroshard_verify::{
    Chain, Checkpoint, Claim, Commitment, Draw, Fault, Opened, Opening, Outcome, Tail, Verdict,
};
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::message::{Announcement, Message, Round};
use crate::node::{Node, Output, f32_bytes, penalize};
use crate::phase::grow;
use crate::work::{Purpose, ReplayJob, Replayed};

/// Rounds of claims, own chains and audit bookkeeping kept behind the current round.
const ROUNDS_KEPT: u64 = 3;

/// Times a contributor serves one challenger's challenge of a round: the challenger sends it
/// again while no opening reached it, so an opening lost in flight is served again, and a
/// challenger that keeps asking costs at most this many checkpoint reads.
const SERVES_PER_CHALLENGER: u32 = 3;

/// What this node's audits have found so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Challenges this node sent as an auditor.
    pub challenged: u64,
    /// Its replays that matched.
    pub passed: u64,
    /// Its audits that failed (bad opening or replay).
    pub failed: u64,
    /// Its challenges left unanswered.
    pub withheld: u64,
    /// Challenges of this node's own chains it answered.
    pub served: u64,
    /// Fraud proofs received from others.
    pub proofs_seen: u64,
    /// Of those, the ones that held when this node checked them.
    pub proofs_upheld: u64,
    /// Of those, the ones that were false: the accuser was excluded.
    pub false_accusations: u64,
}

/// One of this node's chains, kept to serve openings (the checkpoints themselves are in the
/// driver's store). The driver keeps a copy there too ([`crate::Node::own_chain`]) and hands it
/// back to a node that restarts ([`crate::Node::restore_own`]), which then still answers the
/// challenges of its rounds before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnChain {
    /// The chain's leaves.
    pub chain: Chain,
    /// What the announcement committed to.
    pub commitment: Commitment,
    /// The residual added before encoding.
    pub residual: Vec<f32>,
}

/// A challenge this node sent and has not had answered.
#[derive(Debug)]
struct Pending {
    deadline: Timestamp,
    /// The sealed challenge, sent again at `resend` until the deadline: a contributor that was
    /// down or cut off when it was first sent gets it once it is back.
    frame: Vec<u8>,
    resend: Timestamp,
    /// The round's start model and the contributor's Δ, to score it (`None` for a recheck of a
    /// reported withholding, which replays nothing).
    usefulness: Option<(Vec<f32>, Vec<f32>)>,
    recheck: bool,
}

/// The audit state of a node.
#[derive(Debug, Default)]
pub(crate) struct Audits {
    pub(crate) own: BTreeMap<Round, OwnChain>,
    /// Others' sealed announcement frames, for the proofs that quote them.
    claims: BTreeMap<Round, BTreeMap<NodeId, Vec<u8>>>,
    pending: BTreeMap<(Round, NodeId), Pending>,
    /// Opening frames under replay, for the proof if the replay fails.
    replaying: BTreeMap<(Round, NodeId), Vec<u8>>,
    /// How often this node served each (round, challenger).
    served: BTreeMap<(Round, NodeId), u32>,
    /// (round, contributor, segment) whose fraud proof this node took up (or sent): a proof
    /// counts only once it quotes the contributor's own frames, so junk cannot shield anybody.
    judged: BTreeSet<(Round, NodeId, u64)>,
    /// (round, contributor) pairs whose reported withholding this node checked for itself.
    rechecked: BTreeSet<(Round, NodeId)>,
    /// Members proven to cheat or to accuse falsely, with why.
    pub(crate) excluded: BTreeMap<NodeId, String>,
    pub(crate) stats: AuditStats,
}

/// Keeps a peer's sealed announcement frame, which a fraud proof about it would quote.
pub(crate) fn remember_claim(node: &mut Node, signer: NodeId, round: Round, frame: &[u8]) {
    if node.config.audit.is_some() && round.saturating_add(ROUNDS_KEPT) >= node.round {
        let claims = node.audits.claims.entry(round).or_default();
        claims.entry(signer).or_insert_with(|| frame.to_vec());
    }
}

/// A chain of this node's from before a restart, as the driver stored it: kept if it is whole
/// (its leaves hash to the root it committed to) and recent enough to be challenged.
pub(crate) fn restore_own(node: &mut Node, round: Round, own: OwnChain) -> bool {
    let recent = round.saturating_add(ROUNDS_KEPT) >= node.round;
    let whole = own.chain.root() == own.commitment.root;
    if node.config.audit.is_none() || !recent || !whole {
        return false;
    }
    node.audits.own.entry(round).or_insert(own);
    true
}

/// Keeps this node's own chain for `round`, to serve openings of it.
pub(crate) fn keep_own(
    node: &mut Node,
    round: Round,
    chain: Chain,
    commitment: Commitment,
    residual: Vec<f32>,
) {
    node.audits.own.insert(
        round,
        OwnChain {
            chain,
            commitment,
            residual,
        },
    );
}

/// The round closed with `included`: draw which contributions this node audits, and challenge
/// them. Runs before the outer step, while the node still holds the round's start model.
pub(crate) fn select(node: &mut Node, now: Timestamp, included: &[NodeId]) -> Vec<Output> {
    let Some(config) = node.config.audit else {
        return Vec::new();
    };
    prune(node);
    let round = node.round;
    let rate = config.rate(voters(node).len().saturating_sub(1));
    let mut outputs = Vec::new();
    let me = node.id;
    for &contributor in included.iter().filter(|id| **id != me) {
        let Some(announcement) = claimed(node, round, contributor) else {
            continue;
        };
        // A chain of no step (a stage job whose lane broke at once) claims no training.
        let Some(commitment) = announcement.commitment.filter(|c| c.segments.steps > 0) else {
            continue;
        };
        let ticket = ticket(node, round, &commitment.root, contributor);
        let draw = Draw::of(&ticket.signature);
        if !draw.audits(rate) {
            continue;
        }
        let usefulness = node.inbox.get(&contributor).and_then(|e| e.delta.clone());
        let pending = Pending {
            deadline: now + answer_time(node),
            frame: Vec::new(),
            resend: now + resend_time(node),
            usefulness: usefulness.map(|delta| (node.params.clone(), delta)),
            recheck: false,
        };
        outputs.extend(challenge(
            node,
            round,
            contributor,
            draw,
            ticket,
            commitment,
            pending,
        ));
        node.audits.stats.challenged += 1;
    }
    outputs
}

/// This node's ticket for auditing `contributor`'s chain with `root` in `round`.
pub(crate) fn ticket(node: &Node, round: Round, root: &Hash, contributor: NodeId) -> Signed {
    node.key
        .sign(TICKET_NAMESPACE, &ticket_payload(round, root, &contributor))
}

/// Sends `contributor` a challenge for the segment `draw` picks, and waits for it (sending it
/// again from `pending.resend` on, [`on_tick`]).
fn challenge(
    node: &mut Node,
    round: Round,
    contributor: NodeId,
    draw: Draw,
    ticket: Signed,
    commitment: Commitment,
    mut pending: Pending,
) -> Vec<Output> {
    let message = Message::Challenge {
        round,
        contributor,
        segment: draw.segment(commitment.segments.count()),
        ticket: ticket.signature,
    };
    pending.frame = node.seal(&message);
    let outputs = vec![
        Output::Send(contributor, pending.frame.clone()),
        Output::WakeAt(pending.resend),
        Output::WakeAt(pending.deadline),
    ];
    node.audits.pending.insert((round, contributor), pending);
    outputs
}

/// A member challenged one of this node's segments: if the ticket is the challenger's and draws
/// that segment, and it has not been served [`SERVES_PER_CHALLENGER`] times this round (a
/// challenge comes again while its opening has not arrived), ask the driver for the checkpoints.
pub(crate) fn on_challenge(
    node: &mut Node,
    challenger: NodeId,
    round: Round,
    segment: u64,
    ticket: Vec<u8>,
) -> Vec<Output> {
    let Some(own) = node.audits.own.get(&round) else {
        return Vec::new();
    };
    let signed = Signed {
        signer: challenger,
        payload: ticket_payload(round, &own.commitment.root, &node.id),
        signature: ticket,
    };
    let count = own.commitment.segments.count();
    if count == 0
        || signed.verify(TICKET_NAMESPACE).is_err()
        || Draw::of(&signed.signature).segment(count) != segment
    {
        return vec![penalize(
            challenger,
            "a challenge whose ticket does not hold",
        )];
    }
    let serves = node.audits.served.entry((round, challenger)).or_default();
    if *serves >= SERVES_PER_CHALLENGER {
        return Vec::new();
    }
    *serves += 1;
    let mut indices = vec![segment, segment + 1];
    if segment + 1 == count {
        indices.push(0);
    }
    vec![Output::Checkpoints {
        peer: challenger,
        round,
        segment,
        indices,
    }]
}

/// The driver read the checkpoints of a challenged segment: serve them as a signed opening
/// (nothing, if the store no longer has them: the challenger will report withholding).
pub(crate) fn on_checkpoints(
    node: &mut Node,
    peer: NodeId,
    (round, segment): (Round, u64),
    checkpoints: Option<Vec<Vec<u8>>>,
    work: Vec<Vec<LaneWork>>,
) -> Vec<Output> {
    let (Some(own), Some(mut read)) = (node.audits.own.get(&round), checkpoints) else {
        return Vec::new();
    };
    let (Some(start_leaf), Some(end_leaf)) = (own.chain.open(segment), own.chain.open(segment + 1))
    else {
        return Vec::new();
    };
    let last = segment + 1 == own.commitment.segments.count();
    // The chain's start holds the round's model the job trained from (the node may hold
    // another since, after a resync within the round).
    let base = if last { read.pop() } else { None };
    let tail =
        match base.map(|bytes| Checkpoint::from_bytes(&bytes, grow::n_params_of(node, round))) {
            Some(Ok(start)) => Some(Tail {
                base: f32_bytes(&start.params),
                residual: f32_bytes(&own.residual),
            }),
            Some(Err(_)) => return Vec::new(),
            None => None,
        };
    let [start, end]: [Vec<u8>; 2] = match read.try_into() {
        Ok(pair) => pair,
        Err(_) => return Vec::new(),
    };
    let opening = Opening {
        segment,
        start,
        end,
        start_leaf,
        end_leaf,
        tail,
        work,
    };
    node.audits.stats.served += 1;
    vec![Output::Send(
        peer,
        node.seal(&Message::Opening { round, opening }),
    )]
}

/// A contributor answered this node's challenge: check the opening; replay it unless it is a
/// recheck (which only asks whether the contributor serves at all).
pub(crate) fn on_opening(
    node: &mut Node,
    contributor: NodeId,
    frame: &[u8],
    round: Round,
    opening: Opening,
) -> Vec<Output> {
    let Some(pending) = node.audits.pending.remove(&(round, contributor)) else {
        return Vec::new();
    };
    let Some(announcement) = claimed(node, round, contributor) else {
        return Vec::new();
    };
    match check_opening(node, round, &announcement, &opening) {
        Err(fault) => {
            node.audits.stats.failed += u64::from(!pending.recheck);
            fail(
                node,
                round,
                contributor,
                opening.segment,
                Some(frame.to_vec()),
                fault,
            )
        }
        Ok(_) if pending.recheck => Vec::new(),
        Ok(opened) => {
            node.audits
                .replaying
                .insert((round, contributor), frame.to_vec());
            vec![Output::Replay(Box::new(ReplayJob {
                round,
                contributor,
                opened,
                purpose: Purpose::Audit {
                    usefulness: pending.usefulness,
                },
            }))]
        }
    }
}

/// Checks an opening of `announcement`'s chain (everything but the replay).
fn check_opening(
    node: &Node,
    round: Round,
    announcement: &Announcement,
    opening: &Opening,
) -> Result<Opened, Fault> {
    let commitment = announcement
        .commitment
        .as_ref()
        .ok_or_else(|| Fault::Opening("the announcement commits to nothing".into()))?;
    let first_step = round
        .checked_mul(node.config.inner_steps as u64)
        .ok_or_else(|| Fault::Opening("round out of range".into()))?;
    let claim = Claim {
        commitment,
        base: &announcement.base,
        first_step,
        n_params: grow::n_params_of(node, round),
    };
    opening
        .check(&claim)
        .map_err(|err| Fault::Opening(err.to_string()))
}

/// The driver replayed a segment: judge it.
pub(crate) fn on_replayed(
    node: &mut Node,
    job: ReplayJob,
    result: Result<Replayed, String>,
) -> Vec<Output> {
    let ReplayJob {
        round,
        contributor,
        opened,
        purpose,
    } = job;
    let frame = node.audits.replaying.remove(&(round, contributor));
    let Ok(replayed) = result else {
        return Vec::new();
    };
    let outcome = judge(node, round, contributor, &opened, &replayed);
    match (purpose, outcome) {
        (Purpose::Audit { .. }, Ok(distance)) => {
            node.audits.stats.passed += 1;
            let verdict = Verdict {
                round,
                contributor,
                segment: opened.segment,
                outcome: Outcome::Passed { distance },
                usefulness: replayed.usefulness,
            };
            vec![
                Output::Broadcast(node.seal(&Message::Verdict(verdict.clone()))),
                Output::Audited(verdict),
            ]
        }
        (Purpose::Audit { .. }, Err(fault)) => {
            node.audits.stats.failed += 1;
            fail(node, round, contributor, opened.segment, frame, fault)
        }
        (Purpose::Proof { accuser }, Ok(_)) => {
            node.audits.stats.false_accusations += 1;
            exclude(
                node,
                accuser,
                None,
                format!("accused {contributor} falsely for round {round}"),
            )
        }
        (Purpose::Proof { .. }, Err(fault)) => {
            node.audits.stats.proofs_upheld += 1;
            exclude(
                node,
                contributor,
                Some(round),
                format!("round {round}: {fault}"),
            )
        }
    }
}

/// Compares a replay with the committed segment, and repeats the encoding of the last one.
fn judge(
    node: &Node,
    round: Round,
    contributor: NodeId,
    opened: &Opened,
    replayed: &Replayed,
) -> Result<f32, Fault> {
    let config = node
        .config
        .audit
        .unwrap_or(neuroshard_verify::AuditConfig::DEFAULT);
    // A stage's work that could not be replayed, or frames it sent that its replay does not.
    replayed.frames.clone()?;
    let distance =
        neuroshard_verify::judge(opened, &replayed.end, &replayed.losses, &config.tolerance)?;
    if let Some(announcement) = claimed(node, round, contributor) {
        let residual_after = announcement
            .commitment
            .map(|c| c.residual_after)
            .unwrap_or_default();
        neuroshard_verify::check_encoding(
            opened,
            &node.config.compress,
            &announcement.delta,
            &residual_after,
        )?;
    }
    Ok(distance)
}

/// This node found `contributor`'s segment false: exclude it and send every node the proof.
fn fail(
    node: &mut Node,
    round: Round,
    contributor: NodeId,
    segment: u64,
    opening: Option<Vec<u8>>,
    fault: Fault,
) -> Vec<Output> {
    let announcement = node
        .audits
        .claims
        .get(&round)
        .and_then(|claims| claims.get(&contributor))
        .cloned();
    node.audits.judged.insert((round, contributor, segment));
    let verdict = Verdict {
        round,
        contributor,
        segment,
        outcome: Outcome::Failed(fault.clone()),
        usefulness: None,
    };
    let mut outputs = vec![Output::Audited(verdict)];
    // Without both of the contributor's frames (forgotten after a very slow replay) the proof
    // would look false to others: this node then only excludes the contributor itself.
    if let (Some(announcement), Some(opening)) = (announcement, opening) {
        let proof = Message::FraudProof {
            round,
            contributor,
            announcement,
            opening,
        };
        outputs.push(Output::Broadcast(node.seal(&proof)));
    }
    outputs.extend(exclude(
        node,
        contributor,
        Some(round),
        format!("round {round}: {fault}"),
    ));
    outputs
}

/// Another node's fraud proof: check the quoted frames and the opening; replay it unless the
/// opening alone already fails.
pub(crate) fn on_fraud_proof(
    node: &mut Node,
    accuser: NodeId,
    round: Round,
    contributor: NodeId,
    announcement: &[u8],
    opening: &[u8],
) -> Vec<Output> {
    if node.config.audit.is_none() || node.audits.excluded.contains_key(&contributor) {
        return Vec::new();
    }
    let quoted = Message::open(announcement, node.config.max_frame)
        .ok()
        .zip(Message::open(opening, node.config.max_frame).ok());
    let (claim, served) = match quoted {
        Some(((a, Message::Announce(claim)), (o, Message::Opening { round: r, opening })))
            if a == contributor && o == contributor && claim.round == round && r == round =>
        {
            (claim, opening)
        }
        _ => {
            node.audits.stats.proofs_seen += 1;
            node.audits.stats.false_accusations += 1;
            return exclude(
                node,
                accuser,
                None,
                "sent a fraud proof that quotes no signed frames",
            );
        }
    };
    if !node
        .audits
        .judged
        .insert((round, contributor, served.segment))
    {
        return Vec::new();
    }
    node.audits.stats.proofs_seen += 1;
    match check_opening(node, round, &claim, &served) {
        Err(fault) => {
            node.audits.stats.proofs_upheld += 1;
            exclude(
                node,
                contributor,
                Some(round),
                format!("round {round}: {fault}"),
            )
        }
        Ok(opened) => {
            let claims = node.audits.claims.entry(round).or_default();
            claims
                .entry(contributor)
                .or_insert_with(|| announcement.to_vec());
            vec![Output::Replay(Box::new(ReplayJob {
                round,
                contributor,
                opened,
                purpose: Purpose::Proof { accuser },
            }))]
        }
    }
}

/// Another auditor's verdict: a report of withholding makes this node challenge the
/// contributor itself.
pub(crate) fn on_verdict(node: &mut Node, now: Timestamp, verdict: Verdict) -> Vec<Output> {
    let (round, contributor) = (verdict.round, verdict.contributor);
    let relevant = verdict.outcome == Outcome::Withheld
        && contributor != node.id
        && !node.audits.excluded.contains_key(&contributor)
        && !node.audits.pending.contains_key(&(round, contributor));
    if !relevant || !node.audits.rechecked.insert((round, contributor)) {
        return Vec::new();
    }
    let Some(commitment) = claimed(node, round, contributor)
        .and_then(|a| a.commitment)
        .filter(|c| c.segments.steps > 0)
    else {
        return Vec::new();
    };
    let ticket = ticket(node, round, &commitment.root, contributor);
    let pending = Pending {
        deadline: now + answer_time(node),
        frame: Vec::new(),
        resend: now + resend_time(node),
        usefulness: None,
        recheck: true,
    };
    challenge(
        node,
        round,
        contributor,
        Draw::of(&ticket.signature),
        ticket,
        commitment,
        pending,
    )
}

/// Time passed: a challenge due to be sent again is; one past its deadline was withheld. The
/// contributor is excluded (it withheld from this node, which saw that itself); an audit's is
/// reported, so every other node challenges the contributor itself.
pub(crate) fn on_tick(node: &mut Node, now: Timestamp) -> Vec<Output> {
    let every = resend_time(node);
    let mut outputs = Vec::new();
    for (&(_, contributor), pending) in &mut node.audits.pending {
        if pending.resend <= now && now < pending.deadline {
            pending.resend = now + every;
            outputs.push(Output::Send(contributor, pending.frame.clone()));
            outputs.push(Output::WakeAt(pending.resend));
        }
    }
    let expired: Vec<(Round, NodeId)> = node
        .audits
        .pending
        .iter()
        .filter(|(_, p)| p.deadline <= now)
        .map(|(key, _)| *key)
        .collect();
    for (round, contributor) in expired {
        let pending = node
            .audits
            .pending
            .remove(&(round, contributor))
            .expect("listed");
        let reason = format!("withheld its challenged segment of round {round}");
        outputs.extend(exclude(node, contributor, Some(round), reason));
        if pending.recheck {
            continue;
        }
        node.audits.stats.withheld += 1;
        node.audits.rechecked.insert((round, contributor));
        let verdict = Verdict {
            round,
            contributor,
            segment: 0,
            outcome: Outcome::Withheld,
            usefulness: None,
        };
        outputs.push(Output::Broadcast(
            node.seal(&Message::Verdict(verdict.clone())),
        ));
        outputs.push(Output::Audited(verdict));
    }
    outputs
}

/// How long a contributor has to serve a challenged segment: half a round's deadline (reading
/// two checkpoints and sending them takes far less than training a round).
fn answer_time(node: &Node) -> std::time::Duration {
    node.config.round_timeout / 2
}

/// How often an unanswered challenge is sent again: every fifth of its answer time (a tenth of
/// a deadline), so a contributor back within four fifths of it still gets one in time.
fn resend_time(node: &Node) -> std::time::Duration {
    answer_time(node) / 5
}

/// Excludes `id` from every later round (and from this one if it has not closed). `convicted`:
/// the round whose work `id` was caught cheating on (`None` for a false accuser).
fn exclude(
    node: &mut Node,
    id: NodeId,
    convicted: Option<Round>,
    reason: impl ToString,
) -> Vec<Output> {
    if id == node.id || node.audits.excluded.contains_key(&id) {
        return Vec::new();
    }
    let reason = reason.to_string();
    node.audits.excluded.insert(id, reason.clone());
    node.audits.pending.retain(|(_, c), _| *c != id);
    let evidence = convicted.and_then(|round| {
        let frame = node.audits.claims.get(&round)?.get(&id)?;
        Some((round, frame.clone()))
    });
    vec![Output::Excluded {
        node: id,
        reason,
        evidence,
    }]
}

/// The members that count: all but those excluded.
pub(crate) fn voters(node: &Node) -> BTreeSet<NodeId> {
    node.members
        .iter()
        .filter(|id| !node.audits.excluded.contains_key(id))
        .copied()
        .collect()
}

/// `contributor`'s announcement for `round`, from its kept frame.
fn claimed(node: &Node, round: Round, contributor: NodeId) -> Option<Announcement> {
    let frame = node.audits.claims.get(&round)?.get(&contributor)?;
    match Message::open(frame, node.config.max_frame) {
        Ok((_, Message::Announce(announcement))) => Some(announcement),
        _ => None,
    }
}

/// Forgets what is older than [`ROUNDS_KEPT`] rounds.
fn prune(node: &mut Node) {
    let oldest = node.round.saturating_sub(ROUNDS_KEPT);
    let audits = &mut node.audits;
    audits.own.retain(|r, _| *r >= oldest);
    audits.claims.retain(|r, _| *r >= oldest);
    audits.served.retain(|(r, _), _| *r >= oldest);
    audits.judged.retain(|(r, _, _)| *r >= oldest);
    audits.rechecked.retain(|(r, _)| *r >= oldest);
    audits.replaying.retain(|(r, _), _| *r >= oldest);
}
