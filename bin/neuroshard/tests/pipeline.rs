//! End to end: a model split over three stage processes on 127.0.0.1, each running its 1F1B plan
//! and exchanging activation and gradient frames over libp2p, gives the whole model's gradient on
//! the same batch (relative error ≤ 1e-4 with 32-bit frames), parameter by parameter.

use std::collections::HashMap;
use std::ops::Range;

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm, Stage, StageSpec};
use neuroshard_pipeline::relative_error;
use neuroshard_primitives::Batch;
use neuroshard_testkit::pipeline::{read_f32s, read_u32s, run_bench_pipeline};

const EXE: &str = env!("CARGO_BIN_EXE_neuroshard");
const BATCH: usize = 4;
const SEQ: usize = 16;
const VOCAB: usize = 96;

/// `values` (in `shapes` order) by parameter name.
fn by_name(shapes: &[(String, Vec<usize>)], values: &[f32]) -> HashMap<String, Vec<f32>> {
    let mut at = 0;
    let named = shapes
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            at += n;
            (name.clone(), values[at - n..at].to_vec())
        })
        .collect();
    assert_eq!(at, values.len(), "the vector holds exactly the parameters");
    named
}

#[test]
fn three_stage_processes_give_the_whole_models_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let (batch, seq, vocab) = (BATCH.to_string(), SEQ.to_string(), VOCAB.to_string());
    let args = [
        "--stages",
        "3",
        "--micro-batches",
        "4",
        "--batch",
        &batch,
        "--seq",
        &seq,
    ];
    let model_args = [
        "--preset", "tiny", "--vocab", &vocab, "--seed", "3", "--steps", "1",
    ];
    run_bench_pipeline(
        EXE.as_ref(),
        dir.path(),
        &[&args[..], &model_args, &["--precision", "f32"]].concat(),
    );

    let cfg = Config::preset("tiny", VOCAB).unwrap();
    let model = NeuroLlm::new(&cfg, 3, &Device::Cpu).unwrap();
    let tokens = read_u32s(&dir.path().join("batches.u32"));
    let (_, whole) = model
        .loss_and_grads(&Batch::new(tokens, BATCH, SEQ))
        .unwrap();
    let whole = by_name(&model.param_shapes(), &whole);

    // tiny has 4 layers: the benchmark splits them 1 / 1 / 2.
    let specs: [(bool, Range<usize>, bool); 3] = [
        (true, 0..1, false),
        (false, 1..2, false),
        (false, 2..4, true),
    ];
    let mut seen = 0;
    for (s, (embedding, layers, head)) in specs.into_iter().enumerate() {
        let stage = Stage::new(
            &cfg,
            StageSpec {
                embedding,
                layers,
                head,
            },
            3,
            &Device::Cpu,
        )
        .unwrap();
        let grads = read_f32s(&dir.path().join(format!("stage-{s}.grads")));
        for (name, grad) in by_name(&stage.param_shapes(), &grads) {
            let err = relative_error(&grad, &whole[&name]);
            assert!(err <= 1e-4, "stage {s}, {name}: relative error {err}");
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        whole.len(),
        "the stages hold every parameter exactly once"
    );
}
