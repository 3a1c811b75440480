//! The ledger's first state and rules, from the genesis file's committee, allocations and
//! settings.

use neuroshard_primitives::{Hash, NodeId};

use crate::state::{Meta, State, Supply};
use crate::{Amount, Rules};

/// What the genesis file says about the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerGenesis {
    /// The network id.
    pub network: Hash,
    /// Epoch 0's validators; each starts with `Rules::validator_bond` staked.
    pub committee: Vec<NodeId>,
    /// Spendable balances at genesis.
    pub allocations: Vec<(NodeId, Amount)>,
    /// The rules every replica applies (`Rules::DEFAULT` with the genesis file's settings).
    pub rules: Rules,
}

impl LedgerGenesis {
    /// The state before the first block; an error if the committee is empty or the totals
    /// overflow.
    pub fn state(&self) -> Result<State, String> {
        let rules = &self.rules;
        let mut committee = self.committee.clone();
        committee.sort();
        committee.dedup();
        if committee.is_empty() {
            return Err("the genesis committee is empty".into());
        }
        let mut state = State {
            meta: Meta {
                network: self.network,
                committee: committee.clone(),
                next_committee: committee.clone(),
                ..Meta::default()
            },
            ..State::default()
        };
        let mut total: Amount = 0;
        let bonds = committee.iter().map(|id| (id, rules.validator_bond, true));
        let grants = self.allocations.iter().map(|(id, a)| (id, *a, false));
        for (id, amount, bonded) in bonds.chain(grants) {
            total = total
                .checked_add(amount)
                .ok_or("the genesis allocations overflow")?;
            let account = state.accounts.entry(*id).or_default();
            let slot = if bonded {
                &mut account.stake
            } else {
                &mut account.balance
            };
            *slot += amount;
        }
        state.meta.supply = Supply {
            genesis: total,
            ..Supply::default()
        };
        Ok(state)
    }
}
