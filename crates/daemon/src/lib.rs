//! Runs a node: the round state machine over the libp2p network, with checkpoints and the HTTP
//! API.
//!
//! # Bird's Eye View
//!
//! [`Daemon::start`] loads (or creates, mode 0600) the node's key, opens the genesis data,
//! measures the node's speed for its capacity record ([`speed`](crate::speed), unless
//! `--work-per-sec` pins it), starts the libp2p network and the HTTP API, and builds the whole
//! model's round core (resuming from the last checkpoint if there is one), trainer and replayer
//! ([`whole`](crate::whole)); a node with a memory budget builds nothing model-sized until its
//! placement says what it holds. [`Daemon::run`] then drives the pure
//! [`neuroshard_node::Node`] until told to stop. The driver is the only code in the node path
//! that reads the clock or awaits anything (besides that start-up measurement):
//!
//! ```text
//!             ┌──────────── tokio::select! (driver.rs) ────────────┐
//!  NetEvent ─▶│ frame / offer / holdings / peer up, down           │──▶ Node::handle(now, Input)
//!  Done     ─▶│ fetched frame, finished job (spawn_blocking)       │        │ Vec<Output>
//!  timer    ─▶│ WakeAt deadline, 1 s refresh (status, start, GC)   │◀───────┘
//!             └────────────────────────────────────────────────────┘
//!  Output::Broadcast / Send → gossip (small) or store + offer + fetch (large)   (transport.rs, wire.rs)
//!  Output::Train            → fetch the round's shards, H inner steps on a blocking thread (work.rs)
//!  Output::Closed/Resynced  → atomic checkpoint, status                  (checkpoint.rs, status.rs)
//! ```
//!
//! - **Frames.** The core's frames are signed and size-bounded by the core; the driver only moves
//!   them. Frames for everyone go on one gossip topic, frames for one peer on that peer's inbox
//!   topic; frames over the gossip limit (Δs, full states) are put in the content store and
//!   offered, and the recipient fetches them by hash ([`wire`](crate::wire) has the table).
//! - **Membership.** The members are this node and its connected peers of the same network;
//!   a peer that disconnects (or is killed) stops holding the round open at once.
//! - **Joining and catching up.** There is one path: the core's model-hash vote and resync. A new
//!   or restarted node starts from genesis or its checkpoint and listens to its peers before its
//!   first round; the core greets each peer that connects with its latest vote, so the node
//!   learns at once whether the network is ahead, asks a voter of the settled hash for its full
//!   state (model and outer optimiser), checks the hash, observes one round and trains from the
//!   next, whether the network is at round 2 or 20 000. A training job for a round that the node
//!   has left stops at its next inner step.
//! - **Genesis data** travels through the network ([`dataset`](crate::dataset)): only one node
//!   needs the built dataset; the others fetch the manifest, tokenizer, validation shards and
//!   each round's assigned training shards from holders and check each against the genesis roots.
//! - **Checkpoints** ([`checkpoint`](crate::checkpoint)): after every round, one safetensors file
//!   written atomically (a pipeline stage's in its own file); on restart the node resumes from
//!   it, then catches up as above.
//!
//! # Feature Flags
//!
//! None.

mod atomic;
mod audit;
mod book;
mod chain;
#[cfg(feature = "cheat")]
mod cheat;
mod checkpoint;
mod completions;
mod config;
mod dataset;
mod driver;
mod error;
mod grow;
pub mod keyfile;
mod lane;
mod link;
mod pipeline;
mod queries;
mod replan;
mod role;
mod round_core;
mod route;
mod settings;
mod speed;
mod stage_chain;
mod status;
mod transport;
mod whole;
mod wire;
mod work;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use neuroshard_api::CapacityStatus;
use neuroshard_node::{LossGauge, Snapshot};
use neuroshard_p2p::{MemoryStore, Multiaddr, Network, NetworkConfig};
use neuroshard_primitives::{Keypair, NodeId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use atomic::{Durability, write_atomic};
#[cfg(feature = "cheat")]
pub use cheat::Cheat;
pub use checkpoint::{
    CHECKPOINT_FILE, STAGE_CHECKPOINT_FILE, load as load_checkpoint, params_bytes,
    save as save_checkpoint,
};

/// Where, under the data directory, a node keeps its training chains' checkpoints for audits.
pub const CHAINS_DIR: &str = "chains";
pub use config::{MOVED_TO_GENESIS, NodeConfig, moved_to_genesis};
pub use error::{Error, Result};
pub use grow::Depths;
pub use role::preview as preview_plan;
pub use settings::{model_config, model_depths};
pub use speed::time_steps;

use crate::audit::DiskCheckpoints;
use crate::chain::Chain;
use crate::dataset::{DataSync, Dataset};
use crate::driver::{Driver, StartRule};
use crate::settings::Settings;
use crate::status::StatusBoard;
use crate::transport::Transport;
use crate::work::{Assignment, Progress};

/// A started node: bound, connected to its bootstrap peers, ready to [`Daemon::run`].
#[derive(Debug)]
pub struct Daemon {
    driver: Driver,
    http: SocketAddr,
    addrs: Vec<Multiaddr>,
    api: JoinHandle<neuroshard_api::Result<()>>,
    /// The writers of the whole model's checkpoint and of a stage's.
    checkpoints: [JoinHandle<()>; 2],
}

impl Daemon {
    /// Loads the key and the genesis data, starts the network and the API, and builds the whole
    /// model (from any checkpoint) unless the node has a memory budget: such a node builds what
    /// its placement gives it when training starts (`docs/pipeline.md`, "Memory").
    pub async fn start(config: &NodeConfig) -> Result<Self> {
        config.validate()?;
        let data_dir = &config.data_dir;
        std::fs::create_dir_all(data_dir).map_err(Error::io("creating", data_dir))?;
        let key = keyfile::load_or_create(&data_dir.join(keyfile::KEY_FILE))?;
        let dataset = Dataset::open(&config.genesis, data_dir)?;
        let genesis = dataset.genesis().clone();
        let tokenizer_path = dataset.dir().join("tokenizer.json");
        let network_id = genesis.network_id();
        let settings = Settings::resolve(&genesis).map_err(|reason| Error::Genesis {
            path: config.genesis.clone(),
            reason,
        })?;
        let chain = open_chain(config, &key, &genesis, network_id, &settings)?;
        let capacity = announced_capacity(config, &settings, genesis.seed, network_id).await?;
        let progress = Progress::default();
        let assignment = Assignment {
            dir: dataset.dir().to_owned(),
            node: key.node_id(),
            per_node: config.shards_per_node,
            inner_steps: genesis.diloco.inner_steps,
        };
        let chains = DiskCheckpoints::open(&data_dir.join(CHAINS_DIR))?;
        let pipeline = pipeline::Pipeline {
            key: Keypair::from_seed(key.secret_bytes()),
            planner: role::Planner::new(&settings),
            settings: settings.clone(),
            seed: genesis.seed,
            network_id,
            data_dir: data_dir.clone(),
            budget: config.memory_budget,
            val_batches: config.val_batches,
            assignment,
            #[cfg(feature = "cheat")]
            cheat: config.cheat,
            records: role::Records::new(network_id, config.memory_budget, capacity.work_per_sec),
            placement: None,
            inbox: Arc::default(),
            lane: None,
            rounds: lane::LaneRounds::default(),
            early: Vec::new(),
            plans: Default::default(),
        };
        let store = MemoryStore::new();
        let net = Network::start(
            &key,
            network_config(config, network_id, &key.node_id())?,
            Arc::new(store.clone()),
        )
        .await?;
        let data = DataSync::new(
            dataset,
            net.handle.clone(),
            store.clone(),
            &key,
            config.shards_per_node,
        )?;
        let privacy = genesis.privacy.map(|spec| status::PrivacyBasis {
            spec,
            batch_size: settings.inner.batch_size,
            seq_len: settings.inner.seq_len,
        });
        let (status, status_rx) = StatusBoard::new(
            key.node_id(),
            network_id,
            genesis.diloco.inner_steps,
            privacy,
        );
        status.capacity(capacity);
        let (jobs_tx, jobs) = mpsc::channel(queries::JOBS_QUEUED);
        let ledger_api: Option<Arc<dyn neuroshard_api::LedgerApi>> = chain
            .is_some()
            .then(|| Arc::new(queries::Queries::new(jobs_tx)) as _);
        // The checkpoint channel gets the node's starting state (genesis, or the checkpoint it
        // resumed from) once the whole model is built, unannounced: the writer skips it; the
        // API's generator reads the latest state (none on a pipeline stage).
        let (checkpoints, checkpoint_rx) = watch::channel(None);
        let generator = completions::Generator::new(
            &genesis,
            settings.depths.clone(),
            settings.model.clone(),
            tokenizer_path,
            checkpoints.subscribe(),
        );
        let backends = neuroshard_api::Backends {
            ledger: ledger_api,
            completions: Some(Arc::new(generator)),
        };
        let (http, api) = neuroshard_api::serve_with(config.http, status_rx, backends).await?;
        let addrs = net.handle.bootstrap_addrs().await?;
        status.set_addrs(&addrs);
        if let Some(chain) = &chain {
            status.ledger(chain.status());
        }
        let whole = data_dir.join(CHECKPOINT_FILE);
        let whole_writer = tokio::spawn(write_checkpoints(checkpoint_rx, move |state| {
            checkpoint::save(&whole, network_id, state, None)
        }));
        let (stage_checkpoints, stage_rx) = watch::channel(None);
        let stage = data_dir.join(STAGE_CHECKPOINT_FILE);
        let stage_writer = tokio::spawn(write_checkpoints(
            stage_rx,
            move |(state, tag): &(Arc<Snapshot>, String)| {
                checkpoint::save(&stage, network_id, state, Some(tag))
            },
        ));
        let offer_ttl = (3 * settings.protocol.round_timeout).max(Duration::from_secs(60));
        let (done_tx, done_rx) = mpsc::channel(64);
        let mut driver = Driver {
            transport: Transport::new(&key, net.handle.clone(), store, offer_ttl),
            net: net.handle,
            events: net.events,
            node: whole::placeholder_core(&key, &settings)?,
            data,
            trainer: None,
            progress,
            loss: LossGauge::new(),
            status,
            checkpoints,
            stage_checkpoints,
            start: Some(StartRule {
                // A node given a bootstrap peer waits to hear from it, whatever `min_peers` says.
                min_peers: config
                    .min_peers
                    .max(usize::from(!config.bootstrap.is_empty())),
                latest: tokio::time::Instant::now() + start_grace(config),
                peers_since: None,
            }),
            max_frame: settings.protocol.max_frame,
            done_tx,
            done_rx,
            peers: BTreeMap::new(),
            pending: None,
            wake: None,
            chains,
            replayer: None,
            replays: std::collections::VecDeque::new(),
            chain,
            ledger_stalled: (0, tokio::time::Instant::now()),
            claimed: BTreeMap::new(),
            dropped_events: 0,
            jobs,
            pipeline,
            #[cfg(feature = "cheat")]
            withhold: config.cheat == Some(crate::Cheat::Withhold),
        };
        if config.memory_budget.is_none() {
            // After the network: a bare node fetches the genesis init file from its peers.
            driver.become_whole().await?;
        }
        driver.status.params(driver.node.params().len());
        Ok(Self {
            driver,
            http,
            addrs,
            api,
            checkpoints: [whole_writer, stage_writer],
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.driver.node.id()
    }

    /// Where the HTTP API and dashboard listen.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The addresses other nodes can pass as `--bootstrap` (with `/p2p/<peer id>`).
    pub fn bootstrap_addrs(&self) -> &[Multiaddr] {
        &self.addrs
    }

    /// Trains with the network until `shutdown` resolves; the last checkpoint is flushed first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let outcome = self.driver.run(shutdown).await;
        // Dropping the driver closes the checkpoint channels; the writers finish their last file.
        for writer in self.checkpoints {
            let _ = writer.await;
        }
        self.api.abort();
        outcome
    }
}

/// The ledger, when the genesis has one: the engine if this node is in the committee, else a
/// follower; its store lives in `<data-dir>/ledger`.
fn open_chain(
    config: &NodeConfig,
    key: &Keypair,
    genesis: &neuroshard_data::Genesis,
    network_id: neuroshard_primitives::Hash,
    settings: &Settings,
) -> Result<Option<Chain>> {
    let Some(spec) = &genesis.ledger else {
        return Ok(None);
    };
    let bad = |reason: String| Error::Genesis {
        path: config.genesis.clone(),
        reason,
    };
    let ledger = neuroshard_ledger::LedgerGenesis {
        network: network_id,
        committee: spec.committee_ids().map_err(bad)?,
        allocations: spec.allocation_ids().map_err(bad)?,
        rules: spec.rules().map_err(bad)?,
    };
    let committee = match config.consensus_listen {
        Some(listen) => Some(chain::Committee {
            listen,
            peers: config
                .validators
                .iter()
                .map(|v| chain::parse_validator(v))
                .collect::<Result<_>>()?,
        }),
        None => None,
    };
    let audit = settings
        .protocol
        .audit
        .unwrap_or(neuroshard_verify::AuditConfig::DEFAULT);
    let dir = config.data_dir.join("ledger");
    let work = (audit, role::Planner::new(settings));
    Chain::open(&dir, key, &ledger, work, committee).map(Some)
}

/// What this node's capacity record announces: its budget, and its speed from
/// `--work-per-sec`, else the one it measured before for this network
/// ([`speed::SAVED`]), else measured now on a blocking thread and saved (logged each way).
async fn announced_capacity(
    config: &NodeConfig,
    settings: &Settings,
    seed: u64,
    network: neuroshard_primitives::Hash,
) -> Result<CapacityStatus> {
    let capacity = |work_per_sec, measured| CapacityStatus {
        memory_budget: config.memory_budget,
        work_per_sec,
        measured,
    };
    if let Some(work_per_sec) = config.work_per_sec {
        tracing::info!(work_per_sec, "announcing the pinned speed (--work-per-sec)");
        return Ok(capacity(work_per_sec, false));
    }
    let saved = config.data_dir.join(speed::SAVED);
    if let Some(work_per_sec) = speed::saved(&saved, network) {
        tracing::info!(work_per_sec, path = %saved.display(), "announcing the speed measured at this node's first start for this network (delete the file to measure again)");
        return Ok(capacity(work_per_sec, true));
    }
    let (model, inner) = (settings.model.clone(), settings.inner);
    let measured = tokio::task::spawn_blocking(move || speed::measure(&model, &inner, seed))
        .await
        .map_err(|err| Error::Worker(err.to_string()))??;
    tracing::info!(
        work_per_sec = measured.work_per_sec,
        steps = measured.steps,
        step_ms = measured.step.as_secs_f64() * 1e3,
        median_ms = measured.median.as_secs_f64() * 1e3,
        tokens = measured.tokens,
        "measured this node's speed: the fastest step of the first layer and the head on one micro-batch"
    );
    speed::save(&saved, network, measured.work_per_sec)?;
    Ok(capacity(measured.work_per_sec, true))
}

fn network_config(
    config: &NodeConfig,
    network_id: neuroshard_primitives::Hash,
    me: &NodeId,
) -> Result<NetworkConfig> {
    let parse = |addrs: &[String]| -> Result<Vec<Multiaddr>> {
        addrs
            .iter()
            .map(|a| {
                a.parse()
                    .map_err(|err| Error::Config(format!("multiaddr {a:?}: {err}")))
            })
            .collect()
    };
    let mut net = NetworkConfig::loopback(network_id);
    net.listen = parse(&config.listen)?;
    net.bootstrap = parse(&config.bootstrap)?;
    net.mdns = config.mdns;
    net.topics = vec![
        wire::ROUND_TOPIC.to_owned(),
        wire::DATA_TOPIC.to_owned(),
        wire::POOL_TOPIC.to_owned(),
        chain::LEDGER_TOPIC.to_owned(),
        wire::inbox_topic(me),
    ];
    Ok(net)
}

/// How long a node waits for its `min_peers` before its first round: `start_grace_secs`, and at
/// least [`BUDGET_GRACE`] for a node with a memory budget, whose stage the plan over every peer's
/// record decides (a plan over fewer would differ from theirs).
fn start_grace(config: &NodeConfig) -> Duration {
    let grace = Duration::from_secs_f64(config.start_grace_secs);
    match config.memory_budget {
        Some(_) => grace.max(BUDGET_GRACE),
        None => grace,
    }
}

/// See [`start_grace`].
const BUDGET_GRACE: Duration = Duration::from_secs(120);

/// Writes each new round-start state as it comes with `save`, until the driver drops the
/// channel.
async fn write_checkpoints<T: Clone + Send + Sync + 'static>(
    mut states: watch::Receiver<Option<T>>,
    save: impl Fn(&T) -> Result<()> + Clone + Send + 'static,
) {
    while states.changed().await.is_ok() {
        let Some(state) = states.borrow_and_update().clone() else {
            continue;
        };
        let save = save.clone();
        let written = tokio::task::spawn_blocking(move || save(&state)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(%err, "checkpoint not written"),
            Err(err) => tracing::error!(%err, "checkpoint writer failed"),
        }
    }
}
