//! A round's settlement: its trainers and verifiers paid from the round's emission.
//!
//! - Trainers: `(100 − verifier_share_pct)%` of the emission, split by weight among the
//!   contributions on the inclusion list that were verified: not slashed, and passed by at least
//!   one auditor the draw selected. Nothing is paid on a claim alone. A verified contribution
//!   weighs 100, or `harmful_weight_pct` when every verdict on it says its Δ alone raised the
//!   held-out loss. (Every contribution is H inner steps of the genesis batch size, so the
//!   verified tokens are equal and the weight is the usefulness.) An unaudited contribution
//!   earns nothing that round; since every contribution is audited with the same probability,
//!   an honest trainer's expected share is unchanged.
//! - Verifiers: `verifier_share_pct%` of the emission, equally per recorded verdict.
//! - Integer remainders are not minted.

use std::collections::BTreeMap;

use crate::state::{RoundBook, State};
use crate::{Amount, Payout, Round, Rules, actions};

/// Pays round `round` (already removed from the state's open books) and returns the payout.
pub(crate) fn settle(state: &mut State, rules: &Rules, round: Round, book: &RoundBook) -> Payout {
    let emission = u128::from(rules.emission_per_round);
    let verifier_pool = emission * u128::from(rules.verifier_share_pct) / 100;
    let trainer_pool = emission - verifier_pool;
    let mut due: BTreeMap<_, u128> = BTreeMap::new();

    let weights: Vec<_> = book
        .claims
        .iter()
        .filter(|c| !book.slashed.contains(&c.contributor))
        .map(|c| (c.contributor, weight(rules, book, &c.contributor)))
        .collect();
    let total: u128 = weights.iter().map(|(_, w)| *w).sum();
    for (who, w) in &weights {
        *due.entry(*who).or_default() += trainer_pool * w / total.max(1);
    }
    let audits = book.audits.len() as u128;
    for (_, auditor) in book.audits.keys() {
        *due.entry(*auditor).or_default() += verifier_pool / audits.max(1);
    }

    let mut payout = Payout {
        round,
        rewards: BTreeMap::new(),
    };
    for (who, amount) in due {
        let amount = Amount::try_from(amount).unwrap_or(0);
        if amount > 0 && actions::credit_stake(state, &who, amount) {
            payout.rewards.insert(who, amount);
        }
    }
    payout
}

/// A contribution's weight: 0 unless an auditor passed it; then 100, or `harmful_weight_pct`
/// when every verdict found its Δ raised the held-out loss.
fn weight(rules: &Rules, book: &RoundBook, contributor: &neuroshard_primitives::NodeId) -> u128 {
    let audits: Vec<_> = book
        .audits
        .iter()
        .filter(|((c, _), _)| c == contributor)
        .map(|(_, audit)| *audit)
        .collect();
    if !audits.iter().any(|a| a.passed) {
        return 0;
    }
    let harmful = audits.iter().all(|a| a.gain < 0);
    u128::from(if harmful {
        rules.harmful_weight_pct
    } else {
        100
    })
}
