//! Growing a model adds layers on top without changing its output, keeps the canonical order,
//! and leaves every new weight matrix something to learn on the next step.

use candle_core::{Device, Tensor};
use neuroshard_model::{Config, Error, NeuroLlm, Stage, StageInput, StageSpec};
use neuroshard_primitives::Batch;

fn config(n_kv_heads: usize, d_ff: usize) -> Config {
    Config {
        vocab_size: 50,
        d_model: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads,
        d_ff,
        seq_len: 16,
        rope_theta: 10_000.0,
        norm_eps: 1e-5,
    }
}

fn tokens(b: usize, t: usize) -> Tensor {
    let ids: Vec<u32> = (0..(b * t) as u32).map(|i| (i * 7 + i / 3) % 50).collect();
    Tensor::from_vec(ids, (b, t), &Device::Cpu).unwrap()
}

fn batch() -> Batch {
    Batch::new((0..3 * 17).map(|i| (i * 11 + 3) % 50).collect(), 3, 16)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
    d.max(0).unwrap().to_scalar::<f32>().unwrap()
}

/// A trained-looking model: seeded weights moved by a few SGD steps, so the norm scales are
/// not all ones and the old layers are not at their init.
fn trained(cfg: &Config) -> NeuroLlm {
    let mut model = NeuroLlm::new(cfg, 3, &Device::Cpu).unwrap();
    for _ in 0..3 {
        let (_, grads) = model.loss_and_grads(&batch()).unwrap();
        let mut params = model.flat_params().unwrap();
        params
            .iter_mut()
            .zip(&grads)
            .for_each(|(p, g)| *p -= 0.5 * g);
        model.set_flat_params(&params).unwrap();
    }
    model
}

#[test]
fn the_grown_model_gives_the_same_logits() {
    for (kv, ff) in [(2, 48), (1, 47)] {
        let model = trained(&config(kv, ff));
        let grown = model.grown(5, 9).unwrap();
        assert_eq!(grown.config().n_layers, 5);
        let x = tokens(2, 16);
        let diff = max_abs_diff(&model.forward(&x).unwrap(), &grown.forward(&x).unwrap());
        assert!(diff <= 1e-6, "kv {kv} ff {ff}: logits moved by {diff}");
        let loss = (model.loss(&batch()).unwrap(), grown.loss(&batch()).unwrap());
        assert!((loss.0 - loss.1).abs() <= 1e-6, "{loss:?}");
    }
}

#[test]
fn the_grown_parameters_keep_the_canonical_order_and_the_old_values() {
    let model = trained(&config(2, 48));
    let grown = model.grown(4, 9).unwrap();
    let fresh = NeuroLlm::new(grown.config(), 9, &Device::Cpu).unwrap();
    assert_eq!(grown.param_shapes(), fresh.param_shapes());
    let old: Vec<(String, Tensor)> = model.named_tensors().unwrap();
    let new: std::collections::HashMap<String, Tensor> =
        grown.named_tensors().unwrap().into_iter().collect();
    for (name, tensor) in old {
        assert_eq!(max_abs_diff(&tensor, &new[&name]), 0.0, "{name}");
    }
    assert!(new.contains_key("layers.03.attn.q.weight"));
}

/// The new layers' gradients on the first step after growth, by parameter name.
fn new_layer_grads(model: &NeuroLlm) -> Vec<(String, f32)> {
    let (_, grads) = model.loss_and_grads(&batch()).unwrap();
    let mut offset = 0;
    let mut out = Vec::new();
    for (name, shape) in model.param_shapes() {
        let n: usize = shape.iter().product();
        if name.starts_with("layers.02") || name.starts_with("layers.03") {
            let norm = grads[offset..offset + n].iter().map(|g| g * g).sum::<f32>();
            out.push((name, norm.sqrt()));
        }
        offset += n;
    }
    out
}

#[test]
fn every_new_matrix_learns_on_the_first_step_and_the_norms_on_the_second() {
    let mut grown = trained(&config(2, 48)).grown(4, 9).unwrap();
    let first = new_layer_grads(&grown);
    assert_eq!(first.len(), 2 * 9);
    for (name, norm) in &first {
        match name.ends_with("norm.weight") {
            // The branch is identically zero in the scale's argument: no gradient yet.
            true => assert!(*norm < 1e-6, "{name}: {norm}"),
            false => assert!(*norm > 1e-6, "{name} gets no gradient: {norm}"),
        }
    }
    let (_, grads) = grown.loss_and_grads(&batch()).unwrap();
    let mut params = grown.flat_params().unwrap();
    params
        .iter_mut()
        .zip(&grads)
        .for_each(|(p, g)| *p -= 0.5 * g);
    grown.set_flat_params(&params).unwrap();
    for (name, norm) in new_layer_grads(&grown) {
        assert!(norm > 1e-6, "{name} still gets no gradient: {norm}");
    }
}

#[test]
fn grown_stages_chain_to_the_grown_model() {
    let cfg = config(2, 48);
    let model = trained(&cfg);
    let grown = model.grown(4, 9).unwrap();
    let specs = [
        StageSpec {
            embedding: true,
            layers: 0..1,
            head: false,
        },
        StageSpec {
            embedding: false,
            layers: 1..2,
            head: true,
        },
    ];
    let stages: Vec<Stage> = specs
        .map(|spec| {
            let mut stage = Stage::new(&cfg, spec, 3, &Device::Cpu).unwrap();
            let named = model.named_tensors().unwrap().into_iter();
            let mine: std::collections::HashMap<String, Tensor> = named
                .filter(|(n, _)| stage.param_shapes().iter().any(|(m, _)| m == n))
                .collect();
            stage.load_named(&mine).unwrap();
            stage.grown(4, 9).unwrap()
        })
        .into_iter()
        .collect();
    assert_eq!(stages[0].spec().layers, 0..1);
    assert_eq!(stages[1].spec().layers, 1..4);
    let x = tokens(2, 16);
    let hidden = stages[0].forward(&StageInput::Tokens(x.clone())).unwrap();
    let logits = stages[1].forward(&StageInput::Hidden(hidden)).unwrap();
    assert_eq!(max_abs_diff(&logits, &grown.forward(&x).unwrap()), 0.0);
}

#[test]
fn growth_never_removes_layers() {
    let model = NeuroLlm::new(&config(2, 48), 3, &Device::Cpu).unwrap();
    assert!(matches!(
        model.grown(1, 9),
        Err(Error::CannotShrink { from: 2, to: 1 })
    ));
    let same = model.grown(2, 9).unwrap();
    assert_eq!(same.param_hash().unwrap(), model.param_hash().unwrap());
}

#[test]
fn state_vectors_carry_over_with_zeros_for_the_new_layers() {
    let model = trained(&config(2, 48));
    let grown = model.grown(4, 9).unwrap();
    let old = model.flat_params().unwrap();
    let carried = grown.carry_from(&model, &old).unwrap();
    let new = grown.flat_params().unwrap();
    assert_eq!(carried.len(), grown.n_params());
    let mut offset = 0;
    for (name, shape) in grown.param_shapes() {
        let n: usize = shape.iter().product();
        let (c, p) = (&carried[offset..offset + n], &new[offset..offset + n]);
        match name.starts_with("layers.02") || name.starts_with("layers.03") {
            true => assert!(c.iter().all(|v| *v == 0.0), "{name}"),
            false => assert_eq!(c, p, "{name}"),
        }
        offset += n;
    }
    assert!(grown.carry_from(&model, &old[1..]).is_err());
}

/// The stages of a 3-layer model, one layer each, holding `model`'s weights.
fn split(model: &NeuroLlm) -> Vec<Stage> {
    let named: std::collections::HashMap<String, Tensor> =
        model.named_tensors().unwrap().into_iter().collect();
    (0..3)
        .map(|s| {
            let spec = StageSpec {
                embedding: s == 0,
                layers: s..s + 1,
                head: s == 2,
            };
            let mut stage = Stage::new(model.config(), spec, 3, &Device::Cpu).unwrap();
            let names: Vec<String> = stage.param_shapes().into_iter().map(|(n, _)| n).collect();
            let mine = names.into_iter().map(|n| (n.clone(), named[&n].clone()));
            stage.load_named(&mine.collect()).unwrap();
            stage
        })
        .collect()
}

/// The logits of a pipeline of `stages` on `x`.
fn chain(stages: &[Stage], x: &Tensor) -> Tensor {
    let mut hidden = StageInput::Tokens(x.clone());
    for stage in stages {
        hidden = StageInput::Hidden(stage.forward(&hidden).unwrap());
    }
    match hidden {
        StageInput::Hidden(logits) => logits,
        StageInput::Tokens(_) => unreachable!("a pipeline has a stage"),
    }
}

#[test]
fn a_growth_spread_over_the_stages_keeps_the_pipelines_output() {
    let cfg = Config {
        n_layers: 3,
        ..config(2, 48)
    };
    let model = trained(&cfg);
    let stages = split(&model);
    // Two new layers: one at the end of the first stage, one at the end of the middle one; the
    // head stage only relabels (layer 2 becomes layer 4).
    let targets = [0..2, 2..4, 4..5];
    let grown: Vec<Stage> = (stages.iter().zip(targets.clone()))
        .map(|(stage, layers)| stage.grown_to(5, layers, 9).unwrap())
        .collect();
    for (stage, layers) in grown.iter().zip(targets) {
        assert_eq!(stage.spec().layers, layers);
        assert_eq!(stage.config().n_layers, 5);
    }
    let head: std::collections::HashMap<String, Tensor> =
        grown[2].named_tensors().unwrap().into_iter().collect();
    let old = stages[2].named_tensors().unwrap();
    let moved = |name: &str| name.replace("layers.02", "layers.04");
    for (name, tensor) in &old {
        assert_eq!(max_abs_diff(tensor, &head[&moved(name)]), 0.0, "{name}");
    }
    let relabelled = grown[2].flat_params().unwrap();
    assert_eq!(relabelled, stages[2].flat_params().unwrap(), "same order");
    let x = tokens(2, 16);
    let diff = max_abs_diff(&chain(&stages, &x), &chain(&grown, &x));
    assert!(diff <= 1e-6, "logits moved by {diff}");
    let before = stages[1].flat_params().unwrap();
    let carried = grown[1].carry_from(&stages[1], &before).unwrap();
    assert_eq!(&carried[..before.len()], &before[..], "the old layer first");
    assert!(carried[before.len()..].iter().all(|v| *v == 0.0));
    assert!(matches!(
        stages[1].grown_to(5, 0..2, 9),
        Err(Error::BadStage { .. })
    ));
    assert!(matches!(
        stages[1].grown_to(5, 2..2, 9),
        Err(Error::BadStage { .. })
    ));
}
