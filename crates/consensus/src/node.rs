//! Runs a validator for the daemon: the commonware tokio runtime on its own thread, the
//! authenticated `lookup` network over TCP, and the store in the data directory.

use crate::{
    Error, Finalized, MAX_COMMITTEE, Machine, Validator,
    certificate::NAMESPACE,
    engine::{
        Channels, Member, Timing, ValidatorConfig, channel, max_message_size, start_validator,
    },
};
use commonware_codec::DecodeExt as _;
use commonware_cryptography::{
    ChaCha20Poly1305,
    ed25519::{PrivateKey, PublicKey},
};
use commonware_p2p::{Address, AddressableManager as _, authenticated::lookup};
use commonware_runtime::{Quota, Runner as _, Supervisor as _, tokio};
use commonware_stream::{
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZU32, NZUsize, TryCollect as _, ordered::Map};
use futures::channel::{mpsc, oneshot};
use std::{
    collections::BTreeMap, net::SocketAddr, path::PathBuf, thread::JoinHandle, time::Duration,
};

/// How to start a validator.
#[derive(Clone, Debug)]
pub struct NodeConfig<M> {
    /// The validator's ed25519 secret key (32 bytes).
    pub secret_key: [u8; 32],
    /// Where to listen for the other validators (TCP).
    pub listen: SocketAddr,
    /// Validators' addresses the machine's state does not record (the genesis committee's): ed25519
    /// public key and the address they listen on. Each epoch's committee is dialled at the
    /// address [`Machine::address`] gives, else at the one here.
    pub peers: Vec<([u8; 32], SocketAddr)>,
    /// The data directory: `ledger.redb` (the store) and `consensus/` (the simplex journal and
    /// marshal's archives).
    pub data_dir: PathBuf,
    /// The state machine.
    pub machine: M,
    /// Timeouts.
    pub timing: Timing,
}

/// A running validator: submit transactions, follow finalized blocks, shut down.
pub struct NodeHandle<M: Machine> {
    validator: Validator<M>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl<M: Machine> std::fmt::Debug for NodeHandle<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("validator", &self.validator)
            .finish_non_exhaustive()
    }
}

impl<M: Machine> NodeHandle<M> {
    /// Queues a transaction for this validator's proposals.
    pub fn submit(&self, tx: Vec<u8>) -> Result<(), Error> {
        self.validator.submit(tx)
    }

    /// Finalized blocks from now on, in height order, each after it is durable in the store.
    ///
    /// Blocks applied before the call are in the store (blocks and certificates by height). The
    /// stream ends when the validator stops or fails (see `failure`).
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Finalized> {
        self.validator.subscribe()
    }

    /// The height of the last block applied to the store.
    pub fn finalized_height(&self) -> u64 {
        self.validator.finalized_height()
    }

    /// The validator (state, store, failure).
    pub fn validator(&self) -> &Validator<M> {
        &self.validator
    }

    /// Stops the validator and waits for its runtime to end; the store stays consistent.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<M: Machine> Drop for NodeHandle<M> {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn key(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
    PublicKey::decode(commonware_codec::Copying(bytes.as_slice()))
        .map_err(|e| Error::Config(format!("peer key: {e}")))
}

/// An epoch's committee as a peer set: each member at the address the ledger records, else at
/// the one configured; a member with neither cannot be dialled and is left out (it dials us).
fn peer_set(members: &[Member], known: &BTreeMap<[u8; 32], SocketAddr>) -> Map<PublicKey, Address> {
    let mut set: Vec<(PublicKey, Address)> = Vec::new();
    for (member, address) in members {
        let Some(address) = address.or_else(|| known.get(member).copied()) else {
            continue;
        };
        if let Ok(public) = key(member) {
            set.push((public, Address::Symmetric(address)));
        }
    }
    set.into_iter().try_collect().unwrap_or_default()
}

/// Starts a validator on its own thread and returns once it is wired (not once it is
/// connected): blocks arrive on [`NodeHandle::subscribe`] as the committee finalizes them.
pub fn start<M: Machine>(config: NodeConfig<M>) -> Result<NodeHandle<M>, Error> {
    let signer = PrivateKey::decode(commonware_codec::Copying(config.secret_key.as_slice()))
        .map_err(|e| Error::Config(format!("secret key: {e}")))?;
    let me: PublicKey = signer.clone().into();
    let mut known = BTreeMap::new();
    for (peer, address) in &config.peers {
        key(peer)?;
        known.insert(*peer, *address);
    }
    let mut mine = [0u8; 32];
    mine.copy_from_slice(me.as_ref());
    known.insert(mine, config.listen);
    std::fs::create_dir_all(&config.data_dir).map_err(Error::store)?;
    let runtime = tokio::Config::new()
        .with_storage_directory(config.data_dir.join("consensus"))
        .with_worker_threads(2)
        .with_catch_panics(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Validator<M>, Error>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let validator_config = ValidatorConfig {
        key: signer.clone(),
        machine: config.machine,
        store: config.data_dir.join("ledger.redb"),
        partition: "validator".into(),
        timing: config.timing,
    };
    let listen = config.listen;
    let thread = std::thread::Builder::new()
        .name("consensus".into())
        .spawn(move || {
            tokio::Runner::new(runtime).start(|context| async move {
                let handshake = Cups::<_, ChaCha20Poly1305>::new(
                    Sake {
                        signer,
                        synchrony_bound: Duration::from_secs(5),
                        max_handshake_age: Duration::from_secs(10),
                        version: sake::Version::V1,
                    },
                    cups::Version::V1,
                );
                let mut p2p = lookup::Config::local(
                    handshake,
                    NAMESPACE,
                    listen,
                    NZUsize!(MAX_COMMITTEE),
                    max_message_size(),
                    NZUsize!(1024),
                );
                p2p.dial_frequency = Duration::from_millis(200);
                let (mut network, oracle) = lookup::Network::new(context.child("p2p"), p2p);
                let on_epoch = {
                    let mut oracle = oracle.clone();
                    move |epoch: u64, members: &[Member]| {
                        let _ = oracle.track(epoch, peer_set(members, &known));
                    }
                };
                // Inbound queues hold one second's quota from every peer the network may track
                // (MAX_COMMITTEE × 4 peer sets), so the quota bounds memory: 2 500 messages a
                // second per peer and channel is far above what a few blocks a second need.
                let quota = Quota::per_second(NZU32!(2_500));
                let channels = Channels {
                    votes: network.register(channel::VOTES, quota),
                    certificates: network.register(channel::CERTIFICATES, quota),
                    resolver: network.register(channel::RESOLVER, quota),
                    broadcast: network.register(channel::BROADCAST, quota),
                    backfill: network.register(channel::BACKFILL, quota),
                };
                let network_task = network.start();
                let started = start_validator(
                    context.child("validator"),
                    validator_config,
                    channels,
                    oracle.clone(),
                    oracle,
                    on_epoch,
                )
                .await;
                let mut validator = match started {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        network_task.abort();
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(validator.clone()));
                let _ = stop_rx.await;
                validator.abort();
                network_task.abort();
            })
        })
        .map_err(|e| Error::Config(format!("cannot spawn the consensus thread: {e}")))?;
    let validator = match ready_rx.recv() {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(Error::Stopped);
        }
    };
    Ok(NodeHandle {
        validator,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}
