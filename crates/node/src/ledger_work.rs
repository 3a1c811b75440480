//! What the NEURO ledger checks of Proof of Neural Work, over this crate's wire formats: audit
//! tickets (the draw of `docs/verification.md`) and the evidence a conviction carries (the
//! contributor's own signed announcement).

use neuroshard_ledger::{Action, Claim, Part, Round, State, Work};
use neuroshard_primitives::{NodeId, Signed};
use neuroshard_verify::AuditConfig;
use neuroshard_verify::Outcome;
use neuroshard_verify::audit::{Draw, TICKET_NAMESPACE, ticket_payload};

use crate::message::{MAX_SMALL_FRAME, Message};
use crate::node::{Node, Output};
use crate::phase::audit;

impl Node {
    /// The ledger transaction an output calls for, if any, given the ledger's `state`: a work
    /// claim for `part`, the part of the model this core trains; a verdict (with this node's
    /// audit ticket, for a contribution on the round's list); a conviction (with the cheater's
    /// own announcement).
    pub fn ledger_action(&self, output: &Output, state: &State, part: Part) -> Option<Action> {
        match output {
            Output::Claim { round, delta, root } => Some(Action::Claim {
                round: *round,
                delta: *delta,
                root: *root,
                part,
            }),
            Output::Audited(verdict) => {
                let claim = state
                    .meta
                    .rounds
                    .get(&verdict.round)?
                    .claim_of(&verdict.contributor)?;
                let ticket = audit::ticket(self, verdict.round, &claim.root, verdict.contributor);
                let gain = verdict.usefulness.map_or(0.0, |u| u.val_gain());
                Some(Action::Verdict {
                    round: verdict.round,
                    contributor: verdict.contributor,
                    ticket: ticket.signature,
                    passed: matches!(verdict.outcome, Outcome::Passed { .. }),
                    gain: (f64::from(gain) * 1e6) as i64,
                })
            }
            Output::Excluded {
                node,
                evidence: Some((round, frame)),
                ..
            } => Some(Action::Convict {
                round: *round,
                contributor: *node,
                evidence: frame.clone(),
            }),
            _ => None,
        }
    }
}

/// The ledger's checks under a network's audit settings.
#[derive(Debug, Clone, Copy)]
pub struct WorkChecks {
    audit: AuditConfig,
}

impl WorkChecks {
    /// Checks under `audit`, the settings the network's nodes audit with.
    pub fn new(audit: AuditConfig) -> Self {
        Self { audit }
    }
}

impl Work for WorkChecks {
    /// The rate is taken over the other contributors of the claim's part; a node draws over
    /// its round core's other members (its stage's replicas), who are at least as many, so
    /// every ticket a node draws also passes here.
    fn ticket_selects(
        &self,
        round: Round,
        claim: &Claim,
        auditor: &NodeId,
        ticket: &[u8],
        contributors: usize,
    ) -> bool {
        let signed = Signed {
            signer: *auditor,
            payload: ticket_payload(round, &claim.root, &claim.contributor),
            signature: ticket.to_vec(),
        };
        let rate = self.audit.rate(contributors.saturating_sub(1));
        signed.verify(TICKET_NAMESPACE).is_ok() && Draw::of(ticket).audits(rate)
    }

    fn evidence_holds(&self, round: Round, claim: &Claim, evidence: &[u8]) -> Result<(), String> {
        let (signer, message) =
            Message::open(evidence, MAX_SMALL_FRAME).map_err(|err| err.to_string())?;
        let Message::Announce(announcement) = message else {
            return Err("the evidence is not an announcement".into());
        };
        let root = announcement.commitment.map(|c| c.root).unwrap_or_default();
        let names_claim = signer == claim.contributor
            && announcement.round == round
            && announcement.delta == claim.delta
            && root == claim.root;
        if names_claim {
            Ok(())
        } else {
            Err("the evidence is not the contributor's announcement of the claimed work".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use neuroshard_primitives::{Hash, Keypair};

    use super::*;
    use crate::message::Announcement;

    fn announcement(round: Round, delta: Hash) -> Announcement {
        Announcement {
            round,
            base: Hash::default(),
            delta,
            delta_len: 10,
            tokens: 1,
            loss_start: 2.0,
            loss_end: 1.0,
            commitment: None,
            memory_budget: u64::MAX,
        }
    }

    #[test]
    fn evidence_must_be_the_contributors_announcement_of_the_claim() {
        let (cheat, other) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let claim = Claim {
            contributor: cheat.node_id(),
            delta: Hash([5; 32]),
            root: Hash::default(),
            part: Part::WHOLE,
        };
        let checks = WorkChecks::new(AuditConfig::DEFAULT);
        let own = Message::Announce(announcement(3, claim.delta)).seal(&cheat);
        assert_eq!(checks.evidence_holds(3, &claim, &own), Ok(()));
        assert!(
            checks.evidence_holds(4, &claim, &own).is_err(),
            "another round"
        );
        let forged = Message::Announce(announcement(3, claim.delta)).seal(&other);
        assert!(
            checks.evidence_holds(3, &claim, &forged).is_err(),
            "another signer"
        );
        let other_delta = Message::Announce(announcement(3, Hash([6; 32]))).seal(&cheat);
        assert!(
            checks.evidence_holds(3, &claim, &other_delta).is_err(),
            "another Δ"
        );
        assert!(
            checks.evidence_holds(3, &claim, &[0xff; 50]).is_err(),
            "garbage"
        );
    }

    #[test]
    fn a_ticket_must_be_the_auditors_and_drawn() {
        let (auditor, contributor) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let claim = Claim {
            contributor: contributor.node_id(),
            delta: Hash([5; 32]),
            root: Hash([6; 32]),
            part: Part::WHOLE,
        };
        let ticket = auditor
            .sign(
                TICKET_NAMESPACE,
                &ticket_payload(7, &claim.root, &claim.contributor),
            )
            .signature;
        let checks = WorkChecks::new(AuditConfig::DEFAULT);
        // Two contributors: the other one always audits (rate 2 / 1, capped at 1).
        assert!(checks.ticket_selects(7, &claim, &auditor.node_id(), &ticket, 2));
        assert!(!checks.ticket_selects(8, &claim, &auditor.node_id(), &ticket, 2));
        assert!(!checks.ticket_selects(7, &claim, &contributor.node_id(), &ticket, 2));
        let never = WorkChecks::new(AuditConfig {
            auditors: 0.0,
            ..AuditConfig::DEFAULT
        });
        assert!(!never.ticket_selects(7, &claim, &auditor.node_id(), &ticket, 2));
    }
}
