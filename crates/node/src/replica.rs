//! The worker that trains a real NeuroLLM replica: H steps of the shared inner loop
//! (`neuroshard_train::InnerLoop`) on the node's batches, recorded as a chain of checkpoints;
//! and the verifier that replays other nodes' segments with the same inner loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use neuroshard_primitives::{Batch, BatchSource, Hash, NodeId};
use neuroshard_train::{InnerConfig, InnerLoop, pseudo_gradient};
use neuroshard_verify::{Chain, Checkpoint};

use crate::work::{ReplayJob, Replayed, TrainingJob, TrainingResult, Verifier, Worker};
use crate::{Error, Result, Round};

/// Rounds of checkpoints a store keeps: the round just trained and the one before, whose audits
/// are under way.
pub const CHECKPOINT_ROUNDS: u64 = 2;

/// The latest inner-step loss of a worker, readable from other threads while it trains (for a
/// live display). Cheap to clone; every clone reads the same value.
#[derive(Debug, Clone)]
pub struct LossGauge(Arc<AtomicU32>);

impl Default for LossGauge {
    fn default() -> Self {
        Self::new()
    }
}

impl LossGauge {
    /// A gauge that has seen no loss yet.
    pub fn new() -> Self {
        Self(Arc::new(AtomicU32::new(f32::NAN.to_bits())))
    }

    /// Records the loss of the latest step.
    pub fn set(&self, loss: f32) {
        self.0.store(loss.to_bits(), Ordering::Relaxed);
    }

    /// The loss of the last inner step, `None` before the first.
    pub fn get(&self) -> Option<f32> {
        Some(f32::from_bits(self.0.load(Ordering::Relaxed))).filter(|l| !l.is_nan())
    }
}

/// Where a worker keeps its chains' checkpoints (wire form) until the audits of their round are
/// over, and where the driver reads them to answer a challenge. Keeping a checkpoint of round r
/// may drop those of rounds before r − [`CHECKPOINT_ROUNDS`] + 1.
pub trait CheckpointStore: Send {
    /// Keeps checkpoint `index` of `round`'s chain.
    fn keep(&mut self, round: Round, index: u64, bytes: Vec<u8>) -> Result<()>;

    /// Checkpoint `index` of `round`'s chain, if it is still kept.
    fn get(&self, round: Round, index: u64) -> Option<Vec<u8>>;
}

/// Checkpoints by (round, index).
type Kept = BTreeMap<(Round, u64), Vec<u8>>;

/// Checkpoints in memory, shared between the worker and its driver (the simulator's store).
#[derive(Debug, Clone, Default)]
pub struct MemoryCheckpoints(Arc<Mutex<Kept>>);

impl MemoryCheckpoints {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

impl CheckpointStore for MemoryCheckpoints {
    fn keep(&mut self, round: Round, index: u64, bytes: Vec<u8>) -> Result<()> {
        let mut kept = self.lock();
        let oldest = round.saturating_sub(CHECKPOINT_ROUNDS - 1);
        kept.retain(|(r, _), _| *r >= oldest);
        kept.insert((round, index), bytes);
        Ok(())
    }

    fn get(&self, round: Round, index: u64) -> Option<Vec<u8>> {
        self.lock().get(&(round, index)).cloned()
    }
}

/// A NeuroLLM replica with its own AdamW state, which persists across rounds as DiLoCo wants.
#[derive(Debug)]
pub struct ModelWorker<S, K> {
    inner: InnerLoop,
    data: S,
    store: K,
    gauge: LossGauge,
}

impl<S: BatchSource, K: CheckpointStore> ModelWorker<S, K> {
    /// A replica stepping `inner` on `data` (this node's assigned batches), keeping its chains'
    /// checkpoints in `store`.
    pub fn new(inner: InnerLoop, data: S, store: K) -> Self {
        Self {
            inner,
            data,
            store,
            gauge: LossGauge::new(),
        }
    }

    /// A gauge that follows this worker's inner-step loss.
    pub fn loss_gauge(&self) -> LossGauge {
        self.gauge.clone()
    }

    /// The inner loop: its model and AdamW state.
    pub fn inner(&self) -> &InnerLoop {
        &self.inner
    }

    /// Replaces the inner loop (the model grew, its AdamW state carried over by the caller).
    pub fn set_inner(&mut self, inner: InnerLoop) {
        self.inner = inner;
    }

    /// One inner step at global step `step`, on batch `step` of the node's data.
    fn inner_step(&mut self, step: u64) -> Result<f32> {
        let batch = read(&self.data, self.inner.config(), step)?;
        let loss = self.inner.step_on(&batch, step)?.loss;
        self.gauge.set(loss);
        Ok(loss)
    }

    /// Steps `first..first + len`, their losses.
    fn run(&mut self, first: u64, len: u64) -> Result<Vec<f32>> {
        (first..first + len).map(|s| self.inner_step(s)).collect()
    }

    /// Records checkpoint `index` of `round`'s chain: into the chain and the store.
    fn record(
        &mut self,
        chain: &mut Chain,
        round: Round,
        step: u64,
        losses: Vec<f32>,
    ) -> Result<()> {
        let checkpoint = Checkpoint::capture(&self.inner, step);
        chain.push(&checkpoint, losses, Hash::default());
        let index = chain.leaves().len() as u64 - 1;
        self.store.keep(round, index, checkpoint.to_bytes())
    }
}

impl<S: BatchSource, K: CheckpointStore> Worker for ModelWorker<S, K> {
    type Error = Error;

    /// H inner steps from `start`; batch `round × H + i` is step `i`'s, so a replay (or a
    /// verifier) sees the same data. With a chain plan, a checkpoint after every segment.
    fn train(&mut self, job: &TrainingJob, start: &[f32]) -> Result<TrainingResult> {
        self.train_segments(job, start, |_| false)
    }
}

impl<S: BatchSource, K: CheckpointStore> ModelWorker<S, K> {
    /// [`Worker::train`], skipping the segments `skip` names: what a lazy contributor does.
    /// Only the simulator's cheaters and the tests call this (feature `cheat`).
    #[cfg(feature = "cheat")]
    pub fn train_lazily(
        &mut self,
        job: &TrainingJob,
        start: &[f32],
        skip: impl FnMut(u64) -> bool,
    ) -> Result<TrainingResult> {
        self.train_segments(job, start, skip)
    }

    /// The training job. A skipped segment is not computed: its end repeats the previous
    /// segment's movement and losses, with the step counters advanced as if it had run.
    fn train_segments(
        &mut self,
        job: &TrainingJob,
        start: &[f32],
        mut skip: impl FnMut(u64) -> bool,
    ) -> Result<TrainingResult> {
        self.inner.set_params(start)?;
        let first = job.round * job.steps as u64;
        let mut chain = Chain::new();
        let losses = match job.chain {
            None => self.run(first, job.steps as u64)?,
            Some(plan) => {
                self.record(&mut chain, job.round, first, Vec::new())?;
                let mut before = start.to_vec();
                for j in 0..plan.count() {
                    let (offset, len) = plan.segment(j);
                    let previous = self.inner.params().to_vec();
                    let losses = if skip(j) {
                        self.pretend(
                            &before,
                            len,
                            chain.leaves().last().map(|l| l.losses.clone()),
                        )?
                    } else {
                        self.run(first + offset, len)?
                    };
                    before = previous;
                    self.record(&mut chain, job.round, first + offset + len, losses)?;
                }
                chain.losses().collect()
            }
        };
        let delta = pseudo_gradient(start, self.inner.params());
        let (loss_start, loss_end) = loss_ends(&losses);
        Ok(TrainingResult {
            round: job.round,
            start: job.start,
            delta,
            tokens: job.steps as u64 * self.inner.config().tokens_per_step(),
            loss_start,
            loss_end,
            chain,
        })
    }

    /// A skipped segment of `len` steps: move the weights as far again as since `before`, count
    /// the steps, repeat the last losses.
    fn pretend(&mut self, before: &[f32], len: u64, last: Option<Vec<f32>>) -> Result<Vec<f32>> {
        let now = self.inner.params().to_vec();
        let params: Vec<f32> = now.iter().zip(before).map(|(p, b)| p + (p - b)).collect();
        let optimizer = self.inner.optimizer();
        let advanced = neuroshard_train::AdamW::from_state(
            *optimizer.config(),
            optimizer.m().to_vec(),
            optimizer.v().to_vec(),
            optimizer.steps() + len,
        )?;
        self.inner.restore(&params, advanced)?;
        let last = last.filter(|l| !l.is_empty()).unwrap_or(vec![0.0]);
        Ok((0..len as usize).map(|i| last[i % last.len()]).collect())
    }
}

/// The mean loss over the first and over the last tenth of the steps (at least one each): what
/// a training result reports as its start and end loss.
pub fn loss_ends(losses: &[f32]) -> (f32, f32) {
    let window = (losses.len() / 10)
        .clamp(1, losses.len().max(1))
        .min(losses.len());
    let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len().max(1) as f32;
    (
        mean(&losses[..window]),
        mean(&losses[losses.len() - window..]),
    )
}

/// Batch `step` of `data` in `inner`'s batch shape.
fn read<S: BatchSource>(data: &S, inner: &InnerConfig, step: u64) -> Result<Batch> {
    data.batch(step, inner.batch_size, inner.seq_len)
        .map_err(|err| Error::Data(Box::new(err)))
}

/// Any node's assigned batches, as a verifier needs them.
pub trait Assignments {
    /// One node's batches.
    type Source: BatchSource;

    /// The batches `node` is assigned (batch `round × H + i` is its step `i` of `round`).
    fn source(&self, node: NodeId) -> Result<Self::Source>;
}

/// Replays other nodes' segments on a model of its own, with the inner loop that trains.
#[derive(Debug)]
pub struct ModelVerifier<A> {
    inner: InnerLoop,
    data: A,
    val: Vec<Batch>,
    outer_lr: f32,
}

impl<A: Assignments> ModelVerifier<A> {
    /// A verifier stepping `inner` (its optimizer state is replaced by each replay's start) on
    /// the batches `data` assigns; usefulness is measured on `val` at outer learning rate
    /// `outer_lr`.
    pub fn new(inner: InnerLoop, data: A, val: Vec<Batch>, outer_lr: f32) -> Self {
        Self {
            inner,
            data,
            val,
            outer_lr,
        }
    }

    /// Sequences per batch and tokens per sequence of the inner loop.
    pub fn batch_shape(&self) -> (usize, usize) {
        let config = self.inner.config();
        (config.batch_size, config.seq_len)
    }

    /// The inner loop it replays with.
    pub fn inner(&self) -> &InnerLoop {
        &self.inner
    }

    /// Replaces the inner loop (a replay of a grown model needs one of its size).
    pub fn set_inner(&mut self, inner: InnerLoop) {
        self.inner = inner;
    }

    /// Whether it has held-out batches to score usefulness on.
    pub fn has_val(&self) -> bool {
        !self.val.is_empty()
    }

    /// Sets the held-out batches usefulness is scored on (a node loads them once its data is
    /// local).
    pub fn set_val(&mut self, val: Vec<Batch>) {
        self.val = val;
    }

    /// The held-out and own-batch losses before and after applying `delta` alone to `base`.
    fn usefulness(
        &mut self,
        base: &[f32],
        delta: &[f32],
        own: &[Batch],
    ) -> Result<neuroshard_verify::Usefulness> {
        let after: Vec<f32> = base
            .iter()
            .zip(delta)
            .map(|(p, d)| p - self.outer_lr * d)
            .collect();
        let mut losses = [0.0; 4];
        for (i, (params, batches)) in [
            (base, &self.val[..]),
            (&after[..], &self.val[..]),
            (base, own),
            (&after[..], own),
        ]
        .into_iter()
        .enumerate()
        {
            self.inner.set_params(params)?;
            losses[i] = neuroshard_train::mean_loss(self.inner.model(), batches)?;
        }
        Ok(neuroshard_verify::Usefulness {
            val_before: losses[0],
            val_after: losses[1],
            own_before: losses[2],
            own_after: losses[3],
        })
    }
}

impl<A: Assignments> Verifier for ModelVerifier<A> {
    type Error = Error;

    fn replay(&mut self, job: &ReplayJob) -> Result<Replayed> {
        let source = self.data.source(job.contributor)?;
        let opened = &job.opened;
        let steps = opened.end.step.saturating_sub(opened.start.step);
        let adamw = *self.inner.optimizer().config();
        let config = *self.inner.config();
        let mut own = Vec::new();
        let (end, losses) =
            neuroshard_verify::replay(&mut self.inner, adamw, &opened.start, steps, |s| {
                let batch = read(&source, &config, s);
                if let Ok(b) = &batch {
                    own.push(b.clone());
                }
                batch
            })?;
        let usefulness = match &job.purpose {
            crate::work::Purpose::Audit {
                usefulness: Some((base, delta)),
            } if !self.val.is_empty() => Some(self.usefulness(base, delta, &own)?),
            _ => None,
        };
        Ok(Replayed {
            end,
            losses,
            usefulness,
            frames: Ok(()),
        })
    }
}
