//! `neuroshard bench pipeline --train-steps N`: trains through the pipeline in one process
//! (every stage's frames still encoded and decoded at the chosen precision), with the one inner
//! step descending on the pipeline's gradients, and reports the training and validation losses.

use anyhow::{Context, Result};
use candle_core::Device;
use neuroshard_data::GenesisDir;
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_pipeline::{Layout, Plan, run_step, whole_gradients};
use neuroshard_primitives::BatchSource;
use neuroshard_train::{AdamWConfig, InnerConfig, InnerLoop, LrSchedule, mean_loss};
use serde::Serialize;

use super::Shape;

/// Validation batches the final loss is measured on.
const VAL_BATCHES: u64 = 16;
/// The peak learning rate (`neuroshard train`'s default), with a tenth as the cosine's floor.
const LR: f32 = 2e-3;

#[derive(Debug, Serialize)]
struct TrainReport {
    preset: String,
    stages: usize,
    micro_batches: u32,
    precision: String,
    steps: u64,
    /// Mean training loss over the last tenth of the steps.
    train_loss_tail: f32,
    /// Validation loss after the last step.
    val_loss: f32,
    /// Frame bytes per predicted token per boundary, forward and backward.
    bytes_per_token: [f64; 2],
}

pub(super) fn run(
    shape: &Shape,
    genesis: &GenesisDir,
    steps: u64,
    threads: usize,
    json: bool,
) -> Result<()> {
    super::super::super::set_threads(Some(threads))?;
    let cfg = Config::preset(&shape.preset, shape.vocab)?;
    let mut stages = shape.build_stages(&cfg)?;
    let inner = InnerConfig {
        batch_size: shape.batch,
        seq_len: shape.seq,
        adamw: AdamWConfig::NEUROSHARD,
        schedule: LrSchedule::new(steps / 10, steps, LR, LR / 10.0)?,
        clip_norm: 1.0,
        dp: None,
    };
    let mut inner = InnerLoop::new(NeuroLlm::new(&cfg, shape.seed, &Device::Cpu)?, inner)?;
    let layout = Layout::new(&inner.model().param_shapes());
    let plan = Plan::one_f_one_b(shape.stages, shape.micro_batches)?;
    let source = genesis
        .train_batches(None, shape.seed)
        .context("opening the training shards")?;
    let (mut losses, mut bytes) = (Vec::new(), [0u64; 2]);
    for step in 0..steps {
        let batch = source.batch(step, shape.batch, shape.seq)?;
        let local = run_step(&stages, &plan, step, &batch, shape.precision)?;
        let grads = whole_gradients(&layout, &stages, &local.outcomes)?;
        let loss = local.loss().context("the last stage reports the loss")?;
        let gradients = inner.pipeline_gradients(loss, batch.n_tokens(), grads)?;
        inner.descend(&gradients, step)?;
        for stage in &mut stages {
            stage.set_flat_params(&layout.scatter(&stage.param_shapes(), inner.params())?)?;
        }
        losses.push(loss);
        bytes.iter_mut().zip(local.bytes).for_each(|(b, l)| *b += l);
        if step % 50 == 0 {
            tracing::info!(step, loss, "training through the pipeline");
        }
    }
    let val = genesis
        .validation_batches()
        .context("opening the validation split")?;
    let val_batches = (0..VAL_BATCHES)
        .map(|i| val.batch(i, shape.batch, shape.seq))
        .collect::<Result<Vec<_>, _>>()?;
    let tail = &losses[losses.len() - (losses.len() / 10).max(1)..];
    let tokens = (steps as usize * shape.batch * shape.seq * (shape.stages - 1).max(1)) as f64;
    let report = TrainReport {
        preset: shape.preset.clone(),
        stages: shape.stages,
        micro_batches: shape.micro_batches,
        precision: shape.precision.to_string(),
        steps,
        train_loss_tail: tail.iter().sum::<f32>() / tail.len() as f32,
        val_loss: mean_loss(inner.model(), &val_batches)?,
        bytes_per_token: bytes.map(|b| b as f64 / tokens),
    };
    match json {
        true => println!("{}", serde_json::to_string(&report)?),
        false => println!(
            "{} frames, {steps} steps: training loss (last tenth) {:.4}, validation loss {:.4}",
            report.precision, report.train_loss_tail, report.val_loss
        ),
    }
    Ok(())
}
