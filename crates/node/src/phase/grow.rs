//! Between steps 5 and 6: the pool's size at the round boundary, and growth when the genesis
//! schedule says so (`docs/pool.md`, "Growth on a running network").
//!
//! The pool's size at a boundary is the sum of the memory budgets the round's included
//! contributors signed into their announcements: the list the agreement closed the round on,
//! so every node that applied the same Δs (and so holds the same model hash) records the same
//! size and grows at the same boundary. A node whose list differed holds another model hash
//! anyway; the vote settles it and it installs the network's state, grown or not.

use std::collections::BTreeMap;
use std::fmt;

use neuroshard_primitives::{Hash, NodeId};

use crate::message::Round;
use crate::node::Node;

/// Pool sizes a node keeps (and a state carries): the latest boundaries, oldest first.
pub const POOL_HISTORY: usize = 64;

/// How the model grows: the genesis schedule and the model's layer arithmetic, which the round
/// core does not know (the daemon's implementation is NeuroLLM's). Every honest node gives the
/// same answers for the same inputs.
pub trait Growth: fmt::Debug + Send {
    /// The depth to grow a model of `n_params` parameters to at the boundary that ends
    /// `history` (pool sizes, oldest first) and round `closed`, or `None`.
    fn decide(&self, n_params: usize, history: &[u64], closed: Round) -> Option<usize>;
    /// Whether a model of `n_params` parameters is one this network can reach (the genesis
    /// depth or a depth of the schedule): a peer's state is checked with it before it is read.
    fn admits(&self, n_params: usize) -> bool;
    /// `params` grown to `n_layers` layers, function-preserving, the new layers drawn from a
    /// seed every node derives from `round`.
    fn grow(&self, params: &[f32], n_layers: usize, round: Round) -> Result<Vec<f32>, String>;
    /// Per-parameter `values` of a model of `values.len()` parameters laid over the order of a
    /// model of `n_params`: each parameter keeps its values, new ones get zeros.
    fn carry(&self, values: &[f32], n_params: usize) -> Result<Vec<f32>, String>;
}

/// This node's budget, the pool sizes it recorded, and the network's growth rule.
#[derive(Debug)]
pub(crate) struct Pool {
    /// This node's memory budget, announced with its Δs.
    pub(crate) budget: u64,
    /// Pool sizes at the latest boundaries, oldest first.
    pub(crate) history: Vec<u64>,
    /// The growth rule; `None`: the model keeps its depth.
    pub(crate) growth: Option<Box<dyn Growth>>,
    /// For the latest depth changes: the last round trained at the earlier size, and that
    /// size (audits of a round before growth check its checkpoints at it).
    pub(crate) sizes: BTreeMap<Round, usize>,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            budget: u64::MAX,
            history: Vec::new(),
            growth: None,
            sizes: BTreeMap::new(),
        }
    }
}

/// The pool's size over the `included` contributors of the closing round (saturating).
pub(crate) fn pool_bytes(node: &Node, included: &[NodeId]) -> u64 {
    included
        .iter()
        .filter_map(|id| node.inbox.get(id))
        .fold(0u64, |sum, entry| {
            sum.saturating_add(entry.announcement.memory_budget)
        })
}

/// Records the pool size of the boundary just passed and grows the model, its outer momentum
/// and error-feedback residual when the schedule says so: the new depth, or why growing failed
/// (the model is then left as it was, and the hash vote moves this node to the network's
/// state); `None` when the model keeps its depth.
pub(crate) fn at_boundary(
    node: &mut Node,
    closed: Round,
    pool_bytes: u64,
) -> Option<Result<usize, String>> {
    record(&mut node.pool.history, pool_bytes);
    let growth = node.pool.growth.as_ref()?;
    let n_layers = growth.decide(node.params.len(), &node.pool.history, closed)?;
    Some(grown(node, n_layers, closed).map(|()| n_layers))
}

/// The parameter count `round` was trained at: the size before the first depth change after
/// it, else the model's now.
pub(crate) fn n_params_of(node: &Node, round: Round) -> usize {
    node.pool
        .sizes
        .range(round..)
        .next()
        .map_or(node.params.len(), |(_, n)| *n)
}

/// Notes that rounds up to `last` trained at `n_params` (the model changed depth after it),
/// forgetting changes older than audits reach back.
pub(crate) fn note_resize(node: &mut Node, last: Round, n_params: usize) {
    node.pool.sizes.insert(last, n_params);
    let keep_from = last.saturating_sub(SIZES_KEPT);
    node.pool.sizes.retain(|round, _| *round >= keep_from);
}

/// Rounds back that depth changes are remembered for audits (they reach one or two back).
const SIZES_KEPT: u64 = 16;

/// Appends `size`, keeping the latest [`POOL_HISTORY`].
fn record(history: &mut Vec<u64>, size: u64) {
    history.push(size);
    let excess = history.len().saturating_sub(POOL_HISTORY);
    history.drain(..excess);
}

/// Grows every per-parameter state of the node to `n_layers`.
fn grown(node: &mut Node, n_layers: usize, closed: Round) -> Result<(), String> {
    let growth = node.pool.growth.as_ref().ok_or("no growth rule")?;
    let params = growth.grow(&node.params, n_layers, closed)?;
    let n = params.len();
    let momentum = growth.carry(node.outer.momentum(), n)?;
    let residual = match node.residual.as_slice() {
        [] => Vec::new(),
        values => growth.carry(values, n)?,
    };
    node.outer = neuroshard_train::OuterOptimizer::from_state(node.config.outer, momentum)
        .map_err(|err| err.to_string())?;
    node.residual = neuroshard_compress::Residual::from_values(residual);
    note_resize(node, closed, node.params.len());
    node.params = params;
    node.model_hash = Hash::of_f32(&node.params);
    Ok(())
}

/// Whether a peer's state of `n_params` parameters may be installed: the node's own size, or
/// one the growth rule admits.
pub(crate) fn admits(node: &Node, n_params: usize) -> bool {
    n_params == node.params.len()
        || node
            .pool
            .growth
            .as_ref()
            .is_some_and(|growth| growth.admits(n_params))
}

/// A peer's pool history, refused when longer than [`POOL_HISTORY`].
pub(crate) fn install_history(node: &mut Node, history: &[u64]) -> bool {
    if history.len() > POOL_HISTORY {
        return false;
    }
    node.pool.history = history.to_vec();
    true
}
