//! A checkpoint of a training job: parameters, AdamW moments and step counters, with its hash and
//! its wire form.

use neuroshard_primitives::Hash;
use neuroshard_train::{AdamW, AdamWConfig, InnerLoop, StageLoop};

use crate::Result;
use crate::error::malformed;

/// Wire-form magic and version.
const MAGIC: &[u8; 4] = b"NSCK";
const VERSION: u8 = 1;
/// Magic, version, three u64 header fields.
const HEADER: usize = 4 + 1 + 3 * 8;

/// The state of an inner loop between two steps: everything the next step depends on besides
/// its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The 0-based global inner step that comes next (the schedule's position and the next
    /// batch's index).
    pub step: u64,
    /// AdamW's own step counter (bias correction), which persists across rounds.
    pub adam_steps: u64,
    /// Weights, flat in canonical order.
    pub params: Vec<f32>,
    /// AdamW first moments.
    pub m: Vec<f32>,
    /// AdamW second moments.
    pub v: Vec<f32>,
}

impl Checkpoint {
    /// The state of `inner`, whose next step is global step `step`.
    pub fn capture(inner: &InnerLoop, step: u64) -> Self {
        Self::of(inner.params(), inner.optimizer(), step)
    }

    /// The state of a pipeline stage's loop `stage`, whose next step is global step `step`.
    pub fn capture_stage(stage: &StageLoop, step: u64) -> Self {
        Self::of(stage.params(), stage.optimizer(), step)
    }

    fn of(params: &[f32], optimizer: &AdamW, step: u64) -> Self {
        Self {
            step,
            adam_steps: optimizer.steps(),
            params: params.to_vec(),
            m: optimizer.m().to_vec(),
            v: optimizer.v().to_vec(),
        }
    }

    /// Puts this state into `inner` (same model shape, AdamW settings `adamw`).
    pub fn restore(&self, inner: &mut InnerLoop, adamw: AdamWConfig) -> Result<()> {
        inner.restore(&self.params, self.optimizer(adamw)?)?;
        Ok(())
    }

    /// Puts this state into a pipeline stage's loop `stage` (same stage shape).
    pub fn restore_stage(&self, stage: &mut StageLoop, adamw: AdamWConfig) -> Result<()> {
        stage.restore(&self.params, self.optimizer(adamw)?)?;
        Ok(())
    }

    fn optimizer(&self, adamw: AdamWConfig) -> Result<AdamW> {
        Ok(AdamW::from_state(
            adamw,
            self.m.clone(),
            self.v.clone(),
            self.adam_steps,
        )?)
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether it holds no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Bytes of the wire form for `n` parameters.
    pub fn encoded_len(n: usize) -> usize {
        HEADER + 12 * n
    }

    /// The wire form: magic, version, n, step, AdamW steps, then params, m and v as
    /// little-endian f32.
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.params.len();
        let mut out = Vec::with_capacity(Self::encoded_len(n));
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        for field in [n as u64, self.step, self.adam_steps] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        for values in [&self.params, &self.m, &self.v] {
            out.extend(values.iter().flat_map(|x| x.to_le_bytes()));
        }
        out
    }

    /// Decodes the wire form of a checkpoint for a model of `n` parameters; anything else (another
    /// size, another version, trailing bytes) is an error.
    pub fn from_bytes(bytes: &[u8], n: usize) -> Result<Self> {
        if bytes.len() != Self::encoded_len(n) {
            return Err(malformed(
                "checkpoint",
                format!(
                    "{} bytes, a checkpoint of {n} parameters has {}",
                    bytes.len(),
                    Self::encoded_len(n)
                ),
            ));
        }
        if &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(malformed("checkpoint", "unknown magic or version"));
        }
        let word = |i: usize| {
            let at = 5 + 8 * i;
            u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
        };
        if word(0) != n as u64 {
            return Err(malformed(
                "checkpoint",
                format!("declares {} parameters, the model has {n}", word(0)),
            ));
        }
        let floats = |k: usize| -> Vec<f32> {
            bytes[HEADER + 4 * n * k..HEADER + 4 * n * (k + 1)]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect()
        };
        Ok(Self {
            step: word(1),
            adam_steps: word(2),
            params: floats(0),
            m: floats(1),
            v: floats(2),
        })
    }

    /// The hash a chain commits to: BLAKE3 of the wire form (so `Hash::of(bytes)` of served bytes).
    pub fn hash(&self) -> Hash {
        Hash::of(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(n: usize) -> Checkpoint {
        Checkpoint {
            step: 41,
            adam_steps: 7,
            params: (0..n).map(|i| i as f32 * 0.5).collect(),
            m: (0..n).map(|i| -(i as f32)).collect(),
            v: (0..n).map(|i| i as f32 * i as f32).collect(),
        }
    }

    #[test]
    fn wire_form_round_trips_and_hashes_its_bytes() {
        let c = sample(5);
        let bytes = c.to_bytes();
        assert_eq!(bytes.len(), Checkpoint::encoded_len(5));
        assert_eq!(Checkpoint::from_bytes(&bytes, 5).unwrap(), c);
        assert_eq!(c.hash(), Hash::of(&bytes));
    }

    #[test]
    fn another_size_or_a_flipped_header_is_refused() {
        let bytes = sample(5).to_bytes();
        assert!(Checkpoint::from_bytes(&bytes, 4).is_err());
        assert!(Checkpoint::from_bytes(&bytes[..bytes.len() - 1], 5).is_err());
        let mut wrong = bytes.clone();
        wrong[4] = 9;
        assert!(Checkpoint::from_bytes(&wrong, 5).is_err());
        let mut lying = sample(4).to_bytes();
        lying.extend_from_slice(&[0; 12]);
        assert!(Checkpoint::from_bytes(&lying, 5).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), n in 0usize..8) {
            let _ = Checkpoint::from_bytes(&bytes, n);
        }
    }
}
