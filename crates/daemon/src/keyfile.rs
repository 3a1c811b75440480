//! The node's secret key on disk: created on first start with mode 0600, never sent anywhere.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use neuroshard_primitives::Keypair;

use crate::{Error, Result};

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "node.key";

/// Loads the key at `path`, or creates one there (mode 0600, created exclusively so a racing
/// second start cannot overwrite it). The file holds the 32-byte ed25519 seed as hex.
pub fn load_or_create(path: &Path) -> Result<Keypair> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(err) => Err(Error::io("reading", path)(err)),
    }
}

/// Loads the existing key at `path`; a missing file is an error that says how to create one
/// (the wallet reads the node's key this way and never creates one).
pub fn load(path: &Path) -> Result<Keypair> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let missing = std::io::Error::new(
                err.kind(),
                "no key file there (a node creates it on its first start: run `neuroshard node` \
                 once, or pass the node's --data-dir)",
            );
            Err(Error::io("reading the key", path)(missing))
        }
        Err(err) => Err(Error::io("reading", path)(err)),
    }
}

fn parse(path: &Path, text: &str) -> Result<Keypair> {
    let bad = |reason: &str| Error::BadKey {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let bytes = hex::decode(text.trim()).map_err(|_| bad("expected 64 hex digits"))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("expected 32 bytes"))?;
    Ok(Keypair::from_seed(seed))
}

fn create(path: &Path) -> Result<Keypair> {
    let key = Keypair::generate().map_err(|err| Error::BadKey {
        path: path.to_owned(),
        reason: format!("no randomness to create it: {err}"),
    })?;
    let hex = hex::encode(key.secret_bytes());
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(Error::io("creating", path))?;
    file.write_all(format!("{hex}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(Error::io("writing", path))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let first = load_or_create(&path).unwrap();
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.node_id(), again.node_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn load_reads_an_existing_key_and_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        assert!(matches!(load(&path), Err(Error::Io { .. })));
        assert!(!path.exists(), "load creates nothing");
        let created = load_or_create(&path).unwrap();
        assert_eq!(load(&path).unwrap().node_id(), created.node_id());
    }

    #[test]
    fn a_damaged_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(load_or_create(&path), Err(Error::BadKey { .. })));
    }
}
