//! The node's side of Proof of Neural Work that touches disk and threads: its chains'
//! checkpoints (and a pipeline stage's segments' work, and the chains themselves, for a
//! restart) on disk, served by round and index, and the replayer that checks other nodes' segments beside training, the whole model's or a
//! stage's.
//!
//! Disk bound: a node keeps the checkpoints of its last [`CHECKPOINT_ROUNDS`] chains, S + 1 of
//! 12 bytes per parameter each (parameters and both AdamW moments): 2 × 51 × 12 × n bytes at
//! the default 50 segments, about 1.2 GB per million parameters.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use neuroshard_node::{
    Assignments, CHECKPOINT_ROUNDS, CheckpointStore, ModelVerifier, Node, OwnChain, ReplayJob,
    Replayed, Round, Verifier,
};
use neuroshard_pipeline::{FrameLimit, Plan, Precision};
use neuroshard_primitives::NodeId;
use neuroshard_train::{InnerLoop, StageLoop};
use neuroshard_verify::Fault;
use neuroshard_verify::stage::{
    FRAME_TOLERANCE, LaneWork, StageShape, check_batches, check_seals, judge_frames, replay_stage,
};

use crate::atomic::{Durability, write_atomic};
use crate::grow::Depths;
use crate::lane::{fitted_layers, fresh_stage};
use crate::role::Role;
use crate::work::{Assignment, LaneSources, Progress, RoundSource};
use crate::{Error, Result};

/// Chain checkpoints in a directory, one file per (round, index). Cheap to clone: the driver
/// reads what the training thread writes.
#[derive(Debug, Clone)]
pub(crate) struct DiskCheckpoints {
    dir: PathBuf,
}

impl DiskCheckpoints {
    /// The store in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, round: Round, index: u64) -> PathBuf {
        self.dir.join(format!("{round:020}-{index:06}.ckpt"))
    }

    fn work_path(&self, round: Round, segment: u64) -> PathBuf {
        self.dir.join(format!("{round:020}-{segment:06}.work"))
    }

    /// Keeps a pipeline stage's work of `segment` of `round`'s chain (its batches and frames),
    /// which an opening of that segment serves; pruned with the round's checkpoints.
    pub(crate) fn keep_work(
        &self,
        round: Round,
        segment: u64,
        work: &[Vec<LaneWork>],
    ) -> Result<()> {
        let bytes = postcard::to_allocvec(work)
            .map_err(|err| Error::Worker(format!("encoding a segment's work: {err}")))?;
        let path = self.work_path(round, segment);
        write_atomic(&path, &bytes, Durability::Volatile)
    }

    /// The work of `segment` of `round`'s chain, if this node kept any: a whole model's chain
    /// keeps none (empty), nor does a file that no longer decodes.
    pub(crate) fn work(&self, round: Round, segment: u64) -> Vec<Vec<LaneWork>> {
        std::fs::read(self.work_path(round, segment))
            .ok()
            .and_then(|bytes| postcard::from_bytes(&bytes).ok())
            .unwrap_or_default()
    }

    fn own_path(&self, round: Round) -> PathBuf {
        self.dir.join(format!("{round:020}-own.chain"))
    }

    /// Keeps this node's own chain of `round` as it committed to it (pruned with the round's
    /// checkpoints), so the node answers challenges of it after a restart.
    pub(crate) fn keep_own(&self, round: Round, own: &OwnChain) -> Result<()> {
        let bytes = postcard::to_allocvec(own)
            .map_err(|err| Error::Worker(format!("encoding an own chain: {err}")))?;
        write_atomic(&self.own_path(round), &bytes, Durability::Volatile)
    }

    /// Hands `node` (just started) the own chains this store kept; how many it took. A file
    /// that does not decode is skipped.
    pub(crate) fn restore_own(&self, node: &mut Node) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut restored = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let round = (name.to_str())
                .and_then(|n| n.strip_suffix("-own.chain"))
                .and_then(|r| r.parse::<Round>().ok());
            let own = std::fs::read(entry.path())
                .ok()
                .and_then(|bytes| postcard::from_bytes::<OwnChain>(&bytes).ok());
            if let (Some(round), Some(own)) = (round, own) {
                restored += usize::from(node.restore_own(round, own));
            }
        }
        if restored > 0 {
            tracing::info!(
                restored,
                "own chains kept from before the restart: their challenges are answered"
            );
        }
        restored
    }

    /// Removes the files of rounds before `oldest`.
    fn prune(&self, oldest: Round) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir).map_err(Error::io("listing", &self.dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let round = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|r| r.parse::<Round>().ok());
            if round.is_some_and(|r| r < oldest) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(Error::io("removing", &path))?;
            }
        }
        Ok(())
    }
}

impl CheckpointStore for DiskCheckpoints {
    fn keep(&mut self, round: Round, index: u64, bytes: Vec<u8>) -> neuroshard_node::Result<()> {
        let store = |err: Error| neuroshard_node::Error::Store(Box::new(err));
        if index == 0 {
            self.prune(round.saturating_sub(CHECKPOINT_ROUNDS - 1))
                .map_err(store)?;
        }
        write_atomic(&self.path(round, index), &bytes, Durability::Volatile).map_err(store)
    }

    fn get(&self, round: Round, index: u64) -> Option<Vec<u8>> {
        std::fs::read(self.path(round, index)).ok()
    }
}

/// Any node's batches from the local genesis directory (the driver fetches a contributor's
/// shards before a replay needs them).
#[derive(Debug, Clone)]
pub(crate) struct DirAssignments {
    /// This node's assignment; the node id is swapped for the contributor's.
    pub(crate) template: Assignment,
}

impl Assignments for DirAssignments {
    type Source = RoundSource;

    fn source(&self, node: NodeId) -> neuroshard_node::Result<RoundSource> {
        let assignment = Assignment {
            node,
            ..self.template.clone()
        };
        // Its own progress: a replay is never overtaken by the node's rounds.
        Ok(RoundSource::new(assignment, Progress::default()))
    }
}

/// What replays other nodes' segments, moved onto a blocking thread for each replay, beside the
/// training thread: the whole model's, or a pipeline stage's.
#[derive(Debug)]
pub(crate) enum Replayer {
    Whole(WholeReplayer),
    Stage(StageReplayer),
}

impl Replayer {
    /// Whose assigned shards the replay of `job` reads: the contributor's for a whole model, the
    /// data nodes a stage's lanes name for a stage (none when they name more nodes than the
    /// pipeline has lanes: the replay refuses that work without reading a batch).
    pub(crate) fn data_nodes(&self, job: &ReplayJob) -> BTreeSet<NodeId> {
        match self {
            Replayer::Whole(_) => BTreeSet::from([job.contributor]),
            Replayer::Stage(stage) => stage.data_nodes(&job.opened).unwrap_or_default(),
        }
    }

    /// Replays `job`. Blocking: call it on a blocking thread.
    pub(crate) fn run(&mut self, job: &ReplayJob) -> std::result::Result<Replayed, String> {
        match self {
            Replayer::Whole(whole) => whole.run(job),
            Replayer::Stage(stage) => stage.run(job),
        }
    }
}

/// The whole model's replayer: a model of its own and the contributors' batches.
#[derive(Debug)]
pub(crate) struct WholeReplayer {
    verifier: ModelVerifier<DirAssignments>,
    dir: PathBuf,
    val_batches: usize,
    /// The depths the model can have, and the seed new models are drawn from.
    depths: (Depths, u64),
}

impl WholeReplayer {
    /// A replayer stepping `inner` on the batches `data` assigns, scoring usefulness at outer
    /// learning rate `outer_lr` on up to `val_batches` held-out batches.
    pub(crate) fn new(
        inner: InnerLoop,
        data: DirAssignments,
        val_batches: usize,
        outer_lr: f32,
        depths: (Depths, u64),
    ) -> Self {
        let dir = data.template.dir.clone();
        Self {
            verifier: ModelVerifier::new(inner, data, Vec::new(), outer_lr),
            dir,
            val_batches,
            depths,
        }
    }

    fn run(&mut self, job: &ReplayJob) -> std::result::Result<Replayed, String> {
        // Loaded once the validation shards are local; a node that measures none never reads them.
        if self.val_batches > 0 && !self.verifier.has_val() {
            match crate::work::val_batches(&self.dir, self.verifier.batch_shape(), self.val_batches)
            {
                Ok(val) => self.verifier.set_val(val),
                Err(err) => {
                    tracing::debug!(%err, "no validation batches to score usefulness on yet")
                }
            }
        }
        self.fit(job.opened.start.params.len())?;
        self.verifier.replay(job).map_err(|err| err.to_string())
    }

    /// Brings the replaying model to a depth of `n_params` (a round after growth replays the
    /// grown model); a size no depth has is the contributor's fault, refused before any
    /// allocation.
    fn fit(&mut self, n_params: usize) -> std::result::Result<(), String> {
        let (depths, seed) = &self.depths;
        let config = depths.config_for(n_params).ok_or_else(|| {
            format!("a checkpoint of {n_params} parameters: no depth has so many")
        })?;
        match crate::grow::refit(self.verifier.inner(), &config, *seed) {
            Ok(Some(inner)) => self.verifier.set_inner(inner),
            Ok(None) => {}
            Err(err) => return Err(err.to_string()),
        }
        Ok(())
    }
}

/// A pipeline stage's replayer: a loop of its own of the stage, replaying another replica's
/// segment from the batches and frames it committed (`neuroshard_verify::stage`). It holds a
/// second copy of the stage and its AdamW state beside the trainer's.
#[derive(Debug)]
pub(crate) struct StageReplayer {
    trainer: StageLoop,
    /// This node's assignment, the template for a lane's data node's (boxed, as the roles
    /// around: a replayer's two kinds stay near one size).
    assignment: Box<Assignment>,
    role: Role,
    /// The roles before the plan last changed and of the next plan, where the stage has them:
    /// a replayed round may have trained under either (its contributor switches plans at its
    /// own job's start, not at this node's).
    around: [Option<Box<Role>>; 2],
    plan: Plan,
    limit: FrameLimit,
    depths: Depths,
}

impl StageReplayer {
    /// A replayer of `role`'s stage, its steps run on `plan` with frames under `limit`, its
    /// lanes' batches read as `assignment` reads them for another node.
    pub(crate) fn new(
        (trainer, assignment): (StageLoop, Assignment),
        role: Role,
        (plan, limit): (Plan, FrameLimit),
        depths: Depths,
    ) -> Self {
        Self {
            trainer,
            assignment: Box::new(assignment),
            role,
            around: [None, None],
            plan,
            limit,
            depths,
        }
    }

    /// The role of the plan in force, which the driver hands it before each replay (a replay of
    /// a grown stage is built at its place and depth), and its role in the next plan, if that
    /// keeps it in its stage.
    pub(crate) fn replan(&mut self, role: Role, next: Option<Role>) {
        if role != self.role {
            self.around[0] = Some(Box::new(std::mem::replace(&mut self.role, role)));
        }
        self.around[1] = next.map(Box::new);
    }

    /// The stage's roles a replayed round may have trained under: before, in force, next.
    fn roles(&self) -> impl Iterator<Item = &Role> {
        let around = self.around.iter().flatten().map(|role| &**role);
        std::iter::once(&self.role).chain(around)
    }

    /// Whether `from` may have sealed frames this stage received: a replica of any stage under
    /// one of [`StageReplayer::roles`] (a member of the pipeline; a node outside every plan
    /// this node knows, a key made up to seal forged frames, is not).
    fn may_seal(&self, from: &NodeId) -> bool {
        self.roles()
            .any(|role| role.grid.iter().any(|replicas| replicas.contains(from)))
    }

    /// The distinct data nodes `opened`'s lanes name; `None` when they are more than the
    /// pipeline has lanes (a job's lanes keep their data nodes for the whole job).
    fn data_nodes(&self, opened: &neuroshard_verify::Opened) -> Option<BTreeSet<NodeId>> {
        let nodes: BTreeSet<NodeId> = (opened.work.iter().flatten())
            .map(|lane| lane.data_node)
            .collect();
        let lanes = self.roles().map(|role| role.lanes).max().unwrap_or(0);
        (nodes.len() <= lanes).then_some(nodes)
    }

    /// Checks each lane's batch against its data node's assignment: a fault for more data
    /// nodes than lanes or another batch; `Err` when this node lacks the data (the driver
    /// fetched it before the replay).
    fn check_batches(
        &self,
        opened: &neuroshard_verify::Opened,
    ) -> std::result::Result<Result<(), Fault>, String> {
        if self.data_nodes(opened).is_none() {
            let reason = "a stage's lanes read the data of more nodes than the pipeline has lanes";
            return Ok(Err(Fault::Opening(reason.into())));
        }
        let config = *self.trainer.config();
        let mut data = LaneSources::new((*self.assignment).clone(), Progress::default());
        let assigned = |node: &NodeId, step| {
            data.batch(*node, step, config.batch_size, config.seq_len)
                .map_err(|err| format!("a lane's batch: {err}"))
        };
        check_batches(opened.start.step, &opened.work, assigned)
    }

    /// Replays a stage's segment: work that does not cover the segment's steps or does not feed
    /// the plan is the contributor's fault, reported in [`Replayed::frames`]; so is a frame it
    /// received that no neighbour sealed, a lane's batch other than its data node's, and a frame
    /// it sent that its replay does not send.
    fn run(&mut self, job: &ReplayJob) -> std::result::Result<Replayed, String> {
        let opened = &job.opened;
        self.fit(opened.start.params.len())?;
        let steps = opened.end.step.saturating_sub(opened.start.step);
        let unreplayed = |fault: Fault| Replayed {
            end: opened.start.clone(),
            losses: Vec::new(),
            usefulness: None,
            frames: Err(fault),
        };
        if opened.work.len() as u64 != steps {
            let reason = "a stage's segment that names no work for its steps";
            return Ok(unreplayed(Fault::Opening(reason.into())));
        }
        let may_seal = |from: &NodeId| self.may_seal(from);
        if let Err(fault) = check_seals(opened.start.step, &opened.work, &job.contributor, may_seal)
        {
            return Ok(unreplayed(fault));
        }
        if let Err(fault) = self.check_batches(opened)? {
            return Ok(unreplayed(fault));
        }
        let shape = StageShape {
            at: (self.role.stage, self.role.stages),
            plan: &self.plan,
            precision: Precision::Bf16,
            limit: self.limit,
            max_lanes: self.role.lanes,
        };
        let adamw = *self.trainer.optimizer().config();
        let replay = replay_stage(
            &mut self.trainer,
            adamw,
            &opened.start,
            &shape,
            &opened.work,
        );
        let (end, losses, sent) = match replay {
            Ok(replayed) => replayed,
            Err(neuroshard_verify::Error::Mismatch(reason)) => {
                return Ok(unreplayed(Fault::Opening(reason)));
            }
            Err(err) => return Err(err.to_string()),
        };
        let frames = judge_frames(
            opened.start.step,
            &opened.work,
            &sent,
            &self.limit,
            FRAME_TOLERANCE,
        );
        Ok(Replayed {
            end,
            losses,
            usefulness: None,
            frames,
        })
    }

    /// Brings the replaying stage to `n_params` (a round after growth replays the grown
    /// stage); a size no stage of the network has is the contributor's fault, refused before
    /// any allocation.
    fn fit(&mut self, n_params: usize) -> std::result::Result<(), String> {
        let fitted =
            fitted_layers(&self.trainer, &self.role, n_params, &self.depths).and_then(|layers| {
                layers
                    .map(|l| fresh_stage(&self.trainer, &self.role, l, &self.depths))
                    .transpose()
            });
        match fitted {
            Ok(Some(trainer)) => self.trainer = trainer,
            Ok(None) => {}
            Err(err) => return Err(err.to_string()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use neuroshard_aggregate::{Rule, RuleKind};
    use neuroshard_compress::{Codec, CompressConfig};
    use neuroshard_node::DeadlineAgreement;
    use neuroshard_primitives::{Hash, Keypair};
    use neuroshard_verify::{AuditConfig, Chain, Commitment, Leaf, Segments};

    use super::*;

    fn node() -> Node {
        let key = Keypair::from_seed([1; 32]);
        let config = neuroshard_node::NodeConfig {
            inner_steps: 2,
            round_timeout: Duration::from_secs(10),
            compress: CompressConfig::new(Codec::None),
            aggregator: Rule::for_attackers(RuleKind::Mean, 1, 0).unwrap(),
            outer: neuroshard_train::OuterConfig::DILOCO,
            max_frame: 1 << 20,
            audit: Some(AuditConfig::DEFAULT),
        };
        let members = BTreeSet::from([key.node_id()]);
        Node::new(
            key,
            config,
            members,
            vec![0.5; 4],
            Box::new(DeadlineAgreement),
        )
        .unwrap()
    }

    fn own() -> OwnChain {
        let leaf = |i: u8| Leaf {
            checkpoint: Hash([i; 32]),
            losses: vec![f32::NAN],
            work: Hash::default(),
        };
        let chain = Chain::from_leaves(vec![leaf(1), leaf(2)]);
        OwnChain {
            commitment: Commitment {
                segments: Segments::new(1, 1).unwrap(),
                root: chain.root(),
                residual_before: Hash::default(),
                residual_after: Hash::default(),
            },
            chain,
            residual: vec![0.0; 4],
        }
    }

    #[test]
    fn own_chains_come_back_to_a_restarted_node_until_their_round_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = DiskCheckpoints::open(dir.path()).unwrap();
        store.keep_own(3, &own()).unwrap();
        std::fs::write(
            dir.path().join("00000000000000000004-own.chain"),
            b"garbage",
        )
        .unwrap();
        let mut restarted = node();
        assert_eq!(
            store.restore_own(&mut restarted),
            1,
            "the garbage is skipped"
        );
        let back = restarted.own_chain(3).expect("round 3's chain");
        assert_eq!(back.commitment, own().commitment);
        // A new chain of round 5 prunes round 3's files.
        store.keep(5, 0, vec![1, 2, 3]).unwrap();
        assert_eq!(store.restore_own(&mut node()), 0);
    }
}
