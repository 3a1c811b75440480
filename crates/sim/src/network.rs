//! The network model: per-link latency, jitter, bandwidth and loss, node access links that
//! serialise a node's traffic, and per-node byte accounting.
//!
//! A message from `a` to `b`:
//! 1. waits for `a`'s uplink to be free, then occupies it for `wire_bytes / uplink`;
//! 2. crosses the link in `latency + U(0, jitter) + wire_bytes / rate`, where `rate` is the link's
//!    bandwidth, capped under loss by the Mathis et al. TCP bound `1.22 · MSS / (RTT · √loss)`;
//! 3. waits for `b`'s downlink and occupies it for `bytes / downlink`.
//!
//! Transport is reliable, as TCP and QUIC are: each lost segment (drawn from a binomial) is
//! sent again, adding its bytes to the sender's count, and any loss costs one extra round trip.

use std::collections::BTreeMap;

use neuroshard_node::Timestamp;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution};
use serde::Serialize;

/// TCP maximum segment size on an Ethernet path, in bytes.
const MSS: f64 = 1448.0;

/// One direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Link {
    /// One-way propagation delay, seconds.
    pub latency_s: f64,
    /// Extra delay drawn uniformly from `[0, jitter_s)` per message, seconds.
    pub jitter_s: f64,
    /// Bytes per second the link carries.
    pub bandwidth_bps: f64,
    /// Probability that a segment is lost, in `[0, 1)`.
    pub loss: f64,
}

impl Link {
    /// A datacentre-like link: 1 ms, 10 Gbit/s, no loss.
    pub fn datacentre() -> Self {
        Self {
            latency_s: 0.001,
            jitter_s: 0.0,
            bandwidth_bps: 1.25e9,
            loss: 0.0,
        }
    }

    /// A wide-area link between home machines: 40 ms ± 10 ms, 100 Mbit/s, no loss.
    pub fn internet() -> Self {
        Self {
            latency_s: 0.04,
            jitter_s: 0.01,
            bandwidth_bps: 12.5e6,
            loss: 0.0,
        }
    }

    /// The rate a reliable transport achieves on this link: the bandwidth, or the Mathis bound
    /// under loss, whichever is lower.
    pub fn effective_rate(&self) -> f64 {
        if self.loss <= 0.0 {
            return self.bandwidth_bps;
        }
        let rtt = (2.0 * self.latency_s).max(1e-4);
        self.bandwidth_bps
            .min(1.22 * MSS / (rtt * self.loss.sqrt()))
    }
}

/// A node's access link, shared by all its connections.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Access {
    /// Upload capacity, bytes per second.
    pub uplink_bps: f64,
    /// Download capacity, bytes per second.
    pub downlink_bps: f64,
}

/// Bytes and messages a node sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Bytes put on the wire, retransmissions included.
    pub bytes_sent: u64,
    /// Bytes delivered to this node.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages delivered.
    pub messages_received: u64,
}

/// The simulated network between `n` nodes.
#[derive(Debug)]
pub struct Network {
    default_link: Link,
    links: BTreeMap<(usize, usize), Link>,
    access: Vec<Access>,
    uplink_free: Vec<Timestamp>,
    downlink_free: Vec<Timestamp>,
    traffic: Vec<Traffic>,
    rng: ChaCha8Rng,
}

impl Network {
    /// `n` nodes, every link `link`, every access link as fast as `link`.
    pub fn new(n: usize, link: Link, rng: ChaCha8Rng) -> Self {
        let access = Access {
            uplink_bps: link.bandwidth_bps,
            downlink_bps: link.bandwidth_bps,
        };
        Self {
            default_link: link,
            links: BTreeMap::new(),
            access: vec![access; n],
            uplink_free: vec![Timestamp::ZERO; n],
            downlink_free: vec![Timestamp::ZERO; n],
            traffic: vec![Traffic::default(); n],
            rng,
        }
    }

    /// Overrides the link from `from` to `to`.
    pub fn set_link(&mut self, from: usize, to: usize, link: Link) {
        self.links.insert((from, to), link);
    }

    /// Overrides a node's access link.
    pub fn set_access(&mut self, node: usize, access: Access) {
        self.access[node] = access;
    }

    /// The link from `from` to `to`.
    pub fn link(&self, from: usize, to: usize) -> Link {
        self.links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.default_link)
    }

    /// Sends `bytes` from `from` to `to` at `now`; returns when the message is delivered.
    pub fn transmit(&mut self, now: Timestamp, from: usize, to: usize, bytes: usize) -> Timestamp {
        let link = self.link(from, to);
        let segments = (bytes as f64 / MSS).ceil().max(1.0) as u64;
        let lost = if link.loss > 0.0 {
            Binomial::new(segments, link.loss.min(0.999))
                .expect("loss is a probability")
                .sample(&mut self.rng)
        } else {
            0
        };
        let wire = bytes as f64 + lost as f64 * MSS;
        let start = now.max(self.uplink_free[from]);
        self.uplink_free[from] = start + secs(wire / self.access[from].uplink_bps);
        let jitter = if link.jitter_s > 0.0 {
            self.rng.random_range(0.0..link.jitter_s)
        } else {
            0.0
        };
        let recovery = if lost > 0 { 2.0 * link.latency_s } else { 0.0 };
        let arrival =
            start + secs(link.latency_s + jitter + recovery + wire / link.effective_rate());
        let receive_start = arrival.max(self.downlink_free[to]);
        let delivered = receive_start + secs(bytes as f64 / self.access[to].downlink_bps);
        self.downlink_free[to] = delivered;
        self.account(from, to, wire as u64, bytes as u64);
        delivered
    }

    /// Bytes and messages so far, per node.
    pub fn traffic(&self) -> &[Traffic] {
        &self.traffic
    }

    fn account(&mut self, from: usize, to: usize, wire: u64, bytes: u64) {
        self.traffic[from].bytes_sent += wire;
        self.traffic[from].messages_sent += 1;
        self.traffic[to].bytes_received += bytes;
        self.traffic[to].messages_received += 1;
    }
}

fn secs(seconds: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(seconds.max(0.0))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn lan(loss: f64) -> Link {
        Link {
            latency_s: 0.01,
            jitter_s: 0.0,
            bandwidth_bps: 1e6,
            loss,
        }
    }

    #[test]
    fn delay_is_latency_plus_transfer_and_uplink_serialises() {
        let mut net = Network::new(3, lan(0.0), ChaCha8Rng::seed_from_u64(0));
        let first = net.transmit(Timestamp::ZERO, 0, 1, 1_000_000);
        // 1 s on the uplink and the link, 10 ms latency, then 1 s through the downlink.
        assert_eq!(first, Timestamp::from_secs_f64(2.01));
        let second = net.transmit(Timestamp::ZERO, 0, 2, 1_000_000);
        assert_eq!(second, Timestamp::from_secs_f64(3.01));
        assert_eq!(net.traffic()[0].bytes_sent, 2_000_000);
        assert_eq!(net.traffic()[1].bytes_received, 1_000_000);
        assert_eq!(net.traffic()[2].messages_received, 1);
    }

    #[test]
    fn loss_costs_bytes_and_time() {
        let mut clean = Network::new(2, lan(0.0), ChaCha8Rng::seed_from_u64(1));
        let mut lossy = Network::new(2, lan(0.05), ChaCha8Rng::seed_from_u64(1));
        let t_clean = clean.transmit(Timestamp::ZERO, 0, 1, 500_000);
        let t_lossy = lossy.transmit(Timestamp::ZERO, 0, 1, 500_000);
        assert!(t_lossy > t_clean);
        assert!(lossy.traffic()[0].bytes_sent > 500_000);
        assert_eq!(lossy.traffic()[1].bytes_received, 500_000);
    }

    #[test]
    fn mathis_bound_caps_the_rate() {
        let link = Link {
            loss: 0.01,
            ..Link::internet()
        };
        let bound = 1.22 * MSS / (0.08 * 0.1);
        assert!((link.effective_rate() - bound).abs() < 1e-6);
        assert_eq!(Link::internet().effective_rate(), 12.5e6);
    }

    #[test]
    fn per_link_override() {
        let mut net = Network::new(2, lan(0.0), ChaCha8Rng::seed_from_u64(0));
        net.set_link(
            0,
            1,
            Link {
                latency_s: 1.0,
                ..lan(0.0)
            },
        );
        assert_eq!(net.link(0, 1).latency_s, 1.0);
        assert_eq!(net.link(1, 0).latency_s, 0.01);
    }
}
