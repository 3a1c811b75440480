//! What a [`crate::Network`] is started with.

use std::time::Duration;

use libp2p::Multiaddr;
use neuroshard_primitives::Hash;

use crate::content::{DEFAULT_CHUNK, MAX_CHUNK, MIN_CHUNK};
use crate::{Error, Result};

/// Where to listen, whom to ask first, and which network to belong to.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The genesis network id; peers with another id are refused.
    pub network_id: Hash,
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0` or `/ip4/0.0.0.0/udp/0/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start, e.g. `/ip4/10.0.0.1/tcp/4001/p2p/12D3Koo…`.
    pub bootstrap: Vec<Multiaddr>,
    /// Discover peers on the local network with mDNS.
    pub mdns: bool,
    /// Gossip topics (short names, e.g. `"contributions"`) to subscribe to at start.
    pub topics: Vec<String>,
    /// Resource limits.
    pub limits: Limits,
}

impl NetworkConfig {
    /// A config for `network_id` listening on an ephemeral loopback TCP port, no bootstrap,
    /// no mDNS, no topics, default limits.
    pub fn loopback(network_id: Hash) -> Self {
        Self {
            network_id,
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("a valid multiaddr")],
            bootstrap: Vec::new(),
            mdns: false,
            topics: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Bounds on what the network accepts and keeps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most peers kept connected.
    pub max_peers: u32,
    /// Size of the chunks this node serves (64 KiB to 16 MiB; 4–16 MiB in production).
    pub chunk_size: usize,
    /// Largest payload [`crate::NetworkHandle::fetch`] accepts.
    pub max_payload: u64,
    /// Chunk requests a fetch keeps in flight.
    pub fetch_parallelism: usize,
    /// How long one chunk request may take.
    pub request_timeout: Duration,
    /// Penalty points at which a peer is disconnected and banned.
    pub ban_threshold: i64,
    /// Events buffered for the caller before new ones are dropped (and counted).
    pub event_buffer: usize,
    /// Largest pipeline frame accepted ([`crate::NetworkHandle::send_frame`]); the pipeline
    /// checks each frame against a tighter limit derived from the model config.
    pub max_frame: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_peers: 64,
            chunk_size: DEFAULT_CHUNK,
            max_payload: 4 << 30,
            fetch_parallelism: 4,
            request_timeout: Duration::from_secs(60),
            ban_threshold: 100,
            event_buffer: 4096,
            max_frame: 64 << 20,
        }
    }
}

impl Limits {
    /// Checks that every limit is in range.
    pub fn validate(&self) -> Result<()> {
        let fail = |what: String| Err(Error::Config(what));
        if !(MIN_CHUNK..=MAX_CHUNK).contains(&self.chunk_size) {
            return fail(format!(
                "chunk_size {} is outside {MIN_CHUNK}..={MAX_CHUNK}",
                self.chunk_size
            ));
        }
        if self.max_peers == 0
            || self.fetch_parallelism == 0
            || self.event_buffer == 0
            || self.max_frame == 0
        {
            return fail(
                "max_peers, fetch_parallelism, event_buffer and max_frame must be positive".into(),
            );
        }
        if self.ban_threshold <= 0 {
            return fail("ban_threshold must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_are_valid_and_bad_ones_are_not() {
        Limits::default().validate().unwrap();
        let tiny = Limits {
            chunk_size: 1,
            ..Limits::default()
        };
        assert!(tiny.validate().is_err());
        let no_peers = Limits {
            max_peers: 0,
            ..Limits::default()
        };
        assert!(no_peers.validate().is_err());
    }
}
