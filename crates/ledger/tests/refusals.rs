//! Hostile and mistaken transactions and blocks: each is refused with a clear error and leaves
//! the state untouched.

mod support;

use neuroshard_ledger::{
    Action, BlockError, Body, MAX_TX_BYTES, NEURO, Part, Refused, Rules, SignedTx, Tx,
};
use neuroshard_primitives::{Hash, Signed};
use support::{Chain, id, key, refusal};

#[test]
fn a_replayed_transaction_is_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let pay = chain.tx(
        3,
        Action::Transfer {
            to: id(4),
            amount: NEURO,
        },
    );
    chain.block(1, vec![pay.clone()]).unwrap();
    let err = refusal(chain.refused(vec![pay]));
    assert_eq!(
        err,
        Refused::BadNonce {
            expected: 1,
            got: 0
        }
    );
}

#[test]
fn a_forged_signature_is_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let bytes = chain.tx(
        3,
        Action::Transfer {
            to: id(4),
            amount: NEURO,
        },
    );
    let mut signed: Signed = postcard::from_bytes(&bytes).unwrap();
    // Claim the transaction came from account 5 instead.
    signed.signer = id(5);
    let forged = postcard::to_allocvec(&signed).unwrap();
    assert_eq!(
        refusal(chain.refused(vec![forged])),
        Refused::BadSignature(id(5))
    );
}

#[test]
fn a_transaction_for_another_network_is_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let tx = Tx {
        network: Hash([7; 32]),
        nonce: 0,
        action: Action::Stake { amount: NEURO },
    };
    let bytes = SignedTx::sign(&key(3), tx).bytes;
    assert_eq!(refusal(chain.refused(vec![bytes])), Refused::WrongNetwork);
}

#[test]
fn overdrafts_and_overflows_are_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let too_much = chain.tx(
        3,
        Action::Transfer {
            to: id(4),
            amount: 1_001 * NEURO,
        },
    );
    assert!(matches!(
        refusal(chain.refused(vec![too_much])),
        Refused::Overdraft { .. }
    ));

    let mut chain = Chain::new(Rules::DEFAULT);
    let stake_too_much = chain.tx(3, Action::Stake { amount: u64::MAX });
    assert!(matches!(
        refusal(chain.refused(vec![stake_too_much])),
        Refused::Overdraft { .. }
    ));

    // Account 4's balance plus a transfer would overflow: give 4 almost u64::MAX first.
    let mut chain = Chain::new(Rules::DEFAULT);
    chain.state.accounts.get_mut(&id(4)).unwrap().balance = u64::MAX - 10;
    let overflow = chain.tx(
        3,
        Action::Transfer {
            to: id(4),
            amount: NEURO,
        },
    );
    assert_eq!(refusal(chain.refused(vec![overflow])), Refused::Overflow);

    let mut chain = Chain::new(Rules::DEFAULT);
    let zero = chain.tx(
        3,
        Action::Transfer {
            to: id(4),
            amount: 0,
        },
    );
    assert_eq!(refusal(chain.refused(vec![zero])), Refused::ZeroAmount);
}

#[test]
fn an_unbond_before_its_delay_is_refused_and_released_after() {
    let rules = Rules {
        unbonding_blocks: 4,
        epoch_blocks: 2,
        ..Rules::DEFAULT
    };
    let mut chain = Chain::new(rules);
    let stake = chain.tx(3, Action::Stake { amount: 10 * NEURO });
    let unstake = chain.tx(3, Action::Unstake { amount: 4 * NEURO });
    chain.block(1, vec![stake, unstake]).unwrap(); // height 1: released at 5
    let early = chain.tx(3, Action::Withdraw);
    let err = refusal(chain.refused(vec![early]));
    assert_eq!(
        err,
        Refused::StillBonded {
            release: 5,
            height: 2
        }
    );
    for _ in 2..=4 {
        chain.block(1, vec![]).unwrap();
    }
    let withdraw = chain.tx(3, Action::Withdraw);
    chain.block(1, vec![withdraw]).unwrap(); // 5: released
    let account = chain.state.account(&id(3));
    assert_eq!(account.balance, 994 * NEURO);
    assert_eq!(account.stake, 6 * NEURO);
    assert!(account.unbonding.is_empty());
    let nothing = chain.tx(3, Action::Withdraw);
    assert_eq!(
        refusal(chain.refused(vec![nothing])),
        Refused::NothingUnbonding
    );
}

#[test]
fn a_slash_needs_valid_evidence_and_a_quorum_of_bonded_accusers() {
    let mut chain = Chain::new(Rules::DEFAULT);
    // Round 0: 3 and 4 claim; bond 5 and 6 as accusers.
    let txs = vec![
        chain.tx(3, Chain::claim_action(0, 3)),
        chain.tx(4, Chain::claim_action(0, 4)),
        chain.tx(5, Action::Stake { amount: 10 * NEURO }),
        chain.tx(6, Action::Stake { amount: 10 * NEURO }),
    ];
    chain.block(1, txs).unwrap();
    chain.block(Rules::DEFAULT.claim_window_ms, vec![]).unwrap(); // closes round 0
    chain.state.accounts.get_mut(&id(3)).unwrap().stake = 0;
    let stake = chain.tx(
        3,
        Action::Stake {
            amount: 100 * NEURO,
        },
    );
    chain.block(1, vec![stake]).unwrap();

    // Evidence signed by someone else, or for another Δ: refused.
    let claim = Chain::claim_of(3);
    let forged = chain.evidence(4, 0, claim.delta, claim.root);
    let convict = chain.tx(
        5,
        Action::Convict {
            round: 0,
            contributor: id(3),
            evidence: forged,
        },
    );
    assert!(matches!(
        refusal(chain.refused(vec![convict])),
        Refused::BadConviction(_)
    ));
    let other_delta = chain.evidence(3, 0, Hash([9; 32]), claim.root);
    let convict = chain.tx(
        5,
        Action::Convict {
            round: 0,
            contributor: id(3),
            evidence: other_delta,
        },
    );
    let err = refusal(chain.refused(vec![convict]));
    assert!(matches!(err, Refused::BadConviction(_)), "{err}");

    // An accuser without a bond: refused.
    let evidence = chain.evidence(3, 0, claim.delta, claim.root);
    // Account 4 has no bond.
    let convict = chain.tx(
        4,
        Action::Convict {
            round: 0,
            contributor: id(3),
            evidence: evidence.clone(),
        },
    );
    assert!(matches!(
        refusal(chain.refused(vec![convict])),
        Refused::BadConviction(_)
    ));

    // One valid accuser: recorded, nobody slashed.
    let first = chain.tx(
        5,
        Action::Convict {
            round: 0,
            contributor: id(3),
            evidence: evidence.clone(),
        },
    );
    let receipt = chain.block(1, vec![first]).unwrap();
    assert!(receipt.slashed.is_empty());
    assert_eq!(chain.state.account(&id(3)).stake, 100 * NEURO);
    // The same accuser again: refused.
    let again = chain.tx(
        5,
        Action::Convict {
            round: 0,
            contributor: id(3),
            evidence: evidence.clone(),
        },
    );
    assert!(matches!(
        refusal(chain.refused(vec![again])),
        Refused::BadConviction(_)
    ));
    // A second, distinct bonded accuser: slashed.
    let second = chain.tx(
        6,
        Action::Convict {
            round: 0,
            contributor: id(3),
            evidence,
        },
    );
    let receipt = chain.block(1, vec![second]).unwrap();
    assert_eq!(receipt.slashed, vec![(id(3), 50 * NEURO)]);
}

#[test]
fn oversized_and_malformed_transactions_and_blocks_are_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let huge = vec![0u8; MAX_TX_BYTES + 1];
    assert!(matches!(
        refusal(chain.refused(vec![huge])),
        Refused::Malformed(_)
    ));
    assert!(matches!(
        refusal(chain.refused(vec![vec![0xff; 40]])),
        Refused::Malformed(_)
    ));

    let before = chain.state.clone();
    let info = chain.info(1);
    let garbage = [0xffu8; 64];
    let err = chain
        .ledger
        .execute(&mut chain.state, &info, &garbage)
        .unwrap_err();
    assert!(matches!(err, BlockError::Malformed(_)), "{err}");
    let many = Body {
        txs: vec![Vec::new(); Rules::DEFAULT.max_block_txs + 1],
    };
    let err = chain
        .ledger
        .execute(&mut chain.state, &info, &many.encode())
        .unwrap_err();
    assert!(matches!(err, BlockError::Malformed(_)), "{err}");
    assert_eq!(chain.state, before);
}

#[test]
fn a_bad_header_is_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    chain.block(5, vec![]).unwrap();
    let before = chain.state.clone();
    let body = Body::default().encode();
    let mut info = chain.info(1);
    info.height += 1;
    assert!(matches!(
        chain.ledger.execute(&mut chain.state, &info, &body),
        Err(BlockError::BadHeader(_))
    ));
    let mut info = chain.info(0);
    info.time_ms -= 1;
    assert!(matches!(
        chain.ledger.execute(&mut chain.state, &info, &body),
        Err(BlockError::BadHeader(_))
    ));
    let mut info = chain.info(1);
    info.proposer = id(6);
    assert!(matches!(
        chain.ledger.execute(&mut chain.state, &info, &body),
        Err(BlockError::BadHeader(_))
    ));
    assert_eq!(chain.state, before);
}

#[test]
fn a_claim_outside_the_open_round_and_a_second_claim_are_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let ahead = chain.tx(3, Chain::claim_action(1, 3));
    assert_eq!(
        refusal(chain.refused(vec![ahead])),
        Refused::RoundNotOpen { open: 0, got: 1 }
    );
    let first = chain.tx(3, Chain::claim_action(0, 3));
    chain.block(1, vec![first]).unwrap();
    let second = chain.tx(3, Chain::claim_action(0, 3));
    assert_eq!(
        refusal(chain.refused(vec![second])),
        Refused::DuplicateClaim(0)
    );
    for part in [
        Part {
            stage: 2,
            stages: 2,
        },
        Part {
            stage: 0,
            stages: 0,
        },
    ] {
        let outside = chain.tx(4, Chain::stage_claim_action(0, 4, part));
        assert_eq!(
            refusal(chain.refused(vec![outside])),
            Refused::BadPart(part)
        );
    }
}

#[test]
fn a_registration_needs_a_bond_and_a_dialable_new_address() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let at = |ip: [u8; 4], port| Action::Register {
        consensus: std::net::SocketAddr::from((ip, port)),
    };
    let unbonded = chain.tx(3, at([127, 0, 0, 1], 9000));
    assert!(matches!(
        refusal(chain.refused(vec![unbonded])),
        Refused::BadRegistration(why) if why.contains("below the validator bond")
    ));
    for bad in [at([0, 0, 0, 0], 9000), at([127, 0, 0, 1], 0)] {
        let tx = chain.tx(1, bad);
        assert!(matches!(
            refusal(chain.refused(vec![tx])),
            Refused::BadRegistration(why) if why.contains("no specific IP")
        ));
    }
    let first = chain.tx(1, at([127, 0, 0, 1], 9000));
    chain.block(1, vec![first]).unwrap();
    let again = chain.tx(1, at([127, 0, 0, 1], 9000));
    assert!(matches!(
        refusal(chain.refused(vec![again])),
        Refused::BadRegistration(why) if why.contains("already registered")
    ));
    let moved = chain.tx(1, at([127, 0, 0, 1], 9001));
    chain.block(1, vec![moved]).unwrap();
    assert_eq!(
        chain.state.meta.addresses[&id(1)],
        std::net::SocketAddr::from(([127, 0, 0, 1], 9001))
    );
}

#[test]
fn rules_refuse_an_epoch_of_one_block_and_an_unbonding_shorter_than_two_epochs() {
    let one = Rules {
        epoch_blocks: 1,
        ..Rules::DEFAULT
    };
    assert!(one.validate().is_err());
    let short = Rules {
        unbonding_blocks: 2 * Rules::DEFAULT.epoch_blocks - 1,
        ..Rules::DEFAULT
    };
    assert!(short.validate().is_err());
    assert!(Rules::DEFAULT.validate().is_ok());
}
