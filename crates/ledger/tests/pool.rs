//! The pool roll: capacity records replace the signer's entry, need no NEURO, are refused when
//! empty or when the roll is full, expire at a plan boundary unless renewed, and the roll's size
//! is noted at plan boundaries only, where the ledger makes its plans.

mod support;

use neuroshard_ledger::{Action, MAX_POOL, NEURO, POOL_SIZES_KEPT, PoolEntry, Refused, Rules};
use neuroshard_primitives::NodeId;
use support::{Chain, id, ids, refusal};

fn pool(memory_budget: u64, work_per_sec: u64) -> Action {
    Action::Pool {
        memory_budget,
        work_per_sec,
    }
}

#[test]
fn a_second_record_replaces_the_first_and_needs_no_neuro() {
    let mut chain = Chain::new(Rules::DEFAULT);
    // Account 9 has no allocation: a joining node with nothing.
    let first = chain.tx(9, pool(8 << 30, 1_000));
    chain.block(1, vec![first.clone()]).unwrap();
    let entry = PoolEntry {
        memory_budget: 8 << 30,
        work_per_sec: 1_000,
        height: 1,
    };
    assert_eq!(chain.state.pool_roll().get(&id(9)), Some(&entry));
    assert_eq!(chain.state.account(&id(9)).nonce, 1);
    assert_eq!(chain.state.account(&id(9)).total(), 0, "no fee taken");

    chain.block(1, vec![]).unwrap();
    let second = chain.tx(9, pool(4 << 30, 3_000));
    chain.block(1, vec![second]).unwrap();
    let replaced = PoolEntry {
        memory_budget: 4 << 30,
        work_per_sec: 3_000,
        height: 3,
    };
    assert_eq!(chain.state.pool_roll().len(), 1);
    assert_eq!(chain.state.pool_roll().get(&id(9)), Some(&replaced));
    assert_eq!(chain.state.pool_size(), 4 << 30);

    // Nonce rules as for every transaction: the first record again is a replay.
    assert_eq!(
        refusal(chain.refused(vec![first])),
        Refused::BadNonce {
            expected: 2,
            got: 0
        }
    );
}

#[test]
fn a_record_with_a_zero_figure_is_refused() {
    let mut chain = Chain::new(Rules::DEFAULT);
    for action in [pool(0, 1_000), pool(8 << 30, 0), pool(0, 0)] {
        let tx = chain.tx(3, action);
        let err = refusal(chain.refused(vec![tx]));
        assert!(
            matches!(&err, Refused::BadPoolRecord(why) if why.contains("positive")),
            "{err}"
        );
    }
    assert!(chain.state.pool_roll().is_empty());
}

#[test]
fn a_full_roll_refuses_newcomers_but_lets_members_update() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let member = PoolEntry {
        memory_budget: 1 << 30,
        work_per_sec: 10,
        height: 0,
    };
    chain.state.meta.pool = (0..MAX_POOL - 1)
        .map(|i| {
            let mut bytes = [0xee; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (NodeId(bytes), member)
        })
        .collect();
    // One place left: account 3 takes it, and the roll is full.
    let joins = chain.tx(3, pool(2 << 30, 20));
    chain.block(1, vec![joins]).unwrap();
    assert_eq!(chain.state.pool_roll().len(), MAX_POOL);

    let newcomer = chain.tx(4, pool(2 << 30, 20));
    let err = refusal(chain.refused(vec![newcomer]));
    assert!(
        matches!(&err, Refused::BadPoolRecord(why) if why.contains("full")),
        "{err}"
    );
    let update = chain.tx(3, pool(3 << 30, 30));
    chain.block(1, vec![update]).unwrap();
    assert_eq!(chain.state.pool_roll()[&id(3)].memory_budget, 3 << 30);
    assert_eq!(chain.state.pool_roll().len(), MAX_POOL);
    assert!(!chain.state.pool_roll().contains_key(&id(4)));
}

#[test]
fn sizes_are_noted_at_boundaries_only_and_the_newest_kept() {
    let rules = Rules {
        pool_blocks: 2,
        ..Rules::DEFAULT
    };
    let mut chain = Chain::new(rules);
    // Each block, account 3 records the block's height as its budget, so the size noted at
    // boundary h is h.
    // 65 boundaries (heights 2, 4, …, 130): one more than the history keeps.
    let blocks = 2 * POOL_SIZES_KEPT as u64 + 2;
    for height in 1..=blocks {
        let tx = chain.tx(3, pool(height * NEURO, 1));
        chain.block(1, vec![tx]).unwrap();
        let noted = height / 2;
        assert_eq!(
            chain.state.pool_sizes().len() as u64,
            noted.min(POOL_SIZES_KEPT as u64),
            "after block {height}"
        );
        assert_eq!(rules.is_pool_boundary(height), height % 2 == 0);
    }
    let expected: Vec<u64> = (2..=blocks / 2).map(|b| 2 * b * NEURO).collect();
    assert_eq!(chain.state.pool_sizes(), expected.as_slice());
}

#[test]
fn the_pool_size_saturates() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let txs = vec![chain.tx(3, pool(u64::MAX, 1)), chain.tx(4, pool(5, 1))];
    chain.block(1, txs).unwrap();
    assert_eq!(chain.state.pool_size(), u64::MAX);
}

#[test]
fn the_root_and_the_meta_proof_cover_the_roll() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let tx = chain.tx(3, pool(8 << 30, 1_000));
    chain.block(1, vec![tx]).unwrap();
    let root = chain.state.root();
    let proof = chain.state.prove_meta();
    assert_eq!(proof.verify(&root), Some(&chain.state.meta));

    let mut other = chain.state.clone();
    other.meta.pool.get_mut(&id(3)).unwrap().memory_budget += 1;
    assert_ne!(other.root(), root);
    let mut forged = proof.clone();
    forged.meta.pool = other.meta.pool.clone();
    assert!(
        forged.verify(&root).is_none(),
        "a forged roll does not prove"
    );

    let mut other = chain.state.clone();
    other.meta.pool_sizes.push(1);
    assert_ne!(other.root(), root);
}

#[test]
fn an_entry_not_renewed_within_the_ttl_leaves_the_roll_at_a_boundary() {
    let rules = Rules {
        pool_blocks: 2,
        pool_ttl_blocks: 4,
        ..Rules::DEFAULT
    };
    let mut chain = Chain::new(rules);
    // Height 1: accounts 3 and 4 record.
    let txs = vec![chain.tx(3, pool(8, 1)), chain.tx(4, pool(5, 1))];
    chain.block(1, txs).unwrap();
    // Heights 2 to 4: boundaries 2 and 4 keep both (recorded 1 and 3 blocks before).
    for height in 2..=4 {
        let txs = match height {
            3 => vec![chain.tx(4, pool(5, 1))],
            _ => vec![],
        };
        chain.block(1, txs).unwrap();
        assert_eq!(chain.state.pool_roll().len(), 2, "after block {height}");
        assert!(chain.state.pool_left().is_empty());
    }
    // Height 5: no boundary, nothing dropped though account 3's record is 4 blocks old.
    chain.block(1, vec![]).unwrap();
    assert_eq!(chain.state.pool_roll().len(), 2);
    // Height 6, a boundary: account 3 (recorded at 1) leaves; account 4 renewed at 3 stays.
    chain.block(1, vec![]).unwrap();
    assert_eq!(chain.state.pool_left(), &[id(3)]);
    assert_eq!(
        chain.state.pool_roll().keys().collect::<Vec<_>>(),
        vec![&id(4)]
    );
    assert_eq!(
        chain.state.pool_sizes().last(),
        Some(&5),
        "the size after the drop"
    );
    // Height 8: account 4 (recorded at 3) leaves; the list holds this boundary's leavers only.
    chain.block(1, vec![]).unwrap();
    chain.block(1, vec![]).unwrap();
    assert_eq!(chain.state.pool_left(), &[id(4)]);
    assert!(chain.state.pool_roll().is_empty());
    // A leaver that records again is back, a newcomer like any other.
    let back = chain.tx(3, pool(8, 1));
    chain.block(1, vec![back]).unwrap();
    assert_eq!(chain.state.pool_roll()[&id(3)].height, 9);
    chain.block(1, vec![]).unwrap();
    assert!(
        chain.state.pool_left().is_empty(),
        "boundary 10 dropped nobody"
    );
}

#[test]
fn a_leave_drops_the_entry_at_the_next_boundary_unless_a_record_follows() {
    let rules = Rules {
        pool_blocks: 2,
        ..Rules::DEFAULT
    };
    let mut chain = Chain::new(rules);
    // A leave with no entry is refused.
    let early = chain.tx(3, Action::PoolLeave);
    let err = refusal(chain.refused(vec![early]));
    assert!(
        matches!(&err, Refused::BadPoolRecord(why) if why.contains("no entry")),
        "{err}"
    );
    // Height 1: accounts 3 and 4 record; height 2 is a boundary; height 3: both leave.
    let txs = vec![chain.tx(3, pool(8, 1)), chain.tx(4, pool(5, 1))];
    chain.block(1, txs).unwrap();
    chain.block(1, vec![]).unwrap();
    let txs = vec![
        chain.tx(3, Action::PoolLeave),
        chain.tx(4, Action::PoolLeave),
    ];
    chain.block(1, txs).unwrap();
    assert_eq!(
        chain.state.pool_roll().len(),
        2,
        "still on the roll until the boundary"
    );
    // Height 4, a boundary: account 4 recorded again after its leave and stays; 3 is dropped.
    let again = chain.tx(4, pool(5, 2));
    chain.block(1, vec![again]).unwrap();
    assert_eq!(chain.state.pool_left(), &[id(3)]);
    assert_eq!(
        chain.state.pool_roll().keys().collect::<Vec<_>>(),
        vec![&id(4)]
    );
    assert!(chain.state.meta.pool_leaving.is_empty());
}

#[test]
fn rules_refuse_a_ttl_shorter_than_two_boundaries() {
    let short = Rules {
        pool_ttl_blocks: 2 * Rules::DEFAULT.pool_blocks - 1,
        ..Rules::DEFAULT
    };
    assert!(short.validate().unwrap_err().contains("pool_ttl_blocks"));
    let enough = Rules {
        pool_ttl_blocks: 2 * Rules::DEFAULT.pool_blocks,
        ..Rules::DEFAULT
    };
    assert_eq!(enough.validate(), Ok(()));
}

#[test]
fn rules_refuse_zero_pool_blocks_and_boundaries_are_positive_multiples() {
    let zero = Rules {
        pool_blocks: 0,
        ..Rules::DEFAULT
    };
    assert!(zero.validate().unwrap_err().contains("pool_blocks"));
    assert!((0..100).all(|h| !zero.is_pool_boundary(h)), "0 means never");
    let rules = Rules::DEFAULT;
    let boundaries: Vec<u64> = (0..=60).filter(|h| rules.is_pool_boundary(*h)).collect();
    assert_eq!(boundaries, vec![20, 40, 60]);
}

/// Empty blocks up to the next plan boundary (a block one ms after the last).
fn run_to_boundary(chain: &mut Chain) {
    let rules = *chain.ledger.rules();
    chain.block(1, vec![]).unwrap();
    while !rules.is_pool_boundary(chain.state.meta.height) {
        chain.block(1, vec![]).unwrap();
    }
}

/// Account `i` claims the open round, and its window closes it.
fn close_round(chain: &mut Chain, i: u8) {
    let round = chain.state.meta.open_round;
    let claim = chain.tx(i, Chain::claim_action(round, i));
    chain.block(1, vec![claim]).unwrap();
    let window = chain.ledger.rules().claim_window_ms;
    chain.block(window, vec![]).unwrap();
    assert_eq!(chain.state.meta.open_round, round + 1);
}

/// The ledger's plans (`docs/replan.md`, "The plan on the ledger"): the first once the pool
/// has kept one size over two boundaries, in force from round 0; a changed roll makes the next,
/// in force from the round after the open one; a roll that changes nothing makes none; a plan
/// no round still unsettled is in is dropped.
#[test]
fn plan_boundaries_plan_the_roll_and_say_from_which_round() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let replicas = |chain: &Chain, round| -> Vec<Vec<NodeId>> {
        let plan = chain.state.plan_for(round).expect("a plan in force");
        (plan.plan.stages.iter())
            .map(|s| s.replicas.clone())
            .collect()
    };
    let records = [(3, 1), (4, 2)].map(|(i, budget)| chain.tx(i, support::pool_record(budget)));
    chain.block(1, records.to_vec()).unwrap();
    run_to_boundary(&mut chain);
    assert!(
        chain.state.plan().is_none(),
        "the roll has not kept its size yet"
    );
    run_to_boundary(&mut chain);
    let first = chain.state.plan().expect("the first plan").clone();
    assert_eq!(
        (first.height, first.from_round),
        (chain.state.meta.height, 0)
    );
    assert_eq!(replicas(&chain, 0), [ids(&[3]), ids(&[4])]);

    close_round(&mut chain, 3);
    let joiner = chain.tx(5, support::pool_record(2));
    chain.block(1, vec![joiner]).unwrap();
    run_to_boundary(&mut chain);
    let second = chain.state.plan().expect("a plan").clone();
    assert_eq!(second.from_round, 2, "the round after the open one (1)");
    assert_eq!(replicas(&chain, 1), [ids(&[3]), ids(&[4])]);
    assert_eq!(replicas(&chain, 2), [ids(&[3]), ids(&[4, 5])]);
    run_to_boundary(&mut chain);
    assert_eq!(
        chain.state.meta.plans.len(),
        2,
        "an unchanged roll makes no plan"
    );

    // Rounds 1 to 4 close and 1 and 2 settle: no unsettled round is in the first plan.
    for _ in 1..=4 {
        close_round(&mut chain, 3);
    }
    let joiner = chain.tx(6, support::pool_record(1));
    chain.block(1, vec![joiner]).unwrap();
    run_to_boundary(&mut chain);
    let from: Vec<_> = (chain.state.meta.plans.iter())
        .map(|p| p.from_round)
        .collect();
    assert_eq!(from, vec![2, 6], "the first plan dropped");
    assert_eq!(replicas(&chain, 6), [ids(&[3, 6]), ids(&[4, 5])]);
}

/// A whole network stopped cleanly: every node's leave is carried on the way down, and the next
/// boundary empties the roll. The ledger makes no plan of nobody (it recorded one: the daemon's
/// planner kept a leaver per stage, and every node restarted after it took that plan up,
/// idling those it left out); the latest stays, and the nodes that come back and register
/// again are planned as before.
#[test]
fn a_roll_left_empty_keeps_the_latest_plan() {
    let mut chain = Chain::new(Rules::DEFAULT);
    let records = [(3, 1), (4, 2)].map(|(i, budget)| chain.tx(i, support::pool_record(budget)));
    chain.block(1, records.to_vec()).unwrap();
    run_to_boundary(&mut chain);
    run_to_boundary(&mut chain);
    let first = chain.state.plan().expect("the first plan").clone();
    let leaves = [3, 4].map(|i| chain.tx(i, Action::PoolLeave));
    chain.block(1, leaves.to_vec()).unwrap();
    run_to_boundary(&mut chain);
    assert!(chain.state.pool_roll().is_empty());
    assert_eq!(chain.state.plan(), Some(&first), "no plan of nobody");
    let again = [(3, 1), (4, 2)].map(|(i, budget)| chain.tx(i, support::pool_record(budget)));
    chain.block(1, again.to_vec()).unwrap();
    run_to_boundary(&mut chain);
    assert_eq!(
        chain.state.plan(),
        Some(&first),
        "the same nodes, the same plan"
    );
}
