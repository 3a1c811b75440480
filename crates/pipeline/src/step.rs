//! One stage's share of one optimizer step: its plan's operations in order, the frames they wait
//! for, the frames they send, and the gradients they add up.
//!
//! The driver (a thread here, a network task in a node) loops: [`StageStep::deliver`] every
//! frame that arrives, and while [`StageStep::is_ready`], [`StageStep::run_next`] and send what
//! it returns to the neighbour it names. [`StageStep::finish`] gives the mean gradient of the
//! stage's parameters over the step's micro-batches.
//!
//! A forward keeps the stage's input until the micro-batch's backward (which recomputes the
//! stage's forward from it, [`Stage::backward`]), so a stage holds at most as many inputs as its
//! plan has micro-batches in flight.

use std::collections::BTreeMap;

use candle_core::Tensor;
use neuroshard_model::{Stage, StageInput};
use neuroshard_primitives::Batch;

use crate::accumulate::GradSum;
use crate::frame::{Frame, FrameKind, FrameLimit, Precision, decode};
use crate::traffic::{Seal, Traffic};
use crate::{Error, Op, Result};

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// To the next stage (an activation).
    Next,
    /// To the previous stage (a gradient).
    Prev,
}

/// A frame to send, already encoded.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Which neighbour.
    pub to: Direction,
    /// The encoded frame.
    pub bytes: Vec<u8>,
}

/// What a stage's step produced.
#[derive(Debug, Clone, PartialEq)]
pub struct StageOutcome {
    /// The mean gradient of the stage's parameters over the micro-batches, in its canonical order.
    pub grads: Vec<f32>,
    /// The mean loss over the micro-batches (last stage only).
    pub loss: Option<f32>,
    /// The frames each lane's step received and sent, in lane order (one lane unless merged);
    /// empty unless the steps were [`StageStep::recording`].
    pub traffic: Vec<Traffic>,
}

impl StageOutcome {
    /// One outcome for the steps of several lanes that one stage replica ran on the same weights
    /// (a stand-in serving its own lane and a lost member's, `docs/pipeline.md`, "Failover"):
    /// each outcome is the mean over the same number of micro-batches, so the mean of the means
    /// is the gradient of all their micro-batches together, the batch gradient of every lane's
    /// data. The loss is the mean of the lanes' losses where every lane has one. One outcome
    /// comes back as it is.
    pub fn merge(outcomes: Vec<StageOutcome>) -> Result<StageOutcome> {
        let Some(first) = outcomes.first() else {
            return Err(Error::BadPlan("no lane's step to merge".into()));
        };
        let mut sum = GradSum::new(first.grads.len());
        let every_loss = outcomes.iter().all(|o| o.loss.is_some());
        for outcome in &outcomes {
            sum.add(&outcome.grads, outcome.loss)?;
        }
        let (grads, loss) = sum.mean();
        Ok(StageOutcome {
            grads,
            loss: every_loss.then_some(loss),
            traffic: outcomes.into_iter().flat_map(|o| o.traffic).collect(),
        })
    }
}

/// One stage's step in progress (see the module docs).
#[derive(Debug)]
pub struct StageStep {
    index: u32,
    last: bool,
    step: u64,
    ops: Vec<Op>,
    next: usize,
    micro: Vec<Batch>,
    precision: Precision,
    limit: FrameLimit,
    inbox: BTreeMap<(FrameKind, u32), Tensor>,
    kept: BTreeMap<u32, StageInput>,
    sum: GradSum,
    /// The frames received and sent, kept only when [`StageStep::recording`] asked for them.
    traffic: Option<Traffic>,
}

impl StageStep {
    /// Starts stage `index` of `n_stages` on step `step`: `ops` is its plan, `micro` the step's
    /// micro-batches (the first stage reads their inputs, the last their targets), frames go out
    /// at `precision` and come in under `limit`.
    pub fn new(
        stage: &Stage,
        (index, n_stages): (usize, usize),
        step: u64,
        ops: &[Op],
        micro: Vec<Batch>,
        precision: Precision,
        limit: FrameLimit,
    ) -> Result<Self> {
        if index >= n_stages
            || ops
                .iter()
                .any(|op| op.micro_batch() as usize >= micro.len())
        {
            return Err(Error::BadPlan(format!(
                "stage {index} of {n_stages} with {} micro-batches",
                micro.len()
            )));
        }
        Ok(Self {
            index: index as u32,
            last: index + 1 == n_stages,
            step,
            ops: ops.to_vec(),
            next: 0,
            micro,
            precision,
            limit,
            inbox: BTreeMap::new(),
            kept: BTreeMap::new(),
            sum: GradSum::new(stage.n_params()),
            traffic: None,
        })
    }

    /// Keeps a copy of every frame the step receives and sends, for a work commitment (a copy
    /// per frame, so only a network that audits asks for it).
    pub fn recording(mut self) -> Self {
        self.traffic = Some(Traffic::default());
        self
    }

    /// Takes a neighbour's frame: decodes it under the limit and keeps it for its operation.
    /// A frame for another step or stage, a micro-batch out of range, a kind this stage never
    /// receives, or one already received, is an error, and changes nothing.
    pub fn deliver(&mut self, bytes: &[u8]) -> Result<()> {
        self.take(bytes).map(|_| ())
    }

    /// [`StageStep::deliver`] for a frame that came with its sender's `seal`, which the record
    /// keeps beside it (checked by whoever took it off the wire, [`Seal::holds`]).
    pub fn deliver_sealed(&mut self, bytes: &[u8], seal: Seal) -> Result<()> {
        let key = self.take(bytes)?;
        if let Some(traffic) = &mut self.traffic {
            traffic.seals.insert(key, seal);
        }
        Ok(())
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(FrameKind, u32)> {
        let (frame, _) = decode(bytes, &self.limit)?;
        let m = frame.micro_batch;
        let expected = match frame.kind {
            FrameKind::Activation => self.index > 0,
            FrameKind::Gradient => !self.last,
        };
        let op = match frame.kind {
            FrameKind::Activation => Op::Forward(m),
            FrameKind::Gradient => Op::Backward(m),
        };
        let done = self.ops[..self.next].contains(&op);
        if frame.step != self.step
            || frame.stage != self.index
            || !expected
            || m as usize >= self.micro.len()
            || done
        {
            return Err(Error::Unexpected(format!(
                "{:?} for step {} stage {} micro-batch {m}, at stage {} of step {}",
                frame.kind, frame.step, frame.stage, self.index, self.step
            )));
        }
        let rows = self.micro[m as usize].batch;
        if frame.shape[0] != rows || frame.shape[1] != self.micro[m as usize].seq {
            return Err(Error::Unexpected(format!(
                "shape {:?} for micro-batch {m}",
                frame.shape
            )));
        }
        if self.inbox.contains_key(&(frame.kind, m)) {
            return Err(Error::Unexpected(format!(
                "a second {:?} for micro-batch {m}",
                frame.kind
            )));
        }
        let tensor = Tensor::from_vec(
            frame.values,
            frame.shape.to_vec(),
            &candle_core::Device::Cpu,
        )?;
        self.inbox.insert((frame.kind, m), tensor);
        if let Some(traffic) = &mut self.traffic {
            traffic.received.insert((frame.kind, m), bytes.to_vec());
        }
        Ok((frame.kind, m))
    }

    /// The next operation of the plan, or `None` when the step is done.
    pub fn next_op(&self) -> Option<Op> {
        self.ops.get(self.next).copied()
    }

    /// Whether the next operation's input is here.
    pub fn is_ready(&self) -> bool {
        match self.next_op() {
            None => false,
            Some(Op::Forward(_)) if self.index == 0 => true,
            Some(Op::Forward(m)) => self.inbox.contains_key(&(FrameKind::Activation, m)),
            Some(Op::Backward(_)) if self.last => true,
            Some(Op::Backward(m)) => self.inbox.contains_key(&(FrameKind::Gradient, m)),
        }
    }

    /// Whether every operation has run.
    pub fn is_done(&self) -> bool {
        self.next == self.ops.len()
    }

    /// Runs the next operation on `stage` and returns the frame it sends, if any (the last
    /// stage's forward only keeps its input: its backward computes the loss).
    pub fn run_next(&mut self, stage: &Stage) -> Result<Option<Outgoing>> {
        let Some(op) = self.next_op().filter(|_| self.is_ready()) else {
            return Err(Error::NotReady(
                self.next_op().map_or("none".into(), |op| op.to_string()),
            ));
        };
        let out = match op {
            Op::Forward(m) => self.forward(stage, m)?,
            Op::Backward(m) => self.backward(stage, m)?,
        };
        self.next += 1;
        Ok(out)
    }

    fn forward(&mut self, stage: &Stage, m: u32) -> Result<Option<Outgoing>> {
        let input = match self.inbox.remove(&(FrameKind::Activation, m)) {
            Some(hidden) => StageInput::Hidden(hidden),
            None => {
                let batch = &self.micro[m as usize];
                StageInput::Tokens(Tensor::from_vec(
                    batch.inputs(),
                    (batch.batch, batch.seq),
                    stage.device(),
                )?)
            }
        };
        let out = match self.last {
            true => None,
            false => Some(self.send(
                FrameKind::Activation,
                m,
                &stage.forward(&input)?,
                Direction::Next,
            )?),
        };
        self.kept.insert(m, input);
        Ok(out)
    }

    fn backward(&mut self, stage: &Stage, m: u32) -> Result<Option<Outgoing>> {
        let input = self
            .kept
            .remove(&m)
            .ok_or_else(|| Error::NotReady(Op::Backward(m).to_string()))?;
        let (grads, loss) = match self.inbox.remove(&(FrameKind::Gradient, m)) {
            Some(grad) => (stage.backward(&input, &grad)?, None),
            None => {
                let batch = &self.micro[m as usize];
                let targets =
                    Tensor::from_vec(batch.targets(), (batch.batch, batch.seq), stage.device())?;
                let (loss, grads) = stage.loss_and_backward(&input, &targets)?;
                (grads, Some(loss))
            }
        };
        self.sum.add(&grads.params, loss)?;
        match (&grads.input, self.index) {
            (Some(grad), 1..) => Ok(Some(self.send(
                FrameKind::Gradient,
                m,
                grad,
                Direction::Prev,
            )?)),
            _ => Ok(None),
        }
    }

    fn send(
        &mut self,
        kind: FrameKind,
        m: u32,
        values: &Tensor,
        to: Direction,
    ) -> Result<Outgoing> {
        let stage = match to {
            Direction::Next => self.index + 1,
            Direction::Prev => self.index - 1,
        };
        let (b, t, w) = values.dims3()?;
        let frame = Frame {
            kind,
            step: self.step,
            micro_batch: m,
            stage,
            shape: [b, t, w],
            values: values.flatten_all()?.to_vec1::<f32>()?,
        };
        let bytes = frame.encode(self.precision)?;
        if let Some(traffic) = &mut self.traffic {
            traffic.sent.insert((kind, m), bytes.clone());
        }
        Ok(Outgoing { to, bytes })
    }

    /// The stage's mean gradient and loss, once every operation has run.
    pub fn finish(self) -> Result<StageOutcome> {
        if !self.is_done() {
            return Err(Error::NotReady(format!(
                "{} of the plan",
                self.next_op().map_or("end".into(), |op| op.to_string())
            )));
        }
        let (grads, loss) = self.sum.mean();
        Ok(StageOutcome {
            grads,
            loss: self.last.then_some(loss),
            traffic: self.traffic.into_iter().collect(),
        })
    }

    /// Runs the whole step on `stage` from frames that all arrived before it starts (an
    /// auditor's replay of committed frames): delivers each, runs every operation, and finishes.
    /// The frames it sends are in the outcome's traffic. Frames that do not feed the plan (one
    /// missing, one refused) are an error.
    pub fn run_through<'a>(
        self,
        stage: &Stage,
        received: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<StageOutcome> {
        let mut this = self.recording();
        for frame in received {
            this.deliver(frame)?;
        }
        while this.is_ready() {
            this.run_next(stage)?;
        }
        this.finish()
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use neuroshard_model::{Config, StageSpec};

    use super::*;
    use crate::Plan;

    fn setup() -> (Config, Vec<Stage>, Vec<Batch>) {
        let cfg = Config {
            vocab_size: 20,
            d_model: 8,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 1,
            d_ff: 12,
            seq_len: 4,
            rope_theta: 1e4,
            norm_eps: 1e-5,
        };
        let spec = |embedding, layers, head| StageSpec {
            embedding,
            layers,
            head,
        };
        let stages = [spec(true, 0..1, false), spec(false, 1..2, true)]
            .map(|s| Stage::new(&cfg, s, 1, &Device::Cpu).unwrap())
            .into();
        let micro = (0..2)
            .map(|m| Batch::new((0..10).map(|i| (i + m) % 20).collect(), 2, 4))
            .collect();
        (cfg, stages, micro)
    }

    fn step_of(stages: &[Stage], micro: &[Batch], s: usize, cfg: &Config) -> StageStep {
        let plan = Plan::one_f_one_b(2, 2).unwrap();
        let limit = FrameLimit::for_model(cfg, 2);
        StageStep::new(
            &stages[s],
            (s, 2),
            7,
            plan.ops(s).unwrap(),
            micro.to_vec(),
            Precision::F32,
            limit,
        )
        .unwrap()
    }

    /// A stand-in's step: its own lane's micro-batches and a lost member's lane's, run on one
    /// set of weights and merged, give the gradient of one step over both lanes' batches.
    #[test]
    fn two_lanes_merged_give_the_gradient_of_both_batches_at_once() {
        let (_, stages, _) = setup();
        let rows = |seed: u32| (0..2 * 5).map(move |i| (i * 7 + seed) % 20);
        let (a, b): (Vec<u32>, Vec<u32>) = (rows(1).collect(), rows(4).collect());
        let one = |tokens: Vec<u32>, rows: usize, m: u32| {
            let plan = Plan::one_f_one_b(2, m).unwrap();
            let batch = Batch::new(tokens, rows, 4);
            crate::run_step(&stages, &plan, 3, &batch, Precision::F32).unwrap()
        };
        let (lane_a, lane_b) = (one(a.clone(), 2, 2), one(b.clone(), 2, 2));
        let both = one([a, b].concat(), 4, 4);
        for s in 0..2 {
            let merged =
                StageOutcome::merge(vec![lane_a.outcomes[s].clone(), lane_b.outcomes[s].clone()])
                    .unwrap();
            let error = crate::relative_error(&merged.grads, &both.outcomes[s].grads);
            assert!(error < 1e-5, "stage {s}: relative error {error}");
            assert_eq!(merged.loss.is_some(), s == 1);
        }
        let last = StageOutcome::merge(vec![lane_a.outcomes[1].clone()]).unwrap();
        assert_eq!(last, lane_a.outcomes[1], "one lane comes back as it is");
        assert!(StageOutcome::merge(vec![]).is_err());
        let short = StageOutcome {
            grads: vec![0.0],
            loss: None,
            traffic: Vec::new(),
        };
        assert!(StageOutcome::merge(vec![lane_a.outcomes[0].clone(), short]).is_err());
    }

    #[test]
    fn frames_for_another_step_stage_or_a_second_time_are_refused() {
        let (cfg, stages, micro) = setup();
        let mut first = step_of(&stages, &micro, 0, &cfg);
        let mut last = step_of(&stages, &micro, 1, &cfg);
        assert!(first.is_ready() && !last.is_ready());
        assert!(matches!(last.run_next(&stages[1]), Err(Error::NotReady(_))));
        let out = first.run_next(&stages[0]).unwrap().unwrap();
        assert_eq!(out.to, Direction::Next);
        let (frame, _) = decode(&out.bytes, &FrameLimit::for_model(&cfg, 2)).unwrap();
        // The first stage never receives activations.
        assert!(matches!(
            first.deliver(&out.bytes),
            Err(Error::Unexpected(_))
        ));
        for wrong in [
            Frame {
                step: 8,
                ..frame.clone()
            },
            Frame {
                micro_batch: 2,
                ..frame.clone()
            },
            Frame {
                stage: 0,
                ..frame.clone()
            },
        ] {
            assert!(matches!(
                last.deliver(&wrong.encode(Precision::F32).unwrap()),
                Err(Error::Unexpected(_))
            ));
        }
        last.deliver(&out.bytes).unwrap();
        let mut other = frame.clone();
        other.values.iter_mut().for_each(|v| *v = 0.0);
        assert!(
            last.deliver(&other.encode(Precision::F32).unwrap())
                .is_err()
        );
        assert_eq!(
            last.inbox[&(FrameKind::Activation, 0)]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            frame.values
        );
        assert!(last.is_ready());
        assert!(last.run_next(&stages[1]).unwrap().is_none());
        assert!(matches!(last.finish(), Err(Error::NotReady(_))));
    }

    /// Runs the two stages' steps to the end, handing each frame to its neighbour.
    fn run_both(stages: &[Stage], mut steps: [StageStep; 2]) -> Vec<StageOutcome> {
        while steps.iter().any(|s| !s.is_done()) {
            for s in 0..2 {
                while steps[s].is_ready() {
                    if let Some(out) = steps[s].run_next(&stages[s]).unwrap() {
                        steps[1 - s].deliver(&out.bytes).unwrap();
                    }
                }
            }
        }
        steps.into_iter().map(|s| s.finish().unwrap()).collect()
    }

    #[test]
    fn a_step_keeps_its_frames_only_when_recording() {
        let (cfg, stages, micro) = setup();
        let step = |s: usize| step_of(&stages, &micro, s, &cfg);
        let plain = run_both(&stages, [step(0), step(1)]);
        let recorded = run_both(&stages, [step(0).recording(), step(1).recording()]);
        for (p, r) in plain.iter().zip(&recorded) {
            assert!(p.traffic.is_empty());
            assert_eq!((&p.grads, p.loss), (&r.grads, r.loss));
        }
        // Two micro-batches: the first stage sends two activations and receives two gradients.
        let first = &recorded[0].traffic[0];
        assert_eq!((first.sent.len(), first.received.len()), (2, 2));
        assert!(first.agrees_with_next(&recorded[1].traffic[0]));
    }
}
