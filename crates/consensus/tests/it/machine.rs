//! A small ledger for the tests: accounts with balances and transfers, so the total supply is
//! an invariant every block must keep.

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

/// Balances and the ids of applied transfers (a transfer applies once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ledger {
    pub balances: BTreeMap<u32, u64>,
    pub applied: BTreeSet<u64>,
}

impl Ledger {
    pub(crate) fn supply(&self) -> u64 {
        self.balances.values().sum()
    }
}

/// The test machine. With `mint`, it also accepts and proposes transfers from account
/// `u32::MAX`, which creates money: an honest validator must refuse such blocks.
#[derive(Clone, Debug)]
pub(crate) struct Bank {
    pub committee: Arc<Vec<[u8; 32]>>,
    pub mint: bool,
}

impl Bank {
    pub(crate) fn new(committee: Vec<[u8; 32]>) -> Self {
        Self {
            committee: Arc::new(committee),
            mint: false,
        }
    }
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
        Ledger {
            balances: (0..ACCOUNTS).map(|a| (a, START_BALANCE)).collect(),
            applied: BTreeSet::new(),
        }
    }

    fn committee(&self, _state: &Ledger) -> Vec<[u8; 32]> {
        self.committee.to_vec()
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

    fn execute(&self, state: &mut Ledger, _header: &Header, body: &[u8]) -> Result<(), String> {
        if !body.len().is_multiple_of(TX_BYTES) || body.len() / TX_BYTES > MAX_TXS {
            return Err("malformed body".into());
        }
        for tx in body.chunks(TX_BYTES) {
            self.apply(state, tx)?;
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
                _ => return Err("unknown row".into()),
            }
        }
        Ok(state)
    }
}
