//! Property tests of assignment over random memberships of up to 1 000 nodes: coverage,
//! contiguity, memory, balance, a replica to fail over to, few moves on a join and a leave,
//! determinism; and a running plan carried over to joiners and a deeper model without moving
//! a layer anyone holds.

use neuroshard_model::Config;
use neuroshard_pool::{
    Footprint, Member, Plan, REDUNDANCY, REPLAN, StagePlan, Unplaced, Workload, assign, carry,
};
use neuroshard_primitives::NodeId;
use proptest::prelude::*;

const WORKLOAD: Workload = Workload {
    micro_batch: 4,
    micro_batches: 4,
};

fn footprint(n_layers: usize) -> Footprint {
    let cfg = Config {
        n_layers,
        ..Config::preset("tiny", 8192).unwrap()
    };
    Footprint::of(&cfg, WORKLOAD)
}

fn node(i: u32) -> NodeId {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&i.to_be_bytes());
    // Spread the ids so sorting by id does not sort by index.
    id[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
    id.swap(0, 5);
    NodeId(id)
}

/// Members whose budgets range from nothing to 1.25 × the whole model's footprint, with
/// speeds spread over three orders of magnitude.
fn members(max: usize) -> impl Strategy<Value = (usize, Vec<Member>)> {
    (2usize..=24, 1..=max).prop_flat_map(|(n_layers, n)| {
        let whole = footprint(n_layers).bytes(n_layers, true, true);
        let member = (0..=whole / 4 * 5, 1_000u64..=1_000_000);
        (Just(n_layers), proptest::collection::vec(member, n)).prop_map(|(l, raw)| {
            let ms = raw
                .into_iter()
                .enumerate()
                .map(|(i, (memory_budget, work_per_sec))| Member {
                    node: node(i as u32),
                    memory_budget,
                    work_per_sec,
                })
                .collect();
            (l, ms)
        })
    })
}

fn plan(n_layers: usize, members: &[Member], previous: Option<&Plan>) -> Plan {
    assign(n_layers, &footprint(n_layers), WORKLOAD, members, previous)
}

/// Coverage, contiguity, ends, memory, and every member exactly once.
fn check_valid(n_layers: usize, members: &[Member], plan: &Plan) -> Result<(), TestCaseError> {
    let fp = footprint(n_layers);
    let k = plan.stages.len();
    let mut next = 0;
    let mut seen = Vec::new();
    for (s, stage) in plan.stages.iter().enumerate() {
        prop_assert_eq!(stage.layers.start, next, "stages are contiguous");
        prop_assert!(!stage.layers.is_empty() && !stage.replicas.is_empty());
        prop_assert_eq!((stage.embedding, stage.head), (s == 0, s + 1 == k));
        next = stage.layers.end;
        for id in &stage.replicas {
            let m = members.iter().find(|m| m.node == *id).unwrap();
            let need = fp.bytes(stage.layers.len(), stage.embedding, stage.head);
            prop_assert!(m.memory_budget >= need, "a replica is over its budget");
            seen.push(*id);
        }
    }
    if k > 0 {
        prop_assert_eq!(next, n_layers, "every layer is held");
    }
    for (id, why) in &plan.unplaced {
        let m = members.iter().find(|m| m.node == *id).unwrap();
        let holds_one = fp.max_layers(m.memory_budget, false, false) > 0;
        prop_assert_eq!(*why == Unplaced::CannotHoldALayer, !holds_one);
        seen.push(*id);
    }
    seen.sort();
    let mut all: Vec<NodeId> = members.iter().map(|m| m.node).collect();
    all.sort();
    all.dedup();
    prop_assert_eq!(seen, all, "every member is placed or listed once");
    Ok(())
}

/// The slowest stage's time per token against the ideal: a lower bound on the slowest stage
/// of any plan of the members this one placed. One stage: the whole model over the speed of
/// those who can hold it. Two or more: the most of (a) the whole model's work over all their
/// speed and (b) the two ends' least work (a layer and the embedding, a layer and the head)
/// over the speed of those who can hold an end: a member fit only for the middle cannot take
/// the ends' work, which a shallow model cannot move off them.
fn imbalance(n_layers: usize, members: &[Member], plan: &Plan) -> f64 {
    let fp = footprint(n_layers);
    let slowest = slowest(&fp, members, plan);
    let speed = |fits: &dyn Fn(u64) -> bool| -> f64 {
        let placed = plan.stages.iter().flat_map(|s| &s.replicas);
        let member = |id: &NodeId| members.iter().find(|m| m.node == *id).unwrap();
        let fit: Vec<NodeId> = placed
            .filter(|id| fits(member(id).memory_budget))
            .copied()
            .collect();
        speed_of(members, &fit) as f64
    };
    let whole = fp.work(n_layers, true) as f64;
    let one_stage = whole / speed(&|b| fp.max_layers(b, true, true) >= n_layers);
    let layer = whole / speed(&|b| fp.max_layers(b, false, false) >= 1);
    let end = |b| fp.max_layers(b, true, false) >= 1 || fp.max_layers(b, false, true) >= 1;
    let ends = fp.work(2, true) as f64 / speed(&end);
    let ideal = match n_layers {
        1 => one_stage,
        _ => one_stage.min(layer.max(ends)),
    };
    slowest / ideal
}

/// The slowest stage's time per token.
fn slowest(fp: &Footprint, members: &[Member], plan: &Plan) -> f64 {
    let stage = |s: &StagePlan| {
        fp.work(s.layers.len(), s.head) as f64 / speed_of(members, &s.replicas) as f64
    };
    plan.stages.iter().map(stage).fold(0.0, f64::max)
}

/// What assignment minimises: the slowest stage's time times the 1F1B bubble.
fn cost(fp: &Footprint, members: &[Member], plan: &Plan) -> f64 {
    let (m, k) = (WORKLOAD.micro_batches as f64, plan.stages.len() as f64);
    slowest(fp, members, plan) * (m + k - 1.0) / m
}

/// Time per token of a stage of `len` layers over `speed` (as a fraction, for exact compares).
fn time(fp: &Footprint, len: usize, head: bool, speed: u128) -> (u128, u128) {
    (u128::from(fp.work(len, head)), speed)
}

fn speed_of(members: &[Member], ids: &[NodeId]) -> u128 {
    ids.iter()
        .map(|id| u128::from(members.iter().find(|m| m.node == *id).unwrap().work_per_sec))
        .sum()
}

/// Water-filling is optimal for the replica sets: no layer moved from a stage of more than one
/// layer to a stage with room would make the first faster than the second was.
fn check_water_filled(
    n_layers: usize,
    members: &[Member],
    plan: &Plan,
) -> Result<(), TestCaseError> {
    let fp = footprint(n_layers);
    let stages = &plan.stages;
    let cap = |s: usize| {
        let st = &stages[s];
        st.replicas
            .iter()
            .map(|id| {
                members
                    .iter()
                    .find(|m| m.node == *id)
                    .unwrap()
                    .memory_budget
            })
            .map(|b| fp.max_layers(b, st.embedding, st.head))
            .min()
            .unwrap()
    };
    for (b, from) in stages
        .iter()
        .enumerate()
        .filter(|(_, s)| s.layers.len() > 1)
    {
        let tb = time(
            &fp,
            from.layers.len(),
            from.head,
            speed_of(members, &from.replicas),
        );
        for (s, to) in stages.iter().enumerate().filter(|&(s, _)| s != b) {
            if to.layers.len() < cap(s) {
                let ts = time(
                    &fp,
                    to.layers.len() + 1,
                    to.head,
                    speed_of(members, &to.replicas),
                );
                prop_assert!(
                    ts.0 * tb.1 >= tb.0 * ts.1,
                    "moving a layer from {} to {} helps",
                    b,
                    s
                );
            }
        }
    }
    Ok(())
}

fn joiner(members: &[Member]) -> Member {
    Member {
        node: node(1_000_000),
        memory_budget: members[0].memory_budget,
        work_per_sec: 500_000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn plans_cover_every_layer_within_budgets_whatever_the_order(
        (n_layers, ms, shuffled) in members(1000).prop_flat_map(|(l, ms)| {
            (Just(l), Just(ms.clone()), Just(ms).prop_shuffle())
        })
    ) {
        let p = plan(n_layers, &ms, None);
        check_valid(n_layers, &ms, &p)?;
        check_water_filled(n_layers, &ms, &p)?;
        prop_assert_eq!(&plan(n_layers, &shuffled, None), &p);
        // A member listed twice counts once, whichever entry comes first.
        let mut twice = shuffled.clone();
        twice.push(Member { work_per_sec: 7, ..ms[0] });
        let again = plan(n_layers, &twice, None);
        check_valid(n_layers, &twice, &again)?;
        twice.reverse();
        prop_assert_eq!(plan(n_layers, &twice, None), again);
    }

    #[test]
    fn small_pools_are_valid_and_water_filled((n_layers, ms) in members(12)) {
        let p = plan(n_layers, &ms, None);
        check_valid(n_layers, &ms, &p)?;
        check_water_filled(n_layers, &ms, &p)?;
    }

    #[test]
    fn large_pools_run_within_a_quarter_of_the_ideal((n_layers, ms) in members(1000)) {
        prop_assume!(ms.len() >= 100);
        let p = plan(n_layers, &ms, None);
        prop_assert!(!p.stages.is_empty());
        let imbalance = imbalance(n_layers, &ms, &p);
        prop_assert!(imbalance <= 1.25, "slowest stage {imbalance:.3} × the ideal");
    }

    /// Every stage gets a second replica, one to fail over to, when the members allow: here,
    /// equal budgets (whoever fits one stage fits it again) and at least two members a stage.
    /// The members past those join where they leave no lane idle (a replica that two
    /// neighbouring stages' pairs of replicas cannot give a lane of its own), in the plan and
    /// when joiners of the same budget come to the running plan.
    #[test]
    fn every_stage_has_a_replica_to_fail_over_to_where_the_members_allow(
        (n_layers, ms) in members(40),
        budget_part in 1u64..=8,
        joining in 0usize..=6,
    ) {
        let whole = footprint(n_layers).bytes(n_layers, true, true);
        let budget = whole / 8 * budget_part;
        let even: Vec<Member> = ms.iter().map(|m| Member { memory_budget: budget, ..*m }).collect();
        let p = plan(n_layers, &even, None);
        check_valid(n_layers, &even, &p)?;
        let placed: usize = p.stages.iter().map(|s| s.replicas.len()).sum();
        if !p.stages.is_empty() && placed >= 2 * p.stages.len() {
            for (s, stage) in p.stages.iter().enumerate() {
                prop_assert!(stage.replicas.len() >= 2, "stage {} of {:?}", s, p);
            }
            prop_assert_eq!(p.running_lanes(), p.lanes(), "{:?}", p);
            let mut grown = even.clone();
            grown.extend((0..joining).map(|i| Member { node: node(10_000 + i as u32), ..even[0] }));
            let fp = footprint(n_layers);
            let carried = carry(&p, n_layers, &fp, WORKLOAD, &grown, &[]);
            prop_assert_eq!(carried.running_lanes(), carried.lanes(), "{:?}", carried);
        }
    }

    #[test]
    fn a_carried_plan_keeps_every_layer_where_it_is_and_places_the_joiners(
        (n_layers, ms, new) in members(40).prop_flat_map(|(l, ms)| (Just(l), Just(ms), joiners(l))),
        grow in 0usize..=3,
        leave in proptest::collection::vec(any::<prop::sample::Index>(), 0..=3),
    ) {
        check_carry(n_layers, &ms, &new, grow, &leave)?;
    }

    #[test]
    fn a_carried_plan_of_a_large_pool_keeps_every_layer_where_it_is(
        (n_layers, ms, new) in members(1000).prop_flat_map(|(l, ms)| (Just(l), Just(ms), joiners(l))),
        grow in 0usize..=3,
        leave in proptest::collection::vec(any::<prop::sample::Index>(), 0..=3),
    ) {
        check_carry(n_layers, &ms, &new, grow, &leave)?;
    }

    #[test]
    fn a_join_or_a_leave_moves_few_layers((n_layers, ms) in members(1000)) {
        check_moves(n_layers, &ms)?;
    }

    #[test]
    fn a_join_or_a_leave_moves_few_layers_in_small_pools((n_layers, ms) in members(12)) {
        check_moves(n_layers, &ms)?;
    }
}

/// Members joining a running pool: budgets up to the whole model's, any speed.
fn joiners(n_layers: usize) -> impl Strategy<Value = Vec<Member>> {
    let whole = footprint(n_layers).bytes(n_layers, true, true);
    let joiner = (0..=whole, 1_000u64..=1_000_000);
    proptest::collection::vec(joiner, 0..=4).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (memory_budget, work_per_sec))| Member {
                node: node(2_000_000 + i as u32),
                memory_budget,
                work_per_sec,
            })
            .collect()
    })
}

/// `carry` from the plan for `ms` to `ms` and `new` less the replicas `leave` picks, `grow`
/// layers deeper: valid; every stage's layers kept in order, each stage as long or longer, its
/// start shifted by the layers the stages before it gained, all of them together `grow` when
/// the depth grew and none when it did not; every replica that stays in its stage first in its
/// order as before; a replica moved to another stage only to bring a stage back to
/// [`REDUNDANCY`] replicas, and no more of them than the stages lack; a leaver kept only in a
/// stage no one else holds; where no stage lacks a replica, the depth grown exactly when the
/// staying replicas can hold the new layers between them (each stage up to what its smallest
/// replica holds); a joiner left out only when no stage fits it.
fn check_carry(
    n_layers: usize,
    ms: &[Member],
    new: &[Member],
    grow: usize,
    leave: &[prop::sample::Index],
) -> Result<(), TestCaseError> {
    let before = plan(n_layers, ms, None);
    prop_assume!(!before.stages.is_empty());
    let placed: Vec<NodeId> = before
        .stages
        .iter()
        .flat_map(|s| s.replicas.clone())
        .collect();
    let mut left: Vec<NodeId> = leave.iter().map(|i| *i.get(&placed)).collect();
    left.sort();
    left.dedup();
    let roll: Vec<Member> = (ms.iter().chain(new))
        .filter(|m| !left.contains(&m.node))
        .copied()
        .collect();
    let deeper = n_layers + grow;
    let after = carry(&before, deeper, &footprint(deeper), WORKLOAD, &roll, &left);
    let listed: Vec<Member> = (ms.iter().chain(new)).copied().collect();
    let k = before.stages.len();
    prop_assert_eq!(after.stages.len(), k);
    let mut lacking = 0;
    let mut moved = 0;
    let mut gained = 0;
    for (s, (b, a)) in before.stages.iter().zip(&after.stages).enumerate() {
        let stayed: Vec<NodeId> = (b.replicas.iter())
            .filter(|n| !left.contains(n) && a.replicas.contains(n))
            .copied()
            .collect();
        prop_assert_eq!(&a.replicas[..stayed.len()], &stayed[..], "lane order kept");
        let kept = b.replicas.iter().filter(|n| !left.contains(n)).count();
        lacking += REDUNDANCY.saturating_sub(kept);
        moved += (a.replicas.iter())
            .filter(|n| placed.contains(n) && before.stage_of(n) != Some(s))
            .count();
        let leavers = a.replicas.iter().filter(|n| left.contains(n)).count();
        prop_assert!(
            leavers == 0 || leavers == a.replicas.len(),
            "a leaver kept beside others"
        );
        prop_assert_eq!(
            a.layers.start,
            b.layers.start + gained,
            "shifted by the growth before it"
        );
        prop_assert!(a.layers.len() >= b.layers.len(), "a stage keeps its layers");
        gained += a.layers.len() - b.layers.len();
    }
    prop_assert_eq!(gained, after.n_layers - n_layers);
    prop_assert!(
        moved <= lacking,
        "{} replicas moved for {} lacking",
        moved,
        lacking
    );
    // Leavers kept in an emptied stage are no member; the rest is a valid plan of the roll.
    let mut valid = after.clone();
    valid
        .stages
        .iter_mut()
        .for_each(|s| s.replicas.retain(|n| !left.contains(n)));
    if valid.stages.iter().all(|s| !s.replicas.is_empty()) {
        check_valid(after.n_layers, &roll, &valid)?;
    }
    let fp = footprint(deeper);
    let cap = |node: &NodeId, s: usize| {
        // A node listed twice counts with its smallest budget, as assignment's dedup keeps it.
        let budget = (listed.iter().filter(|m| m.node == *node)).map(|m| m.memory_budget);
        fp.max_layers(budget.min().unwrap_or(0), s == 0, s + 1 == k)
    };
    let headroom: usize = (before.stages.iter().enumerate())
        .map(|(s, b)| {
            let staying = b.replicas.iter().filter(|r| !left.contains(r));
            let least = staying.map(|r| cap(r, s)).min().unwrap_or(0).min(deeper);
            least.saturating_sub(b.layers.len())
        })
        .sum();
    if lacking == 0 {
        prop_assert_eq!(
            after.n_layers == deeper,
            headroom >= grow,
            "grown exactly when the stages hold the new layers ({} of room)",
            headroom
        );
    }
    for (id, _) in &after.unplaced {
        let Some(m) = new.iter().find(|m| m.node == *id) else {
            continue;
        };
        let fits = after
            .stages
            .iter()
            .any(|s| m.memory_budget >= fp.bytes(s.layers.len(), s.embedding, s.head));
        prop_assert!(!fits, "a joiner that fits a stage is placed");
    }
    Ok(())
}

/// A join and a leave, each from the plan for `ms`: in a pool of 100 or more, at most one
/// stage's layers move (the joiner's); in any pool, at most the model's depth more than
/// recomputing the plan from nothing would move (the joiner's stage, an emptied stage), unless
/// the plan runs faster than the fresh one by more than `REPLAN` (a re-balance that pays for
/// itself); never more than the fresh plan where the two cost within `REPLAN` of each other.
fn check_moves(n_layers: usize, ms: &[Member]) -> Result<(), TestCaseError> {
    let fp = footprint(n_layers);
    let before = plan(n_layers, ms, None);
    let mut joined = ms.to_vec();
    joined.push(joiner(ms));
    let left = ms[1..].to_vec();
    for after in [joined, left] {
        let stable = plan(n_layers, &after, Some(&before));
        check_valid(n_layers, &after, &stable)?;
        let moves = stable.moves_from(&before);
        let fresh_plan = plan(n_layers, &after, None);
        let fresh = fresh_plan.moves_from(&before);
        let (cs, cf) = (cost(&fp, &after, &stable), cost(&fp, &after, &fresh_plan));
        let (num, den) = (REPLAN.0 as f64, REPLAN.1 as f64);
        let pays = cf * den > cs * num;
        prop_assert!(
            moves <= fresh + n_layers || pays,
            "{} moves (fresh {}), cost {} (fresh {})",
            moves,
            fresh,
            cs,
            cf
        );
        if cs * den <= cf * num && cf * den <= cs * num {
            prop_assert!(
                moves <= fresh,
                "{} moves where fresh moves {}",
                moves,
                fresh
            );
        }
        if ms.len() >= 100 {
            prop_assert!(moves <= n_layers, "{} moves in a large pool", moves);
        }
    }
    Ok(())
}

#[test]
fn a_pool_that_can_hold_the_whole_model_is_one_stage() {
    let n_layers = 6;
    let whole = footprint(n_layers).bytes(n_layers, true, true);
    let ms: Vec<Member> = (0..50)
        .map(|i| Member {
            node: node(i),
            memory_budget: whole + u64::from(i),
            work_per_sec: 1_000 + u64::from(i) * 37,
        })
        .collect();
    let p = plan(n_layers, &ms, None);
    assert_eq!(p.stages.len(), 1);
    assert_eq!(p.stages[0].replicas.len(), 50);
    assert_eq!(
        (
            p.stages[0].layers.clone(),
            p.stages[0].embedding,
            p.stages[0].head
        ),
        (0..6, true, true)
    );
}

#[test]
fn a_pool_too_small_for_the_model_gets_no_stages_and_says_why() {
    let n_layers = 8;
    let fp = footprint(n_layers);
    let ms = [
        Member {
            node: node(1),
            memory_budget: fp.bytes(1, false, false) - 1,
            work_per_sec: 5,
        },
        Member {
            node: node(2),
            memory_budget: fp.bytes(2, false, false),
            work_per_sec: 5,
        },
    ];
    let p = plan(n_layers, &ms, None);
    assert!(p.stages.is_empty());
    let mut want = vec![
        (node(1), Unplaced::CannotHoldALayer),
        (node(2), Unplaced::NoStageFits),
    ];
    want.sort();
    assert_eq!(p.unplaced, want);
}

#[test]
fn members_too_small_for_a_layer_are_left_out_of_a_working_plan() {
    let n_layers = 4;
    let fp = footprint(n_layers);
    let whole = fp.bytes(n_layers, true, true);
    let ms = [
        Member {
            node: node(1),
            memory_budget: whole,
            work_per_sec: 100,
        },
        Member {
            node: node(2),
            memory_budget: whole,
            work_per_sec: 100,
        },
        Member {
            node: node(3),
            memory_budget: 1_000,
            work_per_sec: 1_000_000,
        },
    ];
    let p = plan(n_layers, &ms, None);
    assert_eq!(p.stages.len(), 1);
    assert_eq!(p.unplaced, vec![(node(3), Unplaced::CannotHoldALayer)]);
    assert_eq!(p.stage_of(&node(1)), Some(0));
    assert_eq!(p.stage_of(&node(3)), None);
}

#[test]
fn absurd_budgets_and_speeds_give_a_valid_plan() {
    let n_layers = 5;
    let fp = footprint(n_layers);
    let ms: Vec<Member> = (0..40)
        .map(|i| Member {
            node: node(i),
            memory_budget: [
                u64::MAX,
                0,
                fp.bytes(1, false, false),
                fp.bytes(2, true, true),
            ][i as usize % 4],
            work_per_sec: [u64::MAX, 0, 1, u64::MAX - 1][i as usize % 4],
        })
        .collect();
    let p = plan(n_layers, &ms, None);
    assert!(!p.stages.is_empty());
    let mut joined = ms.clone();
    joined.push(Member {
        node: node(99),
        memory_budget: u64::MAX,
        work_per_sec: u64::MAX,
    });
    let q = plan(n_layers, &joined, Some(&p));
    let covered: usize = q.stages.iter().map(|s| s.layers.len()).sum();
    assert_eq!(covered, n_layers);
    check_valid(n_layers, &ms, &p).unwrap();
    check_valid(n_layers, &joined, &q).unwrap();
}

/// Measured speeds steer the plan: where the pool must split the model, a member announcing
/// half its speed holds a stage of less work (its layers and, on the last stage, the head) than
/// at full speed, and one claiming an absurd speed (0, `u64::MAX`) still leaves every layer
/// covered within the budgets.
#[test]
fn a_member_at_half_speed_holds_less_work() {
    let n_layers = 12;
    let fp = footprint(n_layers);
    // Each member trains two thirds of the model with both ends: the pool splits it.
    let budget = fp.bytes(n_layers * 2 / 3, true, true);
    let ms: Vec<Member> = (0..4)
        .map(|i| Member {
            node: node(i),
            memory_budget: budget,
            work_per_sec: 1_000_000,
        })
        .collect();
    let held = |p: &Plan, n: NodeId| {
        let stage = &p.stages[p.stage_of(&n).unwrap()];
        (fp.work(stage.layers.len(), stage.head), stage.layers.len())
    };
    let even = plan(n_layers, &ms, None);
    assert_eq!(even.stages.len(), 2, "{even:?}");
    for slow in 0..4 {
        let mut pinned = ms.clone();
        pinned[slow].work_per_sec /= 2;
        let p = plan(n_layers, &pinned, None);
        check_valid(n_layers, &pinned, &p).unwrap();
        let (before, after) = (held(&even, node(slow as u32)), held(&p, node(slow as u32)));
        println!("member {slow}: (work, layers) {before:?} at full speed, {after:?} at half");
        assert!(
            after.0 < before.0,
            "{after:?} at half speed, {before:?} at full: {p:?}"
        );
        for absurd in [0, u64::MAX] {
            pinned[slow].work_per_sec = absurd;
            let p = plan(n_layers, &pinned, None);
            assert!(!p.stages.is_empty());
            check_valid(n_layers, &pinned, &p).unwrap();
        }
    }
}
