//! A round's settlement: its trainers and verifiers paid from the round's emission.
//!
//! - Only work the ledger's plan in force in the round confirms counts: a claim for a part its
//!   claimant holds, and a verdict by a holder of that part (`pool::confirms`; without a plan
//!   of several stages, the whole model is anyone's).
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

use neuroshard_primitives::NodeId;

use crate::state::{Audit, RoundBook, State};
use crate::{Amount, Payout, Round, Rules, actions, pool};

/// Pays round `round` (already removed from the state's open books) and returns the payout.
pub(crate) fn settle(state: &mut State, rules: &Rules, round: Round, book: &RoundBook) -> Payout {
    let emission = u128::from(rules.emission_per_round);
    let verifier_pool = emission * u128::from(rules.verifier_share_pct) / 100;
    let trainer_pool = emission - verifier_pool;
    let mut due: BTreeMap<_, u128> = BTreeMap::new();

    let audits = confirmed_audits(state, round, book);
    let weights: Vec<_> = book
        .claims
        .iter()
        .filter(|c| !book.slashed.contains(&c.contributor))
        .map(|c| (c.contributor, weight(rules, &audits, &c.contributor)))
        .collect();
    let total: u128 = weights.iter().map(|(_, w)| *w).sum();
    for (who, w) in &weights {
        *due.entry(*who).or_default() += trainer_pool * w / total.max(1);
    }
    let count = audits.len() as u128;
    for (_, auditor, _) in &audits {
        *due.entry(*auditor).or_default() += verifier_pool / count.max(1);
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

/// The round's verdicts (contributor, auditor, audit) that the plan in force in it confirms:
/// on a claim for a part its claimant holds, by a holder of that part.
fn confirmed_audits(state: &State, round: Round, book: &RoundBook) -> Vec<(NodeId, NodeId, Audit)> {
    let plan = state.plan_for(round).map(|p| &p.plan);
    let holds = |who: &NodeId, contributor: &NodeId| {
        let claim = book.claim_of(contributor);
        claim.is_some_and(|c| pool::confirms(plan, who, c.part))
    };
    (book.audits.iter())
        .filter(|((contributor, auditor), _)| {
            holds(contributor, contributor) && holds(auditor, contributor)
        })
        .map(|((contributor, auditor), audit)| (*contributor, *auditor, *audit))
        .collect()
}

/// A contribution's weight over the confirmed `audits`: 0 unless an auditor passed it; then
/// 100, or `harmful_weight_pct` when every verdict found its Δ raised the held-out loss.
fn weight(rules: &Rules, audits: &[(NodeId, NodeId, Audit)], contributor: &NodeId) -> u128 {
    let audits: Vec<_> = (audits.iter())
        .filter(|(c, _, _)| c == contributor)
        .map(|(_, _, audit)| *audit)
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
