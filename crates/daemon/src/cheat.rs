//! Test builds only (feature `cheat`): a node that cheats the work proof, so the end-to-end
//! tests can show that real nodes catch it. A default build has none of this.

use std::str::FromStr;

/// How a test node cheats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cheat {
    /// Skips every segment of its training and fakes the chain's checkpoints.
    Lazy,
    /// Serves no challenged checkpoint.
    Withhold,
}

impl FromStr for Cheat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "lazy" => Ok(Self::Lazy),
            "withhold" => Ok(Self::Withhold),
            other => Err(format!("unknown cheat `{other}`; use lazy or withhold")),
        }
    }
}
