//! A model split over three pipeline stages trains exactly like the whole model.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use neuroshard_model::{Config, NeuroLlm, Stage, StageInput, StageSpec};

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

fn stages(cfg: &Config, seed: u64) -> [Stage; 3] {
    let spec = |embedding, layers, head| StageSpec {
        embedding,
        layers,
        head,
    };
    [
        spec(true, 0..1, false),
        spec(false, 1..3, false),
        spec(false, 3..4, true),
    ]
    .map(|s| Stage::new(cfg, s, seed, &Device::Cpu).unwrap())
}

/// Each stage's flat vector, split by its parameter names.
fn by_name(stage: &Stage, flat: &[f32]) -> HashMap<String, Vec<f32>> {
    let mut offset = 0;
    let mut out = HashMap::new();
    for (name, shape) in stage.param_shapes() {
        let n: usize = shape.iter().product();
        out.insert(name, flat[offset..offset + n].to_vec());
        offset += n;
    }
    assert_eq!(offset, flat.len());
    out
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        .sqrt();
    diff / b.iter().map(|y| y * y).sum::<f32>().sqrt().max(1e-12)
}

#[test]
fn three_stages_give_the_whole_models_loss_and_gradients() {
    let cfg = config();
    let model = NeuroLlm::new(&cfg, 21, &Device::Cpu).unwrap();
    let [s0, s1, s2] = stages(&cfg, 21);
    let (b, t) = (2, 12);
    let tokens: Vec<u32> = (0..(b * (t + 1)) as u32)
        .map(|i| (i * 11 + i / 5) % 50)
        .collect();
    let batch = neuroshard_primitives::Batch::new(tokens, b, t);
    let (loss, grads) = model.loss_and_grads(&batch).unwrap();

    let inputs =
        StageInput::Tokens(Tensor::from_vec(batch.inputs(), (b, t), &Device::Cpu).unwrap());
    let targets = Tensor::from_vec(batch.targets(), (b, t), &Device::Cpu).unwrap();
    let h1 = StageInput::Hidden(s0.forward(&inputs).unwrap());
    let h2 = StageInput::Hidden(s1.forward(&h1).unwrap());
    let (stage_loss, g2) = s2.loss_and_backward(&h2, &targets).unwrap();
    let g1 = s1.backward(&h1, g2.input.as_ref().unwrap()).unwrap();
    let g0 = s0.backward(&inputs, g1.input.as_ref().unwrap()).unwrap();
    assert!(g0.input.is_none());
    assert!(
        (stage_loss - loss).abs() <= 1e-5 * loss,
        "{stage_loss} vs {loss}"
    );

    let whole = by_name(model.stage(), &grads);
    let mut seen = 0;
    for (stage, g) in [(&s0, &g0), (&s1, &g1), (&s2, &g2)] {
        for (name, grad) in by_name(stage, &g.params) {
            let err = rel_err(&grad, &whole[&name]);
            assert!(err <= 1e-4, "{name}: relative error {err}");
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        whole.len(),
        "the stages hold every parameter exactly once"
    );
}

#[test]
fn stage_weights_equal_the_whole_models() {
    let cfg = config();
    let model = NeuroLlm::new(&cfg, 22, &Device::Cpu).unwrap();
    let whole = by_name(model.stage(), &model.flat_params().unwrap());
    for stage in stages(&cfg, 22) {
        for (name, values) in by_name(&stage, &stage.flat_params().unwrap()) {
            assert_eq!(values, whole[&name], "{name}");
        }
    }
}

#[test]
fn a_spec_lays_out_its_stage_part_by_part() {
    let cfg = config();
    let whole = StageSpec::full(&cfg);
    let built = Stage::new(&cfg, whole.clone(), 5, &Device::Cpu).unwrap();
    assert_eq!(whole.param_shapes(&cfg).unwrap(), built.param_shapes());
    for stage in stages(&cfg, 5) {
        assert_eq!(
            stage.spec().param_shapes(&cfg).unwrap(),
            stage.param_shapes()
        );
    }
}

#[test]
fn stages_refuse_the_wrong_input_and_bad_specs() {
    let cfg = config();
    let [s0, s1, _] = stages(&cfg, 23);
    let tokens = StageInput::Tokens(Tensor::new(&[[1u32, 2]], &Device::Cpu).unwrap());
    let hidden = StageInput::Hidden(
        Tensor::zeros((1, 2, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(s0.forward(&hidden).is_err());
    assert!(s1.forward(&tokens).is_err());
    assert!(
        s1.loss(&hidden, &Tensor::new(&[[1u32, 2]], &Device::Cpu).unwrap())
            .is_err()
    );
    let wrong_grad = Tensor::zeros((1, 2, 31), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(s1.backward(&hidden, &wrong_grad).is_err());
    let bad = |layers| {
        Stage::new(
            &cfg,
            StageSpec {
                embedding: false,
                layers,
                head: false,
            },
            0,
            &Device::Cpu,
        )
    };
    assert!(bad(2..5).is_err());
    assert!(bad(2..2).is_err());
}

#[test]
fn head_backward_from_logit_gradients_equals_loss_and_backward() {
    let cfg = config();
    let [_, _, s2] = stages(&cfg, 24);
    let (b, t, v) = (2, 5, cfg.vocab_size);
    let hidden = Tensor::randn(0f32, 1.0, (b, t, cfg.d_model), &Device::Cpu).unwrap();
    let input = StageInput::Hidden(hidden);
    let ids: Vec<u32> = (0..(b * t) as u32).map(|i| (i * 17) % v as u32).collect();
    let targets = Tensor::from_vec(ids.clone(), (b, t), &Device::Cpu).unwrap();
    let (_, want) = s2.loss_and_backward(&input, &targets).unwrap();
    // d(mean CE)/d(logits) = (softmax − one-hot) / n.
    let logits = s2.forward(&input).unwrap();
    let probs = candle_nn::ops::softmax_last_dim(&logits).unwrap();
    let mut onehot = vec![0f32; b * t * v];
    for (row, &id) in ids.iter().enumerate() {
        onehot[row * v + id as usize] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (b, t, v), &Device::Cpu).unwrap();
    let grad = ((probs - onehot).unwrap() / (b * t) as f64).unwrap();
    let got = s2.backward(&input, &grad).unwrap();
    assert!(rel_err(&got.params, &want.params) <= 1e-4);
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(
        rel_err(
            &flat(got.input.as_ref().unwrap()),
            &flat(want.input.as_ref().unwrap())
        ) <= 1e-4
    );
}
