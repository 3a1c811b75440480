//! A round core's side of the ledger: how it agrees on its rounds' lists, the round a core built
//! from scratch starts at, and the lists of its part's closed rounds it learns when built.

use std::collections::BTreeSet;
use std::time::Duration;

use neuroshard_ledger::Part;
use neuroshard_node::{
    Agreement, DeadlineAgreement, Input, LedgerAgreement, Node, NodeConfig, Snapshot, Timestamp,
};
use neuroshard_primitives::Keypair;

use crate::Result;
use crate::chain::Chain;
use crate::driver::{Driver, now};

/// How a round core agrees on its rounds' lists: through the ledger when the network has one
/// (its claims for the core's part), else by deadline.
pub(crate) fn agreement(chain: &Option<Chain>) -> Box<dyn Agreement> {
    match chain {
        Some(_) => Box::new(LedgerAgreement::default()),
        None => Box::new(DeadlineAgreement),
    }
}

/// How long a round core built from scratch at a running network's round waits for its
/// members' votes and state before it trains from the seed's weights (`Node::from_scratch`):
/// answers from live members come within a second on a LAN; the whole wait is spent only when
/// every member started from scratch.
const FIRST_ROUND_PATIENCE: Duration = Duration::from_secs(10);

/// A round core built from scratch over `params` (a stage's or a whole model's without a
/// checkpoint to resume), with no outer momentum and no member but its own key's: at the
/// ledger's round (`Chain::fresh_round`), or at round 0 without a ledger. Past round 0 it
/// trains once it installed its members' state (`Node::from_scratch`).
pub(crate) fn fresh(
    chain: &Option<Chain>,
    key: Keypair,
    protocol: NodeConfig,
    params: Vec<f32>,
) -> Result<Node> {
    let now_ms = now().0 / 1000;
    let round = chain.as_ref().map_or(0, |c| c.fresh_round(now_ms));
    let members = BTreeSet::from([key.node_id()]);
    Ok(Node::from_scratch(
        key,
        protocol,
        members,
        (round, params),
        agreement(chain),
        FIRST_ROUND_PATIENCE,
    )?)
}

/// A round core resumed from `state`, a checkpoint's (the whole model's, or a stage's), at its
/// round, with no member but its own key's; it agrees as [`agreement`] says.
pub(crate) fn resumed(
    chain: &Option<Chain>,
    key: Keypair,
    protocol: NodeConfig,
    state: Snapshot,
) -> Result<Node> {
    let members = BTreeSet::from([key.node_id()]);
    Ok(Node::resume(
        key,
        protocol,
        members,
        state,
        agreement(chain),
    )?)
}

impl Driver {
    /// Puts `node` in place of the round core (a stage or whole model built at a placement).
    /// A job the old core asked for and that has not started is the old core's: dropped, or it
    /// would run for the new core's round from its parameters (a mover's seed weights, before
    /// it installed its stage mates' state) and be contributed as the new core's.
    pub(crate) fn replace_core(&mut self, node: Node) {
        self.node = node;
        self.pending = None;
    }

    /// Hands a (re)started round core the lists of `part`'s closed rounds the ledger still
    /// holds; nothing is due yet.
    pub(crate) fn learn_decided(&mut self, part: Part) {
        for (round, list) in self.chain.iter().flat_map(|c| c.view().decided(part)) {
            let _ = self
                .node
                .handle(Timestamp::ZERO, Input::Decided { round, list });
        }
    }
}
