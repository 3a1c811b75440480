//! Starting test nodes and waiting for their events with a deadline.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use neuroshard_p2p::{
    ContentProvider, MemoryStore, Multiaddr, NetEvent, Network, NetworkConfig, PeerId,
};
use neuroshard_primitives::{Hash, Keypair};

/// The topic every test node subscribes to.
pub(crate) const TOPIC: &str = "test";

/// The network id most tests share.
pub(crate) fn net_id() -> Hash {
    Hash::of(b"neuroshard p2p integration tests")
}

/// A started node with its key.
pub(crate) struct Node {
    pub(crate) key: Keypair,
    pub(crate) net: Network,
}

/// Starts node `seed` on `net` with `listen`, dialling `bootstrap`, serving from `provider`.
pub(crate) async fn start_with(
    seed: u8,
    net: Hash,
    listen: &str,
    bootstrap: Vec<Multiaddr>,
    provider: Arc<dyn ContentProvider>,
    chunk_size: usize,
) -> Node {
    let key = Keypair::from_seed([seed; 32]);
    let mut config = NetworkConfig::loopback(net);
    config.listen = vec![listen.parse().unwrap()];
    config.bootstrap = bootstrap;
    config.topics = vec![TOPIC.to_owned()];
    config.limits.chunk_size = chunk_size;
    let net = Network::start(&key, config, provider)
        .await
        .expect("node starts");
    Node { key, net }
}

/// Starts a TCP node on `net` with a fresh [`MemoryStore`], which is returned too.
pub(crate) async fn start(seed: u8, net: Hash, bootstrap: Vec<Multiaddr>) -> (Node, MemoryStore) {
    let store = MemoryStore::new();
    let node = start_with(
        seed,
        net,
        "/ip4/127.0.0.1/tcp/0",
        bootstrap,
        Arc::new(store.clone()),
        4 << 20,
    )
    .await;
    (node, store)
}

impl Node {
    /// The first listen address with `/p2p/<peer id>`, for others to bootstrap from.
    pub(crate) async fn addr(&self) -> Multiaddr {
        self.net.handle.bootstrap_addrs().await.unwrap().remove(0)
    }

    /// Waits up to `secs` for an event `pick` accepts, discarding the others.
    pub(crate) async fn wait_for<T>(
        &mut self,
        secs: u64,
        mut pick: impl FnMut(&NetEvent) -> Option<T>,
    ) -> T {
        let events = &mut self.net.events;
        let search = async {
            loop {
                let event = events.recv().await.expect("network running");
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(secs), search)
            .await
            .expect("event within the deadline")
    }

    /// Waits until this node has seen each of `peers` subscribe to [`TOPIC`].
    pub(crate) async fn wait_subscribed(&mut self, peers: &[PeerId]) {
        let mut missing: BTreeSet<PeerId> = peers.iter().copied().collect();
        while !missing.is_empty() {
            let peer = self
                .wait_for(20, |event| match event {
                    NetEvent::PeerSubscribed { peer, topic } if topic == TOPIC => Some(*peer),
                    _ => None,
                })
                .await;
            missing.remove(&peer);
        }
    }

    /// Polls until this node's admitted peers are exactly `expected`, within `secs`.
    pub(crate) async fn wait_peers(&self, expected: &[PeerId], secs: u64) {
        let want: BTreeSet<PeerId> = expected.iter().copied().collect();
        let poll = async {
            loop {
                let have: BTreeSet<PeerId> =
                    self.net.handle.peers().await.unwrap().into_iter().collect();
                if have == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(secs), poll)
            .await
            .expect("peers within the deadline");
    }
}
