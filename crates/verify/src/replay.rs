//! Re-execution: replay an opened segment with the shared inner step, and judge the result
//! against what the contributor committed.

use neuroshard_compress::{CompressConfig, Residual};
use neuroshard_primitives::{Batch, Hash};
use neuroshard_train::{AdamWConfig, InnerLoop};

use crate::verdict::Fault;
use crate::{Checkpoint, Error, Opened, Result, residual_hash};

/// How far an honest replay may land from the committed end of its segment.
///
/// Replays on other thread counts, CPU features or kernels (fused against composite) do not
/// give the same bits; `docs/verification.md` records the measured honest distances these
/// bounds are set from, and why a cheater gains nothing inside them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The largest distance of parameters, first or second moments from the committed ones,
    /// relative to how far the committed segment moved them (‖replayed − committed‖ /
    /// ‖committed − start‖, the largest of the three).
    pub state: f32,
    /// The largest difference of a step's loss from the committed one, relative to the loss
    /// (absolute below 1).
    pub loss: f32,
}

impl Tolerance {
    /// The defaults.
    pub const DEFAULT: Self = Self {
        state: 0.01,
        loss: 1e-3,
    };

    /// Refuses bounds that are negative or not finite.
    pub fn validate(&self) -> Result<()> {
        let ok = |x: f32| x.is_finite() && x >= 0.0;
        if ok(self.state) && ok(self.loss) {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!("tolerance {self:?}")))
        }
    }
}

/// Replays `steps` inner steps from `start` on `inner` (the verifier's own model of the same
/// shape), reading batch `s` for global step `s`: the checkpoint it reaches and each step's loss.
pub fn replay<E>(
    inner: &mut InnerLoop,
    adamw: AdamWConfig,
    start: &Checkpoint,
    steps: u64,
    mut batch: impl FnMut(u64) -> Result<Batch, E>,
) -> Result<(Checkpoint, Vec<f32>)>
where
    E: std::error::Error + Send + Sync + 'static,
{
    start.restore(inner, adamw)?;
    let end = start
        .step
        .checked_add(steps)
        .ok_or_else(|| Error::Mismatch("step counter overflows".into()))?;
    let mut losses = Vec::with_capacity(steps as usize);
    for step in start.step..end {
        let b = batch(step).map_err(|err| Error::Data(Box::new(err)))?;
        losses.push(inner.step_on(&b, step)?.loss);
    }
    Ok((Checkpoint::capture(inner, end), losses))
}

/// Compares a replay with the opened segment: the state within [`Tolerance::state`], every loss
/// within [`Tolerance::loss`]. Returns the state distance when both hold.
pub fn judge(
    opened: &Opened,
    replayed: &Checkpoint,
    losses: &[f32],
    tolerance: &Tolerance,
) -> Result<f32, Fault> {
    let (start, end) = (&opened.start, &opened.end);
    let distance = [
        (&replayed.params, &end.params, &start.params),
        (&replayed.m, &end.m, &start.m),
        (&replayed.v, &end.v, &start.v),
    ]
    .into_iter()
    .map(|(r, c, s)| relative_distance(r, c, s))
    .fold(0.0_f32, f32::max);
    if !within(distance, tolerance.state) {
        return Err(Fault::Diverged { distance });
    }
    for (i, (claimed, replayed)) in opened.losses.iter().zip(losses).enumerate() {
        let bound = tolerance.loss * replayed.abs().max(1.0);
        // A pipeline stage that does not see the loss commits NaN, and its replay computes NaN.
        let unseen = claimed.is_nan() && replayed.is_nan();
        if !unseen && !within((claimed - replayed).abs(), bound) {
            return Err(Fault::Losses {
                step: end.step - opened.losses.len() as u64 + i as u64,
                claimed: *claimed,
                replayed: *replayed,
            });
        }
    }
    Ok(distance)
}

/// Whether `x` is at most `bound`; never for NaN (a non-finite claim fails).
pub(crate) fn within(x: f32, bound: f32) -> bool {
    matches!(
        x.partial_cmp(&bound),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// ‖replayed − committed‖ / ‖committed − start‖ (0 when all three are equal; infinite when the
/// segment claims no movement and the replay moved).
fn relative_distance(replayed: &[f32], committed: &[f32], start: &[f32]) -> f32 {
    let norm = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y) * f64::from(x - y))
            .sum::<f64>()
            .sqrt()
    };
    let off = norm(replayed, committed);
    if off == 0.0 {
        return 0.0;
    }
    (off / norm(committed, start)) as f32
}

/// Repeats the last segment's encoding: Δ = base − end, plus the residual, encoded under `codec`
/// must give the announced payload hash, and leave the committed residual.
pub fn check_encoding(
    opened: &Opened,
    codec: &CompressConfig,
    payload: &Hash,
    residual_after: &Hash,
) -> Result<(), Fault> {
    let Some((base, residual)) = &opened.tail else {
        return Ok(());
    };
    let delta: Vec<f32> = base
        .iter()
        .zip(&opened.end.params)
        .map(|(s, e)| s - e)
        .collect();
    let mut residual = Residual::from_values(residual.clone());
    let packet = neuroshard_compress::encode(&delta, &mut residual, codec)
        .map_err(|err| Fault::Encoding(err.to_string()))?;
    if Hash::of(packet.as_bytes()) != *payload {
        return Err(Fault::Encoding(
            "the last checkpoint does not encode to the announced Δ".into(),
        ));
    }
    if residual_hash(residual.as_slice()) != *residual_after {
        return Err(Fault::Encoding(
            "the encoding leaves another residual than committed".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use neuroshard_model::{Config, NeuroLlm};
    use neuroshard_primitives::BatchSource;
    use neuroshard_train::{DpConfig, InMemorySource, InnerConfig, LrSchedule};

    use super::*;

    /// A DP-SGD segment replays to the same bits: the noise is keyed by what the replay has
    /// (the seed, the step and the batch), not drawn from the trainer's own randomness.
    #[test]
    fn a_dp_segment_replays_exactly() {
        let config = InnerConfig {
            batch_size: 2,
            seq_len: 8,
            adamw: AdamWConfig::NEUROSHARD,
            schedule: LrSchedule::new(1, 10, 3e-3, 3e-4).unwrap(),
            clip_norm: 1.0,
            dp: Some(DpConfig::new(0.5, 1.0, 9).unwrap()),
        };
        let model = || NeuroLlm::new(&Config::preset("nano", 32).unwrap(), 1, &Device::Cpu);
        let source = InMemorySource::new((0..400).map(|i| (i * 5) % 32).collect(), 0);
        let batch = |s: u64| source.batch(s, 2, 8);
        let mut trainer = InnerLoop::new(model().unwrap(), config).unwrap();
        let start = Checkpoint::capture(&trainer, 3);
        let losses: Vec<f32> = (3..6)
            .map(|s| trainer.step_on(&batch(s).unwrap(), s).unwrap().loss)
            .collect();
        let mut verifier = InnerLoop::new(model().unwrap(), config).unwrap();
        let (end, replayed) =
            replay(&mut verifier, AdamWConfig::NEUROSHARD, &start, 3, batch).unwrap();
        assert_eq!(replayed, losses);
        assert_eq!(end, Checkpoint::capture(&trainer, 6));
    }
}
