//! Who audits which contribution, and which segment: a draw no contributor can steer.
//!
//! When round r closes, each node V signs a ticket naming (r, X's commitment root, X) for each
//! contributor X it included. Ed25519 signatures are deterministic (RFC 8032), so V's ticket is
//! fixed by X's commitment, and nobody without V's secret key can compute it. The ticket's hash
//! decides whether V audits X (with the configured rate) and which of X's segments it replays.
//!
//! Grinding is ruled out: to retry commitments until the draw picks a segment it computed
//! honestly, X would have to evaluate the honest auditors' tickets for its candidate roots,
//! which needs their secret keys. A dishonest V can skip its audits, or re-sign with another
//! nonce until it draws the segment it likes; that neither helps X nor harms an honest node.

use neuroshard_primitives::{Hash, NodeId};

use crate::{Error, Result};

/// The signing namespace of audit tickets.
pub const TICKET_NAMESPACE: &[u8] = b"_NEUROSHARD_AUDIT_TICKET";

/// The bytes a ticket signs: the round, the contributor's commitment root, the contributor.
pub fn ticket_payload(round: u64, root: &Hash, contributor: &NodeId) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + 64);
    payload.extend_from_slice(&round.to_le_bytes());
    payload.extend_from_slice(&root.0);
    payload.extend_from_slice(&contributor.0);
    payload
}

/// What a ticket's signature draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Draw(Hash);

impl Draw {
    /// The draw of a ticket's signature bytes.
    pub fn of(signature: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"neuroshard-verify/draw");
        hasher.update(signature);
        Self(Hash(*hasher.finalize().as_bytes()))
    }

    /// Whether the auditor audits, at per-auditor probability `rate`.
    pub fn audits(&self, rate: f64) -> bool {
        (self.word(0) as f64) < rate * 2f64.powi(64)
    }

    /// Which of `count` segments it replays (other bits than [`Draw::audits`] uses).
    pub fn segment(&self, count: u64) -> u64 {
        self.word(1) % count.max(1)
    }

    fn word(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.0.0[8 * i..8 * i + 8].try_into().expect("8 bytes"))
    }
}

/// How often contributions are audited.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuditConfig {
    /// The expected number of auditors per contribution (each of the other members audits with
    /// probability `auditors / others`, at most 1).
    pub auditors: f64,
    /// Segments per training job S: a replay costs 1/S of the job.
    pub segments: u64,
    /// How far an honest replay may land from the committed checkpoint.
    pub tolerance: crate::Tolerance,
}

impl AuditConfig {
    /// The defaults: 2 auditors per contribution and 50 segments, so audits cost 2/50 = 4 % of
    /// training; a contribution faked throughout is caught in one round with probability
    /// 1 − e^−2 ≈ 0.86 in a large network (more in a small one), 0.997 within three rounds.
    pub const DEFAULT: Self = Self {
        auditors: 2.0,
        segments: 50,
        tolerance: crate::Tolerance::DEFAULT,
    };

    /// Refuses settings that audit nothing or cannot be met.
    pub fn validate(&self) -> Result<()> {
        if !(self.auditors.is_finite() && self.auditors >= 0.0) || self.segments == 0 {
            return Err(Error::InvalidConfig(format!(
                "auditors {} must be finite and >= 0, segments {} at least 1",
                self.auditors, self.segments
            )));
        }
        self.tolerance.validate()
    }

    /// The probability that one node audits a contribution when `others` members besides the
    /// contributor could.
    pub fn rate(&self, others: usize) -> f64 {
        if others == 0 {
            0.0
        } else {
            (self.auditors / others as f64).min(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_follows_the_rate_and_spreads_over_segments() {
        let draws: Vec<Draw> = (0..4000u32).map(|i| Draw::of(&i.to_le_bytes())).collect();
        let share = draws.iter().filter(|d| d.audits(0.25)).count() as f64 / 4000.0;
        assert!((share - 0.25).abs() < 0.03, "{share}");
        assert!(draws.iter().all(|d| d.audits(1.0)) && !draws.iter().any(|d| d.audits(0.0)));
        let mut seen = [0u32; 8];
        draws.iter().for_each(|d| seen[d.segment(8) as usize] += 1);
        assert!(seen.iter().all(|&c| c > 400), "{seen:?}");
    }

    #[test]
    fn the_rate_spreads_the_auditors_over_the_others() {
        let config = AuditConfig::DEFAULT;
        assert_eq!(config.rate(0), 0.0);
        assert_eq!(config.rate(1), 1.0);
        assert!((config.rate(8) - 0.25).abs() < 1e-12);
    }
}
