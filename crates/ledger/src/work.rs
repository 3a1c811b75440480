//! What the ledger needs to know about Proof of Neural Work, supplied by the node: whether an
//! audit ticket selects its auditor, and whether a conviction's evidence names committed work.
//!
//! The ledger cannot replay training (it has neither the model nor the data), so it checks only
//! what a signature can prove; the replay itself is attested by a quorum of bonded accusers
//! (`docs/economics.md`, "Slashing").

use std::collections::BTreeMap;

use neuroshard_pool::Plan;
use neuroshard_primitives::NodeId;

use crate::{Claim, PoolEntry, Round};

/// Checks on Proof of Neural Work artefacts, and the planner of the pipeline; must be pure and
/// deterministic.
pub trait Work {
    /// Whether `ticket` is `auditor`'s signature on the audit ticket of `claim` in `round`, and
    /// the draw picks `auditor` among the other `contributors - 1` contributors of the round's
    /// claims for `claim.part` (a stage's replicas audit each other).
    fn ticket_selects(
        &self,
        round: Round,
        claim: &Claim,
        auditor: &NodeId,
        ticket: &[u8],
        contributors: usize,
    ) -> bool;

    /// Checks that `evidence` is `claim.contributor`'s own signed announcement of `claim`'s Δ
    /// and root for `round`.
    fn evidence_holds(&self, round: Round, claim: &Claim, evidence: &[u8]) -> Result<(), String>;

    /// The pipeline plan a plan boundary makes: `latest`, the ledger's latest plan (`None`
    /// for the first), carried over to the pool `roll` without the accounts in `left` (those
    /// this boundary dropped), at the depth the growth schedule gives the pool `sizes` noted so
    /// far (oldest first). `None`, the default: this network plans no pipeline.
    fn plan(
        &self,
        latest: Option<&Plan>,
        roll: &BTreeMap<NodeId, PoolEntry>,
        left: &[NodeId],
        sizes: &[u64],
    ) -> Option<Plan> {
        let _ = (latest, roll, left, sizes);
        None
    }
}
