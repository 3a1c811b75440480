//! Sending the node core's frames over gossip and offers (see [`crate::wire`] for the mapping),
//! and forgetting offered frames once nobody can still want them.

use std::collections::VecDeque;
use std::time::Duration;

use neuroshard_p2p::{Announcement, MemoryStore, NetworkHandle};
use neuroshard_primitives::{Hash, Keypair};
use tokio::time::Instant;

use crate::wire::{self, FRAME_NS, OFFER_NS, Offer, SMALL_FRAME};

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
        let note = if frame.len() <= SMALL_FRAME {
            Announcement::sign(&self.key, FRAME_NS, frame)
        } else {
            let key = self.store.insert(frame.to_vec());
            self.offered.push_back((Instant::now(), key));
            let offer = Offer {
                key,
                len: frame.len() as u64,
            };
            Announcement::sign(&self.key, OFFER_NS, &wire::encode(&offer))
        };
        self.publish(topic, note, direct);
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
        tokio::spawn(async move {
            for attempt in 1..=attempts {
                match net.publish(&topic, &note).await {
                    Ok(()) => return,
                    Err(err) if attempt == attempts => {
                        tracing::debug!(%topic, %err, "frame not delivered")
                    }
                    Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
                }
            }
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
