//! The whole model's round core, trainer and replayer: a node without a memory budget builds
//! them at start, a node with one only once its placement gives it the whole model (a pipeline
//! of one stage); a stage builds only its stage (`docs/pipeline.md`, "Memory").

use std::collections::BTreeSet;
use std::sync::Arc;

use candle_core::Device;
use neuroshard_ledger::Part;
use neuroshard_model::NeuroLlm;
use neuroshard_node::{DeadlineAgreement, Node, Snapshot};
use neuroshard_primitives::Keypair;
use neuroshard_train::InnerLoop;

use crate::audit::{DirAssignments, Replayer, WholeReplayer};
use crate::chain::Chain;
use crate::checkpoint::{self, CHECKPOINT_FILE};
use crate::dataset::DataSync;
use crate::driver::Driver;
use crate::pipeline::Pipeline;
use crate::settings::Settings;
use crate::work::Trainer;
use crate::{Error, Result, grow, round_core};

/// The round core a node holds before it knows what it trains: over no parameters, with no
/// member but itself. A node without a budget replaces it at start; a node with one keeps it
/// until its placement, hearing no round message (they are kept for the core it then builds:
/// `Pipeline::hears`, `Pipeline::keep_early`), with no members and no tick.
pub(crate) fn placeholder_core(key: &Keypair, settings: &Settings) -> Result<Node> {
    Ok(Node::new(
        Keypair::from_seed(key.secret_bytes()),
        settings.protocol.clone(),
        BTreeSet::from([key.node_id()]),
        Vec::new(),
        Box::new(DeadlineAgreement),
    )?)
}

impl Driver {
    /// Builds the whole model's round core (at its checkpoint's round, or at round 0), trainer
    /// and replayer in place of what the node held, and hands the API's generator the core's
    /// starting state.
    pub(crate) async fn become_whole(&mut self) -> Result<()> {
        let pipeline = &self.pipeline;
        let (settings, seed) = (&pipeline.settings, pipeline.seed);
        let replayer = Replayer::Whole(WholeReplayer::new(
            InnerLoop::new(
                NeuroLlm::new(&settings.model, seed, &Device::Cpu)?,
                settings.inner,
            )?,
            DirAssignments {
                template: pipeline.assignment.clone(),
            },
            pipeline.val_batches,
            settings.protocol.outer.lr,
            (settings.depths.clone(), seed),
        ));
        #[cfg_attr(not(feature = "cheat"), allow(unused_mut))]
        let mut trainer = Trainer::new(
            &settings.model,
            seed,
            settings.inner,
            pipeline.assignment.clone(),
            self.progress.clone(),
            pipeline.val_batches,
            self.chains.clone(),
            settings.depths.clone(),
        )?;
        #[cfg(feature = "cheat")]
        {
            trainer.cheat = pipeline.cheat;
        }
        let mut node = resume_node(pipeline, &self.chain, &self.data).await?;
        self.chains.restore_own(&mut node);
        let depth = settings.depths.config_for(node.params().len());
        self.status
            .depth(node.round(), depth.map_or(0, |c| c.n_layers), None);
        self.loss = trainer.loss_gauge();
        self.trainer = Some(Box::new(trainer));
        self.replayer = Some(Box::new(replayer));
        self.replace_core(node);
        self.learn_decided(Part::WHOLE);
        // The generator reads the latest round-start state; the checkpoint writer is not told
        // (it would write the state the node just resumed from).
        let start: Arc<Snapshot> = Arc::new(self.node.snapshot());
        self.checkpoints.send_if_modified(|state| {
            *state = Some(start);
            false
        });
        Ok(())
    }
}

/// The node core at its checkpoint's round, or built from scratch over round 0's model
/// (`round_core::fresh`); it agrees on rounds through the ledger when there is one.
async fn resume_node(pipeline: &Pipeline, chain: &Option<Chain>, data: &DataSync) -> Result<Node> {
    let settings = &pipeline.settings;
    let key = Keypair::from_seed(pipeline.key.secret_bytes());
    let admits = |n: usize| settings.depths.config_for(n).is_some();
    let path = pipeline.data_dir.join(CHECKPOINT_FILE);
    let resumed = checkpoint::load(&path, pipeline.network_id, admits, None);
    let mut node = match resumed.map_err(|err| Error::Resume(Box::new(err)))? {
        Some(snapshot) => {
            tracing::info!(
                round = snapshot.round,
                params = snapshot.params.len(),
                "resuming from the checkpoint"
            );
            round_core::resumed(chain, key, settings.protocol.clone(), snapshot)?
        }
        None => {
            let params = genesis_params(data, &settings.model, pipeline.seed).await?;
            round_core::fresh(chain, key, settings.protocol.clone(), params)?
        }
    };
    let budget = pipeline.budget.unwrap_or(u64::MAX);
    node.set_pool(budget, growth_rule(settings, pipeline.seed));
    Ok(node)
}

/// The round core's growth rule, when the genesis has a `[growth]` schedule.
fn growth_rule(settings: &Settings, seed: u64) -> Option<Box<dyn neuroshard_node::Growth>> {
    let schedule = settings.growth.clone()?;
    Some(Box::new(grow::Grower::new(
        settings.depths.clone(),
        schedule,
        seed,
    )))
}

/// Round 0's parameters: the genesis init file's when the genesis names one, else drawn from the
/// network seed.
pub(crate) async fn genesis_params(
    data: &DataSync,
    model: &neuroshard_model::Config,
    seed: u64,
) -> Result<Vec<f32>> {
    match data.initial_params(model.n_params()).await? {
        Some(params) => {
            tracing::info!("starting from the genesis initial weights");
            Ok(params)
        }
        None => Ok(NeuroLlm::new(model, seed, &Device::Cpu)?.flat_params()?),
    }
}
