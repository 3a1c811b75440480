//! The worked examples of `docs/economics.md`, checked number for number.

mod support;

use neuroshard_ledger::{Action, NEURO, Part, Refused, Rules, Unbond, inclusion_list};
use support::{Chain, id};

/// "Settling a round": three trainers, three verdicts; round 0 pays when round 2 closes.
#[test]
fn a_round_pays_its_verified_trainers_and_its_verifiers() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let window = Rules::DEFAULT.claim_window_ms;
    // Round 0: A = 3, B = 4, C = 5 claim; the window closes it.
    let claims = (3..=5)
        .map(|i| chain.tx(i, Chain::claim_action(0, i)))
        .collect();
    chain.block(1, claims).unwrap();
    let receipt = chain.block(window, vec![]).unwrap();
    let (round, list) = receipt
        .closed
        .expect("round 0 closes when its window has passed");
    assert_eq!(round, 0);
    assert_eq!(
        list.iter().map(|c| c.contributor).collect::<Vec<_>>(),
        vec![id(3), id(4), id(5)]
    );

    // B and C pass A (gains +500 and +300 µnats); A passes B, whose Δ alone hurt (−200).
    let (a, b) = (Chain::claim_of(3), Chain::claim_of(4));
    let verdicts = vec![(4, 3, &a, 500), (5, 3, &a, 300), (3, 4, &b, -200)]
        .into_iter()
        .map(|(auditor, contributor, claim, gain)| {
            let ticket = chain.ticket(auditor, 0, claim);
            chain.tx(
                auditor,
                Action::Verdict {
                    round: 0,
                    contributor: id(contributor),
                    ticket,
                    passed: true,
                    gain,
                },
            )
        })
        .collect();
    chain.block(1, verdicts).unwrap();

    // Rounds 1 and 2: everyone claims again, which closes each round at once (early close).
    for round in 1..=2 {
        let claims = (3..=5)
            .map(|i| chain.tx(i, Chain::claim_action(round, i)))
            .collect();
        let receipt = chain.block(1, claims).unwrap();
        assert_eq!(
            receipt.closed.map(|(r, _)| r),
            Some(round),
            "everyone claimed"
        );
        if round == 2 {
            let payout = &receipt.settled[0];
            assert_eq!(payout.round, 0);
            assert_eq!(payout.rewards[&id(3)], 53_333_333 + 6_666_666);
            assert_eq!(payout.rewards[&id(4)], 26_666_666 + 6_666_666);
            assert_eq!(payout.rewards[&id(5)], 6_666_666);
            assert_eq!(payout.rewards.values().sum::<u64>(), 99_999_997);
        }
    }
    assert_eq!(chain.state.account(&id(3)).stake, 59_999_999);
}

/// "Rounds on the ledger": a claim for the round just closed is late, not listed and not paid;
/// the next round waits for its claimant before it closes early.
#[test]
fn a_late_claimant_is_waited_for_in_the_next_round() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let claims = [3, 4]
        .map(|i| chain.tx(i, Chain::claim_action(0, i)))
        .to_vec();
    chain.block(1, claims).unwrap();
    chain.block(Rules::DEFAULT.claim_window_ms, vec![]).unwrap();
    let late = chain.tx(5, Chain::claim_action(0, 5));
    let receipt = chain.block(1, vec![late]).unwrap();
    assert_eq!(receipt.closed, None);
    let book = &chain.state.meta.rounds[&0];
    assert!(book.claim_of(&id(5)).is_none() && book.late.contains(&id(5)));
    let again = chain.tx(5, Chain::claim_action(0, 5));
    assert_eq!(
        support::refusal(chain.refused(vec![again])),
        Refused::DuplicateClaim(0)
    );
    let listed = chain.tx(3, Chain::claim_action(0, 3));
    assert_eq!(
        support::refusal(chain.refused(vec![listed])),
        Refused::DuplicateClaim(0)
    );

    // Round 1: 3 and 4, round 0's contributors, have claimed; it waits for 5.
    let claims = [3, 4]
        .map(|i| chain.tx(i, Chain::claim_action(1, i)))
        .to_vec();
    assert_eq!(chain.block(1, claims).unwrap().closed, None, "5 is awaited");
    let on_time = chain.tx(5, Chain::claim_action(1, 5));
    let (round, list) = chain
        .block(1, vec![on_time])
        .unwrap()
        .closed
        .expect("all in");
    assert_eq!((round, list.len()), (1, 3));
    let stale = chain.tx(6, Chain::claim_action(0, 6));
    assert_eq!(
        support::refusal(chain.refused(vec![stale])),
        Refused::RoundNotOpen { open: 2, got: 0 }
    );
}

/// "Stage work": the ledger's plan puts 3 and 4 on stage 0 of 2, 5, 6 and 7 on stage 1; they
/// claim in one round, each stage's claims are its list, its replicas audit each other, and
/// every verified claim weighs the same. 8 and 9, on no stage, claim a part of their making
/// and pass each other: listed, recorded, and paid nothing.
#[test]
fn a_round_of_stage_work_lists_and_pays_each_stage() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let (first, last) = (
        Part {
            stage: 0,
            stages: 2,
        },
        Part {
            stage: 1,
            stages: 2,
        },
    );
    let made_up = Part {
        stage: 0,
        stages: 3,
    };
    // The test planner reads the stage from the budget: 1 is stage 0, 2 is stage 1.
    let records = [(3, 1), (4, 1), (5, 2), (6, 2), (7, 2)]
        .map(|(i, budget)| chain.tx(i, support::pool_record(budget)));
    chain.block(1, records.to_vec()).unwrap();
    let plan = chain.run_to_plan();
    assert_eq!(
        plan.from_round, 0,
        "the first plan covers the rounds before it"
    );
    let holders: Vec<_> = (plan.plan.stages.iter())
        .map(|s| s.replicas.clone())
        .collect();
    assert_eq!(holders, [support::ids(&[3, 4]), support::ids(&[5, 6, 7])]);

    let parts = [
        (3, first),
        (4, first),
        (5, last),
        (6, last),
        (7, last),
        (8, made_up),
        (9, made_up),
    ];
    let claim_all = |chain: &mut Chain, round| {
        let txs = (parts.iter())
            .map(|&(i, part)| chain.tx(i, Chain::stage_claim_action(round, i, part)))
            .collect();
        chain.block(1, txs).unwrap()
    };
    let round = chain.state.meta.open_round;
    claim_all(&mut chain, round);
    let receipt = chain.block(Rules::DEFAULT.claim_window_ms, vec![]).unwrap();
    let (_, claims) = receipt.closed.expect("the round closes");
    let listed = |part| -> Vec<_> {
        (inclusion_list(&claims, part).into_iter())
            .map(|(c, _)| c)
            .collect()
    };
    assert_eq!(listed(first), vec![id(3), id(4)]);
    assert_eq!(listed(last), vec![id(5), id(6), id(7)]);
    assert_eq!(listed(made_up), vec![id(8), id(9)]);
    assert_eq!(listed(Part::WHOLE), vec![]);

    // Each stage's replicas pass each other, and so do 8 and 9; nobody audits 7.
    let verdict = |chain: &mut Chain, auditor: u8, contributor: u8, part| {
        let ticket = chain.ticket(auditor, round, &Chain::stage_claim_of(contributor, part));
        let action = Action::Verdict {
            round,
            contributor: id(contributor),
            ticket,
            passed: true,
            gain: 0,
        };
        chain.tx(auditor, action)
    };
    let verdicts = [
        (4, 3, first),
        (3, 4, first),
        (6, 5, last),
        (5, 6, last),
        (9, 8, made_up),
        (8, 9, made_up),
    ]
    .map(|(auditor, contributor, part)| verdict(&mut chain, auditor, contributor, part));
    chain.block(1, verdicts.to_vec()).unwrap();

    claim_all(&mut chain, round + 1);
    let receipt = claim_all(&mut chain, round + 2);
    let payout = &receipt.settled[0];
    assert_eq!(payout.round, round);
    // 80 NEURO over four verified claims, 20 NEURO over four verdicts: 8 and 9's count for
    // nothing, as the plan has them train no part.
    for i in 3..=6 {
        assert_eq!(payout.rewards[&id(i)], 20 * NEURO + 5 * NEURO, "{i}");
    }
    for i in [7, 8, 9] {
        assert!(!payout.rewards.contains_key(&id(i)), "{i}");
    }
}

/// "Validators": 0.1 NEURO per second of block time to the proposer, gaps capped at 10 s.
#[test]
fn the_proposer_earns_for_block_time() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let first = chain.block(5_000, vec![]).unwrap();
    assert_eq!(
        first.proposer_reward, 0,
        "the first block has no previous block"
    );
    let bond = Rules::DEFAULT.validator_bond;
    assert_eq!(chain.block(2_000, vec![]).unwrap().proposer_reward, 200_000);
    assert_eq!(chain.block(60_000, vec![]).unwrap().proposer_reward, NEURO);
    assert_eq!(chain.state.account(&id(1)).stake, bond + 1_200_000);
}

/// "Slashing": 100 bonded + 20 unbonding; half is taken, a tenth of that to the first accuser.
#[test]
fn a_slash_takes_half_the_stake_and_pays_the_prover_a_tenth() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let txs = vec![
        chain.tx(3, Chain::claim_action(0, 3)),
        chain.tx(
            3,
            Action::Stake {
                amount: 120 * NEURO,
            },
        ),
        chain.tx(3, Action::Unstake { amount: 20 * NEURO }),
        chain.tx(5, Action::Stake { amount: 10 * NEURO }),
        chain.tx(6, Action::Stake { amount: 10 * NEURO }),
    ];
    chain.block(1, txs).unwrap();
    chain.block(Rules::DEFAULT.claim_window_ms, vec![]).unwrap();
    let claim = Chain::claim_of(3);
    let evidence = chain.evidence(3, 0, claim.delta, claim.root);
    let convictions = [5, 6]
        .into_iter()
        .map(|i| {
            let action = Action::Convict {
                round: 0,
                contributor: id(3),
                evidence: evidence.clone(),
            };
            chain.tx(i, action)
        })
        .collect();
    let burned_before = chain.state.meta.supply.burned;
    let receipt = chain.block(1, convictions).unwrap();
    assert_eq!(receipt.slashed, vec![(id(3), 60 * NEURO)]);
    let accused = chain.state.account(&id(3));
    assert_eq!(accused.stake, 40 * NEURO);
    assert_eq!(
        accused.unbonding,
        vec![Unbond {
            amount: 20 * NEURO,
            release: 1 + Rules::DEFAULT.unbonding_blocks
        }]
    );
    assert_eq!(chain.state.account(&id(5)).stake, 16 * NEURO);
    assert_eq!(chain.state.meta.supply.burned - burned_before, 54 * NEURO);
}

/// "The committee": the top registered stakers at or above the bond, chosen a full epoch ahead.
#[test]
fn the_committee_follows_stake_with_an_epoch_of_notice() {
    let rules = Rules {
        epoch_blocks: 2,
        committee_size: 2,
        ..Rules::DEFAULT
    };
    let mut chain = Chain::new(rules);
    let bond = rules.validator_bond;
    let at = |port| Action::Register {
        consensus: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    };
    // Account 3 bonds the validator bond and registers; validator 1 registers; validator 2
    // unbonds its own; account 4 bonds more than anyone but never registers an address.
    let txs = vec![
        chain.tx(3, Action::Stake { amount: bond }),
        chain.tx(3, at(9003)),
        chain.tx(1, at(9001)),
        chain.tx(2, Action::Unstake { amount: bond }),
        chain.tx(4, Action::Stake { amount: bond }),
    ];
    chain.block(1, txs).unwrap(); // height 1, the last of epoch 0: {1, 3} elected for epoch 2
    let sorted = |mut ids: Vec<_>| {
        ids.sort();
        ids
    };
    let next = sorted(vec![id(1), id(3)]);
    assert_eq!(chain.state.meta.committee, sorted(vec![id(1), id(2)]));
    assert_eq!(chain.state.meta.next_committee, next);
    assert_eq!(rules.epoch_of(2), 1);
    chain.block(1, vec![]).unwrap(); // 2: epoch 1 runs with the genesis committee
    assert_eq!(chain.state.meta.committee, sorted(vec![id(1), id(2)]));
    chain.block(1, vec![]).unwrap(); // 3, the last of epoch 1: the elected committee takes over
    assert_eq!(chain.state.meta.committee, next);
    assert_eq!(chain.state.meta.addresses.len(), 2);

    // Validator 1 unbonds: elected out at the end of epoch 2, it sits through epoch 3 with its
    // address kept, and the address is forgotten once it sits in neither committee.
    let unstake = chain.tx(1, Action::Unstake { amount: bond });
    chain.block(1, vec![unstake]).unwrap(); // 4
    chain.block(1, vec![]).unwrap(); // 5, the last of epoch 2: {3} elected
    assert_eq!(chain.state.meta.next_committee, vec![id(3)]);
    assert!(
        chain.state.meta.addresses.contains_key(&id(1)),
        "still seated"
    );
    chain.block(1, vec![]).unwrap(); // 6
    chain.block(1, vec![]).unwrap(); // 7, the last of epoch 3: {3} takes over
    assert_eq!(chain.state.meta.committee, vec![id(3)]);
    let kept: Vec<_> = chain.state.meta.addresses.keys().copied().collect();
    assert_eq!(
        kept,
        vec![id(3)],
        "only the bonded or seated keep an address"
    );
}
