//! Hostile transactions and blocks against the ledger's state transition: the raw bytes as a
//! transaction and as a block body, and as a block of correctly signed transactions whose
//! actions are decoded from the input (so the rules, not just the decoders, see hostile
//! amounts, rounds and evidence). Nothing panics, a refused block leaves the state untouched,
//! and an applied one keeps the supply invariant.

#![no_main]

use libfuzzer_sys::fuzz_target;
use neuroshard_ledger::{Action, BlockInfo, Body, Ledger, LedgerGenesis, Rules, SignedTx, State, Tx};
use neuroshard_node::WorkChecks;
use neuroshard_primitives::{Hash, Keypair};
use neuroshard_verify::AuditConfig;

const NETWORK: Hash = Hash([7; 32]);

fuzz_target!(|data: &[u8]| {
    let _ = SignedTx::decode(data);
    let keys: Vec<Keypair> = (1..=3u8).map(|i| Keypair::from_seed([i; 32])).collect();
    let committee: Vec<_> = keys.iter().map(Keypair::node_id).collect();
    let genesis = LedgerGenesis {
        network: NETWORK,
        committee: committee.clone(),
        allocations: committee.iter().map(|id| (*id, 1_000)).collect(),
        rules: Rules::DEFAULT,
    };
    let state: State = genesis.state().unwrap();
    let ledger = Ledger::new(genesis.rules, WorkChecks::new(AuditConfig::DEFAULT)).unwrap();
    let info = BlockInfo {
        height: 1,
        time_ms: 1,
        proposer: committee[0],
    };
    apply(&ledger, state.clone(), &info, data);
    apply(&ledger, state, &info, &Body { txs: signed(&keys, data) }.encode());
});

/// Chunks of `[len, signer, nonce, action bytes…]` as signed transactions.
fn signed(keys: &[Keypair], mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut txs = Vec::new();
    while let [len, signer, nonce, rest @ ..] = data {
        let take = (*len as usize).min(rest.len());
        if let Ok(action) = postcard::from_bytes::<Action>(&rest[..take]) {
            let tx = Tx { network: NETWORK, nonce: u64::from(*nonce % 3), action };
            txs.push(SignedTx::sign(&keys[*signer as usize % keys.len()], tx).bytes);
        }
        data = &rest[take..];
    }
    txs
}

fn apply(ledger: &Ledger<WorkChecks>, mut state: State, info: &BlockInfo, body: &[u8]) {
    let before = state.clone();
    match ledger.execute(&mut state, info, body) {
        Ok(_) => assert_eq!(state.holdings(), state.meta.supply.expected()),
        Err(_) => assert_eq!(state, before),
    }
}
