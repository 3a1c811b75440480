//! The synchronous data-parallel baseline: every step, every node's gradient is all-reduced as
//! f32 and one shared AdamW step is taken, on the same batches (so the same tokens) the DiLoCo
//! nodes train on.
//!
//! Traffic and time follow a ring all-reduce of P f32 values over n nodes: each node sends and
//! receives 2(n − 1)/n · 4P bytes per step, in 2(n − 1) hops that each cost the link latency plus
//! 4P/n bytes at the link's rate. A step also waits for the slowest node's compute.

use neuroshard_primitives::{BatchSource, Keypair};
use neuroshard_train::InnerLoop;
use serde::Serialize;

use crate::report::finite;
use crate::rng::RngTree;
use crate::workload::{DataPlan, ModelWorkload, Workload};
use crate::{Error, Result, SimConfig};

/// The outcome of a baseline run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineReport {
    /// Validation loss after the last step.
    pub final_val_loss: Option<f32>,
    /// Validation loss after every H steps (one DiLoCo round's worth of tokens).
    pub val_losses: Vec<Option<f32>>,
    /// Bytes each node sent.
    pub bytes_sent: u64,
    /// Bytes each node received.
    pub bytes_received: u64,
    /// Simulated seconds.
    pub sim_time_s: f64,
    /// Training tokens processed by all nodes together.
    pub tokens: u64,
}

/// Runs synchronous data-parallel training for `config.rounds × H` steps on `config.nodes` nodes.
pub fn sync_data_parallel<D: DataPlan + Clone>(
    workload: &mut ModelWorkload<D>,
    config: &SimConfig,
) -> Result<BaselineReport> {
    let tree = RngTree::new(config.seed);
    let sources = (0..config.nodes)
        .map(|i| {
            let id = Keypair::from_seed(tree.seed_bytes("key", i as u64)).node_id();
            workload.data().source(i, id)
        })
        .collect::<Result<Vec<_>>>()?;
    let inner = *workload.inner();
    let mut replica = InnerLoop::new(workload.genesis_model()?, inner)?;
    let h = config.node.inner_steps as u64;
    let mut val_losses = Vec::new();
    for step in 0..config.rounds * h {
        let batches = sources
            .iter()
            .map(|source| source.batch(step, inner.batch_size, inner.seq_len))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| Error::Data(Box::new(err)))?;
        let gradients = replica.gradients(&batches, step)?;
        replica.descend(&gradients, step)?;
        if (step + 1) % h == 0 {
            val_losses.push(finite(workload.val_loss(replica.params())?));
        }
    }
    let n_params = replica.params().len();
    Ok(ring_accounting(workload, config, n_params, val_losses))
}

/// Fills in bytes, time and tokens for the run.
fn ring_accounting<D: DataPlan + Clone>(
    workload: &ModelWorkload<D>,
    config: &SimConfig,
    n_params: usize,
    val_losses: Vec<Option<f32>>,
) -> BaselineReport {
    let n = config.nodes as f64;
    let steps = config.rounds as f64 * config.node.inner_steps as f64;
    let payload = 4.0 * n_params as f64;
    let per_step_bytes = if config.nodes > 1 {
        2.0 * (n - 1.0) / n * payload
    } else {
        0.0
    };
    let hops = 2.0 * (n - 1.0);
    let link = config.link;
    let comm = hops * (link.latency_s + payload / n / link.effective_rate());
    let tokens_per_step = workload.tokens_per_step() as f64;
    let slowest = config
        .tokens_per_sec
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let compute = tokens_per_step / slowest;
    BaselineReport {
        final_val_loss: val_losses.last().copied().flatten(),
        val_losses,
        bytes_sent: (per_step_bytes * steps) as u64,
        bytes_received: (per_step_bytes * steps) as u64,
        sim_time_s: steps * (compute + comm),
        tokens: (steps * n * tokens_per_step) as u64,
    }
}
