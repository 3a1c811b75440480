//! One training round, in the order `docs/protocol.md` gives it.
//!
//! 1. **Begin.** Hand the driver a job: H inner steps from the round's start parameters.
//! 2. **Contribute.** Compress the returned Δ with error feedback, keep the bytes to serve, and
//!    gossip a signed announcement of their hash.
//! 3. **Exchange.** For each peer's announcement, fetch its Δ by hash, check the hash, decode;
//!    ask again while it does not come.
//! 4. **Agree.** Ask the [`crate::Agreement`] whether the round may close, and on which list.
//! 5. **Outer step.** Aggregate the listed Δs with the robust rule; apply the Nesterov step.
//!    Record the pool's size (the included contributors' budgets) and grow the model when the
//!    genesis schedule says so, before the vote.
//! 6. **Check.** Vote the new model hash; a node whose hash is not the one the members settled on
//!    (a majority, or the plurality once everyone voted), or that finds the network ahead of it,
//!    installs a peer's state and observes one round before it trains again.
//!    Then the next round begins.
//! 7. **Audit.** When a round closes, challenge the segments the draw picks among its
//!    contributions (before the outer step, while the round's start model is at hand); serve
//!    this node's own; replay what is served, beside the next round's training; exclude whoever
//!    a checked fraud proof convicts.

use std::collections::BTreeSet;

use neuroshard_primitives::NodeId;

use crate::Timestamp;
use crate::message::Message;
use crate::node::{Input, Node, Output, Phase, penalize};
use crate::phase::{aggregate, audit, exchange, grow, sync, train};
use crate::work::{ReplayJob, Replayed, TrainingResult};

impl Node {
    /// Replaces the set of members expected to contribute (peers joined or left); the node must
    /// stay a member. A round waiting only on members that left may close now; each new member
    /// is told this node's latest model-hash vote, so a joining node learns where the network
    /// stands.
    ///
    /// A member that left loses its standing in the current round (its vote for the round
    /// before, its Δ counted in it: see `aggregate::agree`). What comes back under its id may be
    /// a new process that holds nothing of it (a pipeline stage restarts from genesis) and
    /// trains nothing of this round, so it is waited for again once it votes the network's
    /// model or has a Δ counted, as a joining node is.
    pub fn set_members(&mut self, now: Timestamp, members: BTreeSet<NodeId>) -> Vec<Output> {
        assert!(
            members.contains(&self.id),
            "a node stays a member of its own network"
        );
        let joined: Vec<NodeId> = members.difference(&self.members).copied().collect();
        let previous = self.round.checked_sub(1);
        for left in self.members.difference(&members) {
            self.included_last.remove(left);
            if let Some(votes) = previous.and_then(|r| self.votes.get_mut(&r)) {
                votes.remove(left);
            }
        }
        self.members = members;
        on_members(self, now, &joined)
    }

    /// Handles one input at time `now`.
    pub fn handle(&mut self, now: Timestamp, input: Input) -> Vec<Output> {
        match input {
            Input::Tick => on_tick(self, now),
            Input::Trained(result) => on_trained(self, now, result),
            Input::Failed { round } => {
                train::abandon(self, round);
                try_close(self, now)
            }
            Input::Message(peer, frame) => on_frame(self, now, peer, &frame),
            Input::Checkpoints {
                peer,
                round,
                segment,
                checkpoints,
                work,
            } => audit::on_checkpoints(self, peer, (round, segment), checkpoints, work),
            Input::Replayed(job, result) => on_replayed(self, now, *job, result),
            Input::Decided { round, list } => {
                self.agreement.learn(round, list);
                try_close(self, now)
            }
        }
    }
}

/// Time passed: start the first round, close the exchange at its deadline, or ask another
/// holder for a state that did not come.
pub(crate) fn on_tick(node: &mut Node, now: Timestamp) -> Vec<Output> {
    let mut outputs = sync::retry(node, now);
    outputs.extend(audit::on_tick(node, now));
    if matches!(
        node.phase,
        Phase::Training | Phase::Exchange | Phase::Observing
    ) {
        outputs.extend(exchange::refetch(node, now));
    }
    match node.phase {
        Phase::Idle => outputs.extend(start(node, now)),
        Phase::Exchange | Phase::Observing => outputs.extend(try_close(node, now)),
        Phase::Awaiting if now >= node.deadline => {
            node.phase = Phase::Idle;
            outputs.extend(start(node, now));
        }
        Phase::Training | Phase::Awaiting => {}
    }
    outputs
}

/// The first round: tell the peers where this node stands (a resumed node's last vote), and
/// train unless the votes already heard say the network is elsewhere (the node then waits for
/// the network's state instead of training a round nobody needs). A node built from scratch
/// asks its members for their votes first and waits for the network's model
/// ([`Node::from_scratch`]).
fn start(node: &mut Node, now: Timestamp) -> Vec<Output> {
    let mut outputs: Vec<Output> = sync::latest_vote(node)
        .map(Output::Broadcast)
        .into_iter()
        .collect();
    outputs.extend(sync::check(node, now));
    if let Some(patience) = node.patience.take() {
        node.phase = Phase::Awaiting;
        node.deadline = now + patience;
        let ask = node.seal(&Message::VoteRequest { round: node.round });
        outputs.extend([Output::Broadcast(ask), Output::WakeAt(node.deadline)]);
        return outputs;
    }
    if node.pending_sync.is_none() && node.phase == Phase::Idle {
        outputs.extend(train::begin(node, now));
    }
    outputs
}

/// The driver's training job finished: contribute, then see whether the round can close.
pub(crate) fn on_trained(node: &mut Node, now: Timestamp, result: TrainingResult) -> Vec<Output> {
    let mut outputs = train::contribute(node, result);
    outputs.extend(try_close(node, now));
    outputs
}

/// A frame from `peer`: open it (size, decode, signature) and dispatch on its kind.
pub(crate) fn on_frame(node: &mut Node, now: Timestamp, peer: NodeId, frame: &[u8]) -> Vec<Output> {
    let (signer, message) = match Message::open(frame, node.config.max_frame) {
        Ok(opened) => opened,
        Err(err) => return vec![penalize(peer, err)],
    };
    if node.audits.excluded.contains_key(&signer) {
        return Vec::new();
    }
    match message {
        Message::Announce(announcement) => {
            audit::remember_claim(node, signer, announcement.round, frame);
            exchange::on_announce(node, signer, announcement)
        }
        Message::Fetch { round, delta } => exchange::on_fetch(node, peer, round, delta),
        Message::Delta { round, payload } => {
            let mut outputs = exchange::on_delta(node, round, &payload);
            outputs.extend(try_close(node, now));
            outputs
        }
        Message::ModelHash { round, hash } => sync::on_vote(node, now, signer, round, hash),
        Message::SyncRequest { round } => sync::on_request(node, peer, round),
        Message::SyncState {
            round,
            params,
            outer,
            missed,
            pool,
        } => {
            let state = sync::State {
                round,
                params: &params,
                outer: &outer,
                missed: &missed,
                pool: &pool,
            };
            let installed = sync::on_state(node, signer, state);
            let mut outputs = installed.outputs;
            if let Some(next) = installed.observe {
                outputs.extend(sync::observe(node, now, next));
            }
            // The votes may already say the network has moved past the installed round.
            outputs.extend(sync::check(node, now));
            outputs.extend(try_close(node, now));
            // A node built from scratch has the network's model for the round it waits in.
            if node.phase == Phase::Awaiting && node.pending_sync.is_none() && installed.current {
                outputs.extend(train::begin(node, now));
            }
            outputs
        }
        Message::VoteRequest { .. } if node.members.contains(&signer) => sync::latest_vote(node)
            .map(|vote| Output::Send(peer, vote))
            .into_iter()
            .collect(),
        Message::VoteRequest { .. } => Vec::new(),
        Message::Challenge {
            round,
            contributor,
            segment,
            ticket,
        } if contributor == node.id && node.members.contains(&signer) => {
            audit::on_challenge(node, signer, round, segment, ticket)
        }
        Message::Challenge { .. } => Vec::new(),
        Message::Opening { round, opening } => {
            audit::on_opening(node, signer, frame, round, opening)
        }
        Message::Verdict(verdict) if node.members.contains(&signer) => {
            audit::on_verdict(node, now, verdict)
        }
        Message::Verdict(_) => Vec::new(),
        Message::FraudProof {
            round,
            contributor,
            announcement,
            opening,
        } if node.members.contains(&signer) => {
            let mut outputs =
                audit::on_fraud_proof(node, signer, round, contributor, &announcement, &opening);
            outputs.extend(try_close(node, now));
            outputs
        }
        Message::FraudProof { .. } => Vec::new(),
    }
}

/// The driver replayed a segment: judge it; an exclusion may let the round close.
pub(crate) fn on_replayed(
    node: &mut Node,
    now: Timestamp,
    job: ReplayJob,
    result: Result<Replayed, String>,
) -> Vec<Output> {
    let mut outputs = audit::on_replayed(node, job, result);
    outputs.extend(try_close(node, now));
    outputs
}

/// The members changed: greet the new ones with this node's latest vote (a node built from
/// scratch that awaits the network's model asks them for theirs); the round may close without
/// those who left, and a round may settle.
pub(crate) fn on_members(node: &mut Node, now: Timestamp, joined: &[NodeId]) -> Vec<Output> {
    let ask = (node.phase == Phase::Awaiting)
        .then(|| node.seal(&Message::VoteRequest { round: node.round }));
    let greeting = sync::latest_vote(node).into_iter().chain(ask);
    let mut outputs: Vec<Output> = greeting
        .flat_map(|frame| {
            joined
                .iter()
                .map(move |peer| Output::Send(*peer, frame.clone()))
        })
        .collect();
    outputs.extend(try_close(node, now));
    outputs.extend(sync::check(node, now));
    outputs
}

/// Steps 4 to 6, once the agreement says the round may close.
fn try_close(node: &mut Node, now: Timestamp) -> Vec<Output> {
    let Some(closing) = aggregate::agree(node, now) else {
        return Vec::new();
    };
    let mut outputs = audit::select(node, now, closing.included());
    let pool_bytes = grow::pool_bytes(node, closing.included());
    let mut summary = aggregate::outer_step(node, now, closing);
    summary.growth = grow::at_boundary(node, summary.round, pool_bytes);
    summary.model_hash = node.model_hash;
    outputs.push(Output::Broadcast(sync::vote(node, summary.round)));
    outputs.push(Output::Closed(summary));
    outputs.extend(sync::check(node, now));
    outputs.extend(train::begin(node, now));
    outputs
}
