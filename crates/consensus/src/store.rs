//! The ledger store: state rows, blocks and certificates by height, and `applied_height`, in redb.
//!
//! One write transaction per finalized block applies the block's row changes, stores the block
//! and its certificate, and sets `applied_height`. redb commits are atomic and durable
//! (`Durability::Immediate`), so a SIGKILL at any moment leaves either the state before the
//! block or the state after it, never a mix; and a block the node reported as finalized (after
//! the commit) is never lost.

use crate::{Error, Machine, block::Block, epoch::EpochCommittee, machine::Rows};
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use std::path::Path;

/// State rows: the machine's key → value.
const STATE: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("state");
/// Finalized blocks (canonical encoding) by height; height 0 is genesis.
const BLOCKS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("blocks");
/// Finalization certificates by height. A height may have none: simplex can finalize a block
/// only through a finalized descendant (see [`crate::Finalized::certificate`]).
const CERTIFICATES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("certificates");
/// Each epoch's committee (concatenated 32-byte keys), written with the block that fixes it:
/// epoch 0's with genesis, epoch `e+1`'s with the last block of epoch `e`. The chain of custody
/// a restarted node checks old certificates with.
const COMMITTEES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("committees");
/// Scalars: `applied_height`, and `format` ([`Machine::format`]), written with genesis.
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const APPLIED: &str = "applied_height";
const FORMAT: &str = "format";

/// The ledger store (one redb file).
#[derive(Debug)]
pub struct Store {
    db: Database,
}

/// What a node needs to resume from its store.
#[derive(Debug)]
pub struct Resumed<S> {
    /// The last applied block.
    pub block: Block,
    /// The state after it.
    pub state: S,
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::store)?;
        }
        let db = Database::create(path).map_err(Error::store)?;
        Ok(Self { db })
    }

    /// The height of the last applied block (0 is genesis), or `None` for a fresh store.
    pub fn applied_height(&self) -> Result<Option<u64>, Error> {
        self.scalar(APPLIED)
    }

    /// The scalar `key` of the `meta` table, if set.
    fn scalar(&self, key: &str) -> Result<Option<u64>, Error> {
        let tx = self.db.begin_read().map_err(Error::store)?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(Error::store(e)),
        };
        Ok(table.get(key).map_err(Error::store)?.map(|v| v.value()))
    }

    /// The finalized block at `height`, if applied.
    pub fn block(&self, height: u64) -> Result<Option<Block>, Error> {
        let tx = self.db.begin_read().map_err(Error::store)?;
        let table = match tx.open_table(BLOCKS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(Error::store(e)),
        };
        let Some(bytes) = table.get(height).map_err(Error::store)? else {
            return Ok(None);
        };
        Block::from_bytes(bytes.value())
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("block {height}: {e}")))
    }

    /// The finalization certificate stored with the block at `height`, if it had one.
    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, Error> {
        let tx = self.db.begin_read().map_err(Error::store)?;
        let table = match tx.open_table(CERTIFICATES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(Error::store(e)),
        };
        Ok(table
            .get(height)
            .map_err(Error::store)?
            .map(|v| v.value().to_vec()))
    }

    /// Every committee the store knows, by epoch.
    pub fn committees(&self) -> Result<Vec<EpochCommittee>, Error> {
        let tx = self.db.begin_read().map_err(Error::store)?;
        let table = match tx.open_table(COMMITTEES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(Error::store(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(Error::store)? {
            let (epoch, keys) = entry.map_err(Error::store)?;
            let keys = keys.value();
            if !keys.len().is_multiple_of(32) {
                return Err(Error::Corrupt(format!(
                    "the committee of epoch {} is not a list of keys",
                    epoch.value()
                )));
            }
            let keys = keys
                .chunks(32)
                .map(|k| <[u8; 32]>::try_from(k).unwrap_or([0; 32]))
                .collect();
            out.push((epoch.value(), keys));
        }
        Ok(out)
    }

    /// Every state row, in key order.
    pub fn rows(&self) -> Result<Rows, Error> {
        let tx = self.db.begin_read().map_err(Error::store)?;
        let table = match tx.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(Error::store(e)),
        };
        let mut rows = Vec::new();
        for entry in table.iter().map_err(Error::store)? {
            let (k, v) = entry.map_err(Error::store)?;
            rows.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(rows)
    }

    /// Resumes from the store: writes genesis (the machine's format, then its rows, block 0,
    /// `applied_height = 0`) into a fresh store, or checks that the store notes the machine's
    /// format, loads the state of the last applied block and checks its root against that
    /// block's header.
    pub fn resume<M: Machine>(&self, machine: &M) -> Result<Resumed<M::State>, Error> {
        match self.applied_height()? {
            None => {
                let tx = self.db.begin_write().map_err(Error::store)?;
                {
                    let mut meta = tx.open_table(META).map_err(Error::store)?;
                    meta.insert(FORMAT, machine.format())
                        .map_err(Error::store)?;
                }
                tx.commit().map_err(Error::store)?;
                let state = machine.genesis();
                let block = Block::genesis(machine.root(&state));
                let empty = machine
                    .load(Vec::new())
                    .map_err(|e| Error::Corrupt(format!("the empty state does not load: {e}")))?;
                let rows = machine.changes(&empty, &state);
                let committee = (0, machine.committee(&state));
                self.commit(&block, None, &rows, Some(&committee))?;
                Ok(Resumed { block, state })
            }
            Some(height) => {
                let (found, expected) = (self.scalar(FORMAT)?.unwrap_or(0), machine.format());
                if found != expected {
                    return Err(Error::Format { found, expected });
                }
                let block = self
                    .block(height)?
                    .ok_or_else(|| Error::Corrupt(format!("applied block {height} is missing")))?;
                let state = machine
                    .load(self.rows()?)
                    .map_err(|e| Error::Corrupt(format!("rows do not load: {e}")))?;
                let root = machine.root(&state);
                if root != block.header.state_root {
                    return Err(Error::Corrupt(format!(
                        "state root of the stored rows differs from block {height}'s"
                    )));
                }
                Ok(Resumed { block, state })
            }
        }
    }

    /// Applies one finalized block in one write transaction: its row changes, the block, its
    /// certificate (if any), the committee it fixes (if it ends an epoch: the next epoch and its
    /// keys), and `applied_height = block height`.
    pub fn commit(
        &self,
        block: &Block,
        certificate: Option<&[u8]>,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
        committee: Option<&EpochCommittee>,
    ) -> Result<(), Error> {
        let height = block.header.height;
        let tx = self.db.begin_write().map_err(Error::store)?;
        {
            let mut state = tx.open_table(STATE).map_err(Error::store)?;
            for (key, value) in changes {
                match value {
                    Some(v) => {
                        state
                            .insert(key.as_slice(), v.as_slice())
                            .map_err(Error::store)?;
                    }
                    None => {
                        state.remove(key.as_slice()).map_err(Error::store)?;
                    }
                }
            }
            let mut blocks = tx.open_table(BLOCKS).map_err(Error::store)?;
            blocks
                .insert(height, block.to_bytes().as_slice())
                .map_err(Error::store)?;
            let mut certificates = tx.open_table(CERTIFICATES).map_err(Error::store)?;
            if let Some(c) = certificate {
                certificates.insert(height, c).map_err(Error::store)?;
            }
            let mut committees = tx.open_table(COMMITTEES).map_err(Error::store)?;
            if let Some((epoch, keys)) = committee {
                committees
                    .insert(*epoch, keys.concat().as_slice())
                    .map_err(Error::store)?;
            }
            let mut meta = tx.open_table(META).map_err(Error::store)?;
            meta.insert(APPLIED, height).map_err(Error::store)?;
        }
        tx.commit().map_err(Error::store)
    }
}
