//! The pool roll: each account's latest capacity record for the pipeline's layer pool, entries
//! not renewed within `Rules::pool_ttl_blocks` dropped, the pool's size noted at every plan
//! boundary, and the plan made there (`docs/replan.md`, section 1).
//!
//! A record is free and open to any account, bonded or not (a joining node holds no NEURO); the
//! roll is bounded by [`MAX_POOL`] and the size history by [`POOL_SIZES_KEPT`].

use neuroshard_pool::Plan;
use neuroshard_primitives::NodeId;

use crate::state::{Part, PlanRecord, PoolEntry, State};
use crate::{Height, Refused, Work};

/// The most entries on the pool roll (bounds the state free records can grow).
pub const MAX_POOL: usize = 4_096;

/// How many plan boundaries' pool sizes the state keeps (`Meta::pool_sizes`).
pub const POOL_SIZES_KEPT: usize = 64;

/// Puts `entry` on the roll as `who`'s, replacing its earlier one; refused when a figure is 0,
/// or when the roll is full and `who` has no entry on it.
pub(crate) fn record(state: &mut State, who: &NodeId, entry: PoolEntry) -> Result<(), Refused> {
    let refuse = |why: String| Err(Refused::BadPoolRecord(why));
    if entry.memory_budget == 0 || entry.work_per_sec == 0 {
        return refuse("the memory budget and the speed must both be positive".into());
    }
    let roll = &mut state.meta.pool;
    if roll.len() >= MAX_POOL && !roll.contains_key(who) {
        return refuse(format!(
            "the pool roll is full ({MAX_POOL} entries); only its members can update theirs"
        ));
    }
    roll.insert(*who, entry);
    let leaving = &mut state.meta.pool_leaving;
    if let Ok(at) = leaving.binary_search(who) {
        leaving.remove(at);
    }
    Ok(())
}

/// Marks `who`'s entry to be dropped at the next plan boundary; refused when it has none.
pub(crate) fn leave(state: &mut State, who: &NodeId) -> Result<(), Refused> {
    if !state.meta.pool.contains_key(who) {
        return Err(Refused::BadPoolRecord(
            "the signer has no entry on the pool roll to leave".into(),
        ));
    }
    let leaving = &mut state.meta.pool_leaving;
    if let Err(at) = leaving.binary_search(who) {
        leaving.insert(at, *who);
    }
    Ok(())
}

/// At the plan boundary `height`: drops the entries recorded at or below `height − ttl` and
/// those whose accounts said they leave, and lists them in `Meta::pool_left` (replacing the
/// last boundary's list).
pub(crate) fn expire(state: &mut State, height: Height, ttl: Height) {
    let leaving = std::mem::take(&mut state.meta.pool_leaving);
    let stays = |node: &NodeId, entry: &PoolEntry| {
        height.saturating_sub(entry.height) < ttl && leaving.binary_search(node).is_err()
    };
    let roll = &mut state.meta.pool;
    state.meta.pool_left = roll
        .iter()
        .filter(|(node, entry)| !stays(node, entry))
        .map(|(node, _)| *node)
        .collect();
    roll.retain(|node, entry| stays(node, entry));
}

/// Appends the roll's size to the history, dropping the oldest beyond [`POOL_SIZES_KEPT`].
pub(crate) fn note_size(state: &mut State) {
    let size = state.pool_size();
    let sizes = &mut state.meta.pool_sizes;
    sizes.push(size);
    let excess = sizes.len().saturating_sub(POOL_SIZES_KEPT);
    sizes.drain(..excess);
}

/// At the plan boundary `height`, after [`expire`] and [`note_size`]: the plan `work` makes
/// over the roll, recorded when it differs from the latest. It is in force from the round
/// after the one open now, as every node then learns of it before that round's job
/// (`docs/replan.md`, "The switch round"); the first from round 0, so that it also confirms
/// the work done under the plan the nodes made among themselves at their start. The first is
/// made once the pool has kept one size over two boundaries: nodes register as they start, and
/// a plan made meanwhile would leave the later ones out. A roll left empty (every node left or
/// expired: the whole network stopped, and its leaves were carried on the way down) makes no
/// plan: the latest stays in force for the nodes that come back, who register again, rather
/// than a plan that places nobody live. Plans in force in no round still unsettled are dropped.
pub(crate) fn replan(state: &mut State, work: &impl Work, height: Height) {
    let meta = &state.meta;
    if meta.pool.is_empty() {
        return;
    }
    let latest = state.plan().map(|p| &p.plan);
    let steady = match meta.pool_sizes.as_slice() {
        [.., before, now] => before == now && *now > 0,
        _ => false,
    };
    if latest.is_none() && !steady {
        return;
    }
    let made = work.plan(latest, &meta.pool, &meta.pool_left, &meta.pool_sizes);
    let Some(plan) = made.filter(|plan| latest != Some(plan)) else {
        return;
    };
    let from_round = match latest {
        Some(_) => meta.open_round.saturating_add(1),
        None => 0,
    };
    let oldest = meta
        .rounds
        .keys()
        .next()
        .copied()
        .unwrap_or(meta.open_round);
    let plans = &mut state.meta.plans;
    plans.push(PlanRecord {
        height,
        from_round,
        plan,
    });
    let superseded = plans
        .iter()
        .skip(1)
        .filter(|p| p.from_round <= oldest)
        .count();
    plans.drain(..superseded);
}

/// Whether `plan`, the ledger's plan in force in a claim's round, has `who` train `part`: a
/// replica of stage `part.stage` of a plan of `part.stages` stages. The whole model, stage 0
/// of 1, is anyone's where no plan has several stages: every node trains it then, on the roll
/// or not.
pub(crate) fn confirms(plan: Option<&Plan>, who: &NodeId, part: Part) -> bool {
    let stages = plan.map_or(&[][..], |p| &p.stages[..]);
    if stages.len() <= 1 {
        return part == Part::WHOLE;
    }
    let stage = usize::try_from(part.stage).ok().and_then(|i| stages.get(i));
    usize::try_from(part.stages) == Ok(stages.len())
        && stage.is_some_and(|s| s.replicas.contains(who))
}
