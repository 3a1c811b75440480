//! The libp2p network: identity, discovery, signed gossip, chunked request-response.
//!
//! # Bird's Eye View
//!
//! This is the only crate that imports libp2p. It runs one swarm in a tokio task and gives the
//! node a [`NetworkHandle`] (commands) and a stream of [`NetEvent`]s:
//!
//! - **Identity.** The node's ed25519 [`Keypair`](neuroshard_primitives::Keypair) *is* its libp2p
//!   identity ([`identity`]): same key, same [`PeerId`]; [`identity::node_id`] and
//!   [`identity::peer_id`] map between them.
//! - **Transports.** TCP (noise + yamux) and QUIC; listen on any mix of
//!   `/ip4/…/tcp/…` and `/ip4/…/udp/…/quic-v1`.
//! - **Discovery.** Bootstrap addresses, Kademlia, and mDNS when enabled; every discovered peer
//!   of the same network is dialled, up to `max_peers`.
//! - **Isolation.** Every protocol name and topic carries the genesis network id
//!   ([`Protocols`]); a peer whose identify version names another network is banned and
//!   disconnected as soon as identify completes, and never reported as connected.
//! - **Gossip** carries only [`Announcement`]s: ≤ 64 KiB, signed under a namespace. A message is
//!   delivered (and forwarded) only if it decodes, its signature verifies and its signer is its
//!   gossip author.
//! - **Fetch** moves large payloads by BLAKE3 hash over request-response in chunks (8 MiB by
//!   default), several in flight; the whole payload is checked against the hash. Peers are served
//!   from a [`ContentProvider`] the node fills (usually a [`MemoryStore`]).
//! - **Frames** carry a pipeline's activations and gradients to a named peer over
//!   request-response (`/neuroshard/<network id>/frame/1`): opaque bytes up to
//!   [`Limits::max_frame`], answered with an accept or a refusal, delivered as
//!   [`NetEvent::Frame`]; `neuroshard-pipeline` decodes them.
//! - **Hostile input.** Every inbound message is size-bounded before decoding and decoded without
//!   panics; garbage, forged announcements and bad payloads cost [`Offence`] points, and past
//!   `ban_threshold` the peer is disconnected and refused.
//! - **Traffic.** [`TrafficStats`]: wire bytes (TCP socket bytes, QUIC stream bytes) and payload
//!   bytes.
//!
//! ```no_run
//! # async fn run() -> neuroshard_p2p::Result<()> {
//! use std::sync::Arc;
//! use neuroshard_p2p::{Announcement, MemoryStore, NetEvent, Network, NetworkConfig};
//! use neuroshard_primitives::{Hash, Keypair};
//!
//! let key = Keypair::generate().expect("randomness");
//! let store = MemoryStore::new();
//! let mut config = NetworkConfig::loopback(Hash::of(b"genesis"));
//! config.topics = vec!["contributions".into()];
//! let mut net = Network::start(&key, config, Arc::new(store.clone())).await?;
//!
//! let delta_hash = store.insert(vec![0u8; 20 << 20]); // offered to peers by hash
//! let note = Announcement::sign(&key, "neuroshard/contribution/1", &delta_hash.0);
//! let _ = net.handle.publish("contributions", &note).await; // fails until a peer subscribes
//! while let Some(event) = net.events.recv().await {
//!     if let NetEvent::Announcement { peer, announcement, .. } = event {
//!         let key = Hash(announcement.payload().try_into().unwrap());
//!         let delta = net.handle.fetch(peer, key).await?; // checked against `key`
//!     }
//! }
//! # Ok(()) }
//! ```

mod announce;
mod behaviour;
mod codec;
mod config;
mod content;
mod driver;
mod error;
mod frame;
mod handle;
pub mod identity;
mod protocol;
mod reputation;
mod traffic;

pub use announce::{Announcement, MAX_ANNOUNCEMENT, MAX_NAMESPACE};
pub use codec::{ChunkRequest, ChunkResponse, MAX_REQUEST};
pub use config::{Limits, NetworkConfig};
pub use content::{ContentProvider, DEFAULT_CHUNK, MAX_CHUNK, MIN_CHUNK, MemoryStore};
pub use error::{Error, Result};
pub use handle::{NetEvent, Network, NetworkHandle};
pub use libp2p::{Multiaddr, PeerId, multiaddr};
pub use protocol::Protocols;
pub use reputation::Offence;
pub use traffic::TrafficStats;
