//! The outbox signs from the ledger's nonce, signs again what the ledger did not take, and
//! drops what no longer applies.

mod support;

use neuroshard_ledger::{Action, NEURO, Outbox, Rules};
use support::{Chain, NETWORK, id, key};

#[test]
fn lost_transactions_are_signed_again_and_stale_ones_dropped() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let mut outbox = Outbox::new(key(3), NETWORK);
    for amount in [1, 2, 3] {
        outbox.push(Action::Transfer {
            to: id(4),
            amount: amount * NEURO,
        });
    }
    outbox.push(Action::Transfer {
        to: id(4),
        amount: 10_000 * NEURO,
    });
    let first = outbox.sign(&chain.ledger, &chain.state);
    assert_eq!(first.len(), 3, "the overdraft is dropped");
    assert_eq!(outbox.len(), 3);

    // The proposer took only the first; the others come back with the same bytes.
    let receipt = chain.block(1, vec![first[0].clone()]).unwrap();
    outbox.applied(&receipt);
    let again = outbox.sign(&chain.ledger, &chain.state);
    assert_eq!(again, first[1..].to_vec());

    // Another transaction of the same key takes the next nonce: the waiting ones are signed
    // again after it, not mistaken for done.
    chain.nonces.insert(3, chain.state.account(&id(3)).nonce);
    let other = chain.tx(3, Action::Stake { amount: NEURO });
    let receipt = chain.block(1, vec![other]).unwrap();
    outbox.applied(&receipt);
    let moved = outbox.sign(&chain.ledger, &chain.state);
    assert_eq!(moved.len(), 2);
    assert_ne!(moved, again);

    // Both land: nothing waits any more.
    let receipt = chain.block(1, moved).unwrap();
    outbox.applied(&receipt);
    assert!(outbox.sign(&chain.ledger, &chain.state).is_empty());
    assert!(outbox.is_empty());
    assert_eq!(chain.state.account(&id(4)).balance, 1_006 * NEURO);

    // A claim for a round that closed, and the round after it too, before it landed (too late
    // even to be noted as late) is dropped, and the next action takes its nonce.
    outbox.push(Chain::claim_action(0, 3));
    let claim = outbox.sign(&chain.ledger, &chain.state);
    let other = chain.tx(5, Chain::claim_action(0, 5));
    chain.block(1, vec![other]).unwrap();
    chain.block(Rules::DEFAULT.claim_window_ms, vec![]).unwrap();
    let other = chain.tx(5, Chain::claim_action(1, 5));
    let closes = chain.block(1, vec![other]).unwrap();
    assert_eq!(closes.closed.map(|(r, _)| r), Some(1));
    outbox.push(Action::Stake { amount: NEURO });
    let next = outbox.sign(&chain.ledger, &chain.state);
    assert_eq!(next.len(), 1);
    assert_ne!(next, claim);
    outbox.applied(&chain.block(1, next).unwrap());
    assert!(outbox.is_empty());
    assert_eq!(chain.state.account(&id(3)).stake, 2 * NEURO);
}
