//! An account's outgoing transactions: signed with consecutive nonces from the ledger's, and
//! signed again when the ledger has not taken them (a proposer dropped one, another transaction
//! of the same key took its nonce, a node restarted), so one lost transaction never blocks the
//! ones after it. An action is done only when a block applied the very transaction signed for it.

use std::collections::VecDeque;

use neuroshard_primitives::{Hash, Keypair};

use crate::{Action, BlockInfo, Ledger, Receipt, SignedTx, State, Tx, Work};

/// The actions an account wants on the ledger and not yet seen there.
#[derive(Debug)]
pub struct Outbox {
    key: Keypair,
    network: Hash,
    /// Unconfirmed actions, with the id of the transaction last signed for each.
    waiting: VecDeque<(Option<Hash>, Action)>,
}

impl Outbox {
    /// An empty outbox signing with `key` for `network`.
    pub fn new(key: Keypair, network: Hash) -> Self {
        Self {
            key,
            network,
            waiting: VecDeque::new(),
        }
    }

    /// Queues `action`; it is signed by the next [`Outbox::sign`].
    pub fn push(&mut self, action: Action) {
        self.waiting.push_back((None, action));
    }

    /// How many actions wait for the ledger.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting actions, oldest first, with the id of the transaction last signed for each.
    pub fn waiting(&self) -> impl Iterator<Item = (Option<Hash>, &Action)> {
        self.waiting.iter().map(|(id, action)| (*id, action))
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A block applied the transactions `txs` (ids): the actions they carried are done.
    pub fn applied(&mut self, receipt: &Receipt) {
        let applied: Vec<Hash> = receipt.txs.iter().map(SignedTx::id).collect();
        self.waiting
            .retain(|(id, _)| id.is_none_or(|id| !applied.contains(&id)));
    }

    /// Signs every waiting action from the ledger's next nonce in `state`, in order, dropping
    /// any that would no longer apply (a claim for a round that closed meanwhile). Returns the
    /// transactions to submit (the same bytes again for an unchanged action and nonce:
    /// signatures are deterministic, so a mempool sees duplicates as one).
    pub fn sign<W: Work>(&mut self, ledger: &Ledger<W>, state: &State) -> Vec<Vec<u8>> {
        let signer = self.key.node_id();
        let mut nonce = state.account(&signer).nonce;
        let mut scratch = state.clone();
        let info = BlockInfo {
            height: state.meta.height.saturating_add(1),
            time_ms: state.meta.time_ms,
            proposer: signer,
        };
        let mut signed = Vec::new();
        let mut kept = VecDeque::new();
        for (_, action) in self.waiting.drain(..) {
            let tx = SignedTx::sign(
                &self.key,
                Tx {
                    network: self.network,
                    nonce,
                    action: action.clone(),
                },
            );
            if ledger
                .apply_tx(&mut scratch, &info, &tx, &mut Receipt::default())
                .is_ok()
            {
                kept.push_back((Some(tx.id()), action));
                signed.push(tx.bytes);
                nonce += 1;
            }
        }
        self.waiting = kept;
        signed
    }
}
