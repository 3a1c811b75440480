//! The one atomic file write: a temporary file, renamed over the target, so a crash leaves the
//! old file or the new one, never a mix; for files that must survive a power loss too, the file
//! and its directory are fsynced.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Whether a written file must survive a power loss, or only a crash of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsynced: the node's checkpoint, the dataset.
    Durable,
    /// Left to the page cache: a training chain's checkpoints, replaced every round and checked
    /// by hash when served (dozens of megabytes a round that mostly never need reach the disk).
    Volatile,
}

/// Writes `bytes` to `path` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    let tmp = path.with_extension("part");
    let mut file = File::create(&tmp).map_err(Error::io("creating", &tmp))?;
    file.write_all(bytes).map_err(Error::io("writing", &tmp))?;
    if durability == Durability::Durable {
        file.sync_all().map_err(Error::io("syncing", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::io("renaming", path))?;
    if durability == Durability::Volatile {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing", dir))
}
