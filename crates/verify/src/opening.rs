//! What a contributor serves when one of its segments is challenged, and how a verifier checks
//! it against the commitment before replaying anything.

use neuroshard_primitives::{Hash, MerkleProof};
use serde::{Deserialize, Serialize};

use crate::error::malformed;
use crate::stage::{LaneWork, check_work};
use crate::{Checkpoint, Commitment, Error, Leaf, Result, residual_hash};

/// One segment of a chain, opened: both checkpoints, their leaves and inclusion proofs; for the
/// last segment also the round's start model and the residual, so the encoding of Δ can be
/// repeated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opening {
    /// The segment j: checkpoints j and j + 1.
    pub segment: u64,
    /// Checkpoint j's wire form.
    pub start: Vec<u8>,
    /// Checkpoint j + 1's wire form.
    pub end: Vec<u8>,
    /// Leaf j and its proof.
    pub start_leaf: (Leaf, MerkleProof),
    /// Leaf j + 1 and its proof.
    pub end_leaf: (Leaf, MerkleProof),
    /// For the last segment: the round's start parameters and the residual before encoding.
    pub tail: Option<Tail>,
    /// For a pipeline stage: the segment's batches and frames, step by step, lane by lane
    /// ([`crate::stage`]); empty for a whole model.
    pub work: Vec<Vec<LaneWork>>,
}

/// The last segment's extra: what turns its end checkpoint into the announced payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    /// The round's global model, little-endian f32 (its hash is the announcement's base).
    pub base: Vec<u8>,
    /// The error-feedback residual added before encoding, little-endian f32 (empty for none).
    pub residual: Vec<u8>,
}

/// An opening that checked out against a commitment: what to replay and what to compare with.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The segment.
    pub segment: u64,
    /// Where the replay starts.
    pub start: Checkpoint,
    /// Where the contributor says the segment ended.
    pub end: Checkpoint,
    /// The losses it committed for the segment's steps.
    pub losses: Vec<f32>,
    /// For the last segment: the round's start parameters and the residual.
    pub tail: Option<(Vec<f32>, Vec<f32>)>,
    /// For a pipeline stage: the segment's batches and frames, checked against the end leaf.
    pub work: Vec<Vec<LaneWork>>,
}

/// What an opening must match: the contributor's commitment, the model it trained from, and
/// where its job starts.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The commitment of the announcement.
    pub commitment: &'a Commitment,
    /// The announced base model's hash.
    pub base: &'a Hash,
    /// The job's first global inner step (round × H).
    pub first_step: u64,
    /// The model's parameter count.
    pub n_params: usize,
}

impl Opening {
    /// Checks everything that needs no replay: both leaves prove against the root at positions
    /// j and j + 1, both checkpoints hash to their leaves and have the model's size, the step
    /// counters advance by the segment's length, the losses are one per step, segment 0 starts
    /// from the base model, the last segment carries a base and residual that match, and a
    /// stage's work matches its end leaf (a whole model's leaf names no work, and its opening
    /// serves none).
    ///
    /// A failure here is the contributor's: it signed this opening.
    pub fn check(&self, claim: &Claim<'_>) -> Result<Opened> {
        let plan = claim.commitment.segments;
        let (j, count) = (self.segment, plan.count());
        if j >= count {
            return Err(mismatch(format!("segment {j} of a chain of {count}")));
        }
        self.check_leaves(claim.commitment, count)?;
        let start = Checkpoint::from_bytes(&self.start, claim.n_params)?;
        let end = Checkpoint::from_bytes(&self.end, claim.n_params)?;
        let (offset, len) = plan.segment(j);
        let first = claim
            .first_step
            .checked_add(offset)
            .ok_or_else(|| mismatch("step counter overflows"))?;
        let steps_ok = start.step == first
            && end.step == first + len
            && end.adam_steps == start.adam_steps.saturating_add(len);
        if !steps_ok {
            return Err(mismatch(format!(
                "segment {j} should run steps {first}..{}; the checkpoints say {}..{}",
                first + len,
                start.step,
                end.step
            )));
        }
        let losses = self.end_leaf.0.losses.clone();
        if losses.len() as u64 != len {
            return Err(mismatch(format!("{} losses for {len} steps", losses.len())));
        }
        if j == 0 && Hash::of_f32(&start.params) != *claim.base {
            return Err(mismatch(
                "segment 0 does not start from the announced model",
            ));
        }
        let tail = self.check_tail(claim, j + 1 == count)?;
        match self.end_leaf.0.work == Hash::default() {
            true if !self.work.is_empty() => {
                return Err(mismatch("work served for a leaf that names none"));
            }
            true => {}
            false => check_work(&self.end_leaf.0, &self.work)?,
        }
        Ok(Opened {
            segment: j,
            start,
            end,
            losses,
            tail,
            work: self.work.clone(),
        })
    }

    fn check_leaves(&self, commitment: &Commitment, count: u64) -> Result<()> {
        let n_leaves = count + 1;
        for (at, (leaf, proof), bytes) in [
            (self.segment, &self.start_leaf, &self.start),
            (self.segment + 1, &self.end_leaf, &self.end),
        ] {
            let placed = proof.index as u64 == at && proof.n_leaves as u64 == n_leaves;
            if !placed || !proof.verify(&leaf.hash(at), &commitment.root) {
                return Err(mismatch(format!(
                    "leaf {at} does not prove against the root"
                )));
            }
            if Hash::of(bytes) != leaf.checkpoint {
                return Err(mismatch(format!("checkpoint {at} does not match its leaf")));
            }
        }
        Ok(())
    }

    fn check_tail(&self, claim: &Claim<'_>, last: bool) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
        let tail = match (&self.tail, last) {
            (None, false) => return Ok(None),
            (Some(tail), true) => tail,
            (None, true) => return Err(mismatch("the last segment comes without its tail")),
            (Some(_), false) => return Err(mismatch("a tail on a segment that is not the last")),
        };
        let n = claim.n_params;
        let base = f32s(&tail.base, n, "tail base")?;
        if Hash::of_f32(&base) != *claim.base {
            return Err(mismatch("the tail's base is not the announced model"));
        }
        let residual = if tail.residual.is_empty() {
            Vec::new()
        } else {
            f32s(&tail.residual, n, "tail residual")?
        };
        if residual_hash(&residual) != claim.commitment.residual_before {
            return Err(mismatch(
                "the tail's residual does not match the commitment",
            ));
        }
        Ok(Some((base, residual)))
    }
}

/// Exactly `n` little-endian f32 values from `bytes`.
pub(crate) fn f32s(bytes: &[u8], n: usize, what: &'static str) -> Result<Vec<f32>> {
    if bytes.len() != 4 * n {
        return Err(malformed(
            what,
            format!("{} bytes for {n} values", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect())
}

fn mismatch(reason: impl ToString) -> Error {
    Error::Mismatch(reason.to_string())
}
