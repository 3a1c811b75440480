//! A small network for the ledger's tests: keys, a work checker over plain signatures, and a
//! chain that applies blocks and checks the supply invariant after each one.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use neuroshard_ledger::{
    Action, BlockError, BlockInfo, Body, Claim, Ledger, LedgerGenesis, NEURO, Part, PlanRecord,
    PoolEntry, Receipt, Refused, Round, Rules, SignedTx, State, Tx, Work,
};
use neuroshard_pool::{Plan, StagePlan};
use neuroshard_primitives::{Hash, Keypair, NodeId, Signed};

/// Namespace of the test tickets and announcements.
const TICKET: &[u8] = b"_TEST_TICKET";
const ANNOUNCE: &[u8] = b"_TEST_ANNOUNCE";

/// Tickets are the auditor's signature over (round, root, contributor) and always select;
/// evidence is the contributor's signature over (round, delta, root). Its planner gives each
/// roll entry the stage its memory budget names (budget `i` holds stage `i − 1` of as many as
/// the largest budget, one layer each) and leaves out the accounts that left.
#[derive(Debug, Clone, Copy)]
pub struct TestWork;

pub fn ticket_payload(round: Round, claim: &Claim) -> Vec<u8> {
    postcard::to_allocvec(&(round, claim.root, claim.contributor)).unwrap()
}

pub fn evidence_payload(round: Round, delta: Hash, root: Hash) -> Vec<u8> {
    postcard::to_allocvec(&(round, delta, root)).unwrap()
}

impl Work for TestWork {
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
            payload: ticket_payload(round, claim),
            signature: ticket.to_vec(),
        };
        // A lone claimant of its part has nobody to audit it: the real draw's rate is 0.
        contributors >= 2 && signed.verify(TICKET).is_ok()
    }

    fn evidence_holds(&self, round: Round, claim: &Claim, evidence: &[u8]) -> Result<(), String> {
        let signed: Signed = postcard::from_bytes(evidence).map_err(|e| e.to_string())?;
        if signed.signer != claim.contributor
            || signed.payload != evidence_payload(round, claim.delta, claim.root)
        {
            return Err("the evidence is not the contributor's announcement of this claim".into());
        }
        signed.verify(ANNOUNCE).map_err(|e| e.to_string())
    }

    fn plan(
        &self,
        _latest: Option<&Plan>,
        roll: &BTreeMap<NodeId, PoolEntry>,
        left: &[NodeId],
        _sizes: &[u64],
    ) -> Option<Plan> {
        // An empty roll plans no stage, as `assign` over no members does.
        let stages = roll.values().map(|e| e.memory_budget).max().unwrap_or(0);
        let stages = usize::try_from(stages).ok().filter(|n| *n <= 16)?;
        let stages = (0..stages)
            .map(|i| StagePlan {
                layers: i..i + 1,
                embedding: i == 0,
                head: i + 1 == stages,
                replicas: (roll.iter())
                    .filter(|(node, e)| e.memory_budget == i as u64 + 1 && !left.contains(node))
                    .map(|(node, _)| *node)
                    .collect(),
            })
            .collect();
        Some(Plan {
            n_layers: 16,
            stages,
            unplaced: Vec::new(),
        })
    }
}

/// A capacity record of `memory_budget` bytes (to the test planner: stage `memory_budget − 1`).
pub fn pool_record(memory_budget: u64) -> Action {
    Action::Pool {
        memory_budget,
        work_per_sec: 1_000,
    }
}

/// Why a block's transaction was refused; panics on any other block error.
pub fn refusal(err: BlockError) -> Refused {
    match err {
        BlockError::Transaction { reason, .. } => reason,
        other => panic!("expected a refused transaction, got {other}"),
    }
}

pub fn key(i: u8) -> Keypair {
    Keypair::from_seed([i; 32])
}

pub fn id(i: u8) -> NodeId {
    key(i).node_id()
}

/// The ids of accounts `accounts`, sorted (the order of the roll, and of the test planner's
/// replicas).
pub fn ids(accounts: &[u8]) -> Vec<NodeId> {
    let mut ids: Vec<NodeId> = accounts.iter().map(|i| id(*i)).collect();
    ids.sort();
    ids
}

pub const NETWORK: Hash = Hash([42; 32]);

/// A ledger at genesis with committee {1, 2} and 1 000 NEURO to each of 1..=6, plus the clock.
pub struct Chain {
    pub ledger: Ledger<TestWork>,
    pub state: State,
    pub nonces: std::collections::BTreeMap<u8, u64>,
    pub time_ms: u64,
}

impl Chain {
    pub fn new(rules: Rules) -> Self {
        let genesis = LedgerGenesis {
            network: NETWORK,
            committee: vec![id(1), id(2)],
            allocations: (1..=6).map(|i| (id(i), 1_000 * NEURO)).collect(),
            rules,
        };
        let state = genesis.state().unwrap();
        Self {
            ledger: Ledger::new(rules, TestWork).unwrap(),
            state,
            nonces: Default::default(),
            time_ms: 1_000,
        }
    }

    /// A transaction from account `i` with its next nonce.
    pub fn tx(&mut self, i: u8, action: Action) -> Vec<u8> {
        let nonce = self.nonces.entry(i).or_default();
        let tx = Tx {
            network: NETWORK,
            nonce: *nonce,
            action,
        };
        *nonce += 1;
        SignedTx::sign(&key(i), tx).bytes
    }

    pub fn info(&self, after_ms: u64) -> BlockInfo {
        BlockInfo {
            height: self.state.meta.height + 1,
            time_ms: self.time_ms + after_ms,
            proposer: if self.state.meta.committee.contains(&id(1)) {
                id(1)
            } else {
                self.state.meta.committee[0]
            },
        }
    }

    /// Applies a block of `txs` `after_ms` after the last; checks the supply invariant after it,
    /// or, when it is refused, that it changed nothing (its nonces are free again).
    pub fn block(&mut self, after_ms: u64, txs: Vec<Vec<u8>>) -> Result<Receipt, BlockError> {
        let info = self.info(after_ms);
        let body = Body { txs }.encode();
        let before = self.state.clone();
        let receipt = match self.ledger.execute(&mut self.state, &info, &body) {
            Ok(receipt) => receipt,
            Err(err) => {
                assert_eq!(
                    self.state, before,
                    "a refused block left the state untouched"
                );
                for (i, nonce) in self.nonces.iter_mut() {
                    *nonce = self.state.account(&id(*i)).nonce;
                }
                return Err(err);
            }
        };
        self.time_ms = info.time_ms;
        assert_eq!(
            self.state.holdings(),
            self.state.meta.supply.expected(),
            "supply"
        );
        Ok(receipt)
    }

    /// Applies a block that must be refused.
    pub fn refused(&mut self, txs: Vec<Vec<u8>>) -> BlockError {
        self.block(1, txs).expect_err("the block must be refused")
    }

    pub fn ticket(&self, auditor: u8, round: Round, claim: &Claim) -> Vec<u8> {
        key(auditor)
            .sign(TICKET, &ticket_payload(round, claim))
            .signature
    }

    pub fn evidence(&self, contributor: u8, round: Round, delta: Hash, root: Hash) -> Vec<u8> {
        let signed = key(contributor).sign(ANNOUNCE, &evidence_payload(round, delta, root));
        postcard::to_allocvec(&signed).unwrap()
    }

    /// Applies empty blocks until a plan boundary makes the ledger's first plan (at most three
    /// boundaries), and returns it.
    pub fn run_to_plan(&mut self) -> PlanRecord {
        for _ in 0..3 * self.ledger.rules().pool_blocks {
            if let Some(plan) = self.state.plan() {
                return plan.clone();
            }
            self.block(1, vec![]).unwrap();
        }
        panic!("no plan after three boundaries");
    }

    pub fn claim_action(round: Round, i: u8) -> Action {
        Self::stage_claim_action(round, i, Part::WHOLE)
    }

    /// `i`'s claim for `round`'s work on `part`.
    pub fn stage_claim_action(round: Round, i: u8, part: Part) -> Action {
        let claim = Self::stage_claim_of(i, part);
        Action::Claim {
            round,
            delta: claim.delta,
            root: claim.root,
            part,
        }
    }

    pub fn claim_of(i: u8) -> Claim {
        Self::stage_claim_of(i, Part::WHOLE)
    }

    /// The claim [`Self::stage_claim_action`] puts on the ledger.
    pub fn stage_claim_of(i: u8, part: Part) -> Claim {
        Claim {
            contributor: id(i),
            delta: Hash([i; 32]),
            root: Hash([i + 100; 32]),
            part,
        }
    }
}
