//! Random transaction streams: every block either applies (and the supply invariant holds after
//! it) or is refused and changes nothing; account proofs verify against the root; the pool roll
//! holds only positive records and its size history one entry per plan boundary, up to the cap;
//! only its members are marked leaving, and a boundary drops them all.

mod support;

use neuroshard_ledger::{Action, NEURO, POOL_SIZES_KEPT, Part, Rules};
use neuroshard_primitives::Hash;
use proptest::prelude::*;
use support::{Chain, id};

fn action() -> impl Strategy<Value = (u8, Action)> {
    let amount = prop_oneof![0..3 * NEURO, Just(u64::MAX), 0..2_000 * NEURO];
    (1u8..=6, 0u8..9, 1u8..=6, amount).prop_map(|(from, kind, to, amount)| {
        let action = match kind {
            0 => Action::Transfer { to: id(to), amount },
            1 => Action::Stake { amount },
            2 => Action::Unstake { amount },
            3 => Action::Withdraw,
            4 => Action::Claim {
                round: 0,
                delta: Hash([from; 32]),
                root: Hash([from; 32]),
                // Stage 2 of 2 is refused.
                part: Part {
                    stage: u32::from(to % 3),
                    stages: 2,
                },
            },
            5 => Action::Register {
                consensus: std::net::SocketAddr::from(([127, 0, 0, to % 3], u16::from(to) * 1000)),
            },
            6 => Action::Pool {
                memory_budget: amount,
                work_per_sec: u64::from(to % 3),
            },
            7 => Action::PoolLeave,
            _ => Action::Transfer {
                to: id(from),
                amount,
            },
        };
        (from, action)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn supply_is_conserved_and_refusals_change_nothing(
        blocks in prop::collection::vec((prop::collection::vec(action(), 0..6), 0u64..30_000), 1..12)
    ) {
        let rules = Rules {
            unbonding_blocks: 4,
            epoch_blocks: 2,
            claim_window_ms: 10_000,
            pool_blocks: 3,
            ..Rules::DEFAULT
        };
        let mut chain = Chain::new(rules);
        for (actions, after_ms) in blocks {
            let txs: Vec<_> = actions.into_iter().map(|(from, a)| chain.tx(from, a)).collect();
            let _ = chain.block(after_ms, txs);
            let state = &chain.state;
            let boundaries = state.meta.height / rules.pool_blocks;
            prop_assert_eq!(state.pool_sizes().len() as u64, boundaries.min(POOL_SIZES_KEPT as u64));
            prop_assert!(state.pool_roll().values().all(|e| e.memory_budget > 0 && e.work_per_sec > 0));
            let leaving = &state.meta.pool_leaving;
            prop_assert!(leaving.iter().all(|n| state.pool_roll().contains_key(n)), "only members leave");
            prop_assert!(leaving.windows(2).all(|w| w[0] < w[1]), "sorted, once each");
            if rules.is_pool_boundary(state.meta.height) {
                prop_assert!(leaving.is_empty(), "a boundary drops every leaver");
            }
            let root = chain.state.root();
            let meta = chain.state.prove_meta();
            prop_assert_eq!(meta.verify(&root), Some(&chain.state.meta));
            let mut forged = meta.clone();
            forged.meta.committee.push(id(6));
            prop_assert!(forged.verify(&root).is_none());
            for i in 1..=6 {
                let proof = chain.state.prove(&id(i)).expect("every test account exists");
                prop_assert!(proof.verify(&id(i), &root));
                let other = id(i % 6 + 1);
                prop_assert!(!proof.verify(&other, &root));
            }
        }
    }
}
