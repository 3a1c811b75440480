//! The pool roll: each account's latest capacity record for the pipeline's layer pool, entries
//! not renewed within `Rules::pool_ttl_blocks` dropped, and the pool's size noted at every plan
//! boundary (`docs/replan.md`, section 1).
//!
//! A record is free and open to any account, bonded or not (a joining node holds no NEURO); the
//! roll is bounded by [`MAX_POOL`] and the size history by [`POOL_SIZES_KEPT`].

use neuroshard_primitives::NodeId;

use crate::state::{PoolEntry, State};
use crate::{Height, Refused};

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
