//! The economic rules: emission, reward shares, bonds, delays and slashing, as numbers; and the
//! pool roll's plan boundaries.
//! `docs/economics.md` explains each one with a worked example.

use serde::{Deserialize, Serialize};

use crate::{Amount, Height, NEURO};

/// The ledger's parameters. Every replica must use the same ones; they are part of what the
/// genesis fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// NEURO minted when a round settles, split between its trainers and its verifiers.
    pub emission_per_round: Amount,
    /// The verifiers' part of a round's emission, in percent; the trainers get the rest.
    pub verifier_share_pct: u64,
    /// A trainer's weight, in percent, when the audits say its Δ alone made the held-out loss
    /// worse (100 otherwise).
    pub harmful_weight_pct: u64,
    /// NEURO minted per second of chain time (block timestamps) to each block's proposer.
    pub validator_rate_per_sec: Amount,
    /// The longest gap between two blocks that still earns validator rewards (a proposer cannot
    /// mint for an outage).
    pub max_rewarded_gap_ms: u64,
    /// The least stake that makes an account eligible for the validator committee.
    pub validator_bond: Amount,
    /// The most validators in a committee.
    pub committee_size: usize,
    /// Blocks between an unstake and the release of its amount; stake stays slashable until then.
    pub unbonding_blocks: Height,
    /// How long after its first claim a round closes for claims, in block-time milliseconds (it
    /// closes earlier once every contributor of the previous round has claimed).
    pub claim_window_ms: u64,
    /// Rounds between a round's close and its settlement (its rewards), so its audits can land.
    pub settle_lag: u64,
    /// Distinct bonded accusers needed to slash one contribution.
    pub conviction_quorum: usize,
    /// The least stake an accuser needs for its conviction to count.
    pub accuser_bond: Amount,
    /// The share of a convicted account's stake (bonded and unbonding) taken, in percent.
    pub slash_pct: u64,
    /// The share of the slashed amount paid to the first accuser, in percent; the rest is burned.
    pub prover_pct: u64,
    /// The most transactions in a block.
    pub max_block_txs: usize,
    /// Blocks per epoch. Epoch `e` holds heights `e·epoch_blocks ..= (e+1)·epoch_blocks − 1` (the
    /// consensus engine's `FixedEpocher`, so epoch 0 holds genesis); the committee changes only
    /// after the last block of an epoch, to the one elected at the end of the epoch before (a
    /// full epoch of notice).
    pub epoch_blocks: Height,
    /// Blocks between two plan boundaries of the pipeline's layer pool, at least 1: height `h` is
    /// a boundary when `h > 0` and `h % pool_blocks == 0` ([`Rules::is_pool_boundary`]), and the
    /// block at each one notes the pool roll's size (`Meta::pool_sizes`).
    pub pool_blocks: Height,
    /// Blocks an entry stays on the pool roll without a new record from its account: at a plan
    /// boundary `h`, an entry recorded at a height `≤ h − pool_ttl_blocks` is dropped (the node
    /// left; a running node renews its entry well before). At least two `pool_blocks`.
    pub pool_ttl_blocks: Height,
}

impl Rules {
    /// The defaults the genesis of a new network uses.
    pub const DEFAULT: Self = Self {
        emission_per_round: 100 * NEURO,
        verifier_share_pct: 20,
        harmful_weight_pct: 50,
        validator_rate_per_sec: NEURO / 10,
        max_rewarded_gap_ms: 10_000,
        validator_bond: 1_000 * NEURO,
        committee_size: 16,
        unbonding_blocks: 1_000,
        claim_window_ms: 20_000,
        settle_lag: 2,
        conviction_quorum: 2,
        accuser_bond: NEURO,
        slash_pct: 50,
        prover_pct: 10,
        max_block_txs: 1_000,
        // An idle chain makes about 2 blocks a second (the engine's 500 ms idle block), so an
        // epoch is about 2.5 minutes idle and shorter under load: a new staker validates within
        // two epochs (≤ 5 min), each hand-over restarts the engine (a few seconds), and a
        // departing validator's stake stays slashable for its whole remaining tenure (at most two
        // epochs, 600 blocks, within the 1 000-block unbonding; `validate` checks this).
        epoch_blocks: 300,
        // About 10 s on an idle chain (about 2 blocks a second): a joiner is planned in within
        // seconds, and a plan lasts long enough for its layer moves to land.
        pool_blocks: 20,
        // About 2 minutes on an idle chain: a node that left is planned out within about two
        // minutes, and a running node renews its entry every half of it (`docs/replan.md`).
        pool_ttl_blocks: 240,
    };

    /// Checks the parameters are coherent.
    pub fn validate(&self) -> Result<(), String> {
        let pct = [
            ("verifier_share_pct", self.verifier_share_pct),
            ("harmful_weight_pct", self.harmful_weight_pct),
            ("slash_pct", self.slash_pct),
            ("prover_pct", self.prover_pct),
        ];
        if let Some((name, value)) = pct.iter().find(|(_, v)| *v > 100) {
            return Err(format!("{name} is {value}, above 100"));
        }
        if self.conviction_quorum < 2 {
            return Err("conviction_quorum below 2 would let one accuser slash".into());
        }
        if self.committee_size == 0 || self.max_block_txs == 0 {
            return Err("committee_size and max_block_txs must be positive".into());
        }
        if self.epoch_blocks < 2 {
            return Err("epoch_blocks must be at least 2 (epoch 0 holds genesis)".into());
        }
        if self.unbonding_blocks < self.epoch_blocks.saturating_mul(2) {
            return Err(
                "unbonding_blocks below two epochs would release the stake of a validator \
                 still in the committee"
                    .into(),
            );
        }
        if self.pool_blocks == 0 {
            return Err("pool_blocks must be at least 1 (blocks between plan boundaries)".into());
        }
        if self.pool_ttl_blocks < self.pool_blocks.saturating_mul(2) {
            return Err(
                "pool_ttl_blocks below two pool_blocks would drop a node between its renewals"
                    .into(),
            );
        }
        if self.settle_lag == 0 {
            return Err("settle_lag must be at least 1 so a round's audits can land".into());
        }
        Ok(())
    }
}

impl Rules {
    /// The epoch a block at `height` belongs to.
    pub fn epoch_of(&self, height: Height) -> u64 {
        height / self.epoch_blocks
    }

    /// Whether the block at `height` is the last of its epoch (the committee hands over after it).
    pub fn ends_epoch(&self, height: Height) -> bool {
        height.saturating_add(1).is_multiple_of(self.epoch_blocks)
    }

    /// Whether `height` is a plan boundary of the pipeline's layer pool: a positive multiple of
    /// `pool_blocks` (never, should `pool_blocks` be 0, which `validate` refuses).
    pub fn is_pool_boundary(&self, height: Height) -> bool {
        height > 0 && height.is_multiple_of(self.pool_blocks)
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self::DEFAULT
    }
}
