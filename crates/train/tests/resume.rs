//! A run interrupted by a checkpoint and resumed has bit-identical losses to one never stopped.

use std::path::Path;

use candle_core::Device;
use neuroshard_model::Config;
use neuroshard_primitives::Hash;
use neuroshard_train::{
    AdamWConfig, CheckpointPolicy, InMemorySource, LossEstimate, LrSchedule, Observer, RunSpec,
    StepStats, Trainer, Validation, checkpoint, run,
};

const STEPS: u64 = 6;

#[derive(Default)]
struct Record {
    losses: Vec<(u64, u32)>,
    val_losses: Vec<(u64, u32)>,
    checkpoints: Vec<u64>,
}

impl Observer for Record {
    fn on_step(&mut self, stats: &StepStats, val_loss: Option<LossEstimate>) {
        self.losses.push((stats.step, stats.loss.to_bits()));
        if let Some(v) = val_loss {
            self.val_losses.push((stats.step, v.mean.to_bits()));
        }
    }

    fn on_checkpoint(&mut self, step: u64, _dir: &Path) {
        self.checkpoints.push(step);
    }
}

fn corpus() -> InMemorySource {
    // A learnable pattern: counting modulo 61 with a skip.
    InMemorySource::new((0..4000u32).map(|i| (i * 7 + i / 13) % 61).collect(), 9)
}

fn spec(source: &InMemorySource) -> RunSpec {
    RunSpec {
        model: Config::preset("nano", 64).unwrap(),
        seed: 5,
        batch: 2,
        seq: 16,
        schedule: LrSchedule::new(2, STEPS, 3e-3, 3e-4).unwrap(),
        adamw: AdamWConfig::NEUROSHARD,
        max_grad_norm: 1.0,
        dp: None,
        tokenizer_hash: Hash::of(b"test tokenizer"),
        data_id: source.identity(),
    }
}

fn train(
    trainer: &mut Trainer,
    until: u64,
    policy: Option<&CheckpointPolicy>,
    record: &mut Record,
) {
    let source = corpus();
    let val = InMemorySource::new((0..500u32).map(|i| (i * 7 + i / 13) % 61).collect(), 1);
    let validation = Validation {
        source: &val,
        batches: 1,
        every: 2,
    };
    run(trainer, &source, Some(&validation), policy, until, record).unwrap();
}

#[test]
fn interrupted_and_resumed_run_matches_uninterrupted_bit_for_bit() {
    let source = corpus();
    let mut straight = Record::default();
    let mut trainer = Trainer::new(spec(&source), &Device::Cpu).unwrap();
    train(&mut trainer, STEPS, None, &mut straight);
    assert_eq!(straight.losses.len(), STEPS as usize);
    let first = f32::from_bits(straight.losses[0].1);
    let last = f32::from_bits(straight.losses[STEPS as usize - 1].1);
    assert!(last < first, "loss should fall: {first} -> {last}");

    let dir = tempfile::tempdir().unwrap();
    let policy = CheckpointPolicy {
        dir: dir.path().to_owned(),
        every: 0,
    };
    let mut resumed = Record::default();
    let mut first_half = Trainer::new(spec(&source), &Device::Cpu).unwrap();
    train(&mut first_half, 3, Some(&policy), &mut resumed);
    assert_eq!(resumed.checkpoints, vec![3]);
    drop(first_half);

    let loaded = checkpoint::load(dir.path(), &Device::Cpu).unwrap();
    loaded.meta.check_resumable(&spec(&source)).unwrap();
    assert_eq!(loaded.meta.step, 3);
    let mut second_half = loaded.trainer;
    train(&mut second_half, STEPS, Some(&policy), &mut resumed);

    assert_eq!(resumed.losses, straight.losses);
    // Validation at step 3 comes from the interruption's "last step"; compare the shared ones.
    let shared: Vec<_> = resumed
        .val_losses
        .iter()
        .filter(|(step, _)| *step != 3)
        .copied()
        .collect();
    assert_eq!(shared, straight.val_losses);
    assert_eq!(resumed.checkpoints, vec![3, 6]);
    assert_eq!(
        second_half.model().param_hash().unwrap(),
        trainer.model().param_hash().unwrap()
    );
}
