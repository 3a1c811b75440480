//! Property tests: order independence, honest bounds, identity on equal inputs, and
//! determinism across thread counts.

use neuroshard_aggregate::{Rule, RuleKind, Trim, aggregate};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every rule configured for f attackers among n, where it tolerates them.
fn rules(n: usize, f: usize) -> Vec<Rule> {
    RuleKind::ALL
        .into_iter()
        .filter_map(|k| Rule::for_attackers(k, n, f).ok())
        .collect()
}

/// n vectors of `len` values in [-100, 100].
fn vectors(n: impl Strategy<Value = usize>, len: usize) -> impl Strategy<Value = Vec<Vec<f32>>> {
    n.prop_flat_map(move |n| {
        proptest::collection::vec(proptest::collection::vec(-100.0f32..100.0, len), n)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Shuffling the inputs changes no bit of any rule's output.
    #[test]
    fn permutation_invariant(
        (vs, shuffled) in vectors(3usize..12, 5).prop_flat_map(|vs| (Just(vs.clone()), Just(vs).prop_shuffle())),
        f in 0usize..3,
    ) {
        for rule in rules(vs.len(), f) {
            let a = aggregate(&rule, &vs).unwrap();
            let b = aggregate(&rule, &shuffled).unwrap();
            prop_assert_eq!(a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "{:?}", rule);
        }
    }

    /// With at most f outliers of any size, the trimmed mean (trim f), the median and Bulyan
    /// stay within the honest values' range in every coordinate.
    #[test]
    fn bounded_by_honest_range(
        honest in vectors(4usize..10, 4),
        outliers in proptest::collection::vec(proptest::collection::vec(-1e30f32..1e30, 4), 0..4),
    ) {
        let f = outliers.len();
        let mut all = honest.clone();
        all.extend(outliers);
        let n = all.len();
        let mut checked = vec![Rule::TrimmedMean { trim: Trim::Count(f) }];
        if 2 * f < n { checked.push(Rule::Median); }
        if n >= 4 * f + 3 { checked.push(Rule::Bulyan { f }); }
        for rule in checked.into_iter().filter(|r| r.validate(n).is_ok()) {
            let out = aggregate(&rule, &all).unwrap();
            for (c, &x) in out.iter().enumerate() {
                let lo = honest.iter().map(|v| v[c]).fold(f32::INFINITY, f32::min);
                let hi = honest.iter().map(|v| v[c]).fold(f32::NEG_INFINITY, f32::max);
                prop_assert!(lo <= x && x <= hi, "{:?}: coordinate {} = {} not in [{}, {}]", rule, c, x, lo, hi);
            }
        }
    }

    /// The sorting-network trimmed mean equals sorting each column and averaging its middle.
    #[test]
    fn trimmed_mean_matches_a_sorting_reference(vs in vectors(1usize..24, 3), trim_seed in 0usize..100) {
        let n = vs.len();
        let trim = trim_seed % n.div_ceil(2);
        let out = aggregate(&Rule::TrimmedMean { trim: Trim::Count(trim) }, &vs).unwrap();
        for (c, &x) in out.iter().enumerate() {
            let mut col: Vec<f32> = vs.iter().map(|v| v[c]).collect();
            col.sort_by(f32::total_cmp);
            let kept = &col[trim..n - trim];
            let want = kept.iter().map(|&v| f64::from(v)).sum::<f64>() / kept.len() as f64;
            prop_assert_eq!(x, want as f32, "n = {}, trim = {}, column {}", n, trim, c);
        }
    }

    /// Krum returns one of its inputs, never a mix.
    #[test]
    fn krum_returns_an_input(vs in vectors(5usize..10, 3)) {
        let out = aggregate(&Rule::Krum { f: 1 }, &vs).unwrap();
        prop_assert!(vs.contains(&out));
    }

    /// Every rule returns v itself when all inputs are v.
    #[test]
    fn identical_inputs_give_themselves(v in proptest::collection::vec(-1e6f32..1e6, 1..20), n in 1usize..10) {
        let vs = vec![v.clone(); n];
        for rule in rules(n, 0) {
            prop_assert_eq!(&aggregate(&rule, &vs).unwrap(), &v, "{:?}", rule);
        }
    }
}

/// The same input gives the same bits on 1, 2 and 3 threads, for inputs long enough to span
/// many chunks and rayon tasks.
#[test]
fn same_output_for_any_thread_count() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let len = 300_001;
    let vs: Vec<Vec<f32>> = (0..7)
        .map(|r| {
            (0..len)
                .map(|_| rng.random_range(-1.0f32..1.0) * (1.0 + r as f32))
                .collect()
        })
        .collect();
    let run = |threads: usize| -> Vec<Vec<u32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            rules(7, 1)
                .iter()
                .map(|rule| {
                    aggregate(rule, &vs)
                        .unwrap()
                        .iter()
                        .map(|x| x.to_bits())
                        .collect()
                })
                .collect()
        })
    };
    let one = run(1);
    assert_eq!(one.len(), RuleKind::ALL.len());
    assert!(
        one == run(2) && one == run(3),
        "output depends on the thread count"
    );
}
