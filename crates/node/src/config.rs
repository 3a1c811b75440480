//! The node's protocol settings: inner steps, round deadline, codec, aggregation rule, outer
//! optimiser, frame limit.

use std::time::Duration;

/// Settings every member of a network must share (they shape what honest replicas compute).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Inner steps H per round.
    pub inner_steps: usize,
    /// How long after a round starts its exchange closes at the latest.
    pub round_timeout: Duration,
    /// How Δs are compressed on the wire.
    pub compress: neuroshard_compress::CompressConfig,
    /// The robust aggregation rule and its parameters.
    pub aggregator: neuroshard_aggregate::Rule,
    /// The outer Nesterov optimiser's settings.
    pub outer: neuroshard_train::OuterConfig,
    /// The largest frame accepted from a peer, in bytes (bounds every allocation a peer causes).
    pub max_frame: usize,
}
