//! Protocol names and topics, every one of them carrying the genesis network id.
//!
//! Two networks never share a protocol: identify announces `/neuroshard/<network id>/1`, and the
//! Kademlia, gossipsub and chunk protocols and every gossip topic live under the same prefix, so a
//! peer from another network can neither route, gossip nor fetch, and is disconnected as soon as
//! identify shows its id (see `driver.rs`).

use libp2p::StreamProtocol;
use neuroshard_primitives::Hash;

use crate::{Error, Result};

/// Names derived from one network id.
#[derive(Debug, Clone)]
pub struct Protocols {
    prefix: String,
}

impl Protocols {
    /// The protocol names for the network `network_id`.
    pub fn new(network_id: &Hash) -> Self {
        Self {
            prefix: format!("/neuroshard/{}", network_id.to_hex()),
        }
    }

    /// The identify protocol version: peers announcing any other value are refused.
    pub fn identify_version(&self) -> String {
        format!("{}/1", self.prefix)
    }

    /// The Kademlia protocol.
    pub fn kad(&self) -> Result<StreamProtocol> {
        stream_protocol(format!("{}/kad/1", self.prefix))
    }

    /// The chunked request-response protocol for large payloads.
    pub fn chunks(&self) -> Result<StreamProtocol> {
        stream_protocol(format!("{}/chunk/1", self.prefix))
    }

    /// The pipeline's frame protocol: one micro-batch's activations or gradients per request.
    pub fn frames(&self) -> Result<StreamProtocol> {
        stream_protocol(format!("{}/frame/1", self.prefix))
    }

    /// The gossipsub protocol prefix (gossipsub appends its own version).
    pub fn gossip_prefix(&self) -> String {
        format!("{}/gossip", self.prefix)
    }

    /// The gossip topic for the short application name `topic` (e.g. `"contributions"`).
    pub fn topic(&self, topic: &str) -> String {
        format!("{}/{topic}", self.prefix)
    }

    /// The application name of a full topic of this network, or `None` for a foreign topic.
    pub fn topic_name<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(&self.prefix)?.strip_prefix('/')
    }
}

fn stream_protocol(name: String) -> Result<StreamProtocol> {
    StreamProtocol::try_from_owned(name).map_err(|err| Error::Build(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_between_networks_and_topics_round_trip() {
        let a = Protocols::new(&Hash::of(b"a"));
        let b = Protocols::new(&Hash::of(b"b"));
        assert_ne!(a.identify_version(), b.identify_version());
        assert_ne!(a.chunks().unwrap(), b.chunks().unwrap());
        assert_ne!(a.kad().unwrap(), b.kad().unwrap());
        assert_ne!(a.frames().unwrap(), b.frames().unwrap());
        assert_ne!(a.frames().unwrap(), a.chunks().unwrap());
        assert_ne!(a.gossip_prefix(), b.gossip_prefix());
        let topic = a.topic("rounds");
        assert_eq!(a.topic_name(&topic), Some("rounds"));
        assert_eq!(b.topic_name(&topic), None);
    }
}
