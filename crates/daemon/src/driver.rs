//! The event loop: one `select!` over network events, finished jobs and fetches, the node's
//! wake-up times and a one-second refresh; it feeds the node core [`Input`]s and carries out
//! its [`Output`]s. The only code in the node path that reads the clock.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use neuroshard_ledger::inclusion_list;
use neuroshard_node::{
    CheckpointStore, Input, LossGauge, Node, Output, ReplayJob, Replayed, Snapshot, Timestamp,
    TrainingJob,
};
use neuroshard_p2p::{NetEvent, NetworkHandle, Offence, PeerId};
use neuroshard_primitives::NodeId;
use neuroshard_verify::stage::LaneWork;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::audit::{DiskCheckpoints, Replayer};
use crate::chain::{Chain, Effects, LEDGER_NS, LEDGER_TOPIC, LedgerWire};
use crate::dataset::DataSync;
use crate::pipeline::Early;
use crate::status::StatusBoard;
use crate::transport::Transport;
use crate::wire::{
    self, DATA_TOPIC, FRAME_NS, HOLDINGS_NS, OFFER_NS, Offer, PLAN_NS, POOL_NS, POOL_TOPIC,
    ROUND_TOPIC, inbox_topic,
};
use crate::work::{JobOutcome, Progress, Refit, Trainer};
use crate::{Error, Result};

/// Something that finished off the loop: a fetched frame, a training job.
#[derive(Debug)]
pub(crate) enum Done {
    /// A frame offered by `from`, fetched and hash-checked.
    Frame {
        /// Its sender.
        from: NodeId,
        /// The frame.
        frame: Vec<u8>,
    },
    /// A job's start model was measured on the validation batches (before its training).
    Validated {
        /// The job's round.
        round: u64,
        /// Mean validation loss of the round's start model.
        val_loss: f32,
    },
    /// The replica took on the model's depth for a job (it grew when `refit` says so).
    Depth {
        /// The job's round.
        round: u64,
        /// Decoder layers of the model it trains.
        n_layers: usize,
        /// The depth before and the start model's loss cut back to it, when it changed.
        refit: Option<Refit>,
    },
    /// A training job ended; the trainer comes back with it.
    Job(Box<Trainer>, JobOutcome),
    /// A job could not get its data; the trainer comes back.
    NoData(Box<Trainer>, TrainingJob, Error),
    /// The checkpoints a challenge asked for, read from disk (`None`: no longer kept).
    Checkpoints {
        /// The challenger.
        peer: NodeId,
        /// The chain's round.
        round: u64,
        /// The segment.
        segment: u64,
        /// The checkpoints asked for, in order.
        checkpoints: Option<Vec<Vec<u8>>>,
        /// A pipeline stage's work of the segment (empty for a whole model's chain).
        work: Vec<Vec<LaneWork>>,
    },
    /// A replay ended (or its data could not be had); the replayer comes back with it.
    Replayed(
        Box<Replayer>,
        Box<ReplayJob>,
        std::result::Result<Replayed, String>,
    ),
    /// The training thread died.
    Crashed(String),
}

/// When the first round may start: [`LISTEN`] after `min_peers` peers are connected (their
/// greetings, the network's latest model-hash votes, tell the core where the network stands
/// before it trains), or at `latest`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartRule {
    pub(crate) min_peers: usize,
    pub(crate) latest: Instant,
    /// When `min_peers` were first connected.
    pub(crate) peers_since: Option<Instant>,
}

/// How long a starting node listens to its peers' greetings before its first round: enough for
/// a direct frame to reach it while its inbox subscription propagates.
const LISTEN: Duration = Duration::from_secs(2);

impl StartRule {
    /// Whether the first round may start now, with `peers` connected.
    fn ready(&mut self, peers: usize, now: Instant) -> bool {
        if peers < self.min_peers {
            self.peers_since = None;
        } else {
            self.peers_since.get_or_insert(now);
        }
        now >= self.latest || self.peers_since.is_some_and(|since| now >= since + LISTEN)
    }
}

/// Everything the loop owns.
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) node: Node,
    pub(crate) net: NetworkHandle,
    pub(crate) events: mpsc::Receiver<NetEvent>,
    pub(crate) transport: Transport,
    pub(crate) data: DataSync,
    pub(crate) trainer: Option<Box<Trainer>>,
    pub(crate) progress: Progress,
    pub(crate) loss: LossGauge,
    pub(crate) status: StatusBoard,
    pub(crate) checkpoints: watch::Sender<Option<Arc<Snapshot>>>,
    /// A pipeline stage's round-start state for its checkpoint, with the stage it holds
    /// (`Role::checkpoint_tag`).
    pub(crate) stage_checkpoints: watch::Sender<Option<(Arc<Snapshot>, String)>>,
    pub(crate) start: Option<StartRule>,
    pub(crate) max_frame: usize,
    pub(crate) done_tx: mpsc::Sender<Done>,
    pub(crate) done_rx: mpsc::Receiver<Done>,
    pub(crate) peers: BTreeMap<PeerId, NodeId>,
    pub(crate) pending: Option<TrainingJob>,
    pub(crate) wake: Option<Timestamp>,
    /// This node's chain checkpoints, served to challengers.
    pub(crate) chains: DiskCheckpoints,
    /// The replayer, when no replay is running.
    pub(crate) replayer: Option<Box<Replayer>>,
    /// Replays waiting for the replayer.
    pub(crate) replays: std::collections::VecDeque<Box<ReplayJob>>,
    /// The ledger, when the network has one.
    pub(crate) chain: Option<Chain>,
    /// The ledger height at the last refresh, and since when it has not moved.
    pub(crate) ledger_stalled: (u64, Instant),
    /// When this node claimed its work for a round, to measure how long the ledger took to
    /// close it (the agreement's share of the round).
    pub(crate) claimed: BTreeMap<u64, Instant>,
    /// How many network events the swarm dropped (this node's loop read them too slowly), as
    /// last logged.
    pub(crate) dropped_events: u64,
    /// The HTTP API's ledger requests.
    pub(crate) jobs: mpsc::Receiver<crate::queries::Job>,
    /// Capacity records, the placement, and a pipeline stage's lane.
    pub(crate) pipeline: crate::pipeline::Pipeline,
    /// Test builds only: serve no challenged checkpoint.
    #[cfg(feature = "cheat")]
    pub(crate) withhold: bool,
}

/// Waits for the ledger engine's next finalized block (never, without a ledger).
pub(crate) async fn finalized(chain: &mut Option<Chain>) {
    match chain {
        Some(chain) => chain.finalized().await,
        None => std::future::pending().await,
    }
}

/// A follower whose ledger has not moved for this long asks a validator for blocks.
const LEDGER_PATIENCE: Duration = Duration::from_secs(5);

/// Now, as microseconds since the Unix epoch: the node core's clock.
pub(crate) fn now() -> Timestamp {
    #[allow(clippy::disallowed_methods)] // the driver is the one place that reads the clock
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    Timestamp(since.map_or(0, |d| d.as_micros() as u64))
}

impl Driver {
    /// Runs until `shutdown` resolves or the network stops.
    pub(crate) async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let outcome = self.run_until(shutdown).await;
        self.stop_lane_jobs();
        if outcome.is_ok() {
            self.leave_pool().await;
        }
        outcome
    }

    /// The event loop of [`Driver::run`].
    async fn run_until(&mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut refresh = tokio::time::interval(Duration::from_secs(1));
        loop {
            let wake = self.next_wake();
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => return Err(Error::Net(neuroshard_p2p::Error::Stopped)),
                },
                Some(done) = self.done_rx.recv() => self.on_done(done)?,
                () = tokio::time::sleep_until(wake) => self.tick(),
                () = finalized(&mut self.chain) => self.on_ledger_block()?,
                Some(job) = self.jobs.recv() => job(self),
                _ = refresh.tick() => self.refresh().await,
            }
        }
    }

    /// The next node wake-up as a tokio instant (an hour away when none is due).
    fn next_wake(&self) -> Instant {
        let Some(at) = self.wake else {
            return Instant::now() + Duration::from_secs(3600);
        };
        Instant::now() + at.since(now())
    }

    pub(crate) fn input(&mut self, input: Input) {
        let outputs = self.node.handle(now(), input);
        self.execute(outputs);
    }

    fn tick(&mut self) {
        if self.wake.is_some_and(|at| at <= now()) {
            self.wake = None;
        }
        if self.start.is_none() && !self.pipeline.is_idle() {
            self.input(Input::Tick);
        }
    }

    async fn refresh(&mut self) {
        if self.start.is_some() {
            self.publish_capacity();
        }
        // Only a node that has not started yet asks (a plan's lookup on every tick is not free).
        let heard_all = self.start.is_some() && self.heard_every_capacity() && self.plan_known();
        if let Some(rule) = &mut self.start
            && rule.ready(self.peers.len(), Instant::now())
            && (heard_all || Instant::now() >= rule.latest)
        {
            tracing::info!(
                peers = self.peers.len(),
                round = self.node.round(),
                "starting to train"
            );
            self.start = None;
            let heard = self.pipeline.plans.heard.take(self.roll_len());
            let ledger = heard.is_none().then(|| self.ledger_plan()).flatten();
            if let Some(plan) = &ledger {
                tracing::info!(
                    height = plan.height,
                    "no peer said a plan: placing this node under the latest plan its ledger holds"
                );
            }
            self.place(heard.or(ledger)).await;
        }
        self.replan_tick().await;
        self.tick();
        self.start_job();
        self.tell_lane();
        self.ledger_tick();
        self.transport.expire();
        self.say_dropped_events();
        self.show_progress();
        if let Ok(addrs) = self.net.bootstrap_addrs().await {
            self.status.set_addrs(&addrs);
        }
    }

    /// Logs the network events dropped since the last second: the swarm drops what this loop
    /// has not read when its buffer is full, round messages included, so an operator should
    /// know (the rounds ask again for what they miss, `docs/protocol.md` step 3).
    fn say_dropped_events(&mut self) {
        let dropped = self.net.dropped_events();
        if dropped > self.dropped_events {
            tracing::warn!(
                dropped = dropped - self.dropped_events,
                total = dropped,
                "network events dropped: this node's loop read them too slowly"
            );
            self.dropped_events = dropped;
        }
    }

    /// Puts the round, step, model hash, peers, traffic and the parameters held on the status
    /// board.
    fn show_progress(&self) {
        self.status.params(self.node.params().len());
        let step = self.progress.step.load(Ordering::Relaxed);
        // A node with a budget holds no model before its placement (its core is a placeholder).
        let model = (!self.node.params().is_empty()).then(|| self.node.model_hash());
        self.status.refresh(
            self.node.round(),
            step,
            model,
            &self.peers,
            self.net.traffic(),
        );
        let global = self.progress.global.load(Ordering::Relaxed);
        if let Some(loss) = self.loss.get() {
            self.status.live_loss(self.node.round(), global, loss);
        }
    }

    fn execute(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            self.submit_to_ledger(&output);
            match output {
                Output::Broadcast(frame) => {
                    self.transport.send(ROUND_TOPIC.to_owned(), &frame, false);
                }
                Output::Send(to, frame) => {
                    tracing::debug!(%to, len = frame.len(), kind = ?message_kind(&frame), "a round message to one member");
                    match self.peers.iter().find(|(_, n)| **n == to) {
                        Some((peer, _)) => self.transport.send_to(*peer, &frame),
                        None => self.transport.send(inbox_topic(&to), &frame, true),
                    }
                }
                Output::Train(job) => {
                    self.want(job.round);
                    self.pending = Some(job);
                    self.start_job();
                }
                Output::WakeAt(at) => self.wake = Some(self.wake.map_or(at, |w| w.min(at))),
                Output::Penalize { peer, reason } => self.penalize(peer, &reason),
                Output::Closed(summary) => {
                    let traffic = self.net.traffic();
                    // Only the head sees the loss: a stage before it logs none (its replicas
                    // announce NaN, which would read as a diverged model).
                    let sees_loss = self.pipeline.role().is_none_or(|r| r.spec.head);
                    tracing::info!(
                        round = summary.round, included = summary.included.len(), model = %summary.model_hash.short(),
                        loss = sees_loss.then_some(summary.train_loss), skipped = ?summary.skipped, wire_sent = traffic.wire_sent,
                        wire_received = traffic.wire_received, payload_sent = traffic.payload_sent,
                        payload_received = traffic.payload_received, "round closed"
                    );
                    match &summary.growth {
                        Some(Ok(n_layers)) => {
                            // A pipeline stage grows to its plan's length: its core's
                            // pool figure counts only the stage's replicas.
                            let pool = (self.pipeline.role().is_none())
                                .then(|| self.node.pool_history().last());
                            tracing::info!(round = summary.round, n_layers, pool = ?pool.flatten(),
                                model = %summary.model_hash.short(), "the model grew at the round's end");
                            self.status.depth(summary.round + 1, *n_layers, None);
                        }
                        Some(Err(err)) => {
                            tracing::error!(round = summary.round, %err, "the model could not grow")
                        }
                        None => {}
                    }
                    self.status.round_closed(&summary);
                    self.show_progress();
                    self.checkpoint();
                }
                Output::Resynced { round, hash } => {
                    tracing::info!(round, model = %hash.short(), "resynced the model from a peer");
                    self.status.resynced(round, hash, now());
                    // The node has heard where the network stands: nothing left to listen for,
                    // and the round after the one it observes must not wait for the start rule.
                    self.start = None;
                    self.follow_in_lane();
                    self.show_progress();
                    self.checkpoint();
                }
                Output::Checkpoints {
                    peer,
                    round,
                    segment,
                    indices,
                } => self.read_checkpoints(peer, round, segment, indices),
                Output::Replay(job) => {
                    self.replays.push_back(job);
                    self.start_replay();
                }
                Output::Audited(verdict) => {
                    tracing::info!(round = verdict.round, contributor = %verdict.contributor,
                        segment = verdict.segment, outcome = ?verdict.outcome, "audit concluded");
                    self.show_audits();
                }
                Output::Claim { round, .. } => {
                    self.claimed.retain(|r, _| r + 8 > round);
                    self.claimed.insert(round, Instant::now());
                    self.keep_own(round);
                }
                Output::Excluded { node, reason, .. } => {
                    tracing::warn!(%node, reason, "excluded a member: proven to cheat or to accuse falsely");
                    self.show_audits();
                }
            }
        }
    }

    fn show_audits(&self) {
        self.status
            .audits(self.node.audit_stats(), self.node.excluded());
    }

    /// Writes this node's chain of `round` beside its checkpoints, off the loop (its residual is
    /// as large as the model), for a restart (`DiskCheckpoints::restore_own`).
    fn keep_own(&self, round: u64) {
        let Some(own) = self.node.own_chain(round).cloned() else {
            return;
        };
        let chains = self.chains.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = chains.keep_own(round, &own) {
                tracing::warn!(round, %err, "could not keep the round's chain for a restart");
            }
        });
    }

    /// Reads the checkpoints a challenge of `segment` needs off disk, off the loop.
    fn read_checkpoints(&self, peer: NodeId, round: u64, segment: u64, indices: Vec<u64>) {
        let (chains, done) = (self.chains.clone(), self.done_tx.clone());
        #[cfg(feature = "cheat")]
        let withhold = self.withhold;
        #[cfg(not(feature = "cheat"))]
        let withhold = false;
        tokio::spawn(async move {
            let read = tokio::task::spawn_blocking(move || {
                let checkpoints = (indices.iter())
                    .map(|i| chains.get(round, *i))
                    .collect::<Option<Vec<_>>>();
                (checkpoints, chains.work(round, segment))
            })
            .await;
            let (checkpoints, work) = read.unwrap_or_default();
            let _ = done
                .send(Done::Checkpoints {
                    peer,
                    round,
                    segment,
                    checkpoints: checkpoints.filter(|_| !withhold),
                    work,
                })
                .await;
        });
    }

    /// Starts the next replay if the replayer is free: fetch the shards it reads for the round
    /// (the contributor's, or a stage's lanes' data nodes'), then replay on a blocking thread,
    /// beside training.
    fn start_replay(&mut self) {
        if self.replayer.is_none() {
            return;
        }
        let Some(job) = self.replays.pop_front() else {
            return;
        };
        let mut replayer = self.replayer.take().expect("checked above");
        if let (Replayer::Stage(stage), Some(role)) = (replayer.as_mut(), self.pipeline.role()) {
            // The plan in force: a replan may have moved the stage's place or depth.
            stage.replan(role.clone(), self.next_role(role));
        }
        let readers = replayer.data_nodes(&job);
        let (data, done) = (self.data.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            for node in readers {
                if let Err(err) = data.ensure(job.round, node).await {
                    let reason = format!("the shards of {node}: {err}");
                    let _ = done.send(Done::Replayed(replayer, job, Err(reason))).await;
                    return;
                }
            }
            let ran = tokio::task::spawn_blocking(move || {
                let result = replayer.run(&job);
                (replayer, job, result)
            })
            .await;
            match ran {
                Ok((replayer, job, result)) => {
                    let _ = done.send(Done::Replayed(replayer, job, result)).await;
                }
                Err(err) => {
                    let _ = done.send(Done::Crashed(err.to_string())).await;
                }
            }
        });
    }

    pub(crate) fn penalize(&self, peer: NodeId, reason: &str) {
        tracing::warn!(%peer, reason, "penalising a peer");
        if let Ok(peer) = neuroshard_p2p::identity::peer_id(&peer) {
            let net = self.net.clone();
            tokio::spawn(async move { net.report(peer, Offence::Invalid).await });
        }
    }

    /// Hands the latest round-start state to its checkpoint writer: a pipeline stage's, with the
    /// stage it holds, or the whole model's (which the API's generator reads too).
    fn checkpoint(&self) {
        let state = Arc::new(self.node.snapshot());
        match self.pipeline.role() {
            Some(role) => {
                let tag = role.checkpoint_tag();
                self.stage_checkpoints.send_replace(Some((state, tag)));
            }
            None => {
                self.checkpoints.send_replace(Some(state));
            }
        }
    }

    /// Starts the pending job if the trainer is free and the job is for the node's current round
    /// (a pipeline stage tells its lane neighbours which round its thread serves, started or
    /// dropped). A job that waited while the node resynced within the round starts from the
    /// installed model instead, and says so: the node still owes the round a Δ, and only one
    /// trained from the model it now holds counts.
    pub(crate) fn start_job(&mut self) {
        if self.trainer.is_none() || self.start.is_some() {
            return;
        }
        let Some(job) = self.pending.take() else {
            return;
        };
        if job.round != self.node.round() {
            self.lane_job(None);
            return;
        }
        if self.moves_at_next_plan() {
            // It takes its new place between jobs (`replan_tick`): this job is its old stage's.
            self.pending = Some(job);
            return;
        }
        self.switch_plan(job.round);
        self.reroute_lanes();
        let nodes = self.pipeline.start_job(self.node.id());
        if nodes.is_empty() {
            self.stand_by(job.round);
            return;
        }
        self.lane_job(Some(job.round));
        let job = TrainingJob {
            start: self.node.model_hash(),
            ..job
        };
        let trainer = self.trainer.take().expect("checked above");
        let params = self.node.params().to_vec();
        let (data, done) = (self.data.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            for node in nodes {
                if let Err(err) = data.ensure(job.round, node).await {
                    let _ = done.send(Done::NoData(trainer, job, err)).await;
                    return;
                }
            }
            let message = validate_and_train(trainer, job, params, done.clone()).await;
            let _ = done.send(message).await;
        });
    }

    /// A stage replica that serves no lane this round (`docs/pipeline.md`, "Standing by") runs
    /// no job: a Δ of no step would dilute its stage mates' mean, and its claim would let the
    /// ledger close rounds at its pace rather than the lanes'. Its round core goes on without a
    /// Δ of its own and follows the round on its mates' Δs, so it is current when a lane needs
    /// it as a stand-in.
    fn stand_by(&mut self, round: u64) {
        tracing::debug!(round, "standing by: this replica serves no lane this round");
        self.input(Input::Failed { round });
    }

    fn on_done(&mut self, done: Done) -> Result<()> {
        match done {
            Done::Frame { from, frame } => self.input(Input::Message(from, frame)),
            Done::Validated { round, val_loss } => self.status.validated(round, val_loss),
            Done::Depth {
                round,
                n_layers,
                refit,
            } => {
                if let Some(refit) = refit {
                    tracing::info!(round, from = refit.from, to = n_layers, val_before = ?refit.val_before,
                        "the replica took on the model's new depth");
                }
                let grew = refit.map(|r| (r.from, r.val_before));
                self.status.depth(round, n_layers, grew);
            }
            Done::Job(trainer, outcome) => {
                self.trainer = Some(trainer);
                self.lane_job(None);
                self.status
                    .job_done(&outcome, self.data.round_pool_tokens());
                match outcome.result {
                    Ok(result) => self.input(Input::Trained(result)),
                    Err(err) => {
                        let round = outcome.job.round;
                        tracing::info!(round, %err, "training job stopped");
                        self.input(Input::Failed { round });
                    }
                }
                self.start_job();
            }
            Done::NoData(trainer, job, err) => {
                tracing::warn!(round = job.round, %err, "no training data yet; retrying");
                self.trainer = Some(trainer);
                self.pending.get_or_insert(job);
            }
            Done::Checkpoints {
                peer,
                round,
                segment,
                checkpoints,
                work,
            } => self.input(Input::Checkpoints {
                peer,
                round,
                segment,
                checkpoints,
                work,
            }),
            Done::Replayed(replayer, job, result) => {
                self.replayer = Some(replayer);
                if let Err(err) = &result {
                    tracing::warn!(round = job.round, contributor = %job.contributor, %err, "could not replay a segment");
                }
                self.input(Input::Replayed(job, result));
                self.start_replay();
            }
            Done::Crashed(reason) => return Err(Error::Worker(reason)),
        }
        Ok(())
    }

    async fn on_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::PeerConnected { peer, node } => {
                tracing::info!(%peer, "peer connected");
                self.peers.insert(peer, node);
                self.members_changed();
            }
            NetEvent::PeerDisconnected { peer } | NetEvent::PeerBanned { peer, .. } => {
                tracing::info!(%peer, "peer left");
                self.peers.remove(&peer);
                self.lane_peer_left(peer);
                self.data.peer_left(&peer);
                self.members_changed();
            }
            NetEvent::PeerSubscribed { topic, .. } => self.on_subscribed(&topic).await,
            NetEvent::Announcement {
                peer,
                node,
                topic,
                announcement,
            } => {
                self.on_announcement(peer, node, &topic, &announcement)
                    .await;
            }
            NetEvent::Listening(addr) => tracing::info!(%addr, "listening"),
            NetEvent::Frame { peer, bytes } => match crate::transport::direct(&bytes) {
                Some(note) => self.on_direct(peer, note).await,
                None => self.on_lane_frame(peer, bytes),
            },
        }
    }

    /// A round frame `peer` sent this node alone over the frame protocol
    /// ([`Transport::send_to`](crate::transport::Transport::send_to)): handled as if it came on
    /// this node's inbox topic, once its signature holds and its signer is the peer's node.
    async fn on_direct(
        &mut self,
        peer: PeerId,
        note: std::result::Result<neuroshard_p2p::Announcement, neuroshard_p2p::Error>,
    ) {
        let Some(node) = self.peers.get(&peer).copied() else {
            return;
        };
        match note {
            Ok(note) if note.verify().is_ok() && note.signer() == node => {
                let mine = inbox_topic(&self.node.id());
                self.on_announcement(peer, node, &mine, &note).await;
            }
            _ => self.penalize(
                node,
                "a direct frame that does not decode or is not its own",
            ),
        }
    }

    pub(crate) fn members_changed(&mut self) {
        let Some(members) = self
            .pipeline
            .core_members(self.node.id(), self.peers.values())
        else {
            return;
        };
        let outputs = self.node.set_members(now(), members);
        self.execute(outputs);
    }

    /// A peer subscribed to the data topic: tell it what we hold.
    async fn on_subscribed(&mut self, topic: &str) {
        if topic == DATA_TOPIC {
            self.data.announce().await;
        }
        if topic == POOL_TOPIC {
            // Before the plan is made, and for a node that joins later.
            self.publish_capacity();
            self.publish_plan();
        }
    }

    async fn on_announcement(
        &mut self,
        peer: PeerId,
        node: NodeId,
        topic: &str,
        note: &neuroshard_p2p::Announcement,
    ) {
        let mine = inbox_topic(&self.node.id());
        let for_round = topic == ROUND_TOPIC || topic == mine;
        // A pipeline stage's round core hears only its own stage's replicas.
        let heard = self.pipeline.hears(&node);
        match note.namespace.as_str() {
            FRAME_NS if for_round => {
                self.pipeline
                    .keep_early(Early::Frame(node, note.payload().to_vec()));
                if heard {
                    tracing::debug!(%node, kind = ?message_kind(note.payload()), "a round message");
                    self.input(Input::Message(node, note.payload().to_vec()))
                }
            }
            OFFER_NS if for_round => match wire::decode::<Offer>(note.payload()) {
                Some(offer) if !heard => {
                    // Kept only before the placement, for the core it then builds.
                    if offer.len <= self.max_frame as u64 {
                        self.pipeline.keep_early(Early::Offer(peer, node, offer));
                    }
                }
                Some(offer) if offer.len <= self.max_frame as u64 => {
                    self.pipeline.keep_early(Early::Offer(peer, node, offer));
                    self.fetch_offer(peer, node, offer)
                }
                _ => self.penalize(node, "an offer that does not decode or is too large"),
            },
            POOL_NS if topic == POOL_TOPIC => {
                if let Err(reason) = self.pipeline.records.hear(node, note.payload()) {
                    self.penalize(node, &format!("a capacity record: {reason}"));
                }
            }
            PLAN_NS if topic == POOL_TOPIC => self.hear_plan(node, note.payload()),
            LEDGER_NS if topic == LEDGER_TOPIC || topic == mine => {
                match wire::decode::<LedgerWire>(note.payload()) {
                    Some(message) => self.on_ledger_wire(node, message),
                    None => self.penalize(node, "a ledger message that does not decode"),
                }
            }
            HOLDINGS_NS if topic == DATA_TOPIC => match wire::decode(note.payload()) {
                Some(holdings) => self.data.holder_announced(peer, holdings),
                None => self.penalize(node, "holdings that do not decode"),
            },
            _ => self.penalize(node, "an announcement of the wrong kind for its topic"),
        }
    }

    /// Puts what `output` calls for on the ledger (a claim, a verdict, a conviction).
    fn submit_to_ledger(&mut self, output: &Output) {
        let Some(chain) = &mut self.chain else {
            return;
        };
        let part = self.pipeline.part();
        if let Some(action) = self.node.ledger_action(output, chain.view(), part) {
            let effects = chain.push(action);
            self.carry_out_ledger(effects);
        }
    }

    /// The engine finalized blocks.
    pub(crate) fn on_ledger_block(&mut self) -> Result<()> {
        let effects = match &mut self.chain {
            Some(chain) => chain.on_finalized(now().0 / 1000)?,
            None => return Ok(()),
        };
        self.carry_out_ledger(effects);
        Ok(())
    }

    fn on_ledger_wire(&mut self, from: NodeId, message: LedgerWire) {
        let Some(chain) = &mut self.chain else {
            return;
        };
        match chain.on_wire(from, message, now().0 / 1000) {
            Ok(effects) => self.carry_out_ledger(effects),
            Err(err) => tracing::error!(%err, "the ledger could not apply a block"),
        }
    }

    /// Every second: the outbox goes out again, and a follower whose ledger stalled asks a
    /// connected validator for blocks.
    fn ledger_tick(&mut self) {
        let Some(chain) = &mut self.chain else {
            return;
        };
        let height = chain.head().height;
        if height != self.ledger_stalled.0 {
            self.ledger_stalled = (height, Instant::now());
        }
        let behind = self.ledger_stalled.1.elapsed() >= LEDGER_PATIENCE;
        let committee = &chain.view().meta.committee;
        let ask = self
            .peers
            .values()
            .find(|id| committee.contains(id))
            .copied();
        if behind {
            self.ledger_stalled.1 = Instant::now();
        }
        let effects = chain.tick(behind, ask);
        self.carry_out_ledger(effects);
    }

    /// A wallet's sealed request, from the HTTP API.
    pub(crate) fn wallet_request(
        &mut self,
        request: &[u8],
    ) -> std::result::Result<neuroshard_api::SubmitReply, neuroshard_api::ApiError> {
        let chain = self.chain.as_mut().ok_or_else(|| {
            neuroshard_api::ApiError::Unavailable("this network has no ledger".into())
        })?;
        let now_ms = now().0 / 1000;
        let (hash, effects) = chain
            .request(request, now_ms)
            .map_err(neuroshard_api::ApiError::BadRequest)?;
        self.carry_out_ledger(effects);
        Ok(neuroshard_api::SubmitReply {
            request: hash.to_hex(),
            message: "queued for the ledger; it is final once a block carries it".into(),
        })
    }

    /// Gossips what the ledger wants sent, hands closed rounds to the node core, shows blocks.
    pub(crate) fn carry_out_ledger(&mut self, effects: Effects) {
        for (topic, message, direct) in effects.gossip {
            self.transport
                .gossip(topic, LEDGER_NS, &wire::encode(&message), direct);
        }
        for (header, receipt) in &effects.receipts {
            tracing::debug!(
                height = header.height,
                txs = receipt.txs.len(),
                "ledger block applied"
            );
            for (who, amount) in &receipt.slashed {
                tracing::warn!(%who, amount, "the ledger slashed a contributor");
            }
        }
        if let Some(chain) = &self.chain {
            self.status.ledger(chain.status());
        }
        // A boundary before the rounds closed: a block that closes a round comes after the
        // boundary's, and the plan made there must be known before the next round's job starts.
        for boundary in effects.boundaries {
            self.on_pool_boundary(boundary);
        }
        for (round, claims) in effects.decided {
            let after_claim_ms = self
                .claimed
                .remove(&round)
                .map(|at| at.elapsed().as_millis());
            let list = inclusion_list(&claims, self.pipeline.part());
            tracing::info!(
                round,
                claims = claims.len(),
                included = list.len(),
                after_claim_ms,
                "the ledger closed a round"
            );
            self.input(Input::Decided { round, list });
        }
    }

    pub(crate) fn fetch_offer(&self, peer: PeerId, from: NodeId, offer: Offer) {
        let (net, done) = (self.net.clone(), self.done_tx.clone());
        tracing::debug!(%from, key = %offer.key.short(), len = offer.len, "fetching an offered frame");
        tokio::spawn(async move {
            #[allow(clippy::disallowed_methods)] // a debug figure, not protocol time
            let started = Instant::now();
            match net.fetch(peer, offer.key).await {
                Ok(frame) => {
                    tracing::debug!(%from, key = %offer.key.short(), kind = ?message_kind(&frame),
                        secs = started.elapsed().as_secs_f64(), "fetched an offered frame");
                    let _ = done.send(Done::Frame { from, frame }).await;
                }
                Err(err) => tracing::warn!(%peer, %err, "fetching an offered frame failed"),
            }
        });
    }
}

/// On a blocking thread: measures the job's start model on the validation batches and reports
/// it at once, then runs the inner steps. The trainer comes back in the returned message.
async fn validate_and_train(
    mut trainer: Box<Trainer>,
    job: TrainingJob,
    params: Vec<f32>,
    done: mpsc::Sender<Done>,
) -> Done {
    let ran = tokio::task::spawn_blocking(move || {
        let round = job.round;
        match trainer.fit(round, &params) {
            Ok(None) => {}
            Ok(Some((n_layers, refit))) => {
                let _ = done.blocking_send(Done::Depth {
                    round,
                    n_layers,
                    refit,
                });
            }
            Err(err) => tracing::warn!(%err, "cannot take the model's depth"),
        }
        if let Some(val_loss) = trainer.validate(round, &params) {
            let _ = done.blocking_send(Done::Validated { round, val_loss });
        }
        let outcome = trainer.run(job, &params);
        (trainer, outcome)
    })
    .await;
    match ran {
        Ok((trainer, outcome)) => Done::Job(trainer, outcome),
        Err(err) => Done::Crashed(err.to_string()),
    }
}

/// The kind of round message `frame` holds (its namespace), for debug logs; `None` when it does
/// not open.
fn message_kind(frame: &[u8]) -> Option<String> {
    let (_, message) = neuroshard_node::Message::open(frame, usize::MAX).ok()?;
    Some(String::from_utf8_lossy(message.namespace()).into_owned())
}
