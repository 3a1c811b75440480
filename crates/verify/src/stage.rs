//! Stage work: a pipeline stage's segment replayed from the batches and frames its chain commits
//! to, and what it sent judged against the replay (`docs/verification.md`, "Stage work").
//!
//! A stage's step is a function of its checkpoint, the step's batch on each lane it served (the
//! first stage reads the inputs, the last the targets, the others only the shape), the
//! activations it received from the previous stage and the gradients it received from the next.
//! Its chain's leaf for a segment names all of these and the frames it sent
//! ([`segment_hash`]); an auditor replays the segment from them ([`replay_stage`]) and checks
//! the state it reached ([`crate::judge`]) and every frame it sent ([`judge_frames`]).
//! Whether the frames it received were its neighbours' true outputs: each carries its sender's
//! seal ([`check_seals`]), so the frames a stage names as inputs are ones a neighbour sent, and
//! the neighbours' own audits judge what they sent. Two records of one step can also be compared
//! byte for byte ([`neuroshard_pipeline::Traffic::agrees_with_next`]).

use neuroshard_pipeline::{Frame, FrameLimit, Plan, Precision, StageStep, Traffic, frame, split};
use neuroshard_primitives::{Batch, Hash, NodeId};
use neuroshard_train::{AdamWConfig, StageLoop};
use serde::{Deserialize, Serialize};

use crate::replay::within;
use crate::verdict::Fault;
use crate::{Checkpoint, Error, Leaf, Result};

/// How far a frame a stage committed as sent may be from its replay's, relative to the replay's
/// norm: bf16's rounding alone leaves about 0.3 %, an honest replay on another machine less than
/// that again (its values differ by float rounding before the frame rounds them).
pub const FRAME_TOLERANCE: f32 = 1e-2;

/// One lane's share of one step of a stage's job: the lane's batch for the step and the frames
/// the stage received and sent on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneWork {
    /// The node whose data assignment the lane reads (its replica of the widest stage).
    pub data_node: NodeId,
    /// The batch the lane's data node's assignment gives for the step.
    pub batch: Batch,
    /// The frames.
    pub traffic: Traffic,
}

impl LaneWork {
    fn hash(&self) -> Hash {
        let mut bytes = b"neuroshard-verify/lane-work".to_vec();
        bytes.extend_from_slice(&self.data_node.0);
        for word in [self.batch.batch as u64, self.batch.seq as u64] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend(self.batch.tokens.iter().flat_map(|t| t.to_le_bytes()));
        bytes.extend_from_slice(&self.traffic.hash().0);
        Hash::of(&bytes)
    }
}

/// The work hash a stage's leaf names for a segment: each step's lanes, in order.
pub fn segment_hash(steps: &[Vec<LaneWork>]) -> Hash {
    let mut bytes = b"neuroshard-verify/segment-work".to_vec();
    for lanes in steps {
        bytes.extend_from_slice(&(lanes.len() as u64).to_le_bytes());
        for lane in lanes {
            bytes.extend_from_slice(&lane.hash().0);
        }
    }
    Hash::of(&bytes)
}

/// Checks an opened segment's work against the leaf that ended it: one entry per step, each with
/// at least one lane, hashing to the leaf's work hash. A failure is the contributor's.
pub fn check_work(end_leaf: &Leaf, steps: &[Vec<LaneWork>]) -> Result<()> {
    if steps.len() != end_leaf.losses.len() || steps.iter().any(Vec::is_empty) {
        return Err(Error::Mismatch(format!(
            "stage work of {} steps for a segment of {}, or a step without a lane",
            steps.len(),
            end_leaf.losses.len()
        )));
    }
    if segment_hash(steps) != end_leaf.work {
        return Err(Error::Mismatch(
            "the stage's batches and frames do not match its leaf".into(),
        ));
    }
    Ok(())
}

/// Where a stage sits in its pipeline and how its steps run.
#[derive(Debug, Clone, Copy)]
pub struct StageShape<'a> {
    /// The stage's index and the number of stages.
    pub at: (usize, usize),
    /// The pipeline's schedule.
    pub plan: &'a Plan,
    /// The precision frames are sent at.
    pub precision: Precision,
    /// The limit frames are decoded under.
    pub limit: FrameLimit,
    /// The most lanes one replica serves in a step (its own and the stand-ins'): the pipeline's
    /// lane count.
    pub max_lanes: usize,
}

/// What a stage's replayed segment reached: the checkpoint, each step's loss (`NaN` off the last
/// stage) and each step's lanes' frames as the replay received and sent them.
pub type StageReplay = (Checkpoint, Vec<f32>, Vec<Vec<Traffic>>);

/// Replays a stage's segment from `start` on `trainer` (the verifier's loop of the same stage):
/// each step runs every lane's share of the 1F1B step from its committed batch and received
/// frames ([`StageStep::run_through`]), then the one stage step ([`StageLoop::step_on`]).
/// Committed work that is not well formed (more lanes than the pipeline has, a batch of another
/// shape or with tokens past the vocabulary) or whose frames do not feed the plan is an
/// [`Error::Mismatch`]: the contributor's, found before or instead of any work on it.
pub fn replay_stage(
    trainer: &mut StageLoop,
    adamw: AdamWConfig,
    start: &Checkpoint,
    shape: &StageShape<'_>,
    steps: &[Vec<LaneWork>],
) -> Result<StageReplay> {
    start.restore_stage(trainer, adamw)?;
    let ops = shape
        .plan
        .ops(shape.at.0)
        .ok_or_else(|| Error::InvalidConfig(format!("no plan for stage {}", shape.at.0)))?;
    let refused = |err: neuroshard_pipeline::Error| Error::Mismatch(format!("stage work: {err}"));
    let (config, vocab) = (trainer.config(), trainer.stage().config().vocab_size);
    let well_formed = |lane: &LaneWork| {
        lane.batch
            .is_well_formed(config.batch_size, config.seq_len, vocab)
    };
    if steps
        .iter()
        .any(|lanes| lanes.len() > shape.max_lanes || !lanes.iter().all(well_formed))
    {
        return Err(Error::Mismatch(
            "stage work: more lanes than the pipeline has, or a batch not of the job's shape"
                .into(),
        ));
    }
    let (mut losses, mut sent) = (Vec::with_capacity(steps.len()), Vec::new());
    for (step, lanes) in (start.step..).zip(steps) {
        let mut outcomes = Vec::with_capacity(lanes.len());
        for lane in lanes {
            let micro = split(&lane.batch, shape.plan.micro_batches() as usize).map_err(refused)?;
            let running = StageStep::new(
                trainer.stage(),
                shape.at,
                step,
                ops,
                micro,
                shape.precision,
                shape.limit,
            )
            .map_err(refused)?;
            let received = lane.traffic.received.values().map(Vec::as_slice);
            outcomes.push(
                running
                    .run_through(trainer.stage(), received)
                    .map_err(refused)?,
            );
        }
        let outcome = neuroshard_pipeline::StageOutcome::merge(outcomes).map_err(refused)?;
        let tokens = lanes.iter().map(|l| l.batch.n_tokens()).sum();
        trainer.step_on(outcome.grads, outcome.loss, tokens, step)?;
        losses.push(outcome.loss.unwrap_or(f32::NAN));
        sent.push(outcome.traffic);
    }
    let end = start.step.saturating_add(steps.len() as u64);
    Ok((Checkpoint::capture_stage(trainer, end), losses, sent))
}

/// Compares every frame the stage committed as sent with the one its replay sent: the same
/// frames (kind and micro-batch), each within `tolerance` of the replay's values relative to
/// their norm. Frames the replay decodes under `limit`; a committed frame that does not decode is
/// a fault.
pub fn judge_frames(
    first_step: u64,
    committed: &[Vec<LaneWork>],
    replayed: &[Vec<Traffic>],
    limit: &FrameLimit,
    tolerance: f32,
) -> Result<(), Fault> {
    let pairs = (first_step..).zip(committed.iter().zip(replayed));
    for (step, (lanes, traffic)) in pairs {
        for (lane, replay) in lanes.iter().zip(traffic) {
            let keys = |t: &Traffic| t.sent.keys().copied().collect::<Vec<_>>();
            if keys(&lane.traffic) != keys(replay) || lanes.len() != traffic.len() {
                return Err(frames(step, "sent other frames than the replay"));
            }
            for (claimed, own) in lane.traffic.sent.values().zip(replay.sent.values()) {
                let decoded = |bytes: &[u8]| frame::decode(bytes, limit).map(|(f, _)| f);
                let (Ok(claimed), Ok(own)) = (decoded(claimed), decoded(own)) else {
                    return Err(frames(step, "a sent frame does not decode"));
                };
                let off = distance(&claimed, &own);
                if !within(off, tolerance) {
                    return Err(frames(
                        step,
                        &format!("a sent frame is {off} off the replay's"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Checks that every lane of the stage's segment trained on the batch its data node's assignment
/// gives for the step (`assigned`: the node's batch of a step). A lane on other tokens is the
/// contributor's fault; `assigned` failing (the auditor lacks the data) is the auditor's,
/// returned as the outer error. Which node's assignment a lane reads is the contributor's say.
pub fn check_batches<E>(
    first_step: u64,
    committed: &[Vec<LaneWork>],
    mut assigned: impl FnMut(&NodeId, u64) -> std::result::Result<Batch, E>,
) -> std::result::Result<Result<(), Fault>, E> {
    for (step, lanes) in (first_step..).zip(committed) {
        for lane in lanes {
            if assigned(&lane.data_node, step)? != lane.batch {
                let reason = "a lane trained on another batch than its data node's assignment";
                return Ok(Err(frames(step, reason)));
            }
        }
    }
    Ok(Ok(()))
}

/// Checks that every frame the stage's segment names as received carries its sender's seal
/// ([`neuroshard_pipeline::Seal::holds`] for `contributor` and that frame), by a node `may_seal`
/// takes (on a running network, a replica of its pipeline) and never by the contributor itself.
/// A frame without such a seal is the contributor's fault: it names inputs no pipeline member
/// vouches for having sent.
pub fn check_seals(
    first_step: u64,
    committed: &[Vec<LaneWork>],
    contributor: &NodeId,
    may_seal: impl Fn(&NodeId) -> bool,
) -> Result<(), Fault> {
    for (step, lanes) in (first_step..).zip(committed) {
        for traffic in lanes.iter().map(|lane| &lane.traffic) {
            for (key, bytes) in &traffic.received {
                let Some(seal) = traffic.seals.get(key) else {
                    return Err(frames(step, "a received frame carries no seal"));
                };
                if seal.from == *contributor || !may_seal(&seal.from) {
                    let reason =
                        format!("a received frame is sealed by {}, who may not", seal.from);
                    return Err(frames(step, &reason));
                }
                if !seal.holds(contributor, bytes) {
                    return Err(frames(step, "a received frame's seal does not hold"));
                }
            }
            if traffic
                .seals
                .keys()
                .any(|k| !traffic.received.contains_key(k))
            {
                return Err(frames(step, "a seal for a frame not received"));
            }
        }
    }
    Ok(())
}

fn frames(step: u64, reason: &str) -> Fault {
    Fault::Frames {
        step,
        reason: reason.to_string(),
    }
}

/// ‖claimed − replayed‖ / ‖replayed‖ of two frames' values (infinite for other shapes or keys).
fn distance(claimed: &Frame, replayed: &Frame) -> f32 {
    let same = (
        claimed.kind,
        claimed.step,
        claimed.micro_batch,
        claimed.stage,
        claimed.shape,
    ) == (
        replayed.kind,
        replayed.step,
        replayed.micro_batch,
        replayed.stage,
        replayed.shape,
    );
    if !same {
        return f32::INFINITY;
    }
    let square = |x: f32| f64::from(x) * f64::from(x);
    let diff: f64 = (claimed.values.iter().zip(&replayed.values))
        .map(|(a, b)| square(a - b))
        .sum();
    let norm: f64 = replayed.values.iter().copied().map(square).sum();
    match diff {
        0.0 => 0.0,
        _ => (diff.sqrt() / norm.sqrt()) as f32,
    }
}
