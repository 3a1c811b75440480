//! The node's measured speed for its capacity record (`docs/pool.md`, "Measured speed"): a
//! short run of the one training step ([`InnerLoop::step_on`]) at start-up, in the unit of
//! `CapacityRecord::work_per_sec` (`Footprint::work` per second). The start-up edge reads the
//! clock here; [`work_per_sec`] is the pure arithmetic.
//!
//! Every node times the same probe, whatever its budget or its stage to be: the model's first
//! layer with the embedding and the head, on one micro-batch of random tokens (what a stage
//! trains at once), so the figures of nodes compare and the run stays short at any depth. The
//! figure is from the fastest timed step: other processes starting beside the node (all of
//! `neuroshard up`'s nodes measure at once) slow some steps, and the fastest is the one they
//! slowed least, so it repeats best (`docs/experiments/2026-11-30-measured-speed.md`).
//! `neuroshard bench train` times its steps with [`time_steps`] too.

use std::path::Path;
use std::time::Duration;

use candle_core::Device;
use neuroshard_model::{Config, NeuroLlm};
use neuroshard_pool::Footprint;
use neuroshard_primitives::{Batch, Hash};
use neuroshard_train::{InnerConfig, InnerLoop};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::Result;

/// Timed steps stop once they took this long together…
const MEASURE_FOR: Duration = Duration::from_millis(500);

/// …or after this many.
const MAX_STEPS: usize = 32;

/// Timed steps that run whatever the time (fewer only when fewer are asked for): a single step
/// slowed by another process would otherwise be the whole measurement.
const MIN_STEPS: usize = 3;

/// What the start-up measurement found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Measured {
    /// The figure the record announces: parameter-tokens per second.
    pub(crate) work_per_sec: u64,
    /// Timed steps.
    pub(crate) steps: usize,
    /// The fastest one's duration, which the figure is from.
    pub(crate) step: Duration,
    /// Their median duration (logged: how far the machine's load slowed the rest).
    pub(crate) median: Duration,
    /// Tokens per step.
    pub(crate) tokens: u64,
}

/// Times the probe (module docs) of `model` under `inner`, whose batch is split as a lane
/// splits it.
pub(crate) fn measure(model: &Config, inner: &InnerConfig, seed: u64) -> Result<Measured> {
    let workload = crate::role::workload(inner.batch_size);
    let probe = Config {
        n_layers: 1,
        ..model.clone()
    };
    let config = InnerConfig {
        batch_size: workload.micro_batch,
        ..*inner
    };
    let mut replica = InnerLoop::new(NeuroLlm::new(&probe, seed, &Device::Cpu)?, config)?;
    let timed = time_steps(&mut replica, seed, 1, MAX_STEPS, MEASURE_FOR)?;
    let mut times: Vec<Duration> = timed.iter().map(|(t, _)| *t).collect();
    times.sort_unstable();
    let (step, median) = (times[0], times[times.len() / 2]);
    let tokens = config.tokens_per_step();
    let work = Footprint::of(&probe, workload).work(1, true);
    Ok(Measured {
        work_per_sec: work_per_sec(work, tokens, step),
        steps: times.len(),
        step,
        median,
        tokens,
    })
}

/// The file in a node's directory that keeps its measured speed for the network it was measured
/// for: a restarted node announces the figure it announced before, so it computes the plan the
/// others computed from it and takes its old stage again (`docs/pool.md`, "Measured speed").
pub(crate) const SAVED: &str = "speed.json";

/// A measured speed as saved, with the network it was measured for.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    network: Hash,
    work_per_sec: u64,
}

/// The speed saved in `path` for `network`: `None` when there is none, it was measured for
/// another network, or the file does not parse (logged; the node measures again).
pub(crate) fn saved(path: &Path, network: Hash) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Saved>(&bytes) {
        Ok(s) if s.network == network => Some(s.work_per_sec),
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "a saved speed that does not parse: measuring again");
            None
        }
    }
}

/// Saves `work_per_sec`, measured for `network`, in `path` (atomically).
pub(crate) fn save(path: &Path, network: Hash, work_per_sec: u64) -> Result<()> {
    let saved = Saved {
        network,
        work_per_sec,
    };
    let bytes = serde_json::to_vec(&saved).expect("a hash and a number serialise");
    crate::atomic::write_atomic(path, &bytes, crate::atomic::Durability::Volatile)
}

/// Parameter-tokens per second of steps of `tokens` tokens through `work` parameters each that
/// took `step`: at least 1 (a record of 0 would say the node does nothing), saturating.
pub(crate) fn work_per_sec(work: u64, tokens: u64, step: Duration) -> u64 {
    let per_step = u128::from(work).saturating_mul(u128::from(tokens));
    let nanos = step.as_nanos().max(1);
    let figure = per_step.saturating_mul(1_000_000_000) / nanos;
    u64::try_from(figure).unwrap_or(u64::MAX).max(1)
}

/// Runs `warmup` untimed steps, then up to `steps` timed ones, of `replica` on random tokens
/// drawn from `seed`, stopping early once the timed steps took `limit` together (at least
/// [`MIN_STEPS`] run, or `steps` if fewer, and at least one); each timed step's duration and
/// loss.
pub fn time_steps(
    replica: &mut InnerLoop,
    seed: u64,
    warmup: usize,
    steps: usize,
    limit: Duration,
) -> Result<Vec<(Duration, f32)>> {
    let (batch, seq) = (replica.config().batch_size, replica.config().seq_len);
    let vocab = replica.model().config().vocab_size as u32;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut timed = Vec::with_capacity(steps);
    let mut spent = Duration::ZERO;
    for step in 0..warmup + steps.max(1) {
        if timed.len() >= MIN_STEPS && spent >= limit {
            break;
        }
        let tokens = (0..batch * (seq + 1))
            .map(|_| rng.random_range(0..vocab))
            .collect();
        let batch = Batch::new(tokens, batch, seq);
        #[allow(clippy::disallowed_methods)] // the start-up edge and the benchmark time steps
        let start = std::time::Instant::now();
        let loss = replica.step_on(&batch, step as u64)?.loss;
        if step >= warmup {
            let took = start.elapsed();
            spent += took;
            timed.push((took, loss));
        }
    }
    Ok(timed)
}

#[cfg(test)]
mod tests {
    use neuroshard_train::{AdamWConfig, LrSchedule};

    use super::*;

    #[test]
    fn a_saved_speed_is_announced_again_on_its_network_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SAVED);
        let (net, other) = (Hash::of(b"net"), Hash::of(b"other"));
        assert_eq!(saved(&path, net), None, "nothing saved yet");
        save(&path, net, 12_345).unwrap();
        assert_eq!(saved(&path, net), Some(12_345));
        assert_eq!(saved(&path, other), None, "measured for another network");
        std::fs::write(&path, b"{\"work_per").unwrap();
        assert_eq!(saved(&path, net), None, "a torn file: measured again");
    }

    #[test]
    fn the_figure_is_work_times_tokens_over_the_step_and_never_zero_or_wrapped() {
        let second = Duration::from_secs(1);
        assert_eq!(work_per_sec(1_000, 256, second), 256_000);
        assert_eq!(work_per_sec(1_000, 256, second / 4), 1_024_000);
        assert_eq!(work_per_sec(0, 256, second), 1, "never 0");
        assert_eq!(work_per_sec(u64::MAX, u64::MAX, second), u64::MAX);
        assert_eq!(work_per_sec(5, 5, Duration::ZERO), 25_000_000_000);
        assert_eq!(work_per_sec(5, 5, Duration::MAX), 1);
    }

    fn inner(batch_size: usize) -> InnerConfig {
        InnerConfig {
            batch_size,
            seq_len: 16,
            adamw: AdamWConfig::NEUROSHARD,
            schedule: LrSchedule::new(0, 100, 1e-3, 1e-3).unwrap(),
            clip_norm: 1.0,
            dp: None,
        }
    }

    #[test]
    fn timing_stops_at_the_step_count_or_the_limit_after_the_warm_up() {
        let cfg = Config::preset("nano", 64).unwrap();
        let mut replica =
            InnerLoop::new(NeuroLlm::new(&cfg, 1, &Device::Cpu).unwrap(), inner(2)).unwrap();
        let all = time_steps(&mut replica, 3, 2, 4, Duration::MAX).unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(replica.optimizer().steps(), 6, "the warm-up steps ran too");
        let few = time_steps(&mut replica, 3, 1, 4, Duration::ZERO).unwrap();
        assert_eq!(
            few.len(),
            MIN_STEPS,
            "a limit already spent still times a few steps"
        );
        let one = time_steps(&mut replica, 3, 0, 1, Duration::ZERO).unwrap();
        assert_eq!(one.len(), 1, "no more than asked for");
        assert!(
            all.iter()
                .all(|(t, loss)| *t > Duration::ZERO && loss.is_finite())
        );
    }

    #[test]
    fn the_probe_measures_one_micro_batch_of_the_first_layer_and_the_head() {
        let cfg = Config::preset("nano", 64).unwrap();
        let measured = measure(&cfg, &inner(8), 5).unwrap();
        // A batch of 8 splits into 4 micro-batches of 2 sequences.
        assert_eq!(measured.tokens, 2 * 16);
        assert!((MIN_STEPS..=MAX_STEPS).contains(&measured.steps));
        assert!(measured.step <= measured.median);
        let work =
            Footprint::of(&Config { n_layers: 1, ..cfg }, crate::role::workload(8)).work(1, true);
        assert_eq!(
            measured.work_per_sec,
            work_per_sec(work, measured.tokens, measured.step)
        );
    }
}
