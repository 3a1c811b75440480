//! Proof of Neural Work for a pipeline stage: three stages train a few steps in one process with
//! their chains and frames recorded, and each stage's segments replay from what it committed;
//! a stage that lies about what it sent or received (its neighbours' seals), trains a lane on
//! tokens its data node was not assigned, or serves other frames than it committed, is caught.

use candle_core::Device;
use neuroshard_model::{Config, Stage};
use neuroshard_pipeline::{
    Frame, FrameKind, FrameLimit, Frames, Plan, Precision, Seal, StageOutcome, even_split, frame,
    run_step,
};
use neuroshard_primitives::{Batch, Hash, Keypair, NodeId};
use neuroshard_train::{AdamWConfig, InnerConfig, LrSchedule, StageLoop};
use neuroshard_verify::stage::{
    FRAME_TOLERANCE, LaneWork, StageShape, check_batches, check_seals, check_work, judge_frames,
    replay_stage, segment_hash,
};
use neuroshard_verify::{Chain, Checkpoint, Error, Fault, Opened, Tolerance, judge};

const STAGES: usize = 3;
const STEPS: u64 = 4;
const SEGMENT: u64 = 2;
const MICRO: u32 = 2;

fn cfg() -> Config {
    Config {
        vocab_size: 40,
        d_model: 16,
        n_layers: 3,
        n_heads: 2,
        n_kv_heads: 1,
        d_ff: 24,
        seq_len: 8,
        rope_theta: 1e4,
        norm_eps: 1e-5,
    }
}

fn inner() -> InnerConfig {
    InnerConfig {
        batch_size: 4,
        seq_len: 8,
        adamw: AdamWConfig::NEUROSHARD,
        schedule: LrSchedule::new(1, 10, 3e-3, 3e-4).unwrap(),
        clip_norm: 1.0,
        dp: None,
    }
}

/// Stage `s`'s loop, its weights drawn from `seed`.
fn stage_loop(s: usize, seed: u64) -> StageLoop {
    let spec = even_split(&cfg(), STAGES).unwrap().remove(s);
    let stage = Stage::new(&cfg(), spec, seed, &Device::Cpu).unwrap();
    StageLoop::new(stage, inner(), STAGES).unwrap()
}

fn batch(step: u64) -> Batch {
    let tokens = (0..4 * 9).map(|i| (i * 7 + step as u32 * 3) % 40).collect();
    Batch::new(tokens, 4, 8)
}

fn limit() -> FrameLimit {
    FrameLimit::for_model(&cfg(), 4 / MICRO as usize)
}

/// What one stage recorded: its chain, its checkpoints, each step's loss and work.
#[derive(Default)]
struct Record {
    chain: Chain,
    checkpoints: Vec<Checkpoint>,
    losses: Vec<f32>,
    work: Vec<Vec<LaneWork>>,
}

impl Record {
    /// Segment `j`'s steps' work.
    fn segment(&self, j: usize) -> &[Vec<LaneWork>] {
        &self.work[j * SEGMENT as usize..(j + 1) * SEGMENT as usize]
    }
}

/// Trains the three stages for [`STEPS`] steps from step 0, a leaf every [`SEGMENT`] steps.
fn train(plan: &Plan) -> Vec<Record> {
    let mut loops: Vec<StageLoop> = (0..STAGES).map(|s| stage_loop(s, 7)).collect();
    let mut records: Vec<Record> = (0..STAGES).map(|_| Record::default()).collect();
    for (l, record) in loops.iter().zip(&mut records) {
        let start = Checkpoint::capture_stage(l, 0);
        record.chain.push(&start, Vec::new(), Hash::default());
        record.checkpoints.push(start);
    }
    for step in 0..STEPS {
        let b = batch(step);
        let outcomes: Vec<StageOutcome> = {
            let stages: Vec<&Stage> = loops.iter().map(StageLoop::stage).collect();
            run_step(&stages, plan, step, &b, Precision::Bf16)
                .unwrap()
                .outcomes
        };
        for ((l, record), outcome) in loops.iter_mut().zip(&mut records).zip(outcomes) {
            record.work.push(vec![LaneWork {
                data_node: key(0).node_id(),
                batch: b.clone(),
                traffic: outcome.traffic[0].clone(),
            }]);
            record.losses.push(outcome.loss.unwrap_or(f32::NAN));
            l.step_on(outcome.grads, outcome.loss, b.n_tokens(), step)
                .unwrap();
            if (step + 1) % SEGMENT == 0 {
                let end = Checkpoint::capture_stage(l, step + 1);
                let j = (step / SEGMENT) as usize;
                let losses = record.losses[j * SEGMENT as usize..].to_vec();
                record
                    .chain
                    .push(&end, losses, segment_hash(record.segment(j)));
                record.checkpoints.push(end);
            }
        }
    }
    records
}

/// Stage `s`'s audit of segment `j` of `record` as served in `work`: the opening's checks, the
/// replay, the state and the frames judged.
fn audit(
    plan: &Plan,
    s: usize,
    record: &Record,
    j: usize,
    work: &[Vec<LaneWork>],
) -> Result<f32, Fault> {
    let leaf = &record.chain.leaves()[j + 1];
    check_work(leaf, work).map_err(|err| Fault::Opening(err.to_string()))?;
    let shape = StageShape {
        at: (s, STAGES),
        plan,
        precision: Precision::Bf16,
        limit: limit(),
        max_lanes: 1,
    };
    let mut verifier = stage_loop(s, 99);
    let start = &record.checkpoints[j];
    let replayed = replay_stage(&mut verifier, AdamWConfig::NEUROSHARD, start, &shape, work);
    let (end, losses, sent) = replayed.map_err(|err| match err {
        Error::Mismatch(reason) => Fault::Opening(reason),
        other => panic!("the verifier's own failure: {other}"),
    })?;
    let opened = Opened {
        segment: j as u64,
        start: start.clone(),
        end: record.checkpoints[j + 1].clone(),
        losses: leaf.losses.clone(),
        tail: None,
        work: work.to_vec(),
    };
    let distance = judge(&opened, &end, &losses, &Tolerance::DEFAULT)?;
    judge_frames(start.step, work, &sent, &limit(), FRAME_TOLERANCE)?;
    Ok(distance)
}

#[test]
fn every_stage_segment_replays_from_its_committed_batches_and_frames() {
    let plan = Plan::one_f_one_b(STAGES, MICRO).unwrap();
    let records = train(&plan);
    for (s, record) in records.iter().enumerate() {
        for j in 0..(STEPS / SEGMENT) as usize {
            let distance = audit(&plan, s, record, j, record.segment(j)).unwrap();
            assert_eq!(
                distance, 0.0,
                "stage {s} segment {j}: same machine, same bits"
            );
        }
        let seen = record.losses.iter().all(|l| l.is_finite());
        assert_eq!(seen, s + 1 == STAGES, "only the last stage sees the loss");
    }
    for step in 0..STEPS as usize {
        for s in 0..STAGES - 1 {
            let (this, next) = (&records[s].work[step][0], &records[s + 1].work[step][0]);
            assert!(
                this.traffic.agrees_with_next(&next.traffic),
                "step {step}, stages {s}, {}",
                s + 1
            );
        }
    }
}

/// `work` with every value of the frames `pick` selects from each step's traffic scaled by
/// `factor`, re-encoded.
fn scaled(
    work: &[Vec<LaneWork>],
    pick: fn(&mut LaneWork) -> &mut Frames,
    factor: f32,
) -> Vec<Vec<LaneWork>> {
    let mut work = work.to_vec();
    for lane in work.iter_mut().flatten() {
        for bytes in pick(lane).values_mut() {
            let (mut frame, _): (Frame, _) = frame::decode(bytes, &limit()).unwrap();
            frame.values.iter_mut().for_each(|v| *v *= factor);
            *bytes = frame.encode(Precision::Bf16).unwrap();
        }
    }
    work
}

#[test]
fn a_stage_that_sends_other_activations_than_its_weights_give_is_caught() {
    let plan = Plan::one_f_one_b(STAGES, MICRO).unwrap();
    let records = train(&plan);
    // The middle stage sent its activations scaled by 1.1 and committed to what it sent: its
    // state replays, its frames do not.
    let forged = scaled(records[1].segment(0), |l| &mut l.traffic.sent, 1.1);
    let fault = audit(&plan, 1, &recommitted(&records[1], &forged), 0, &forged).unwrap_err();
    assert!(matches!(fault, Fault::Frames { step: 0, .. }), "{fault}");
}

#[test]
fn a_stage_that_names_inputs_its_neighbour_never_sent_is_caught_by_the_neighbours_record() {
    let plan = Plan::one_f_one_b(STAGES, MICRO).unwrap();
    let records = train(&plan);
    // The last stage claims activations a tenth smaller than the middle stage sent.
    let forged = scaled(records[2].segment(0), |l| &mut l.traffic.received, 0.9);
    let sender = &records[1].work[0][0].traffic;
    assert!(!sender.agrees_with_next(&forged[0][0].traffic));
    assert!(sender.agrees_with_next(&records[2].work[0][0].traffic));
}

/// Stage `s`'s node key.
fn key(s: usize) -> Keypair {
    Keypair::from_seed([s as u8 + 1; 32])
}

/// The stage that sends stage `s` frames of `kind`.
fn sender(s: usize, kind: FrameKind) -> usize {
    match kind {
        FrameKind::Activation => s - 1,
        FrameKind::Gradient => s + 1,
    }
}

/// Stage `s`'s `work` with each received frame sealed as a network delivers it: by the
/// neighbour that sent it, to `s`.
fn sealed(s: usize, work: &[Vec<LaneWork>]) -> Vec<Vec<LaneWork>> {
    let mut work = work.to_vec();
    for traffic in work.iter_mut().flatten().map(|l| &mut l.traffic) {
        for (&(kind, m), bytes) in &traffic.received {
            let seal = Seal::sign(&key(sender(s, kind)), &key(s).node_id(), bytes);
            traffic.seals.insert((kind, m), seal);
        }
    }
    work
}

/// Stage `s`'s seals checked as its stage mates check them: each by a member of the pipeline
/// (a node of one of its stages).
fn check(s: usize, work: &[Vec<LaneWork>]) -> Result<(), Fault> {
    let member = |from: &NodeId| (0..STAGES).any(|t| *from == key(t).node_id());
    check_seals(0, work, &key(s).node_id(), member)
}

#[test]
fn a_stage_that_names_inputs_no_neighbour_sealed_is_caught_by_its_own_record() {
    let plan = Plan::one_f_one_b(STAGES, MICRO).unwrap();
    let records = train(&plan);
    for (s, record) in records.iter().enumerate() {
        check(s, &sealed(s, record.segment(0))).unwrap();
    }
    let middle = sealed(1, records[1].segment(0));
    let refused = |work: &[Vec<LaneWork>], why: &str| {
        let fault = check(1, work).unwrap_err();
        assert!(
            matches!(&fault, Fault::Frames { step: 0, reason } if reason.contains(why)),
            "{fault}"
        );
    };
    // Activations a tenth smaller than the first stage sent, under its seals.
    let mut forged = scaled(&middle, |l| &mut l.traffic.received, 0.9);
    refused(&forged, "does not hold");
    // The same sealed by the stage itself, or by a key outside the pipeline.
    for (signer, why) in [(1, "who may not"), (5, "who may not")] {
        for traffic in forged.iter_mut().flatten().map(|l| &mut l.traffic) {
            for (&(kind, m), bytes) in &traffic.received {
                let seal = Seal::sign(&key(signer), &key(1).node_id(), bytes);
                traffic.seals.insert((kind, m), seal);
            }
        }
        refused(&forged, why);
    }
    // A frame with no seal, a seal with no frame, a frame sealed for another receiver.
    let mut unsealed = middle.clone();
    unsealed[0][0].traffic.seals.pop_first();
    refused(&unsealed, "no seal");
    let mut extra = middle.clone();
    let spare = (FrameKind::Gradient, 99);
    let seal = extra[0][0].traffic.seals.values().next().unwrap().clone();
    extra[0][0].traffic.seals.insert(spare, seal);
    refused(&extra, "not received");
    let mut for_other = middle.clone();
    for traffic in for_other.iter_mut().flatten().map(|l| &mut l.traffic) {
        for (&(kind, m), bytes) in &traffic.received {
            let seal = Seal::sign(&key(sender(1, kind)), &key(0).node_id(), bytes);
            traffic.seals.insert((kind, m), seal);
        }
    }
    refused(&for_other, "does not hold");
}

#[test]
fn a_stage_that_trains_a_lane_on_tokens_its_data_node_was_not_assigned_is_caught() {
    let plan = Plan::one_f_one_b(STAGES, MICRO).unwrap();
    let records = train(&plan);
    // The lane's data node is key 0's, assigned `batch(step)`; any other node, `batch(step + 50)`.
    let assigned = |node: &NodeId, step: u64| match *node == key(0).node_id() {
        true => Ok::<_, String>(batch(step)),
        false => Ok(batch(step + 50)),
    };
    let check = |work: &[Vec<LaneWork>]| check_batches(0, work, assigned);
    for record in &records {
        assert_eq!(check(record.segment(0)), Ok(Ok(())));
    }
    let reason = |work: &[Vec<LaneWork>]| match check(work) {
        Ok(Err(Fault::Frames { step: 1, reason })) => reason,
        other => panic!("{other:?}"),
    };
    // The first stage trained step 1 on tokens of its choice, and committed to them.
    let mut chosen = records[0].segment(0).to_vec();
    chosen[1][0].batch = batch(9);
    assert!(reason(&chosen).contains("another batch"));
    // Or named another data node, whose assignment is another batch.
    let mut own = records[0].segment(0).to_vec();
    own[1][0].data_node = key(5).node_id();
    assert!(reason(&own).contains("another batch"));
    // An auditor without the data fails the audit itself, not the contributor.
    let missing = |_: &NodeId, _: u64| Err::<Batch, _>("no shards".to_string());
    let outcome = check_batches(0, records[0].segment(0), missing);
    assert_eq!(outcome, Err("no shards".to_string()));
}

#[test]
fn served_work_must_be_the_committed_work_and_must_feed_the_plan() {
    let plan = Plan::one_f_one_b(STAGES, MICRO).unwrap();
    let records = train(&plan);
    let middle = &records[1];
    // Other frames than committed.
    let other = scaled(middle.segment(0), |l| &mut l.traffic.received, 0.5);
    assert!(matches!(
        audit(&plan, 1, middle, 0, &other),
        Err(Fault::Opening(_))
    ));
    // Another batch than committed.
    let mut other = middle.segment(0).to_vec();
    other[1][0].batch = batch(9);
    assert!(matches!(
        audit(&plan, 1, middle, 0, &other),
        Err(Fault::Opening(_))
    ));
    // A batch of another shape, committed as such.
    let mut odd = middle.segment(0).to_vec();
    odd[0][0].batch.tokens.pop();
    let fault = audit(&plan, 1, &recommitted(middle, &odd), 0, &odd).unwrap_err();
    assert!(
        matches!(fault, Fault::Opening(ref r) if r.contains("shape")),
        "{fault}"
    );
    // A step short.
    assert!(matches!(
        audit(&plan, 1, middle, 0, &middle.segment(0)[..1]),
        Err(Fault::Opening(_))
    ));
    // Committed frames that do not feed the plan: one gradient missing, committed as such.
    let mut short = middle.segment(0).to_vec();
    short[0][0]
        .traffic
        .received
        .remove(&(FrameKind::Gradient, 0));
    let fault = audit(&plan, 1, &recommitted(middle, &short), 0, &short).unwrap_err();
    assert!(
        matches!(fault, Fault::Opening(ref r) if r.contains("stage work")),
        "{fault}"
    );
}

/// `record` with its first segment's leaf committing to `work` instead (a cheat that commits to
/// what it serves).
fn recommitted(record: &Record, work: &[Vec<LaneWork>]) -> Record {
    let mut chain = Chain::new();
    chain.push(&record.checkpoints[0], Vec::new(), Hash::default());
    let losses = record.chain.leaves()[1].losses.clone();
    chain.push(&record.checkpoints[1], losses, segment_hash(work));
    Record {
        chain,
        checkpoints: record.checkpoints.clone(),
        losses: record.losses.clone(),
        work: record.work.clone(),
    }
}
