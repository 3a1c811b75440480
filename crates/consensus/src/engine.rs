//! Wires one validator: store, marshal (broadcast, backfill, ordered delivery), the application,
//! simplex, and the finalizer, over any runtime and any authenticated p2p network.

use crate::{
    Error, Machine,
    app::App,
    block::{Block, Digest},
    certificate::{NAMESPACE, Scheme, committee_set},
    finalizer::{self, Updates},
    state::{Finalized, Shared},
    store::Store,
};
use commonware_broadcast::buffered;
use commonware_consensus::{
    marshal::{self, core::Actor, resolver::p2p as marshal_resolver, standard::Inline},
    simplex::{self, ForwardPolicy, SkipBudget, SkipPolicy, elector::RoundRobin},
    types::{Epoch, FixedEpocher, ViewDelta},
};
use commonware_cryptography::{
    Digestible as _, Sha256,
    certificate::ConstantProvider,
    ed25519::{PrivateKey, PublicKey},
};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Clock, Handle as TaskHandle, Metrics, Spawner, Storage, buffer::paged::CacheRef,
};
use commonware_storage::archive::immutable;
use commonware_utils::{NZU16, NZU64, NZUsize, NonZeroDuration};
use futures::channel::mpsc;
use rand_core::CryptoRng;
use std::{
    num::NonZeroUsize,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

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

/// The largest message any channel carries for a committee of `participants`: a block of
/// [`crate::MAX_BODY_BYTES`] with marshal's framing, or simplex's largest certificate.
pub fn max_message_size(participants: u32) -> u32 {
    let marshal =
        marshal::max_payload_size::<marshal::standard::Standard<Block>, Scheme>(participants, &());
    let simplex = simplex::max_payload_size::<Scheme, Digest>(participants);
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

/// Starts a validator on `context`'s runtime and the given network channels.
///
/// The committee is `machine.committee(genesis)`; `config.key` must be in it. The caller's task
/// must outlive the validator (the runtime aborts children with their parent).
pub async fn start_validator<E, M, S, R, P, B>(
    context: E,
    config: ValidatorConfig<M>,
    channels: Channels<S, R>,
    peers: P,
    blocker: B,
) -> Result<Validator<M>, Error>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
    M: Machine,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    B: Blocker<PublicKey = PublicKey>,
{
    let machine = config.machine.clone();
    let store = Arc::new(Store::open(&config.store)?);
    let resumed = store.resume(&machine)?;
    let genesis_state = machine.genesis();
    let genesis = Block::genesis(machine.root(&genesis_state));
    let committee = committee_set(&machine.committee(&genesis_state))?;
    let public: PublicKey = config.key.clone().into();
    let scheme =
        Scheme::signer(NAMESPACE, committee.clone(), config.key.clone()).ok_or_else(|| {
            Error::Config("this validator's key is not in the genesis committee".into())
        })?;
    let applied = Arc::new(AtomicU64::new(resumed.block.header.height));
    let tip = Arc::new(AtomicU64::new(resumed.block.header.height));
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
        commonware_cryptography::certificate::Verifier::certificate_codec_config(&scheme),
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

    let epocher = FixedEpocher::new(NZU64!(u64::MAX));
    let (actor, marshal_mailbox, _floor) = Actor::init(
        context.child("marshal"),
        finalizations,
        blocks,
        marshal::Config {
            provider: ConstantProvider::<Scheme, Epoch>::new(scheme.clone()),
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
    let engine = simplex::Engine::new(
        context.child("simplex"),
        simplex::Config {
            scheme,
            elector: RoundRobin::<Sha256>::default(),
            blocker,
            automaton: app.clone(),
            relay: app.clone(),
            reporter: app,
            strategy: Sequential,
            partition: format!("{prefix}-simplex-0"),
            mailbox_size,
            epoch: Epoch::zero(),
            floor: simplex::Floor::Genesis(genesis.digest()),
            replay_buffer: NZUsize!(64 * 1024),
            write_buffer: NZUsize!(64 * 1024),
            page_cache,
            leader_timeout: timing.leader_timeout,
            certification_timeout: timing.certification_timeout,
            timeout_retry: timing.timeout_retry,
            view_retention: ViewDelta::new(64),
            skip: SkipPolicy::Enabled {
                timeout: timing.certification_timeout + timing.timeout_retry,
                budget: SkipBudget::Participants,
            },
            fetch_timeout,
            fetch_retry_delay: Duration::from_millis(100),
            forward: ForwardPolicy::SilentVoters,
            track_historical_votes: false,
        },
    );
    let simplex_task = engine.start(channels.votes, channels.certificates, channels.resolver);

    let finalizer_task = context.child("finalizer").spawn({
        let shared = shared.clone();
        let store = store.clone();
        let applied = applied.clone();
        move |_| finalizer::run(shared, store, marshal_mailbox, receiver, applied)
    });

    Ok(Validator {
        shared,
        store,
        applied,
        tip,
        tasks: vec![broadcast_task, marshal_task, simplex_task, finalizer_task],
    })
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
