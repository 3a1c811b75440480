//! Wires one validator: store, marshal (broadcast, backfill, ordered delivery), the application,
//! simplex, and the finalizer, over any runtime and any authenticated p2p network.

use crate::{
    Error, Machine,
    app::App,
    block::{Block, Digest},
    certificate::{MAX_COMMITTEE, Scheme},
    epoch::{Schemes, epoch_of, last_height},
    finalizer::{self, Boundary, Handover, Updates},
    state::{Finalized, Shared},
    store::Store,
};
use commonware_broadcast::buffered;
use commonware_consensus::{
    marshal::{self, core::Actor, resolver::p2p as marshal_resolver, standard::Inline},
    simplex::{self, ForwardPolicy, SkipBudget, SkipPolicy, elector::RoundRobin},
    types::{Epoch, FixedEpocher, Height, ViewDelta},
};
use commonware_cryptography::{
    Digestible as _, Sha256,
    ed25519::{PrivateKey, PublicKey},
};
use commonware_p2p::{
    Blocker, Provider, Receiver, Sender,
    utils::mux::{Builder as _, MuxHandle, Muxer, prefixed},
};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Clock, Handle as TaskHandle, Metrics, Spawner, Storage, buffer::paged::CacheRef,
};
use commonware_storage::archive::immutable;
use commonware_utils::{NZU16, NZU64, NZUsize, NonZeroDuration, vec::NonEmptyVec};
use futures::{StreamExt as _, channel::mpsc};
use rand_core::CryptoRng;
use std::{
    num::{NonZeroU64, NonZeroUsize},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tracing::{error, info};

/// The queue of simplex messages for epochs this node has no engine for: (epoch, (peer, bytes)).
type MuxBackup =
    commonware_utils::channel::mpsc::Receiver<(u64, commonware_p2p::Message<PublicKey>)>;

/// The p2p channel ids a validator uses (each carries one kind of message).
pub mod channel {
    /// Simplex votes.
    pub const VOTES: u64 = 0;
    /// Simplex certificates.
    pub const CERTIFICATES: u64 = 1;
    /// Simplex's fetch of missing certificates.
    pub const RESOLVER: u64 = 2;
    /// Marshal's broadcast of proposed blocks.
    pub const BROADCAST: u64 = 3;
    /// Marshal's backfill of finalized blocks.
    pub const BACKFILL: u64 = 4;
}

/// The largest message any channel carries for a committee of up to [`MAX_COMMITTEE`]: a block
/// of [`crate::MAX_BODY_BYTES`] with marshal's framing, or simplex's largest certificate with the
/// epoch sub-channel's prefix.
pub fn max_message_size() -> u32 {
    let participants = MAX_COMMITTEE as u32;
    let marshal =
        marshal::max_payload_size::<marshal::standard::Standard<Block>, Scheme>(participants, &());
    let simplex = prefixed(simplex::max_payload_size::<Scheme, Digest>(participants));
    // Room for the p2p layer's own framing.
    (marshal.max(simplex) + 1024) as u32
}

/// Timeouts and sizes of the engine; [`Timing::default`] suits a LAN or loopback.
#[derive(Clone, Debug)]
pub struct Timing {
    /// How long to wait for a leader's proposal before voting to skip the view.
    pub leader_timeout: Duration,
    /// How long to wait for a notarized view to certify before voting to skip it.
    pub certification_timeout: Duration,
    /// How often to re-send a skip vote while stuck in a view.
    pub timeout_retry: Duration,
    /// How long to wait for a peer to answer a fetch.
    pub fetch_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            leader_timeout: Duration::from_secs(1),
            certification_timeout: Duration::from_secs(2),
            timeout_retry: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(1),
        }
    }
}

/// One sender/receiver pair per channel of [`channel`].
#[derive(Debug)]
pub struct Channels<S, R> {
    /// [`channel::VOTES`].
    pub votes: (S, R),
    /// [`channel::CERTIFICATES`].
    pub certificates: (S, R),
    /// [`channel::RESOLVER`].
    pub resolver: (S, R),
    /// [`channel::BROADCAST`].
    pub broadcast: (S, R),
    /// [`channel::BACKFILL`].
    pub backfill: (S, R),
}

/// What a validator needs besides its network.
#[derive(Clone, Debug)]
pub struct ValidatorConfig<M> {
    /// The validator's ed25519 signing key.
    pub key: PrivateKey,
    /// The state machine.
    pub machine: M,
    /// The ledger store file (redb).
    pub store: PathBuf,
    /// Prefix of the runtime storage partitions (simplex journal, marshal archives); unique per
    /// validator sharing one runtime storage.
    pub partition: String,
    /// Timeouts.
    pub timing: Timing,
}

/// A running validator's handle: submit transactions, follow finalized blocks.
pub struct Validator<M: Machine> {
    shared: Arc<Shared<M>>,
    store: Arc<Store>,
    applied: Arc<AtomicU64>,
    tip: Arc<AtomicU64>,
    epoch: Arc<AtomicU64>,
    validating: Arc<AtomicBool>,
    tasks: Vec<TaskHandle<()>>,
}

impl<M: Machine> std::fmt::Debug for Validator<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("applied", &self.applied)
            .field("tip", &self.tip)
            .finish_non_exhaustive()
    }
}

impl<M: Machine> Clone for Validator<M> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            store: self.store.clone(),
            applied: self.applied.clone(),
            tip: self.tip.clone(),
            epoch: self.epoch.clone(),
            validating: self.validating.clone(),
            tasks: Vec::new(),
        }
    }
}

impl<M: Machine> Validator<M> {
    /// Queues a transaction for this validator's proposals (dropped once a finalized block carries it).
    pub fn submit(&self, tx: Vec<u8>) -> Result<(), Error> {
        self.shared.submit(tx)
    }

    /// Finalized blocks from now on, in height order, each after it is durable in the store.
    ///
    /// Blocks applied before the call are in the store (blocks and certificates by height). The
    /// stream ends when the validator stops or fails (see `failure`).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Finalized> {
        self.shared.subscribe()
    }

    /// The height of the last block applied to the store (0 before any block).
    pub fn finalized_height(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// The highest finalized height this validator has heard of (may be ahead of the store while
    /// it catches up).
    pub fn tip_height(&self) -> u64 {
        self.tip
            .load(Ordering::Relaxed)
            .max(self.finalized_height())
    }

    /// The last applied block's digest and header.
    pub fn finalized(&self) -> (crate::Header, [u8; 32]) {
        let (digest, header) = self.shared.finalized();
        (header, digest.0)
    }

    /// The state after the last applied block.
    pub fn state(&self) -> Arc<M::State> {
        self.shared.finalized_state()
    }

    /// The epoch the engine runs (the epoch of the block after the last applied one, once the
    /// orchestrator has handed over).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// Whether this node votes in the current epoch: false once the committee it was elected
    /// to has ended and the next one does not hold its key (it should follow instead).
    pub fn validating(&self) -> bool {
        self.validating.load(Ordering::Relaxed)
    }

    /// Transactions waiting in the mempool.
    pub fn mempool_len(&self) -> usize {
        self.shared.mempool_len()
    }

    /// Why the validator stopped applying blocks, if it did.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// The store (read-only use: blocks and certificates by height for followers).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops every task of this validator (the runtime storage and the store stay as they are).
    pub fn abort(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

/// A member of an epoch's committee: its key, and its address if the ledger records one.
pub type Member = ([u8; 32], Option<std::net::SocketAddr>);

/// Starts a validator on `context`'s runtime and the given network channels.
///
/// The engine runs the epoch of the block after the store's last one, whose committee
/// (`machine.committee` of the stored state) must hold `config.key`. At each epoch boundary the
/// orchestrator stops that epoch's simplex and starts the next one's from the boundary block,
/// with the committee the machine fixed; a key that left the committee stops voting
/// ([`Validator::validating`] turns false) while marshal and the store stay up. `on_epoch` hears
/// of each epoch's committee as the engine enters it (the daemon tracks it as a peer set).
/// The caller's task must outlive the validator (the runtime aborts children with their parent).
pub async fn start_validator<E, M, S, R, P, B, T>(
    context: E,
    config: ValidatorConfig<M>,
    channels: Channels<S, R>,
    peers: P,
    blocker: B,
    on_epoch: T,
) -> Result<Validator<M>, Error>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    M: Machine,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
    T: FnMut(u64, &[Member]) + Send + 'static,
{
    let machine = config.machine.clone();
    let length = machine.epoch_length();
    if length < 2 {
        return Err(Error::Config("an epoch must hold at least 2 blocks".into()));
    }
    let store = Arc::new(Store::open(&config.store)?);
    let resumed = store.resume(&machine)?;
    let genesis_state = machine.genesis();
    let genesis = Block::genesis(machine.root(&genesis_state));
    let height = resumed.block.header.height;
    let epoch = epoch_of(length, height.saturating_add(1));
    let committee = machine.committee(&resumed.state);
    let mut known = store.committees()?;
    known.push((0, machine.committee(&genesis_state)));
    known.push((epoch, committee.clone()));
    let schemes = Schemes::new(config.key.clone(), known)?;
    if schemes.signer(epoch).is_none() {
        return Err(Error::Config(format!(
            "this validator's key is not in the committee of epoch {epoch}"
        )));
    }
    let floor = match epoch.checked_sub(1) {
        None => genesis.digest(),
        Some(before) => store
            .block(last_height(length, before))?
            .ok_or_else(|| Error::Corrupt(format!("the last block of epoch {before} is missing")))?
            .digest(),
    };
    let members: Vec<Member> = committee
        .iter()
        .map(|k| (*k, machine.address(&resumed.state, k)))
        .collect();
    let public: PublicKey = config.key.clone().into();
    let applied = Arc::new(AtomicU64::new(height));
    let tip = Arc::new(AtomicU64::new(height));
    let current = Arc::new(AtomicU64::new(epoch));
    let validating = Arc::new(AtomicBool::new(true));
    let shared = Arc::new(Shared::new(machine, &resumed.block, resumed.state));

    let mailbox_size = NZUsize!(1024);
    let page_cache = CacheRef::new(NZU16!(4096), NZUsize!(256));
    let prefix = config.partition.clone();
    let timing = config.timing.clone();
    let fetch_timeout = NonZeroDuration::new(timing.fetch_timeout)
        .ok_or_else(|| Error::Config("fetch timeout must be positive".into()))?;

    // Backfill of finalized blocks from peers.
    let (resolver_rx, resolver) = marshal_resolver::init(
        context.child("backfill"),
        marshal_resolver::Config {
            public_key: public.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size,
            fetch_timeout,
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );

    // Broadcast of proposed blocks.
    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: public.clone(),
            mailbox_size,
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peers.clone(),
            strategy: Sequential,
        },
    );
    let broadcast_task = broadcast_engine.start(channels.broadcast);

    let finalizations = archive(
        &context,
        "finalizations",
        format!("{prefix}-finalizations"),
        &page_cache,
        <Scheme as commonware_cryptography::certificate::Verifier>::certificate_codec_config_unbounded(),
    )
    .await?;
    let blocks = archive(
        &context,
        "blocks",
        format!("{prefix}-blocks"),
        &page_cache,
        (),
    )
    .await?;

    let epocher = FixedEpocher::new(
        NonZeroU64::new(length).ok_or_else(|| Error::Config("epoch length is zero".into()))?,
    );
    let (actor, marshal_mailbox, _floor) = Actor::init(
        context.child("marshal"),
        finalizations,
        blocks,
        marshal::Config {
            provider: schemes.clone(),
            epocher: epocher.clone(),
            start: marshal::Start::Genesis(commonware_cryptography::Digested::precomputed(
                genesis.clone(),
                genesis.digest(),
            )),
            partition_prefix: format!("{prefix}-marshal"),
            mailbox_size,
            view_retention: ViewDelta::new(64),
            prunable_items_per_section: NZU64!(64),
            page_cache: page_cache.clone(),
            replay_buffer: NZUsize!(64 * 1024),
            key_write_buffer: NZUsize!(64 * 1024),
            value_write_buffer: NZUsize!(64 * 1024),
            block_codec_config: (),
            max_repair: NZUsize!(16),
            max_pending_acks: NZUsize!(8),
            strategy: Sequential,
        },
    )
    .await;
    let (sender, receiver) = mpsc::unbounded();
    let updates = Updates {
        sender,
        tip: tip.clone(),
    };
    let marshal_task = actor.start(updates, buffer, (resolver_rx, resolver));

    let app = Inline::new(
        context.child("application"),
        App {
            shared: shared.clone(),
        },
        marshal_mailbox.clone(),
        epocher,
    );

    // Simplex's channels carry one sub-channel per epoch; messages for an epoch this node has
    // not reached land in the votes' backup queue and make marshal fetch the boundary.
    let (votes_mux, votes, backup) = Muxer::builder(
        context.child("votes_mux"),
        channels.votes.0,
        channels.votes.1,
    )
    .with_backup()
    .build();
    let (certificates_mux, certificates) = Muxer::new(
        context.child("certificates_mux"),
        channels.certificates.0,
        channels.certificates.1,
    );
    let (resolver_mux, resolver) = Muxer::new(
        context.child("resolver_mux"),
        channels.resolver.0,
        channels.resolver.1,
    );
    let mux_task = context.child("muxers").spawn(move |_| async move {
        let _ = futures::join!(votes_mux.run(), certificates_mux.run(), resolver_mux.run());
    });
    let hints_task = context.child("epoch_hints").spawn({
        let (marshal, current) = (marshal_mailbox.clone(), current.clone());
        move |_| hint_boundaries(backup, marshal, current, length)
    });

    let (boundary_tx, boundaries) = mpsc::unbounded();
    let finalizer_task = context.child("finalizer").spawn({
        let shared = shared.clone();
        let store = store.clone();
        let applied = applied.clone();
        let handover = Handover {
            schemes: schemes.clone(),
            boundaries: boundary_tx,
        };
        move |_| finalizer::run(shared, store, marshal_mailbox, receiver, applied, handover)
    });

    let epochs = Epochs {
        simplex: SimplexParts {
            app,
            blocker,
            schemes,
            timing,
            prefix,
            page_cache,
            mailbox_size,
            fetch_timeout,
            votes,
            certificates,
            resolver,
        },
        current: current.clone(),
        validating: validating.clone(),
        on_epoch,
    };
    let orchestrator_task = context.child("orchestrator").spawn(move |context| {
        epochs.run(
            context,
            Boundary {
                epoch,
                floor,
                members,
            },
            boundaries,
        )
    });

    Ok(Validator {
        shared,
        store,
        applied,
        tip,
        epoch: current,
        validating,
        tasks: vec![
            broadcast_task,
            marshal_task,
            mux_task,
            hints_task,
            finalizer_task,
            orchestrator_task,
        ],
    })
}

/// What starting one epoch's simplex needs.
struct SimplexParts<E: Clock + CryptoRng + Spawner + Storage + Metrics, M: Machine, S: Sender, B> {
    app: Inline<E, Scheme, App<M>, Block, FixedEpocher>,
    blocker: B,
    schemes: Schemes,
    timing: Timing,
    prefix: String,
    page_cache: CacheRef,
    mailbox_size: NonZeroUsize,
    fetch_timeout: NonZeroDuration,
    votes: MuxHandle<S>,
    certificates: MuxHandle<S>,
    resolver: MuxHandle<S>,
}

impl<E, M, S, B> SimplexParts<E, M, S, B>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    M: Machine,
    S: Sender<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    /// Starts `epoch`'s simplex from the boundary block `floor` as a child of `context`, or
    /// `None` when this node is not in the epoch's committee.
    async fn start(&mut self, context: &E, epoch: u64, floor: Digest) -> Option<TaskHandle<()>> {
        let scheme = self.schemes.signer(epoch)?;
        let (votes, certificates, resolver) = match (
            self.votes.register(epoch).await,
            self.certificates.register(epoch).await,
            self.resolver.register(epoch).await,
        ) {
            (Ok(v), Ok(c), Ok(r)) => (v, c, r),
            _ => {
                error!(epoch, "cannot open the epoch's channels");
                return None;
            }
        };
        let timing = &self.timing;
        let engine = simplex::Engine::new(
            context.child("simplex").with_attribute("epoch", epoch),
            simplex::Config {
                scheme,
                elector: RoundRobin::<Sha256>::default(),
                blocker: self.blocker.clone(),
                automaton: self.app.clone(),
                relay: self.app.clone(),
                reporter: self.app.clone(),
                strategy: Sequential,
                partition: format!("{}-simplex-{epoch}", self.prefix),
                mailbox_size: self.mailbox_size,
                epoch: Epoch::new(epoch),
                floor: simplex::Floor::Genesis(floor),
                replay_buffer: NZUsize!(64 * 1024),
                write_buffer: NZUsize!(64 * 1024),
                page_cache: self.page_cache.clone(),
                leader_timeout: timing.leader_timeout,
                certification_timeout: timing.certification_timeout,
                timeout_retry: timing.timeout_retry,
                view_retention: ViewDelta::new(64),
                skip: SkipPolicy::Enabled {
                    timeout: timing.certification_timeout + timing.timeout_retry,
                    budget: SkipBudget::Participants,
                },
                fetch_timeout: self.fetch_timeout,
                fetch_retry_delay: Duration::from_millis(100),
                forward: ForwardPolicy::SilentVoters,
                track_historical_votes: false,
            },
        );
        Some(engine.start(votes, certificates, resolver))
    }
}

/// The orchestrator: runs one simplex per epoch, handing over at each boundary block.
struct Epochs<E: Clock + CryptoRng + Spawner + Storage + Metrics, M: Machine, S: Sender, B, T> {
    simplex: SimplexParts<E, M, S, B>,
    current: Arc<AtomicU64>,
    validating: Arc<AtomicBool>,
    on_epoch: T,
}

impl<E, M, S, B, T> Epochs<E, M, S, B, T>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    M: Machine,
    S: Sender<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
    T: FnMut(u64, &[Member]) + Send + 'static,
{
    async fn run(
        mut self,
        context: E,
        mut next: Boundary,
        mut boundaries: mpsc::UnboundedReceiver<Boundary>,
    ) {
        loop {
            let epoch = next.epoch;
            (self.on_epoch)(epoch, &next.members);
            self.current.store(epoch, Ordering::Relaxed);
            let engine = self.simplex.start(&context, epoch, next.floor).await;
            self.validating.store(engine.is_some(), Ordering::Relaxed);
            info!(epoch, validating = engine.is_some(), "entered epoch");
            // Boundaries arrive in order; one already past (a repeat after a restart) is skipped.
            let Some(boundary) = wait_past(&mut boundaries, epoch).await else {
                return;
            };
            if let Some(engine) = engine {
                engine.abort();
            }
            next = boundary;
        }
    }
}

/// The next boundary that starts an epoch after `epoch`, or `None` once the finalizer stopped.
async fn wait_past(
    boundaries: &mut mpsc::UnboundedReceiver<Boundary>,
    epoch: u64,
) -> Option<Boundary> {
    loop {
        let boundary = boundaries.next().await?;
        if boundary.epoch > epoch {
            return Some(boundary);
        }
    }
}

/// A peer sent simplex traffic for an epoch after ours: the network is past our epoch's last
/// block, so ask that peer for its finalization (marshal then fills the gap below it, and the
/// finalizer's boundary moves us on).
async fn hint_boundaries(
    mut backup: MuxBackup,
    marshal: marshal::core::Mailbox<Scheme, marshal::standard::Standard<Block>>,
    current: Arc<AtomicU64>,
    length: u64,
) {
    while let Some((channel, (peer, _))) = backup.recv().await {
        let epoch = current.load(Ordering::Relaxed);
        if channel > epoch {
            let last = last_height(length, epoch);
            marshal.hint_finalized(Height::new(last), NonEmptyVec::new(peer));
        }
    }
}

async fn archive<E, V>(
    context: &E,
    label: &'static str,
    prefix: String,
    page_cache: &CacheRef,
    codec_config: V::Cfg,
) -> Result<immutable::Archive<E, Digest, V>, Error>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    V: commonware_codec::Codec + Send + Sync,
{
    let buffer: NonZeroUsize = NZUsize!(64 * 1024);
    immutable::Archive::init(
        context.child(label),
        immutable::Config {
            metadata_partition: format!("{prefix}-metadata"),
            freezer_table_partition: format!("{prefix}-freezer-table"),
            freezer_table_initial_size: 64,
            freezer_table_resize_frequency: 10,
            freezer_table_resize_chunk_size: 10,
            freezer_key_partition: format!("{prefix}-freezer-key"),
            freezer_key_page_cache: page_cache.clone(),
            freezer_value_partition: format!("{prefix}-freezer-value"),
            freezer_value_target_size: 1024 * 1024,
            freezer_value_compression: None,
            ordinal_partition: format!("{prefix}-ordinal"),
            items_per_section: NZU64!(1024),
            codec_config,
            replay_buffer: buffer,
            freezer_key_write_buffer: buffer,
            freezer_value_write_buffer: buffer,
            ordinal_write_buffer: buffer,
        },
    )
    .await
    .map_err(Error::store)
}
