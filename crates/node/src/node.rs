//! The node: one replica's view of the training protocol, as a deterministic state machine.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use neuroshard_primitives::{Hash, Keypair, NodeId};
use neuroshard_verify::stage::LaneWork;

use crate::agreement::Agreement;
use crate::config::NodeConfig;
use crate::message::{Announcement, Message, Round};
use crate::phase::audit::{AuditStats, Audits, OwnChain};
use crate::phase::grow::{Growth, Pool};
use crate::work::{ReplayJob, Replayed, TrainingJob, TrainingResult};
use crate::{Error, Result, Timestamp};

/// Everything that can happen to a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Time passed; the first tick starts round 0.
    Tick,
    /// A frame arrived from a peer (the transport-level sender, not necessarily the signer).
    Message(NodeId, Vec<u8>),
    /// The driver finished a [`TrainingJob`].
    Trained(TrainingResult),
    /// The driver's [`TrainingJob`] for `round` ended without a result (its pipeline lane
    /// stalled, its data could not be read): the node contributes nothing to the round and
    /// takes part in the rest of it.
    Failed {
        /// The job's round.
        round: Round,
    },
    /// The driver read the checkpoints [`Output::Checkpoints`] asked for, in wire form and in
    /// the order asked; `None` if its store no longer holds them all.
    Checkpoints {
        /// The challenger to serve.
        peer: NodeId,
        /// The round of the chain.
        round: Round,
        /// The segment challenged.
        segment: u64,
        /// The checkpoints.
        checkpoints: Option<Vec<Vec<u8>>>,
        /// A pipeline stage's work of the segment, as its store keeps it (empty for a whole
        /// model's chain).
        work: Vec<Vec<LaneWork>>,
    },
    /// The driver finished a [`ReplayJob`]: what it computed, or why it could not (a local
    /// failure, which judges nobody).
    Replayed(Box<ReplayJob>, std::result::Result<Replayed, String>),
    /// The ledger closed `round`: its inclusion list, (contributor, Δ hash) in ledger order.
    Decided {
        /// The round.
        round: Round,
        /// The list.
        list: Vec<(NodeId, Hash)>,
    },
}

/// Everything a node asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a frame to every member.
    Broadcast(Vec<u8>),
    /// Send a frame to one peer.
    Send(NodeId, Vec<u8>),
    /// Run a training job from [`Node::params`] and feed back [`Input::Trained`].
    Train(TrainingJob),
    /// Feed [`Input::Tick`] at this time (a deadline).
    WakeAt(Timestamp),
    /// A peer sent something invalid; score it down.
    Penalize {
        /// The peer at fault.
        peer: NodeId,
        /// What it did, for logs.
        reason: String,
    },
    /// A round closed: what was applied.
    Closed(RoundSummary),
    /// Read checkpoints `indices` of this node's chain for `round` from the store and feed them
    /// back as [`Input::Checkpoints`] (a member challenged `segment`: its start and end, and for
    /// the last segment the chain's start, whose parameters are the round's model).
    Checkpoints {
        /// The challenger.
        peer: NodeId,
        /// The round of the chain.
        round: Round,
        /// The segment challenged.
        segment: u64,
        /// The checkpoints to read.
        indices: Vec<u64>,
    },
    /// Replay another node's segment with the driver's [`crate::Verifier`] and feed back
    /// [`Input::Replayed`].
    Replay(Box<ReplayJob>),
    /// This node concluded an audit (for logs and status).
    Audited(neuroshard_verify::Verdict),
    /// Put this node's work claim for `round` on the ledger (its Δ's hash and its training
    /// chain's root, the zero hash when the network does not audit).
    Claim {
        /// The round.
        round: Round,
        /// The hash of the announced Δ.
        delta: Hash,
        /// The training chain's root.
        root: Hash,
    },
    /// A member was proven to cheat, or to accuse falsely: it counts for nothing from now on.
    Excluded {
        /// The member.
        node: NodeId,
        /// The proof's finding, for logs.
        reason: String,
        /// For a cheat: the round and the member's own signed announcement of the work
        /// convicted, the evidence a ledger conviction carries. `None` for a false accuser.
        evidence: Option<(Round, Vec<u8>)>,
    },
    /// The node's model was not the one the members settled on and was replaced by a peer's.
    Resynced {
        /// The round whose end state was installed.
        round: Round,
        /// The installed model's hash.
        hash: Hash,
    },
}

/// A node's state at a round boundary: enough to resume it, or to bring another node up to date.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The round about to be trained.
    pub round: Round,
    /// The global model at the start of `round`.
    pub params: Vec<f32>,
    /// The outer optimiser's state, as it serialises itself.
    pub outer: Vec<u8>,
    /// The members this node excluded (proven cheaters and false accusers), with why: they stay
    /// excluded after a restart.
    pub excluded: BTreeMap<NodeId, String>,
    /// The pool sizes at the latest round boundaries, oldest first (the growth rule's input).
    pub pool: Vec<u64>,
}

/// What a closed round applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundSummary {
    /// The round.
    pub round: Round,
    /// Contributors whose Δ was aggregated, in canonical order.
    pub included: Vec<NodeId>,
    /// Why the outer step was skipped (the aggregator refused the inputs), if it was.
    pub skipped: Option<String>,
    /// Members the round waited for that had not delivered when it closed (it closed at its
    /// deadline because of them), in ascending id order.
    pub missed: Vec<NodeId>,
    /// Hash of the parameters after the outer step.
    pub model_hash: Hash,
    /// Mean of the included contributors' reported final inner losses.
    pub train_loss: f32,
    /// Training tokens the outer step applied: the included contributors' claimed tokens,
    /// summed (0 when the step was skipped).
    pub tokens: u64,
    /// When the round closed.
    pub closed_at: Timestamp,
    /// What growth did at this boundary: the depth the model grew to, or why it could not;
    /// `None` when the model kept its depth.
    pub growth: Option<std::result::Result<usize, String>>,
}

/// Where a node is within its current round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not started: waiting for the first tick.
    Idle,
    /// A training job is out with the driver.
    Training,
    /// The node's own Δ is announced; collecting the others' until the agreement closes.
    Exchange,
    /// The node installed the network's model after the round began: it collects and applies
    /// the others' Δs without training, and contributes from the next round.
    Observing,
    /// Built from scratch ([`Node::from_scratch`]), its first tick came: it asked its members
    /// for their votes and trains once it installed the network's model, or at its deadline.
    Awaiting,
}

/// A state request in flight: the round and settled hash wanted, and when to ask another holder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PendingSync {
    pub(crate) round: Round,
    pub(crate) hash: Hash,
    pub(crate) retry_at: Timestamp,
}

/// One contributor's entry for a round: its announcement and, once fetched and checked, its Δ.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) announcement: Announcement,
    pub(crate) delta: Option<Vec<f32>>,
}

/// Contributions received for one round, keyed by contributor.
pub(crate) type Inbox = BTreeMap<NodeId, Entry>;

/// One replica of the training protocol.
///
/// ```mermaid
/// stateDiagram-v2
///     [*] --> Training: first Tick
///     [*] --> Awaiting: first Tick, built from scratch / VoteRequest
///     Awaiting --> Training: SyncState installed, or deadline
///     Training --> Exchange: Trained(Δ) / compress, announce
///     Training --> Exchange: Failed / no Δ of its own
///     Exchange --> Exchange: Announce / Fetch, Delta / check, store
///     Exchange --> Training: agreement closes / aggregate, outer step, hash vote
///     Training --> Training: settled hash differs / SyncRequest, install SyncState
/// ```
///
/// Feed it [`Input`]s with the current time; carry out the [`Output`]s it returns. It never reads
/// a clock, never does I/O, and gives the same outputs for the same inputs.
#[derive(Debug)]
pub struct Node {
    pub(crate) key: Keypair,
    pub(crate) id: NodeId,
    pub(crate) config: NodeConfig,
    pub(crate) members: BTreeSet<NodeId>,
    pub(crate) agreement: Box<dyn Agreement>,
    pub(crate) round: Round,
    pub(crate) phase: Phase,
    pub(crate) deadline: Timestamp,
    /// Contributions for the current round.
    pub(crate) inbox: Inbox,
    /// Contributions for the next round that arrived early.
    pub(crate) early: Inbox,
    /// Each member's latest announcement for a round beyond the next (a node catching up).
    pub(crate) ahead: BTreeMap<NodeId, Announcement>,
    /// Members whose announcement for the current or the next round this node refused (no
    /// commitment to the chain plan, a Δ over the frame limit): a list from outside that names
    /// them is not waited for. Rounds behind the current one are dropped at each refusal.
    pub(crate) refused: BTreeMap<Round, BTreeSet<NodeId>>,
    /// The round, and when this node next asks again for that round's Δs announced and not
    /// arrived (`exchange::refetch`); `None` while none is missing.
    pub(crate) refetch_at: Option<(Round, Timestamp)>,
    /// The global model at the start of the current round.
    pub(crate) params: Vec<f32>,
    pub(crate) model_hash: Hash,
    pub(crate) outer: neuroshard_train::OuterOptimizer,
    pub(crate) residual: neuroshard_compress::Residual,
    /// This node's encoded Δs of recent rounds, served to peers that fetch them.
    pub(crate) served: BTreeMap<Round, (Hash, Vec<u8>)>,
    /// Model-hash votes per round, this node's own included.
    pub(crate) votes: BTreeMap<Round, BTreeMap<NodeId, Hash>>,
    /// This node's own votes over a longer window: the hashes it held after each round.
    pub(crate) own_votes: BTreeMap<Round, Hash>,
    /// Members a round waited for in vain: not waited for again until a Δ of theirs counts.
    pub(crate) missed: BTreeSet<NodeId>,
    /// The contributors this node applied in the round before the current one (empty after it
    /// installed a state).
    pub(crate) included_last: BTreeSet<NodeId>,
    /// A resync in flight.
    pub(crate) pending_sync: Option<PendingSync>,
    /// Unanswered state requests since the last install; picks the next holder to ask.
    pub(crate) sync_attempts: u64,
    /// A node built from scratch at a running network's round: how long its first round waits
    /// for the network's model ([`Phase::Awaiting`]); `None` once it started, or installed a
    /// state.
    pub(crate) patience: Option<Duration>,
    /// Proof of Neural Work: own chains, claims, challenges, exclusions.
    pub(crate) audits: Audits,
    /// This node's budget, the pool history and the growth rule.
    pub(crate) pool: Pool,
}

impl Node {
    /// A node holding `params` (the genesis model) among `members` (itself included).
    pub fn new(
        key: Keypair,
        config: NodeConfig,
        members: BTreeSet<NodeId>,
        params: Vec<f32>,
        agreement: Box<dyn Agreement>,
    ) -> Result<Self> {
        let id = key.node_id();
        if !members.contains(&id) {
            return Err(Error::InvalidConfig(format!(
                "node {id} is not among the members"
            )));
        }
        config.compress.validate()?;
        if let Some(audit) = &config.audit {
            audit.validate()?;
        }
        let outer = neuroshard_train::OuterOptimizer::new(params.len(), config.outer)?;
        let residual = neuroshard_compress::Residual::new();
        Ok(Self {
            key,
            id,
            config,
            members,
            agreement,
            round: 0,
            phase: Phase::Idle,
            deadline: Timestamp::ZERO,
            inbox: Inbox::new(),
            early: Inbox::new(),
            ahead: BTreeMap::new(),
            refused: BTreeMap::new(),
            refetch_at: None,
            model_hash: Hash::of_f32(&params),
            params,
            outer,
            residual,
            served: BTreeMap::new(),
            votes: BTreeMap::new(),
            own_votes: BTreeMap::new(),
            missed: BTreeSet::new(),
            included_last: BTreeSet::new(),
            pending_sync: None,
            sync_attempts: 0,
            patience: None,
            audits: Audits::default(),
            pool: Pool::default(),
        })
    }

    /// A node that continues from `snapshot` (a checkpoint, or state fetched from peers) instead
    /// of the genesis model. Error-feedback residuals are not part of a snapshot and restart at
    /// zero. Its first tick repeats its vote for the round before the snapshot's, so peers
    /// resuming with it wait for its Δ, and a network that moved on tells it so.
    pub fn resume(
        key: Keypair,
        config: NodeConfig,
        members: BTreeSet<NodeId>,
        snapshot: Snapshot,
        agreement: Box<dyn Agreement>,
    ) -> Result<Self> {
        let mut node = Self::new(key, config, members, snapshot.params, agreement)?;
        node.outer = outer_from_bytes(node.config.outer, &snapshot.outer, node.params.len())?;
        node.round = snapshot.round;
        node.audits.excluded = snapshot.excluded;
        if !crate::phase::grow::install_history(&mut node, &snapshot.pool) {
            return Err(Error::BadState("a pool history longer than kept".into()));
        }
        if let Some(closed) = snapshot.round.checked_sub(1) {
            let hash = node.model_hash;
            crate::phase::sync::record_own(&mut node, closed, hash);
        }
        Ok(node)
    }

    /// A node built from scratch at `round` of a running network (a pipeline stage moved, or
    /// restarted without its stage's checkpoint; a whole model whose checkpoint is gone): it
    /// holds `params`, the seed's, which are no round's model, so it votes for no round. Its
    /// first tick asks its members for their latest votes, and it trains once it installed the
    /// state they settled on (within the round, it trains that round; later, it observes one
    /// first), or after `patience` if none came (every member started from scratch). Trained from the seed's weights instead,
    /// its round counted nowhere, fed its pipeline lane garbage, and in a stage of two replicas
    /// its hash could win the tie against its trained mate's. At round 0 nobody holds a round's
    /// model and it trains at once.
    pub fn from_scratch(
        key: Keypair,
        config: NodeConfig,
        members: BTreeSet<NodeId>,
        start: (Round, Vec<f32>),
        agreement: Box<dyn Agreement>,
        patience: Duration,
    ) -> Result<Self> {
        let (round, params) = start;
        let mut node = Self::new(key, config, members, params, agreement)?;
        node.round = round;
        node.patience = (round > 0).then_some(patience);
        Ok(node)
    }

    /// This node's chain for `round`, as it committed to it, while peers may challenge it: the
    /// driver stores it beside the chain's checkpoints, for [`Node::restore_own`].
    pub fn own_chain(&self, round: Round) -> Option<&OwnChain> {
        self.audits.own.get(&round)
    }

    /// Hands back a chain of this node's from before a restart (what [`Node::own_chain`] gave
    /// for `round`), so the node answers challenges of it; whether it was kept (not when the
    /// network does not audit, the round is too old to be challenged, or the chain's leaves do
    /// not hash to its committed root).
    pub fn restore_own(&mut self, round: Round, own: OwnChain) -> bool {
        crate::phase::audit::restore_own(self, round, own)
    }

    /// The state a checkpoint needs: the round about to be trained, the parameters it starts
    /// from, the outer optimiser's state and whom the node excluded.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            round: self.round,
            params: self.params.clone(),
            outer: f32_bytes(self.outer.momentum()),
            excluded: self.audits.excluded.clone(),
            pool: self.pool.history.clone(),
        }
    }

    /// Sets this node's memory budget (announced with its Δs; `u64::MAX`: unbounded) and the
    /// network's growth rule (`None`: the model keeps its depth, as a pipeline stage's does
    /// unless it holds the head).
    pub fn set_pool(&mut self, budget: u64, growth: Option<Box<dyn Growth>>) {
        self.pool.budget = budget;
        self.pool.growth = growth;
    }

    /// The pool sizes at the latest round boundaries, oldest first.
    pub fn pool_history(&self) -> &[u64] {
        &self.pool.history
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The round in progress.
    pub fn round(&self) -> Round {
        self.round
    }

    /// Whether the node observes its round: it installed the network's state after the round
    /// began, and applies the others' Δs without training it.
    pub fn is_observing(&self) -> bool {
        self.phase == Phase::Observing
    }

    /// The global model at the start of the current round (the start of any training job).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Hash of [`Node::params`].
    pub fn model_hash(&self) -> Hash {
        self.model_hash
    }

    /// The members expected to contribute.
    pub fn members(&self) -> &BTreeSet<NodeId> {
        &self.members
    }

    /// What this node's audits have found so far.
    pub fn audit_stats(&self) -> AuditStats {
        self.audits.stats
    }

    /// The members this node excluded (proven cheaters and false accusers), with why.
    pub fn excluded(&self) -> &BTreeMap<NodeId, String> {
        &self.audits.excluded
    }

    /// Signs and encodes a message with this node's key.
    pub(crate) fn seal(&self, message: &Message) -> Vec<u8> {
        message.seal(&self.key)
    }
}

/// A [`Output::Penalize`] for `peer`.
pub(crate) fn penalize(peer: NodeId, reason: impl ToString) -> Output {
    Output::Penalize {
        peer,
        reason: reason.to_string(),
    }
}

/// Little-endian bytes of `values`: the form [`Hash::of_f32`] hashes, and the wire and checkpoint
/// form of parameters and the outer optimiser's momentum.
pub(crate) fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `n` little-endian f32 values, or `None` if `bytes` is not exactly that long.
pub(crate) fn f32_values(bytes: &[u8], n: usize) -> Option<Vec<f32>> {
    (bytes.len() == 4 * n).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("chunks of 4")))
            .collect()
    })
}

/// The outer optimiser from its serialised momentum, for `n` parameters.
pub(crate) fn outer_from_bytes(
    config: neuroshard_train::OuterConfig,
    bytes: &[u8],
    n: usize,
) -> Result<neuroshard_train::OuterOptimizer> {
    let momentum = f32_values(bytes, n).ok_or_else(|| {
        Error::BadState(format!(
            "outer optimiser state of {} bytes for {n} parameters",
            bytes.len()
        ))
    })?;
    Ok(neuroshard_train::OuterOptimizer::from_state(
        config, momentum,
    )?)
}
