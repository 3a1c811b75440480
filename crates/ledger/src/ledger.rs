//! The state transition: a block of signed transactions applied to the state, with the rounds
//! closed, settled and rewarded on the way, and the committee rotated at epoch boundaries.
//!
//! A block applies in this order (`docs/economics.md` gives the rules with worked examples):
//! 1. Check the header follows the state (next height, time not going back, proposer in the
//!    committee); mint the proposer's reward for the time since the last block.
//! 2. Close the open round if its claim window has passed (settling the round `settle_lag`
//!    before it).
//! 3. Apply the transactions in order; any refusal makes the whole block invalid.
//! 4. Close the open round if every contributor of the previous round has claimed.
//! 5. At the last block of an epoch (`Rules::ends_epoch`), hand over to the committee elected at
//!    the end of the epoch before and elect the next, so a committee is known one full epoch
//!    before it starts; forget the consensus addresses of accounts that are neither bonded nor
//!    seated.
//! 6. At a plan boundary of the layer pool (`Rules::is_pool_boundary`), drop the roll's entries
//!    older than `Rules::pool_ttl_blocks` (listed in `Meta::pool_left`) and note the roll's size
//!    in `Meta::pool_sizes`.

use neuroshard_primitives::NodeId;
use serde::{Deserialize, Serialize};

use crate::rewards::settle;
use crate::state::{Audit, Claim, PoolEntry, RoundBook, State};
use crate::{
    Action, Amount, BlockError, Height, Refused, Round, Rules, SignedTx, Work, actions, pool,
};

/// The largest block body: the consensus engine's limit (`neuroshard_consensus::MAX_BODY_BYTES`,
/// checked equal by the daemon's tests).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What the consensus engine says about a block, as far as the ledger is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// The block's height (the first block is 1).
    pub height: Height,
    /// The proposer's timestamp, ms.
    pub time_ms: u64,
    /// Who proposed it.
    pub proposer: NodeId,
}

/// A block's transactions, as their wire bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// The encoded signed transactions, in order.
    pub txs: Vec<Vec<u8>>,
}

impl Body {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a body always encodes")
    }

    /// Decodes hostile bytes within the size limits.
    pub fn decode(bytes: &[u8], rules: &Rules) -> Result<Self, BlockError> {
        if bytes.len() > MAX_BODY_BYTES {
            return Err(BlockError::Malformed(format!(
                "{} bytes, more than the {MAX_BODY_BYTES} allowed",
                bytes.len()
            )));
        }
        let body: Body =
            postcard::from_bytes(bytes).map_err(|err| BlockError::Malformed(err.to_string()))?;
        if body.txs.len() > rules.max_block_txs {
            return Err(BlockError::Malformed(format!(
                "{} transactions, more than the {} allowed",
                body.txs.len(),
                rules.max_block_txs
            )));
        }
        Ok(body)
    }
}

/// What applying a block did, for the node to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// A round that closed in this block, with its inclusion list.
    pub closed: Option<(Round, Vec<Claim>)>,
    /// Rounds settled in this block, with their rewards.
    pub settled: Vec<crate::Payout>,
    /// Accounts slashed in this block, and what each lost.
    pub slashed: Vec<(NodeId, Amount)>,
    /// The transactions applied, checked, in order.
    pub txs: Vec<SignedTx>,
    /// The proposer's reward.
    pub proposer_reward: Amount,
}

/// The NEURO ledger's rules and its window on Proof of Neural Work.
#[derive(Debug, Clone)]
pub struct Ledger<W> {
    rules: Rules,
    work: W,
}

impl<W: Work> Ledger<W> {
    /// A ledger under `rules`, checking work artefacts with `work`.
    pub fn new(rules: Rules, work: W) -> Result<Self, String> {
        rules.validate()?;
        Ok(Self { rules, work })
    }

    /// The rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Applies a block: all of it, or (on error) none of it.
    pub fn execute(
        &self,
        state: &mut State,
        info: &BlockInfo,
        body: &[u8],
    ) -> Result<Receipt, BlockError> {
        let body = Body::decode(body, &self.rules)?;
        let mut next = state.clone();
        let mut receipt = self.begin(&mut next, info)?;
        for (index, bytes) in body.txs.iter().enumerate() {
            let tx = SignedTx::decode(bytes)
                .and_then(|tx| {
                    self.apply_tx(&mut next, info, &tx, &mut receipt)
                        .map(|()| tx)
                })
                .map_err(|reason| BlockError::Transaction { index, reason })?;
            receipt.txs.push(tx);
        }
        self.end(&mut next, info, &mut receipt);
        *state = next;
        Ok(receipt)
    }

    /// A block body on top of `state`: the pending transactions that apply, in the given order,
    /// up to the block limit; the others are left out.
    pub fn build(&self, state: &State, info: &BlockInfo, pending: &[Vec<u8>]) -> Vec<u8> {
        let mut next = state.clone();
        let mut receipt = Receipt::default();
        let mut body = Body::default();
        if self.begin(&mut next, info).is_err() {
            return body.encode();
        }
        let mut size = 0usize;
        for bytes in pending {
            let fits = body.txs.len() < self.rules.max_block_txs
                && size + bytes.len() + 8 <= MAX_BODY_BYTES;
            let applies = fits
                && SignedTx::decode(bytes)
                    .and_then(|tx| self.apply_tx(&mut next, info, &tx, &mut receipt))
                    .is_ok();
            if applies {
                size += bytes.len() + 8;
                body.txs.push(bytes.clone());
            }
        }
        body.encode()
    }

    /// Steps 1 and 2: the header, the proposer's reward, a round whose window passed.
    fn begin(&self, state: &mut State, info: &BlockInfo) -> Result<Receipt, BlockError> {
        let meta = &state.meta;
        if info.height != meta.height.saturating_add(1) {
            return Err(BlockError::BadHeader(format!(
                "height {} does not follow {}",
                info.height, meta.height
            )));
        }
        if info.time_ms < meta.time_ms {
            return Err(BlockError::BadHeader(format!(
                "time {} ms is before the parent's {} ms",
                info.time_ms, meta.time_ms
            )));
        }
        if !meta.committee.contains(&info.proposer) {
            return Err(BlockError::BadHeader(format!(
                "proposer {} is not in the committee",
                info.proposer
            )));
        }
        let mut receipt = Receipt {
            proposer_reward: self.reward_proposer(state, info),
            ..Receipt::default()
        };
        let open = state.meta.rounds.get(&state.meta.open_round);
        let window_over = open.is_some_and(|book| {
            info.time_ms.saturating_sub(book.opened_ms) >= self.rules.claim_window_ms
        });
        if window_over {
            self.close_round(state, info.height, &mut receipt);
        }
        Ok(receipt)
    }

    /// Steps 4 to 6: a round everyone expected has claimed, the epoch and plan boundaries (the
    /// roll's expiry, its size, the plan).
    fn end(&self, state: &mut State, info: &BlockInfo, receipt: &mut Receipt) {
        if receipt.closed.is_none() && everyone_claimed(state) {
            self.close_round(state, info.height, receipt);
        }
        state.meta.height = info.height;
        state.meta.time_ms = info.time_ms;
        if self.rules.ends_epoch(info.height) {
            let elected = self.elect(state);
            state.meta.committee = std::mem::replace(&mut state.meta.next_committee, elected);
            self.forget_addresses(state);
        }
        if self.rules.is_pool_boundary(info.height) {
            pool::expire(state, info.height, self.rules.pool_ttl_blocks);
            pool::note_size(state);
            pool::replan(state, &self.work, info.height);
        }
    }

    /// Drops the consensus address of every account that holds less than the validator bond and
    /// sits in neither committee: the addresses the ledger keeps are bounded by the bonded
    /// accounts (at most the supply over the bond) plus the two committees, whatever peers
    /// register.
    fn forget_addresses(&self, state: &mut State) {
        let bond = self.rules.validator_bond;
        let State { accounts, meta } = state;
        let seated = |id: &NodeId| meta.committee.contains(id) || meta.next_committee.contains(id);
        meta.addresses
            .retain(|id, _| accounts.get(id).is_some_and(|a| a.stake >= bond) || seated(id));
    }

    /// Mints the proposer's reward for the block time since the last block (none for the first).
    fn reward_proposer(&self, state: &mut State, info: &BlockInfo) -> Amount {
        if state.meta.height == 0 {
            return 0;
        }
        let gap = info
            .time_ms
            .saturating_sub(state.meta.time_ms)
            .min(self.rules.max_rewarded_gap_ms);
        let reward = u128::from(gap) * u128::from(self.rules.validator_rate_per_sec) / 1000;
        let reward = Amount::try_from(reward).unwrap_or(0);
        if actions::credit_stake(state, &info.proposer, reward) {
            reward
        } else {
            0
        }
    }

    /// Closes the open round: its claims become the inclusion list; the round `settle_lag`
    /// before it settles.
    fn close_round(&self, state: &mut State, height: Height, receipt: &mut Receipt) {
        let round = state.meta.open_round;
        let book = state.meta.rounds.entry(round).or_default();
        book.closed_at = Some(height);
        receipt.closed = Some((round, book.claims.clone()));
        state.meta.open_round = round.saturating_add(1);
        if let Some(due) = round.checked_sub(self.rules.settle_lag)
            && let Some(book) = state.meta.rounds.remove(&due)
        {
            let payout = settle(state, &self.rules, due, &book);
            state.meta.last_payout = Some(payout.clone());
            receipt.settled.push(payout);
        }
    }

    /// The committee for the epoch after next: the largest stakes at or above the validator
    /// bond among accounts with a registered consensus address (ties by id), at most
    /// `committee_size`, sorted by id; the one already elected if none qualify.
    pub fn elect(&self, state: &State) -> Vec<NodeId> {
        let mut bonded: Vec<(Amount, NodeId)> = state
            .accounts
            .iter()
            .filter(|(id, a)| {
                a.stake >= self.rules.validator_bond && state.meta.addresses.contains_key(id)
            })
            .map(|(id, a)| (a.stake, *id))
            .collect();
        if bonded.is_empty() {
            return state.meta.next_committee.clone();
        }
        bonded.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut committee: Vec<NodeId> = bonded
            .into_iter()
            .take(self.rules.committee_size)
            .map(|(_, id)| id)
            .collect();
        committee.sort();
        committee
    }

    /// Applies one checked transaction, or refuses it and leaves the state untouched.
    pub fn apply_tx(
        &self,
        state: &mut State,
        info: &BlockInfo,
        tx: &SignedTx,
        receipt: &mut Receipt,
    ) -> Result<(), Refused> {
        if tx.tx.network != state.meta.network {
            return Err(Refused::WrongNetwork);
        }
        let expected = state.account(&tx.signer).nonce;
        if tx.tx.nonce != expected {
            return Err(Refused::BadNonce {
                expected,
                got: tx.tx.nonce,
            });
        }
        let signer = tx.signer;
        match &tx.tx.action {
            Action::Transfer { to, amount } => actions::transfer(state, &signer, to, *amount)?,
            Action::Stake { amount } => actions::stake(state, &signer, *amount)?,
            Action::Unstake { amount } => {
                let release = info.height.saturating_add(self.rules.unbonding_blocks);
                actions::unstake(state, &signer, *amount, release)?
            }
            Action::Withdraw => actions::withdraw(state, &signer, info.height)?,
            Action::Register { consensus } => {
                actions::register(state, &self.rules, &signer, *consensus)?
            }
            Action::Claim {
                round,
                delta,
                root,
                part,
            } => {
                let claim = Claim {
                    contributor: signer,
                    delta: *delta,
                    root: *root,
                    part: *part,
                };
                open_claim(state, info, *round, claim)?
            }
            Action::Verdict {
                round,
                contributor,
                ticket,
                passed,
                gain,
            } => {
                let audit = Audit {
                    passed: *passed,
                    gain: *gain,
                };
                self.verdict(state, signer, *round, contributor, ticket, audit)?
            }
            Action::Convict {
                round,
                contributor,
                evidence,
            } => self.convict(state, signer, *round, contributor, evidence, receipt)?,
            Action::Pool {
                memory_budget,
                work_per_sec,
            } => {
                let entry = PoolEntry {
                    memory_budget: *memory_budget,
                    work_per_sec: *work_per_sec,
                    height: info.height,
                };
                pool::record(state, &signer, entry)?
            }
            Action::PoolLeave => pool::leave(state, &signer)?,
        }
        let account = state.accounts.entry(signer).or_default();
        account.nonce = account.nonce.saturating_add(1);
        Ok(())
    }

    /// Records an auditor's verdict on a contribution of a closed, unsettled round.
    fn verdict(
        &self,
        state: &mut State,
        auditor: NodeId,
        round: Round,
        contributor: &NodeId,
        ticket: &[u8],
        audit: Audit,
    ) -> Result<(), Refused> {
        let book = judgeable(state, round)?;
        let claim = contribution(book, round, contributor)?;
        if auditor == *contributor {
            return Err(Refused::SelfJudgement);
        }
        if book.audits.contains_key(&(*contributor, auditor)) {
            return Err(Refused::BadVerdict("this auditor already judged it".into()));
        }
        if !self
            .work
            .ticket_selects(round, claim, &auditor, ticket, book.claims_of(claim.part))
        {
            return Err(Refused::BadVerdict(
                "the audit ticket does not select this auditor".into(),
            ));
        }
        book_mut(state, round)
            .audits
            .insert((*contributor, auditor), audit);
        Ok(())
    }

    /// Records a conviction; the `conviction_quorum`-th distinct bonded accuser slashes.
    fn convict(
        &self,
        state: &mut State,
        accuser: NodeId,
        round: Round,
        contributor: &NodeId,
        evidence: &[u8],
        receipt: &mut Receipt,
    ) -> Result<(), Refused> {
        let book = judgeable(state, round)?;
        let claim = contribution(book, round, contributor)?;
        if accuser == *contributor {
            return Err(Refused::SelfJudgement);
        }
        let accusers = book.convictions.get(contributor);
        if accusers.is_some_and(|a| a.contains(&accuser)) {
            return Err(Refused::BadConviction(
                "this accuser already convicted it".into(),
            ));
        }
        let bond = state.account(&accuser).stake;
        if bond < self.rules.accuser_bond {
            return Err(Refused::BadConviction(format!(
                "the accuser's stake {bond} is below the accuser bond {}",
                self.rules.accuser_bond
            )));
        }
        self.work
            .evidence_holds(round, claim, evidence)
            .map_err(Refused::BadConviction)?;
        let book = book_mut(state, round);
        let accusers = book.convictions.entry(*contributor).or_default();
        accusers.push(accuser);
        let quorum = accusers.len() >= self.rules.conviction_quorum;
        let prover = accusers[0];
        if quorum && book.slashed.insert(*contributor) {
            let lost = actions::slash(state, &self.rules, contributor, &prover);
            receipt.slashed.push((*contributor, lost));
        }
        Ok(())
    }
}

/// Adds `claim` to the open round (opening it at this block's time if it is the first), or
/// notes a claim for the round just closed as late.
fn open_claim(
    state: &mut State,
    info: &BlockInfo,
    round: Round,
    claim: Claim,
) -> Result<(), Refused> {
    let open = state.meta.open_round;
    if !claim.part.is_valid() {
        return Err(Refused::BadPart(claim.part));
    }
    if round.checked_add(1) == Some(open) {
        return late_claim(state, round, claim.contributor);
    }
    if round != open {
        return Err(Refused::RoundNotOpen { open, got: round });
    }
    let book = state.meta.rounds.entry(round).or_insert_with(|| RoundBook {
        opened_ms: info.time_ms,
        ..RoundBook::default()
    });
    if book.claim_of(&claim.contributor).is_some() {
        return Err(Refused::DuplicateClaim(round));
    }
    book.claims.push(claim);
    Ok(())
}

/// Notes that `contributor` claimed `round` after it closed: not on its list, not paid, but
/// the next round waits for it as for the round's contributors (`everyone_claimed`), so a
/// trainer that is always a little slower than the rest (a replica serving two lanes) is not
/// left out of every round after its first miss.
fn late_claim(state: &mut State, round: Round, contributor: NodeId) -> Result<(), Refused> {
    let book = state.meta.rounds.get_mut(&round);
    let book = book.ok_or(Refused::RoundNotOpen {
        open: round.saturating_add(1),
        got: round,
    })?;
    if book.claim_of(&contributor).is_some() || !book.late.insert(contributor) {
        return Err(Refused::DuplicateClaim(round));
    }
    Ok(())
}

/// Whether the open round has every contributor of the previous round, and every account that
/// claimed it late (less those slashed in it), among its claimants.
fn everyone_claimed(state: &State) -> bool {
    let open = state.meta.open_round;
    let (Some(book), Some(previous)) = (
        state.meta.rounds.get(&open),
        open.checked_sub(1).and_then(|p| state.meta.rounds.get(&p)),
    ) else {
        return false;
    };
    let mut expected = (previous.claims.iter().map(|c| c.contributor))
        .chain(previous.late.iter().copied())
        .filter(|c| !previous.slashed.contains(c))
        .peekable();
    expected.peek().is_some() && expected.all(|c| book.claim_of(&c).is_some())
}

/// A round that takes verdicts and convictions: closed, not yet settled.
fn judgeable(state: &State, round: Round) -> Result<&RoundBook, Refused> {
    state
        .meta
        .rounds
        .get(&round)
        .filter(|book| book.closed_at.is_some())
        .ok_or(Refused::RoundNotJudgeable(round))
}

fn contribution<'a>(
    book: &'a RoundBook,
    round: Round,
    contributor: &NodeId,
) -> Result<&'a Claim, Refused> {
    book.claim_of(contributor).ok_or(Refused::NoContribution {
        round,
        contributor: *contributor,
    })
}

fn book_mut(state: &mut State, round: Round) -> &mut RoundBook {
    state
        .meta
        .rounds
        .get_mut(&round)
        .expect("checked by `judgeable` before")
}
