//! Genesis data for simulated nodes: each node reads the shards `neuroshard_data::assign` gives
//! it for the round, and validation uses the genesis validation split.

use std::cell::RefCell;
use std::sync::Arc;

use neuroshard_data::{GenesisDir, TrainBatches, assign};
use neuroshard_primitives::{Batch, BatchSource, NodeId};

use crate::workload::DataPlan;
use crate::{Error, Result};

/// Every node's data comes from one genesis directory.
#[derive(Debug, Clone)]
pub struct GenesisData {
    dir: Arc<GenesisDir>,
    inner_steps: u64,
    shards_per_node: usize,
}

impl GenesisData {
    /// Nodes train `inner_steps` steps per round on `shards_per_node` assigned shards each.
    pub fn new(dir: GenesisDir, inner_steps: u64, shards_per_node: usize) -> Result<Self> {
        if inner_steps == 0 || shards_per_node == 0 {
            return Err(Error::InvalidConfig(
                "genesis data needs at least one inner step and one shard per node".into(),
            ));
        }
        Ok(Self {
            dir: Arc::new(dir),
            inner_steps,
            shards_per_node,
        })
    }

    /// The genesis directory.
    pub fn dir(&self) -> &GenesisDir {
        &self.dir
    }
}

impl DataPlan for GenesisData {
    type Source = GenesisSource;

    fn source(&self, _node: usize, id: NodeId) -> Result<GenesisSource> {
        Ok(GenesisSource {
            plan: self.clone(),
            id,
            current: RefCell::new(None),
        })
    }

    fn val_batches(&self, count: usize, batch: usize, seq: usize) -> Result<Vec<Batch>> {
        let val = self.dir.validation_batches().map_err(data_error)?;
        let available = val.n_batches(batch, seq).min(count as u64);
        if available == 0 {
            return Err(Error::InvalidConfig(format!(
                "the genesis validation split holds no batch of {batch} x {seq} tokens; use a smaller --batch-size"
            )));
        }
        (0..available)
            .map(|i| val.batch(i, batch, seq).map_err(data_error))
            .collect()
    }
}

/// One node's view of the genesis data: batch `i` belongs to round `i / H`, drawn from the
/// shards assigned to the node for that round (loaded once per round).
#[derive(Debug)]
pub struct GenesisSource {
    plan: GenesisData,
    id: NodeId,
    current: RefCell<Option<(u64, TrainBatches)>>,
}

impl GenesisSource {
    /// The batches of `round`'s assigned shards, keyed by the genesis seed and this node.
    fn load(&self, round: u64) -> Result<TrainBatches, neuroshard_data::Error> {
        let dir = &self.plan.dir;
        let n_shards = dir.manifest().shards.len();
        let shards = assign(
            dir.network_id(),
            round,
            self.id,
            n_shards,
            self.plan.shards_per_node,
        );
        let id_bits = u64::from_le_bytes(self.id.0[..8].try_into().expect("32-byte id"));
        dir.train_batches(Some(&shards), dir.genesis().seed ^ id_bits)
    }
}

impl BatchSource for GenesisSource {
    type Error = neuroshard_data::Error;

    fn batch(&self, index: u64, batch: usize, seq: usize) -> Result<Batch, Self::Error> {
        let round = index / self.plan.inner_steps;
        let mut current = self.current.borrow_mut();
        if current.as_ref().is_none_or(|(loaded, _)| *loaded != round) {
            *current = Some((round, self.load(round)?));
        }
        let (_, batches) = current.as_ref().expect("loaded above");
        batches.batch(index, batch, seq)
    }
}

fn data_error(err: neuroshard_data::Error) -> Error {
    Error::Data(Box::new(err))
}
