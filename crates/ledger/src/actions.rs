//! Moving NEURO between an account's balance, stake and unbonding entries, and between accounts.
//! Each function checks everything before it writes, so a refusal leaves the state untouched.

use std::net::SocketAddr;

use neuroshard_primitives::NodeId;

use crate::state::{State, Unbond};
use crate::{Amount, Height, Refused, Rules};

/// The most unbonding entries one account may have at once (bounds the state a peer can grow).
pub const MAX_UNBONDING: usize = 32;

fn positive(amount: Amount) -> Result<(), Refused> {
    if amount == 0 {
        Err(Refused::ZeroAmount)
    } else {
        Ok(())
    }
}

fn covered(available: Amount, wanted: Amount) -> Result<(), Refused> {
    if wanted > available {
        Err(Refused::Overdraft { wanted, available })
    } else {
        Ok(())
    }
}

/// `from` pays `to` `amount`.
pub(crate) fn transfer(
    state: &mut State,
    from: &NodeId,
    to: &NodeId,
    amount: Amount,
) -> Result<(), Refused> {
    positive(amount)?;
    covered(state.account(from).balance, amount)?;
    if from == to {
        return Ok(());
    }
    let credited = state
        .account(to)
        .balance
        .checked_add(amount)
        .ok_or(Refused::Overflow)?;
    state.accounts.entry(*from).or_default().balance -= amount;
    state.accounts.entry(*to).or_default().balance = credited;
    Ok(())
}

/// `who` bonds `amount` of its balance.
pub(crate) fn stake(state: &mut State, who: &NodeId, amount: Amount) -> Result<(), Refused> {
    positive(amount)?;
    let account = state.account(who);
    covered(account.balance, amount)?;
    let staked = account.stake.checked_add(amount).ok_or(Refused::Overflow)?;
    let account = state.accounts.entry(*who).or_default();
    account.balance -= amount;
    account.stake = staked;
    Ok(())
}

/// `who` starts unbonding `amount`, released at `release`.
pub(crate) fn unstake(
    state: &mut State,
    who: &NodeId,
    amount: Amount,
    release: Height,
) -> Result<(), Refused> {
    positive(amount)?;
    let account = state.account(who);
    covered(account.stake, amount)?;
    if account.unbonding.len() >= MAX_UNBONDING {
        return Err(Refused::Malformed(format!(
            "already {MAX_UNBONDING} unbonding entries; withdraw first"
        )));
    }
    let account = state.accounts.entry(*who).or_default();
    account.stake -= amount;
    account.unbonding.push(Unbond { amount, release });
    Ok(())
}

/// `who` takes every released unbonding entry back into its balance.
pub(crate) fn withdraw(state: &mut State, who: &NodeId, height: Height) -> Result<(), Refused> {
    let account = state.account(who);
    let Some(earliest) = account.unbonding.iter().map(|u| u.release).min() else {
        return Err(Refused::NothingUnbonding);
    };
    if earliest > height {
        return Err(Refused::StillBonded {
            release: earliest,
            height,
        });
    }
    let released = account
        .unbonding
        .iter()
        .filter(|u| u.release <= height)
        .try_fold(account.balance, |sum, u| sum.checked_add(u.amount))
        .ok_or(Refused::Overflow)?;
    let account = state.accounts.entry(*who).or_default();
    account.unbonding.retain(|u| u.release > height);
    account.balance = released;
    Ok(())
}

/// Mints `amount` into `who`'s stake; `false` (and nothing minted) if it would overflow.
pub(crate) fn credit_stake(state: &mut State, who: &NodeId, amount: Amount) -> bool {
    let Some(minted) = state.meta.supply.minted.checked_add(amount) else {
        return false;
    };
    let Some(staked) = state.account(who).stake.checked_add(amount) else {
        return false;
    };
    state.meta.supply.minted = minted;
    state.accounts.entry(*who).or_default().stake = staked;
    true
}

/// Takes `slash_pct` of `who`'s slashable stake (bonded first, then the newest unbonding
/// entries); `prover_pct` of it goes to `prover`'s stake, the rest is burned. Returns the amount
/// taken.
pub(crate) fn slash(state: &mut State, rules: &Rules, who: &NodeId, prover: &NodeId) -> Amount {
    let account = state.accounts.entry(*who).or_default();
    let due = (u128::from(account.slashable()) * u128::from(rules.slash_pct) / 100) as Amount;
    let mut left = due;
    let from_stake = left.min(account.stake);
    account.stake -= from_stake;
    left -= from_stake;
    for entry in account.unbonding.iter_mut().rev() {
        let take = left.min(entry.amount);
        entry.amount -= take;
        left -= take;
    }
    account.unbonding.retain(|u| u.amount > 0);
    let reward = (u128::from(due) * u128::from(rules.prover_pct) / 100) as Amount;
    let paid = match state.account(prover).stake.checked_add(reward) {
        Some(staked) => {
            state.accounts.entry(*prover).or_default().stake = staked;
            reward
        }
        None => 0,
    };
    state.meta.supply.burned = state.meta.supply.burned.saturating_add(due - paid);
    due
}

/// `who` registers where its consensus engine listens; it must be bonded, and the address must
/// be dialable and new.
pub(crate) fn register(
    state: &mut State,
    rules: &Rules,
    who: &NodeId,
    address: SocketAddr,
) -> Result<(), Refused> {
    let refuse = |why: &str| Err(Refused::BadRegistration(why.into()));
    let stake = state.account(who).stake;
    if stake < rules.validator_bond {
        return Err(Refused::BadRegistration(format!(
            "stake {stake} is below the validator bond {}",
            rules.validator_bond
        )));
    }
    if address.ip().is_unspecified() || address.port() == 0 {
        return refuse("the address has no specific IP or no port");
    }
    if state.meta.addresses.get(who) == Some(&address) {
        return refuse("this address is already registered");
    }
    state.meta.addresses.insert(*who, address);
    Ok(())
}
