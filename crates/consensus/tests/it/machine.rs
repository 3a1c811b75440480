//! A small ledger for the tests: accounts with balances and transfers, so the total supply is
//! an invariant every block must keep; and a committee that changes at epoch boundaries, from
//! bond and unbond transactions, with a full epoch of notice (as the NEURO ledger does).

use commonware_cryptography::{Hasher as _, Sha256};
use neuroshard_consensus::{Header, Machine};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

/// Accounts in the genesis state.
pub(crate) const ACCOUNTS: u32 = 16;
/// Each account's genesis balance.
pub(crate) const START_BALANCE: u64 = 1_000;
/// The supply every state must hold.
pub(crate) const SUPPLY: u64 = ACCOUNTS as u64 * START_BALANCE;
/// Bytes of one transfer: from (4), to (4), amount (8), id (8).
pub(crate) const TX_BYTES: usize = 24;
/// Transfers per block at most.
const MAX_TXS: usize = 64;

/// The `from` of a transaction that bonds (amount 1) or unbonds (amount 0) the candidate `to`.
const BOND: u32 = u32::MAX - 1;

/// Balances, the ids of applied transfers (a transfer applies once), and the committee: the
/// current one, the one elected for the next epoch, and the bonded candidates (by index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub balances: BTreeMap<u32, u64>,
    pub applied: BTreeSet<u64>,
    pub committee: Vec<[u8; 32]>,
    pub next: Vec<[u8; 32]>,
    pub bonded: BTreeSet<u32>,
}

impl Ledger {
    pub(crate) fn supply(&self) -> u64 {
        self.balances.values().sum()
    }
}

/// The test machine. With `mint`, it also accepts and proposes transfers from account
/// `u32::MAX`, which creates money: an honest validator must refuse such blocks.
///
/// `candidates` are the keys a bond transaction can name (by index); the genesis committee is
/// `committee`. At the last block of each epoch the elected committee takes over and the bonded
/// candidates are elected for the epoch after. `format` is its state format (0).
#[derive(Clone, Debug)]
pub(crate) struct Bank {
    pub committee: Arc<Vec<[u8; 32]>>,
    pub candidates: Arc<Vec<[u8; 32]>>,
    pub epoch_length: u64,
    pub mint: bool,
    pub format: u64,
}

impl Bank {
    /// One epoch for ever, with `committee`.
    pub(crate) fn new(committee: Vec<[u8; 32]>) -> Self {
        Self {
            candidates: Arc::new(committee.clone()),
            committee: Arc::new(committee),
            epoch_length: u64::MAX,
            mint: false,
            format: 0,
        }
    }

    /// Epochs of `epoch_length` blocks; the first `genesis` candidates are epoch 0's committee.
    pub(crate) fn with_epochs(
        candidates: Vec<[u8; 32]>,
        genesis: usize,
        epoch_length: u64,
    ) -> Self {
        Self {
            committee: Arc::new(candidates[..genesis].to_vec()),
            candidates: Arc::new(candidates),
            epoch_length,
            mint: false,
            format: 0,
        }
    }
}

/// Bonds (or unbonds) candidate `index`; `id` makes the transaction unique.
pub(crate) fn bond(index: u32, bonded: bool, id: u64) -> Vec<u8> {
    transfer(BOND, index, u64::from(bonded), id)
}

pub(crate) fn transfer(from: u32, to: u32, amount: u64, id: u64) -> Vec<u8> {
    let mut tx = Vec::with_capacity(TX_BYTES);
    tx.extend_from_slice(&from.to_be_bytes());
    tx.extend_from_slice(&to.to_be_bytes());
    tx.extend_from_slice(&amount.to_be_bytes());
    tx.extend_from_slice(&id.to_be_bytes());
    tx
}

fn parse(tx: &[u8]) -> Option<(u32, u32, u64, u64)> {
    if tx.len() != TX_BYTES {
        return None;
    }
    let from = u32::from_be_bytes(tx[0..4].try_into().ok()?);
    let to = u32::from_be_bytes(tx[4..8].try_into().ok()?);
    let amount = u64::from_be_bytes(tx[8..16].try_into().ok()?);
    let id = u64::from_be_bytes(tx[16..24].try_into().ok()?);
    Some((from, to, amount, id))
}

impl Bank {
    fn apply(&self, state: &mut Ledger, tx: &[u8]) -> Result<(), String> {
        let (from, to, amount, id) = parse(tx).ok_or("malformed transfer")?;
        if state.applied.contains(&id) {
            return Err(format!("transfer {id} already applied"));
        }
        if from == BOND {
            if to as usize >= self.candidates.len() || amount > 1 {
                return Err("bad bond".into());
            }
            if amount == 1 {
                state.bonded.insert(to);
            } else {
                state.bonded.remove(&to);
            }
            state.applied.insert(id);
            return Ok(());
        }
        if !state.balances.contains_key(&to) || from == to {
            return Err("bad recipient".into());
        }
        if from == u32::MAX && self.mint {
            // Money from nowhere: only a cheating machine accepts this.
        } else {
            let balance = state.balances.get_mut(&from).ok_or("unknown sender")?;
            *balance = balance.checked_sub(amount).ok_or("insufficient balance")?;
        }
        *state.balances.get_mut(&to).ok_or("unknown recipient")? += amount;
        state.applied.insert(id);
        Ok(())
    }
}

impl Machine for Bank {
    type State = Ledger;

    fn genesis(&self) -> Ledger {
        let mut committee = self.committee.to_vec();
        committee.sort();
        Ledger {
            balances: (0..ACCOUNTS).map(|a| (a, START_BALANCE)).collect(),
            applied: BTreeSet::new(),
            next: committee.clone(),
            committee,
            bonded: (0..self.committee.len() as u32).collect(),
        }
    }

    fn committee(&self, state: &Ledger) -> Vec<[u8; 32]> {
        state.committee.clone()
    }

    fn epoch_length(&self) -> u64 {
        self.epoch_length
    }

    fn format(&self) -> u64 {
        self.format
    }

    fn build(&self, state: &Ledger, header: &Header, pending: &[Vec<u8>]) -> Vec<u8> {
        let mut scratch = state.clone();
        let mut body = Vec::new();
        if self.mint {
            let mint = transfer(u32::MAX, 0, 1_000_000, u64::MAX - header.height);
            if self.apply(&mut scratch, &mint).is_ok() {
                body.extend_from_slice(&mint);
            }
        }
        for tx in pending {
            if body.len() / TX_BYTES >= MAX_TXS {
                break;
            }
            if self.apply(&mut scratch, tx).is_ok() {
                body.extend_from_slice(tx);
            }
        }
        body
    }

    fn transactions(&self, body: &[u8]) -> Vec<Vec<u8>> {
        if !body.len().is_multiple_of(TX_BYTES) {
            return Vec::new();
        }
        body.chunks(TX_BYTES).map(<[u8]>::to_vec).collect()
    }

    fn execute(&self, state: &mut Ledger, header: &Header, body: &[u8]) -> Result<(), String> {
        if !body.len().is_multiple_of(TX_BYTES) || body.len() / TX_BYTES > MAX_TXS {
            return Err("malformed body".into());
        }
        for tx in body.chunks(TX_BYTES) {
            self.apply(state, tx)?;
        }
        if header
            .height
            .saturating_add(1)
            .is_multiple_of(self.epoch_length)
        {
            let mut elected: Vec<[u8; 32]> = state
                .bonded
                .iter()
                .map(|i| self.candidates[*i as usize])
                .collect();
            elected.sort();
            if !elected.is_empty() {
                state.committee = std::mem::replace(&mut state.next, elected);
            }
        }
        Ok(())
    }

    fn root(&self, state: &Ledger) -> [u8; 32] {
        let mut bytes = Vec::new();
        for (a, b) in &state.balances {
            bytes.extend_from_slice(&a.to_be_bytes());
            bytes.extend_from_slice(&b.to_be_bytes());
        }
        bytes.push(0xff);
        for id in &state.applied {
            bytes.extend_from_slice(&id.to_be_bytes());
        }
        bytes.extend_from_slice(&committee_row(state));
        Sha256::hash(&[&bytes]).0
    }

    fn changes(&self, before: &Ledger, after: &Ledger) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let key = |a: u32| [b"b".as_slice(), &a.to_be_bytes()].concat();
        for (a, b) in &after.balances {
            if before.balances.get(a) != Some(b) {
                out.push((key(*a), Some(b.to_be_bytes().to_vec())));
            }
        }
        for a in before.balances.keys() {
            if !after.balances.contains_key(a) {
                out.push((key(*a), None));
            }
        }
        for id in after.applied.difference(&before.applied) {
            out.push((
                [b"t".as_slice(), &id.to_be_bytes()].concat(),
                Some(Vec::new()),
            ));
        }
        for id in before.applied.difference(&after.applied) {
            out.push(([b"t".as_slice(), &id.to_be_bytes()].concat(), None));
        }
        if committee_row(before) != committee_row(after) {
            out.push((b"c".to_vec(), Some(committee_row(after))));
        }
        out
    }

    fn load(&self, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Ledger, String> {
        let mut state = Ledger::default();
        for (k, v) in rows {
            match (k.first(), k.len(), v.len()) {
                (Some(b'b'), 5, 8) => {
                    let a = u32::from_be_bytes(k[1..5].try_into().map_err(|_| "key")?);
                    let b = u64::from_be_bytes(v[..].try_into().map_err(|_| "value")?);
                    state.balances.insert(a, b);
                }
                (Some(b't'), 9, 0) => {
                    state
                        .applied
                        .insert(u64::from_be_bytes(k[1..9].try_into().map_err(|_| "key")?));
                }
                (Some(b'c'), 1, _) => load_committee(&mut state, &v)?,
                _ => return Err("unknown row".into()),
            }
        }
        Ok(state)
    }
}

/// The committee, the elected one and the bonded candidates as one row: two counted key lists,
/// then the bonded indices.
fn committee_row(state: &Ledger) -> Vec<u8> {
    let mut row = Vec::new();
    for keys in [&state.committee, &state.next] {
        row.extend_from_slice(&(keys.len() as u32).to_be_bytes());
        row.extend(keys.iter().flatten());
    }
    for index in &state.bonded {
        row.extend_from_slice(&index.to_be_bytes());
    }
    row
}

fn load_committee(state: &mut Ledger, mut row: &[u8]) -> Result<(), String> {
    let mut keys = || -> Result<Vec<[u8; 32]>, String> {
        let (count, rest) = row.split_at_checked(4).ok_or("short row")?;
        let count = u32::from_be_bytes(count.try_into().map_err(|_| "count")?) as usize;
        let (list, rest) = rest.split_at_checked(count * 32).ok_or("short row")?;
        row = rest;
        Ok(list
            .chunks(32)
            .map(|k| k.try_into().unwrap_or([0; 32]))
            .collect())
    };
    state.committee = keys()?;
    state.next = keys()?;
    state.bonded = row
        .chunks(4)
        .map(|i| {
            i.try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| "index".to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok(())
}
