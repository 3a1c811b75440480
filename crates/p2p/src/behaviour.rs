//! The libp2p stack: transports (TCP with wire-level byte counting, QUIC) and the behaviours.

use std::error::Error as StdError;
use std::time::Duration;

use libp2p::core::Transport as _;
use libp2p::core::upgrade::Version;
use libp2p::gossipsub::{self, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    Swarm, SwarmBuilder, connection_limits, identify, identity, kad, mdns, noise, ping, quic, tcp,
    yamux,
};

use crate::announce::MAX_ANNOUNCEMENT;
use crate::codec::ChunkCodec;
use crate::frame::FrameCodec;
use crate::protocol::Protocols;
use crate::traffic::{Counted, CountedMuxer, Traffic};
use crate::{Error, NetworkConfig, Result};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Everything the swarm runs, in one behaviour.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) gossip: gossipsub::Behaviour,
    pub(crate) chunks: request_response::Behaviour<ChunkCodec>,
    pub(crate) frames: request_response::Behaviour<FrameCodec>,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Builds the swarm for `key` and `config`, counting transport bytes into `traffic`.
pub(crate) fn build_swarm(
    key: identity::Keypair,
    config: &NetworkConfig,
    protocols: &Protocols,
    traffic: &Traffic,
) -> Result<Swarm<Behaviour>> {
    let (tcp_traffic, quic_traffic) = (traffic.clone(), traffic.clone());
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| -> Result<_, BoxError> {
            let counted = move |stream, _| Counted::new(stream, tcp_traffic.clone());
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .map(counted)
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .timeout(Duration::from_secs(20)),
            )
        })
        .map_err(|err| Error::Build(err.to_string()))?
        .with_other_transport(|key| -> Result<_, BoxError> {
            let counted =
                move |(peer, muxer), _| (peer, CountedMuxer::new(muxer, quic_traffic.clone()));
            Ok(quic::tokio::Transport::new(quic::Config::new(key)).map(counted))
        })
        .map_err(|err| Error::Build(err.to_string()))?
        .with_behaviour(|key| behaviour(key, config, protocols))
        .map_err(|err| Error::Build(err.to_string()))?
        .with_swarm_config(|swarm| swarm.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

fn behaviour(
    key: &identity::Keypair,
    config: &NetworkConfig,
    protocols: &Protocols,
) -> Result<Behaviour, BoxError> {
    let peer = key.public().to_peer_id();
    let max_peers = config.limits.max_peers;
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(max_peers.saturating_mul(2)))
        .with_max_established_per_peer(Some(2))
        .with_max_pending_incoming(Some(64));
    let identify = identify::Config::new(protocols.identify_version(), key.public())
        .with_agent_version(format!("neuroshard/{}", env!("CARGO_PKG_VERSION")));
    let mut kad = kad::Behaviour::with_config(
        peer,
        kad::store::MemoryStore::new(peer),
        kad::Config::new(protocols.kad()?),
    );
    // Loopback and LAN nodes cannot confirm a public address; answer queries anyway.
    kad.set_mode(Some(kad::Mode::Server));
    let chunks = request_response::Behaviour::with_codec(
        ChunkCodec,
        [(protocols.chunks()?, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(config.limits.request_timeout),
    );
    let frames = request_response::Behaviour::with_codec(
        FrameCodec {
            max_frame: config.limits.max_frame,
        },
        [(protocols.frames()?, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(config.limits.request_timeout),
    );
    let mdns = match config.mdns {
        true => Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer)?),
        false => None,
    };
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(limits),
        identify: identify::Behaviour::new(identify),
        ping: ping::Behaviour::default(),
        kad,
        gossip: gossip(key, protocols)?,
        chunks,
        frames,
        mdns: mdns.into(),
    })
}

/// How long a frame this node publishes may wait in a peer's send queue (see [`gossip`]).
const PUBLISH_PATIENCE: Duration = Duration::from_secs(30);

/// Gossipsub that signs with the node key, carries at most one announcement per message, and
/// holds every message until the driver has validated it (so invalid ones are never forwarded).
fn gossip(
    key: &identity::Keypair,
    protocols: &Protocols,
) -> Result<gossipsub::Behaviour, BoxError> {
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(protocols.gossip_prefix())
        // Room for the protobuf envelope (topic, author key, signature) around the announcement.
        .max_transmit_size(MAX_ANNOUNCEMENT + 4096)
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .heartbeat_interval(Duration::from_millis(500))
        // A frame waits this long in a slow peer's send queue before gossipsub abandons it
        // (defaults 5 s and 1 s). Every frame here carries protocol state (an announcement, a
        // request, a vote, a ledger message) that the rounds would otherwise wait for until a
        // deadline; a node whose CPU the training steps starve drains its queues late, not never.
        .publish_queue_duration(PUBLISH_PATIENCE)
        .forward_queue_duration(PUBLISH_PATIENCE / 2)
        .build()?;
    Ok(gossipsub::Behaviour::new(
        MessageAuthenticity::Signed(key.clone()),
        config,
    )?)
}
