//! The driver's pipeline side (`docs/pipeline.md`, "Training in the node"): capacity records on
//! the pool topic, the placement when training starts, and for a stage its round core over the
//! stage's parameters, its lane, and which round messages and frames it takes.

use std::collections::BTreeSet;
use std::sync::Arc;

use candle_core::Device;
use neuroshard_model::{Stage, StageSpec};
use neuroshard_node::{DeadlineAgreement, Node};
use neuroshard_p2p::PeerId;
use neuroshard_pipeline::Layout;
use neuroshard_primitives::{Keypair, NodeId};

use crate::Result;
use crate::driver::Driver;
use crate::lane::{Lane, LaneInbox, Link};
use crate::role::{self, Placement, Records, Role};
use crate::settings::Settings;
use crate::wire::{POOL_NS, POOL_TOPIC};
use crate::work::{Assignment, Trainer};

/// What the driver needs to place the node and to build its stage.
#[derive(Debug)]
pub(crate) struct Pipeline {
    /// The node's key, for a stage's round core.
    pub(crate) key: Keypair,
    /// The model, the protocol and the inner loop's settings.
    pub(crate) settings: Settings,
    /// The network seed (the stage's tensors are built from it, then given the round's weights).
    pub(crate) seed: u64,
    /// Held-out batches the trainer validates on.
    pub(crate) val_batches: usize,
    /// This node's data assignment; a stage reads its lane's first-stage holder's instead.
    pub(crate) assignment: Assignment,
    /// The capacity records heard.
    pub(crate) records: Records,
    /// `None` until training starts.
    pub(crate) placement: Option<Placement>,
    /// The lane's inbox: frames that come before the placement wait there (a neighbour that
    /// placed itself first may already be sending).
    pub(crate) inbox: Arc<LaneInbox>,
    /// A stage's lane neighbours' peer ids.
    pub(crate) lane: Option<LaneWires>,
}

/// Where a stage's lane frames come from and go.
#[derive(Debug)]
pub(crate) struct LaneWires {
    prev: Option<PeerId>,
    next: Option<PeerId>,
}

impl Pipeline {
    /// The role this node trains, if it is a pipeline stage.
    pub(crate) fn role(&self) -> Option<&Role> {
        match &self.placement {
            Some(Placement::Stage(role)) => Some(role),
            _ => None,
        }
    }

    /// Whether this node trains nothing.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.placement, Some(Placement::Idle(_)))
    }

    /// Whether the round core hears round messages signed by `author`: in a stage, only its
    /// stage's replicas (each stage runs its own DiLoCo); idle, no one; otherwise everyone.
    pub(crate) fn hears(&self, author: &NodeId) -> bool {
        match &self.placement {
            Some(Placement::Stage(role)) => role.replicas.contains(author),
            Some(Placement::Idle(_)) => false,
            Some(Placement::Whole) | None => true,
        }
    }

    /// The members of the round core among `me` and the connected `peers`: a stage's replicas
    /// that are connected; `None` when idle (its core is not run).
    pub(crate) fn core_members<'a>(
        &self,
        me: NodeId,
        peers: impl Iterator<Item = &'a NodeId>,
    ) -> Option<BTreeSet<NodeId>> {
        let everyone = peers.copied().chain([me]);
        match &self.placement {
            Some(Placement::Stage(role)) => {
                Some(everyone.filter(|n| role.replicas.contains(n)).collect())
            }
            Some(Placement::Idle(_)) => None,
            Some(Placement::Whole) | None => Some(everyone.collect()),
        }
    }

    /// Whose assigned batches this node trains on: the lane's first-stage holder's in a stage.
    pub(crate) fn data_node(&self, me: NodeId) -> NodeId {
        self.role().map_or(me, |role| role.data_node)
    }

    /// Files a pipeline frame from `peer` if it is a lane neighbour (or may be one: before the
    /// placement); `false` when it is not taken.
    pub(crate) fn lane_frame(&self, peer: PeerId, bytes: Vec<u8>) -> bool {
        let neighbour = match (&self.placement, &self.lane) {
            (None, _) => true,
            (Some(_), Some(lane)) => Some(peer) == lane.prev || Some(peer) == lane.next,
            (Some(_), None) => false,
        };
        neighbour && self.inbox.push(bytes)
    }
}

impl Driver {
    /// Gossips this node's capacity record (a new epoch each time, so gossip never drops it as
    /// a repeat).
    pub(crate) fn publish_capacity(&mut self) {
        let frame = self.pipeline.records.seal_next(&self.pipeline.key);
        self.transport
            .gossip(POOL_TOPIC.to_owned(), POOL_NS, &frame, false);
    }

    /// Whether every connected peer's capacity record is in.
    pub(crate) fn heard_every_capacity(&self) -> bool {
        self.pipeline.records.has_all(self.peers.values())
    }

    /// Computes the plan over the records heard and takes this node's place in it; a node that
    /// cannot build its stage trains nothing (logged).
    pub(crate) fn place(&mut self) {
        let me = self.node.id();
        let members = self.pipeline.records.members(me, self.peers.values());
        let settings = &self.pipeline.settings;
        let plan = role::plan(&settings.model, settings.inner.batch_size, &members);
        let placement = match role::place(&plan, me) {
            Placement::Stage(role) => match self.become_stage(&role) {
                Ok(()) => Placement::Stage(role),
                Err(err) => Placement::Idle(format!("cannot build its stage: {err}")),
            },
            other => other,
        };
        match &placement {
            Placement::Whole => {}
            Placement::Stage(role) => tracing::info!(
                stage = role.stage, stages = role.stages, layers = ?role.spec.layers,
                lane = role.lane, lanes = role.lanes, members = members.len(),
                "training one stage of a pipeline; audits, ledger claims and checkpoints are off in pipeline mode (docs/pipeline.md)"
            ),
            Placement::Idle(why) => {
                tracing::warn!(why, "no pipeline lane for this node: it trains nothing");
                self.trainer = None;
                self.replayer = None;
            }
        }
        self.pipeline.placement = Some(placement);
        self.members_changed();
    }

    /// Replaces the whole-model round core and trainer by the stage's: the core over the
    /// stage's slice of the model it holds, with the stage's replicas as members; the trainer a
    /// lane stage.
    fn become_stage(&mut self, role: &Role) -> Result<()> {
        let settings = &self.pipeline.settings;
        let model = &settings.model;
        let seed = self.pipeline.seed;
        let whole = Stage::new(model, StageSpec::full(model), seed, &Device::Cpu)?.param_shapes();
        let mut stage = Stage::new(model, role.spec.clone(), seed, &Device::Cpu)?;
        let params = Layout::new(&whole).scatter(&stage.param_shapes(), self.node.params())?;
        stage.set_flat_params(&params)?;
        let protocol = neuroshard_node::NodeConfig {
            audit: None,
            ..settings.protocol.clone()
        };
        let patience = protocol.round_timeout;
        let key = Keypair::from_seed(self.pipeline.key.secret_bytes());
        let members = BTreeSet::from([self.node.id()]);
        self.node = Node::new(key, protocol, members, params, Box::new(DeadlineAgreement))?;
        let peer = |n: Option<NodeId>| n.map(|n| neuroshard_p2p::identity::peer_id(&n));
        let wires = LaneWires {
            prev: peer(role.prev).transpose()?,
            next: peer(role.next).transpose()?,
        };
        let link = Link {
            net: self.net.clone(),
            runtime: tokio::runtime::Handle::current(),
            prev: wires.prev,
            next: wires.next,
            inbox: Arc::clone(&self.pipeline.inbox),
            patience,
            wanted: Arc::clone(&self.progress.wanted),
        };
        let inner = settings.inner;
        let micro_batches = role::workload(inner.batch_size).micro_batches;
        let lane = Lane::new(role.clone(), stage, inner, micro_batches, link)?;
        let assignment = Assignment {
            node: role.data_node,
            ..self.pipeline.assignment.clone()
        };
        let trainer = Trainer::stage(
            lane,
            assignment,
            self.progress.clone(),
            self.pipeline.val_batches,
            inner,
        );
        self.loss = trainer.loss_gauge();
        self.trainer = Some(Box::new(trainer));
        self.replayer = None;
        self.pipeline.lane = Some(wires);
        self.status.role(role);
        Ok(())
    }
}
