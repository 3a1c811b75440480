//! The caller's side: start a [`Network`], then talk to it through a [`NetworkHandle`] and read
//! its [`NetEvent`]s.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use libp2p::{Multiaddr, PeerId};
use neuroshard_primitives::{Hash, Keypair, NodeId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::behaviour::build_swarm;
use crate::codec::{ChunkRequest, ChunkResponse};
use crate::content::{ChunkPlan, ContentProvider, bad_payload};
use crate::driver::{Command, Driver};
use crate::protocol::Protocols;
use crate::reputation::{Offence, Reputation};
use crate::traffic::{Traffic, TrafficStats};
use crate::{Announcement, Error, NetworkConfig, Result, identity};

/// What the network tells the node.
#[derive(Debug, Clone)]
pub enum NetEvent {
    /// The node listens on a new address.
    Listening(Multiaddr),
    /// A peer of this network connected (identify confirmed its network id).
    PeerConnected {
        /// Its libp2p id.
        peer: PeerId,
        /// Its node id (the same ed25519 key).
        node: NodeId,
    },
    /// The last connection to an admitted peer closed.
    PeerDisconnected {
        /// Who left.
        peer: PeerId,
    },
    /// A peer subscribed to a gossip topic (short name).
    PeerSubscribed {
        /// Who.
        peer: PeerId,
        /// The topic's short name.
        topic: String,
    },
    /// A verified announcement: well formed, ≤ 64 KiB, signed by its gossip author.
    Announcement {
        /// The author's libp2p id (fetch its payloads from here first).
        peer: PeerId,
        /// The author's node id, equal to `announcement.signer()`.
        node: NodeId,
        /// The topic's short name.
        topic: String,
        /// The announcement; check its namespace before trusting the payload.
        announcement: Announcement,
    },
    /// A pipeline frame from an admitted peer, at most `max_frame` bytes, not yet decoded.
    Frame {
        /// Who sent it.
        peer: PeerId,
        /// Its bytes; decode them with `neuroshard_pipeline::frame::decode`.
        bytes: Vec<u8>,
    },
    /// A peer was disconnected and will be refused from now on.
    PeerBanned {
        /// Who.
        peer: PeerId,
        /// The offence that crossed the threshold.
        offence: Offence,
    },
}

/// A running network: its handle, its event stream and its task.
#[derive(Debug)]
pub struct Network {
    /// Commands to the network; clone it freely.
    pub handle: NetworkHandle,
    /// Events from the network. Read it promptly: when it is full, new events are dropped and
    /// counted ([`NetworkHandle::dropped_events`]).
    pub events: mpsc::Receiver<NetEvent>,
    /// The swarm task; it ends when every handle is dropped. Abort it to stop at once.
    pub task: JoinHandle<()>,
}

impl Network {
    /// Builds the libp2p stack for `key`, starts listening, dials the bootstrap peers and spawns
    /// the swarm task. `provider` answers peers' chunk requests. Returns once every listen
    /// address is bound, so [`NetworkHandle::listen_addrs`] is complete.
    pub async fn start(
        key: &Keypair,
        config: NetworkConfig,
        provider: Arc<dyn ContentProvider>,
    ) -> Result<Self> {
        config.limits.validate()?;
        let protocols = Protocols::new(&config.network_id);
        let traffic = Traffic::default();
        let mut swarm = build_swarm(
            identity::libp2p_keypair(key)?,
            &config,
            &protocols,
            &traffic,
        )?;
        for addr in &config.listen {
            swarm.listen_on(addr.clone()).map_err(|err| Error::Listen {
                addr: addr.to_string(),
                reason: err.to_string(),
            })?;
        }
        for topic in &config.topics {
            let full = libp2p::gossipsub::IdentTopic::new(protocols.topic(topic));
            swarm
                .behaviour_mut()
                .gossip
                .subscribe(&full)
                .map_err(|err| Error::Config(err.to_string()))?;
        }
        let (event_tx, events) = mpsc::channel(config.limits.event_buffer);
        let dropped_events = Arc::new(AtomicU64::new(0));
        let mut driver = Driver {
            swarm,
            protocols,
            provider,
            chunk_size: config.limits.chunk_size,
            max_peers: config.limits.max_peers as usize,
            traffic: traffic.clone(),
            events: event_tx,
            dropped_events: dropped_events.clone(),
            reputation: Reputation::new(config.limits.ban_threshold),
            admitted: HashSet::new(),
            pending: HashMap::new(),
            pending_frames: HashMap::new(),
        };
        let listening = driver.wait_listening(config.listen.len());
        tokio::time::timeout(std::time::Duration::from_secs(10), listening)
            .await
            .map_err(|_| Error::Listen {
                addr: format!("{:?}", config.listen),
                reason: "timed out".into(),
            })??;
        for addr in &config.bootstrap {
            dial_bootstrap(&mut driver, addr);
        }
        let (commands, command_rx) = mpsc::channel(256);
        let task = tokio::spawn(driver.run(command_rx));
        let handle = NetworkHandle {
            commands,
            local: identity::peer_id(&key.node_id())?,
            node: key.node_id(),
            traffic,
            dropped_events,
            max_payload: config.limits.max_payload,
            parallelism: config.limits.fetch_parallelism,
        };
        Ok(Self {
            handle,
            events,
            task,
        })
    }
}

fn dial_bootstrap(driver: &mut Driver, addr: &Multiaddr) {
    if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
        driver
            .swarm
            .behaviour_mut()
            .kad
            .add_address(&peer, addr.clone());
    }
    if let Err(err) = driver.swarm.dial(addr.clone()) {
        tracing::warn!(%addr, %err, "cannot dial a bootstrap peer");
    }
}

/// Commands to a running [`Network`]. Cheap to clone; the network stops when the last one drops.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    local: PeerId,
    node: NodeId,
    traffic: Traffic,
    dropped_events: Arc<AtomicU64>,
    max_payload: u64,
    parallelism: usize,
}

impl NetworkHandle {
    /// This node's libp2p id.
    pub fn peer_id(&self) -> PeerId {
        self.local
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// Byte counters since start.
    pub fn traffic(&self) -> TrafficStats {
        self.traffic.stats()
    }

    /// Events dropped because the event channel was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    async fn call<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// Gossips `announcement` on `topic` (short name). Refused over 64 KiB, or when no peer
    /// is subscribed to the topic yet.
    pub async fn publish(&self, topic: &str, announcement: &Announcement) -> Result<()> {
        let bytes = announcement.encode()?;
        let topic = topic.to_owned();
        self.call(|reply| Command::Publish {
            topic,
            bytes,
            reply,
        })
        .await?
    }

    /// Subscribes to `topic` (short name); its announcements arrive as [`NetEvent::Announcement`].
    pub async fn subscribe(&self, topic: &str) -> Result<()> {
        let topic = topic.to_owned();
        self.call(|reply| Command::Subscribe { topic, reply })
            .await?
    }

    /// Admitted peers, sorted.
    pub async fn peers(&self) -> Result<Vec<PeerId>> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// Addresses this node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Listen addresses with this node's `/p2p/<peer id>` appended: what other nodes pass as
    /// bootstrap addresses.
    pub async fn bootstrap_addrs(&self) -> Result<Vec<Multiaddr>> {
        let peer = libp2p::multiaddr::Protocol::P2p(self.local);
        let addrs = self.listen_addrs().await?;
        Ok(addrs
            .into_iter()
            .map(|addr| addr.with(peer.clone()))
            .collect())
    }

    /// Dials `addr` (with or without a `/p2p/…` suffix).
    pub async fn dial(&self, addr: Multiaddr) -> Result<()> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Tells the network that `peer` misbehaved at the application level (e.g. an announcement
    /// with the wrong namespace); enough reports ban it.
    pub async fn report(&self, peer: PeerId, offence: Offence) -> Result<()> {
        self.commands
            .send(Command::Report { peer, offence })
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Sends one pipeline frame to `peer` (connected and admitted); returns once the peer has
    /// handed it to its node, and fails if it refused it (not admitted, or its node is busy)
    /// or the request failed in transit.
    pub async fn send_frame(&self, peer: PeerId, bytes: Vec<u8>) -> Result<()> {
        self.call(|reply| Command::SendFrame { peer, bytes, reply })
            .await?
    }

    async fn chunk(&self, peer: PeerId, key: Hash, index: u32) -> Result<(u64, Vec<u8>)> {
        let request = ChunkRequest { key, index };
        match self
            .call(|reply| Command::Request {
                peer,
                request,
                reply,
            })
            .await??
        {
            ChunkResponse::Chunk { total, data } => Ok((total, data)),
            ChunkResponse::NotFound => Err(Error::NotFound {
                peer: peer.to_string(),
                key,
            }),
        }
    }

    /// Downloads the payload whose BLAKE3 hash is `key` from `peer`, chunk by chunk (several in
    /// flight), and checks it against `key`. A peer that sends inconsistent chunks or the wrong
    /// bytes is penalised, and the bytes are discarded.
    pub async fn fetch(&self, peer: PeerId, key: Hash) -> Result<Vec<u8>> {
        let (total, first) = self.chunk(peer, key, 0).await?;
        let plan = ChunkPlan::from_first(total, first.len(), self.max_payload);
        let plan = match plan {
            Ok(plan) => plan,
            Err(reason) => return Err(self.blame(peer, key, reason).await),
        };
        let mut payload = first;
        let rest = futures::stream::iter(1..plan.count)
            .map(|index| async move { (index, self.chunk(peer, key, index).await) })
            .buffered(self.parallelism);
        futures::pin_mut!(rest);
        while let Some((index, chunk)) = rest.next().await {
            let (total, data) = chunk?;
            if let Err(reason) = plan.check(index, total, data.len()) {
                return Err(self.blame(peer, key, reason).await);
            }
            payload.extend_from_slice(&data);
        }
        let got = Hash::of(&payload);
        if got != key {
            let _ = self.report(peer, Offence::BadPayload).await;
            return Err(Error::HashMismatch {
                peer: peer.to_string(),
                key,
                got,
            });
        }
        Ok(payload)
    }

    async fn blame(&self, peer: PeerId, key: Hash, reason: String) -> Error {
        let _ = self.report(peer, Offence::BadPayload).await;
        bad_payload(&peer, key, reason)
    }
}
