//! Test builds only (feature `cheat`): a node that cheats the work proof, so the end-to-end
//! tests can show that real nodes catch it. A default build has none of this.

use std::str::FromStr;

use neuroshard_pipeline::FrameLimit;

/// How a test node cheats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cheat {
    /// Skips every segment of its training and fakes the chain's checkpoints.
    Lazy,
    /// Serves no challenged checkpoint.
    Withhold,
    /// A pipeline stage that trains on every neighbour's frame made a tenth smaller, and
    /// commits to it under the sender's seal.
    ForgeInputs,
    /// A pipeline stage whose lanes train each step on the batch of the round's next step
    /// (genesis tokens, not the step's), and commit to it.
    OtherBatch,
}

/// `bytes`, a lane neighbour's frame, with every value a tenth smaller ([`Cheat::ForgeInputs`]);
/// a frame that does not decode under `limit` stays as it is.
pub(crate) fn forged(bytes: Vec<u8>, limit: &FrameLimit) -> Vec<u8> {
    let Ok((mut frame, precision)) = neuroshard_pipeline::frame::decode(&bytes, limit) else {
        return bytes;
    };
    frame.values.iter_mut().for_each(|v| *v *= 0.9);
    frame.encode(precision).unwrap_or(bytes)
}

impl FromStr for Cheat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "lazy" => Ok(Self::Lazy),
            "withhold" => Ok(Self::Withhold),
            "forge-inputs" => Ok(Self::ForgeInputs),
            "other-batch" => Ok(Self::OtherBatch),
            other => Err(format!(
                "unknown cheat `{other}`; use lazy, withhold, forge-inputs or other-batch"
            )),
        }
    }
}
