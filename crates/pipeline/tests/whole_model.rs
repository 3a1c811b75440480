//! M micro-batches through a 1F1B pipeline give the whole model's loss and gradients on the
//! batch of M · b.

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm, Stage};
use neuroshard_pipeline::{
    Layout, Plan, Precision, even_split, relative_error, run_step, whole_gradients,
};
use neuroshard_primitives::Batch;

fn config() -> Config {
    Config {
        vocab_size: 50,
        d_model: 32,
        n_layers: 4,
        n_heads: 4,
        n_kv_heads: 2,
        d_ff: 48,
        seq_len: 16,
        rope_theta: 10_000.0,
        norm_eps: 1e-5,
    }
}

fn batch(rows: usize, seq: usize) -> Batch {
    let tokens = (0..(rows * (seq + 1)) as u32)
        .map(|i| (i * 11 + i / 5) % 50)
        .collect();
    Batch::new(tokens, rows, seq)
}

fn pipeline_against_whole(precision: Precision, n_stages: usize, micro: u32) -> (f32, f32) {
    let cfg = config();
    let model = NeuroLlm::new(&cfg, 5, &Device::Cpu).unwrap();
    let stages: Vec<Stage> = even_split(&cfg, n_stages)
        .unwrap()
        .into_iter()
        .map(|spec| Stage::new(&cfg, spec, 5, &Device::Cpu).unwrap())
        .collect();
    let batch = batch(8, 12);
    let (loss, grads) = model.loss_and_grads(&batch).unwrap();
    let plan = Plan::one_f_one_b(n_stages, micro).unwrap();
    let step = run_step(&stages, &plan, 3, &batch, precision).unwrap();
    let layout = Layout::new(&model.param_shapes());
    let got = whole_gradients(&layout, &stages, &step.outcomes).unwrap();
    (
        (step.loss().unwrap() - loss).abs() / loss,
        relative_error(&got, &grads) as f32,
    )
}

#[test]
fn micro_batches_through_three_stages_give_the_whole_batchs_gradient() {
    for micro in [1, 2, 4, 8] {
        let (loss_err, grad_err) = pipeline_against_whole(Precision::F32, 3, micro);
        assert!(
            loss_err <= 1e-5,
            "M={micro}: loss relative error {loss_err}"
        );
        assert!(
            grad_err <= 1e-4,
            "M={micro}: gradient relative error {grad_err}"
        );
    }
}

#[test]
fn splits_cover_the_layers_in_order_and_bad_bounds_are_refused() {
    let cfg = config();
    let even = even_split(&cfg, 3).unwrap();
    assert_eq!(
        even.iter().map(|s| s.layers.clone()).collect::<Vec<_>>(),
        [0..1, 1..2, 2..4]
    );
    assert!(even[0].embedding && !even[1].embedding && even[2].head && !even[1].head);
    let head_alone = neuroshard_pipeline::split_at(&cfg, &[2, 4]).unwrap();
    assert_eq!(head_alone[2].layers, 4..4);
    for bad in [&[3, 2][..], &[2, 5], &[1, 1]] {
        assert!(neuroshard_pipeline::split_at(&cfg, bad).is_err(), "{bad:?}");
    }
    assert!(even_split(&cfg, 5).is_err());
}

#[test]
fn one_stage_is_the_whole_model() {
    let (loss_err, grad_err) = pipeline_against_whole(Precision::F32, 1, 4);
    assert!(
        loss_err <= 1e-5 && grad_err <= 1e-4,
        "{loss_err} {grad_err}"
    );
}

#[test]
fn sixteen_bit_frames_stay_close_and_f32_is_closer() {
    let (_, f32_err) = pipeline_against_whole(Precision::F32, 4, 4);
    let (_, bf16_err) = pipeline_against_whole(Precision::Bf16, 4, 4);
    let (_, f16_err) = pipeline_against_whole(Precision::F16, 4, 4);
    assert!(
        f32_err < f16_err && f16_err < bf16_err,
        "{f32_err} {f16_err} {bf16_err}"
    );
    assert!(
        bf16_err < 0.05,
        "bf16 frames: gradient relative error {bf16_err}"
    );
}
