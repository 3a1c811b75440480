//! The NEURO ledger in a simulation: the real state transition behind an ideal sequencer (one
//! total order, a block every [`BLOCK_INTERVAL`] while there is anything to order), so rounds
//! close through `LedgerAgreement` and rewards and slashes happen as on a real network. The
//! consensus engine itself has its own simulation (`neuroshard-consensus`).

use std::time::Duration;

use neuroshard_ledger::{
    Action, Amount, BlockInfo, Ledger, LedgerGenesis, Outbox, Receipt, Round, Rules, State,
};
use neuroshard_node::{Timestamp, WorkChecks};
use neuroshard_primitives::{Hash, Keypair, NodeId};
use neuroshard_verify::AuditConfig;
use serde::Serialize;

use crate::{Error, Result};

/// Simulated time between two blocks.
pub(crate) const BLOCK_INTERVAL: Duration = Duration::from_millis(250);

/// A slash the ledger carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlashRecord {
    /// The node slashed.
    pub node: usize,
    /// The round open for claims when it happened.
    pub open_round: Round,
    /// What it lost.
    pub amount: Amount,
}

/// What the ledger did over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LedgerReport {
    /// Blocks applied.
    pub blocks: u64,
    /// Rounds the ledger closed.
    pub rounds_closed: u64,
    /// NEURO allocated at genesis, minted and burned.
    pub genesis: Amount,
    /// Minted as rewards.
    pub minted: Amount,
    /// Burned by slashes.
    pub burned: Amount,
    /// Every slash.
    pub slashes: Vec<SlashRecord>,
    /// Each node's stake at the end.
    pub stakes: Vec<Amount>,
}

/// The sequencer, the state and each node's outbox.
#[derive(Debug)]
pub(crate) struct SimLedger {
    ledger: Ledger<WorkChecks>,
    state: State,
    ids: Vec<NodeId>,
    outboxes: Vec<Outbox>,
    scheduled: bool,
    report: LedgerReport,
}

impl SimLedger {
    /// A ledger whose genesis committee is every node (each bonded), under the default rules.
    pub(crate) fn new(keys: Vec<Keypair>, audit: AuditConfig) -> Result<Self> {
        let ids: Vec<NodeId> = keys.iter().map(Keypair::node_id).collect();
        let network = Hash::of(b"neuroshard-sim ledger");
        let rules = Rules::DEFAULT;
        let state = LedgerGenesis {
            network,
            committee: ids.clone(),
            allocations: Vec::new(),
            rules,
        }
        .state()
        .map_err(Error::InvalidConfig)?;
        let report = LedgerReport {
            genesis: state.meta.supply.genesis,
            ..LedgerReport::default()
        };
        Ok(Self {
            ledger: Ledger::new(rules, WorkChecks::new(audit)).map_err(Error::InvalidConfig)?,
            state,
            ids,
            outboxes: keys.into_iter().map(|k| Outbox::new(k, network)).collect(),
            scheduled: false,
            report,
        })
    }

    /// The ledger state, for the nodes' [`neuroshard_node::Node::ledger_action`].
    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// Node `node` wants `action` on the ledger. Returns whether a block must be scheduled.
    pub(crate) fn submit(&mut self, node: usize, action: Action) -> bool {
        self.outboxes[node].push(action);
        !std::mem::replace(&mut self.scheduled, true)
    }

    /// Orders every outbox's transactions into a block at `now`, applies it and checks the
    /// supply invariant. Returns the receipt and whether another block is due.
    pub(crate) fn block(&mut self, now: Timestamp) -> Result<(Receipt, bool)> {
        let committee = &self.state.meta.committee;
        let height = self.state.meta.height + 1;
        let info = BlockInfo {
            height,
            time_ms: (now.as_secs_f64() * 1000.0) as u64,
            proposer: committee[(height % committee.len() as u64) as usize],
        };
        let pending: Vec<Vec<u8>> = self
            .outboxes
            .iter_mut()
            .flat_map(|outbox| outbox.sign(&self.ledger, &self.state))
            .collect();
        let body = self.ledger.build(&self.state, &info, &pending);
        let receipt = self
            .ledger
            .execute(&mut self.state, &info, &body)
            .map_err(|err| Error::Ledger(format!("block {height}: {err}")))?;
        for outbox in &mut self.outboxes {
            outbox.applied(&receipt);
        }
        self.check(&receipt)?;
        let open_has_claims = self
            .state
            .meta
            .rounds
            .contains_key(&self.state.meta.open_round);
        let due = open_has_claims || self.outboxes.iter().any(|o| !o.is_empty());
        self.scheduled = due;
        Ok((receipt, due))
    }

    /// The supply invariant after a block, and the report's bookkeeping.
    fn check(&mut self, receipt: &Receipt) -> Result<()> {
        let supply = self.state.meta.supply;
        if self.state.holdings() != supply.expected() {
            return Err(Error::Ledger(format!(
                "supply broken at height {}: holdings {} ≠ genesis + minted − burned {}",
                self.state.meta.height,
                self.state.holdings(),
                supply.expected()
            )));
        }
        self.report.blocks += 1;
        self.report.rounds_closed += u64::from(receipt.closed.is_some());
        for (who, amount) in &receipt.slashed {
            if let Some(node) = self.ids.iter().position(|id| id == who) {
                self.report.slashes.push(SlashRecord {
                    node,
                    open_round: self.state.meta.open_round,
                    amount: *amount,
                });
            }
        }
        Ok(())
    }

    /// The run's ledger report.
    pub(crate) fn report(&self) -> LedgerReport {
        let supply = self.state.meta.supply;
        LedgerReport {
            minted: supply.minted,
            burned: supply.burned,
            stakes: self
                .ids
                .iter()
                .map(|id| self.state.account(id).stake)
                .collect(),
            ..self.report.clone()
        }
    }
}
