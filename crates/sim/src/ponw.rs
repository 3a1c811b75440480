//! The work-proof side of a run: what the cheaters did, what the honest auditors caught, what
//! the audits cost.

use std::collections::{BTreeMap, BTreeSet};

use neuroshard_verify::{Outcome, Verdict};
use serde::Serialize;

/// One round's cheating and catching.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PonwRound {
    /// The round.
    pub round: u64,
    /// Cheating acts in the round: contributions trained dishonestly (or to be withheld) that an
    /// honest node included, false fraud proofs sent.
    pub cheating: usize,
    /// Of those, the ones an honest node caught.
    pub caught: usize,
}

/// What Proof of Neural Work did in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PonwReport {
    /// The cheat, as `KIND:STRENGTH`, if any.
    pub cheat: Option<String>,
    /// Indices of the cheating nodes.
    pub cheaters: Vec<usize>,
    /// Rounds in which somebody cheated.
    pub rounds: Vec<PonwRound>,
    /// Cheating acts caught over all rounds, as a share (`None` without cheating).
    pub catch_rate: Option<f64>,
    /// Per cheater: rounds from its first cheating act to the first time an honest node caught
    /// it, counting both (1: caught in the round it first cheated); `None` if never caught.
    pub rounds_to_detection: Vec<Option<u64>>,
    /// Audits of honest contributions by honest auditors that replayed and passed.
    pub honest_passed: u64,
    /// Audits of honest contributions by honest auditors that failed (should be 0).
    pub honest_failed: u64,
    /// Exclusions of honest nodes by honest nodes (should be 0).
    pub honest_excluded: u64,
    /// Exclusions of cheaters by honest nodes.
    pub cheaters_excluded: u64,
    /// The largest relative state distance an honest replay of an honest segment found.
    pub max_honest_distance: f32,
    /// Inner steps trained, all nodes.
    pub training_steps: u64,
    /// Inner steps replayed by audits and proof checks, all nodes.
    pub verification_steps: u64,
    /// `verification_steps / training_steps`.
    pub verification_fraction: f64,
    /// Bytes of one commitment in an announcement.
    pub commitment_bytes: usize,
    /// Bytes of one encoded Δ.
    pub delta_bytes: usize,
    /// `commitment_bytes / delta_bytes`.
    pub commitment_fraction: f64,
}

/// The bytes a commitment adds to a signed announcement on the wire.
pub(crate) fn commitment_bytes() -> usize {
    let key = neuroshard_primitives::Keypair::from_seed([1; 32]);
    let bare = neuroshard_node::Announcement {
        round: 1,
        base: Default::default(),
        delta: Default::default(),
        delta_len: 1,
        tokens: 1,
        loss_start: 1.0,
        loss_end: 1.0,
        commitment: None,
        memory_budget: u64::MAX,
    };
    let committed = neuroshard_node::Announcement {
        commitment: Some(neuroshard_verify::Commitment {
            segments: neuroshard_verify::Segments {
                steps: 500,
                len: 13,
            },
            root: Default::default(),
            residual_before: Default::default(),
            residual_after: Default::default(),
        }),
        ..bare.clone()
    };
    let len =
        |a: neuroshard_node::Announcement| neuroshard_node::Message::Announce(a).seal(&key).len();
    len(committed) - len(bare)
}

/// Running counts, turned into a [`PonwReport`] at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    cheating: BTreeMap<u64, BTreeSet<usize>>,
    /// Cheating contributions an honest node included (the others were left out in time).
    included: BTreeMap<u64, BTreeSet<usize>>,
    /// Cheaters an honest node has excluded: their later acts count nowhere.
    convicted: BTreeSet<usize>,
    /// Whether an exclusion catches the act (a false accusation, which no audit judges) rather
    /// than only an auditor's failed verdict.
    caught_by_exclusion: bool,
    caught: BTreeMap<u64, BTreeSet<usize>>,
    honest_passed: u64,
    honest_failed: u64,
    honest_excluded: u64,
    cheaters_excluded: u64,
    max_honest_distance: f32,
    training_steps: u64,
    verification_steps: u64,
}

impl Tally {
    /// A tally for cheats that an exclusion catches (false accusations) or only audits do.
    pub(crate) fn new(caught_by_exclusion: bool) -> Self {
        Self {
            caught_by_exclusion,
            ..Self::default()
        }
    }

    /// A cheater cheated in `round` (once excluded, its acts no longer count: nobody includes
    /// its contributions).
    pub(crate) fn cheated(&mut self, round: u64, node: usize) {
        if !self.convicted.contains(&node) {
            self.cheating.entry(round).or_default().insert(node);
        }
    }

    /// An honest node's round `round` included node `node`'s contribution.
    pub(crate) fn included(&mut self, round: u64, node: usize) {
        self.included.entry(round).or_default().insert(node);
    }

    /// Some node trained `steps` inner steps.
    pub(crate) fn trained(&mut self, steps: u64) {
        self.training_steps += steps;
    }

    /// Some node replayed `steps` inner steps.
    pub(crate) fn replayed(&mut self, steps: u64) {
        self.verification_steps += steps;
    }

    /// An auditor concluded; `honest(i)` says whether node `i` is honest.
    pub(crate) fn audited(
        &mut self,
        auditor: usize,
        contributor: usize,
        verdict: &Verdict,
        honest: impl Fn(usize) -> bool,
    ) {
        if !honest(auditor) {
            return;
        }
        match (&verdict.outcome, honest(contributor)) {
            (Outcome::Passed { distance }, true) => {
                self.honest_passed += 1;
                self.max_honest_distance = self.max_honest_distance.max(*distance);
            }
            (Outcome::Passed { .. }, false) => {}
            (_, true) => self.honest_failed += 1,
            (_, false) => {
                self.caught
                    .entry(verdict.round)
                    .or_default()
                    .insert(contributor);
            }
        }
    }

    /// Node `by` excluded node `who`, during `round`.
    pub(crate) fn excluded(
        &mut self,
        round: u64,
        by: usize,
        who: usize,
        honest: impl Fn(usize) -> bool,
    ) {
        if !honest(by) {
            return;
        }
        if honest(who) {
            self.honest_excluded += 1;
        } else {
            self.cheaters_excluded += 1;
            self.convicted.insert(who);
            // A false accuser is caught when an honest node convicts it.
            if self.caught_by_exclusion {
                let first = self
                    .cheating
                    .iter()
                    .rev()
                    .find(|(r, nodes)| **r <= round && nodes.contains(&who))
                    .map(|(r, _)| *r);
                if let Some(r) = first {
                    self.caught.entry(r).or_default().insert(who);
                }
            }
        }
    }

    /// The report, for `cheat` run by `cheaters`, with commitments of `commitment_bytes` over
    /// Δs of `delta_bytes`.
    pub(crate) fn report(
        self,
        cheat: Option<String>,
        cheaters: Vec<usize>,
        commitment_bytes: usize,
        delta_bytes: usize,
    ) -> PonwReport {
        // A cheating contribution counts once an honest node included it (one left out of
        // every round in time, its sender already excluded, did no harm); a false accusation
        // counts as made.
        let empty = BTreeSet::new();
        let rounds: Vec<PonwRound> = self
            .cheating
            .iter()
            .map(|(round, nodes)| {
                let included = self.included.get(round).unwrap_or(&empty);
                let counted: BTreeSet<usize> = nodes
                    .iter()
                    .filter(|n| self.caught_by_exclusion || included.contains(n))
                    .copied()
                    .collect();
                PonwRound {
                    round: *round,
                    cheating: counted.len(),
                    caught: self
                        .caught
                        .get(round)
                        .map_or(0, |caught| caught.intersection(&counted).count()),
                }
            })
            .filter(|r| r.cheating > 0)
            .collect();
        let cheating: usize = rounds.iter().map(|r| r.cheating).sum();
        let caught: usize = rounds.iter().map(|r| r.caught).sum();
        let rounds_to_detection = cheaters
            .iter()
            .map(|node| {
                let first = self.cheating.iter().find(|(_, n)| n.contains(node))?.0;
                let found = self.caught.iter().find(|(_, n)| n.contains(node))?.0;
                Some(found.saturating_sub(*first) + 1)
            })
            .collect();
        PonwReport {
            cheat,
            cheaters,
            catch_rate: (cheating > 0).then(|| caught as f64 / cheating as f64),
            rounds,
            rounds_to_detection,
            honest_passed: self.honest_passed,
            honest_failed: self.honest_failed,
            honest_excluded: self.honest_excluded,
            cheaters_excluded: self.cheaters_excluded,
            max_honest_distance: self.max_honest_distance,
            training_steps: self.training_steps,
            verification_steps: self.verification_steps,
            verification_fraction: self.verification_steps as f64
                / self.training_steps.max(1) as f64,
            commitment_bytes,
            delta_bytes,
            commitment_fraction: commitment_bytes as f64 / delta_bytes.max(1) as f64,
        }
    }
}
