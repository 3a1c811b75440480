//! Sending the node core's frames over gossip and offers (see [`crate::wire`] for the mapping),
//! and forgetting offered frames once nobody can still want them.

use std::collections::VecDeque;
use std::time::Duration;

use neuroshard_p2p::{Announcement, MemoryStore, NetworkHandle, PeerId};
use neuroshard_primitives::{Hash, Keypair};
use tokio::time::Instant;

use crate::wire::{self, FRAME_NS, OFFER_NS, Offer, SMALL_FRAME};

/// Marks a round frame sent to one peer over the frame protocol ([`Transport::send_to`]): never a
/// pipeline frame (`"NSPF"`) or a lane notice (`"NSLR"`).
const DIRECT: &[u8; 4] = b"NSDM";

/// The announcement a frame from the frame protocol carries, if it is a direct round frame
/// ([`Transport::send_to`]); not yet verified.
pub(crate) fn direct(bytes: &[u8]) -> Option<Result<Announcement, neuroshard_p2p::Error>> {
    bytes
        .strip_prefix(DIRECT.as_slice())
        .map(Announcement::decode)
}

/// Runs `send` in the background up to `attempts` times, a [`RETRY_PAUSE`] apart, until it
/// succeeds; the last failure is logged (at debug: a peer that left is no news) with `to`.
fn deliver<F, Fut>(to: String, attempts: u32, send: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = neuroshard_p2p::Result<()>> + Send,
{
    tokio::spawn(async move {
        for attempt in 1..=attempts {
            match send().await {
                Ok(()) => return,
                Err(err) if attempt == attempts => {
                    tracing::debug!(to, %err, "frame not delivered")
                }
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    });
}

/// A directed frame is retried this often while the recipient's inbox subscription propagates.
const DIRECT_ATTEMPTS: u32 = 20;
/// Pause between those attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The sending side: signs announcements, stores large frames, publishes.
#[derive(Debug)]
pub(crate) struct Transport {
    key: Keypair,
    net: NetworkHandle,
    store: MemoryStore,
    offered: VecDeque<(Instant, Hash)>,
    offer_ttl: Duration,
}

impl Transport {
    /// Frames offered to peers are kept for `offer_ttl`, then dropped from the store.
    pub(crate) fn new(
        key: &Keypair,
        net: NetworkHandle,
        store: MemoryStore,
        offer_ttl: Duration,
    ) -> Self {
        Self {
            key: Keypair::from_seed(key.secret_bytes()),
            net,
            store,
            offered: VecDeque::new(),
            offer_ttl,
        }
    }

    /// Sends `frame` on `topic`: inline when small, as an offer when large. A frame for one
    /// peer (`direct`) is retried in the background until the peer's subscription is known.
    pub(crate) fn send(&mut self, topic: String, frame: &[u8], direct: bool) {
        let note = self.note(frame);
        self.publish(topic, note, direct);
    }

    /// Sends `frame` to the connected `peer` alone over the frame protocol, which says whether
    /// the peer's node took it (retried like a directed gossip frame while it does not). Its
    /// announcement (inline, or an offer) is the one [`Transport::send`] would gossip on the
    /// peer's inbox topic, marked [`DIRECT`]; the peer handles it as if it came that way.
    /// Gossip to one peer's topic has one path, its connection to this node: a frame stuck there
    /// is lost without a word (a 12-node pipeline lost every request between two replicas,
    /// `docs/experiments/2026-12-03-idle-lanes.md`).
    pub(crate) fn send_to(&mut self, peer: PeerId, frame: &[u8]) {
        let note = self.note(frame);
        let Ok(bytes) = note.encode() else {
            tracing::warn!(%peer, "a frame too large to announce; not sent");
            return;
        };
        let bytes = [DIRECT.as_slice(), &bytes].concat();
        let net = self.net.clone();
        let to = peer.to_string();
        deliver(to, DIRECT_ATTEMPTS, move || {
            let (net, bytes) = (net.clone(), bytes.clone());
            async move { net.send_frame(peer, bytes).await }
        });
    }

    /// `frame` as an announcement: inline when small, else an offer of the stored frame.
    fn note(&mut self, frame: &[u8]) -> Announcement {
        if frame.len() <= SMALL_FRAME {
            Announcement::sign(&self.key, FRAME_NS, frame)
        } else {
            let key = self.store.insert(frame.to_vec());
            self.offered.push_back((Instant::now(), key));
            let offer = Offer {
                key,
                len: frame.len() as u64,
            };
            Announcement::sign(&self.key, OFFER_NS, &wire::encode(&offer))
        }
    }

    /// Gossips a small `payload` under `namespace` on `topic` (retried like [`Transport::send`]
    /// when `direct`); one over the gossip limit is dropped with a warning.
    pub(crate) fn gossip(&self, topic: String, namespace: &str, payload: &[u8], direct: bool) {
        if payload.len() > SMALL_FRAME {
            tracing::warn!(%topic, len = payload.len(), "too large for gossip; not sent");
            return;
        }
        self.publish(
            topic,
            Announcement::sign(&self.key, namespace, payload),
            direct,
        );
    }

    fn publish(&self, topic: String, note: Announcement, direct: bool) {
        let net = self.net.clone();
        let attempts = if direct { DIRECT_ATTEMPTS } else { 1 };
        deliver(topic.clone(), attempts, move || {
            let (net, topic, note) = (net.clone(), topic.clone(), note.clone());
            async move { net.publish(&topic, &note).await }
        });
    }

    /// Drops offered frames older than the time to live.
    pub(crate) fn expire(&mut self) {
        while let Some((at, key)) = self.offered.front() {
            if at.elapsed() < self.offer_ttl {
                break;
            }
            self.store.remove(key);
            self.offered.pop_front();
        }
    }
}
