//! The node's protocol settings: inner steps, round deadline, codec, aggregation rule, outer
//! optimiser, frame limit.

use std::time::Duration;

use crate::Result;

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
    /// The largest frame accepted from a peer, in bytes (bounds every allocation a peer causes);
    /// [`NodeConfig::max_frame_for`] gives it.
    pub max_frame: usize,
    /// Proof of Neural Work: how contributions are committed and audited; `None` trusts every
    /// Δ that decodes (a network of one operator's machines, or a protocol test).
    pub audit: Option<neuroshard_verify::AuditConfig>,
}

impl NodeConfig {
    /// The frame limit for a network training `n_params` parameters under `compress`: the larger
    /// of sixteen Δ packets and a fraud proof (an opening of the last segment: two checkpoints of
    /// three vectors each, the base model and the residual, so eight f32 per parameter, which
    /// also covers a full-state resync), plus 1 MiB for the rest of the frame.
    pub fn max_frame_for(
        n_params: usize,
        compress: &neuroshard_compress::CompressConfig,
    ) -> Result<usize> {
        let payload = neuroshard_compress::encoded_len(n_params, compress)?;
        Ok((16 * payload).max(32 * n_params) + (1 << 20))
    }
}
