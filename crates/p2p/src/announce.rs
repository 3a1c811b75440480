//! Signed gossip announcements: a namespace, a payload and the author's signature, ≤ 64 KiB.

use neuroshard_primitives::{Keypair, NodeId, Signed};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest encoded announcement (gossipsub's customary limit). Bigger data goes by fetch.
pub const MAX_ANNOUNCEMENT: usize = 64 * 1024;

/// Longest namespace accepted.
pub const MAX_NAMESPACE: usize = 128;

/// A small message for every peer: `signed.payload` signed by `signed.signer` under `namespace`.
///
/// The namespace names the message type (e.g. `"neuroshard/contribution/1"`), so a signature
/// made for one type never verifies as another. Receivers deliver an announcement only if the
/// signature verifies *and* the signer is the gossip author, so nobody can announce in another
/// node's name; the node still checks that the namespace is the one it expects for the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// The message type the signature is bound to.
    pub namespace: String,
    /// The payload, its signer and the signature.
    pub signed: Signed,
}

impl Announcement {
    /// Signs `payload` with `key` under `namespace`.
    pub fn sign(key: &Keypair, namespace: &str, payload: &[u8]) -> Self {
        Self {
            namespace: namespace.to_owned(),
            signed: key.sign(namespace.as_bytes(), payload),
        }
    }

    /// Who signed it.
    pub fn signer(&self) -> NodeId {
        self.signed.signer
    }

    /// The signed payload.
    pub fn payload(&self) -> &[u8] {
        &self.signed.payload
    }

    /// Checks the namespace length and the signature.
    pub fn verify(&self) -> Result<()> {
        if self.namespace.len() > MAX_NAMESPACE {
            return Err(Error::TooLarge {
                what: "announcement namespace",
                len: self.namespace.len(),
                max: MAX_NAMESPACE,
            });
        }
        self.signed
            .verify(self.namespace.as_bytes())
            .map_err(|err| Error::BadSignature(err.to_string()))
    }

    /// The wire form, refused when over [`MAX_ANNOUNCEMENT`].
    pub fn encode(&self) -> Result<Vec<u8>> {
        let bytes = postcard::to_allocvec(self).map_err(|err| Error::Malformed {
            what: "announcement",
            reason: err.to_string(),
        })?;
        check_size(bytes.len())?;
        Ok(bytes)
    }

    /// Decodes untrusted bytes; never panics. Does not verify the signature.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        check_size(bytes.len())?;
        postcard::from_bytes(bytes).map_err(|err| Error::Malformed {
            what: "announcement",
            reason: err.to_string(),
        })
    }
}

fn check_size(len: usize) -> Result<()> {
    if len > MAX_ANNOUNCEMENT {
        return Err(Error::TooLarge {
            what: "announcement",
            len,
            max: MAX_ANNOUNCEMENT,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn round_trip_verify_and_limits() {
        let key = Keypair::from_seed([4; 32]);
        let announcement = Announcement::sign(&key, "test/1", b"hello");
        let decoded = Announcement::decode(&announcement.encode().unwrap()).unwrap();
        assert_eq!(decoded, announcement);
        decoded.verify().unwrap();
        assert_eq!(decoded.signer(), key.node_id());

        let mut retyped = decoded.clone();
        retyped.namespace = "other/1".to_owned();
        assert!(
            retyped.verify().is_err(),
            "namespace is bound by the signature"
        );

        let big = Announcement::sign(&key, "test/1", &vec![0; MAX_ANNOUNCEMENT]);
        assert!(matches!(big.encode(), Err(Error::TooLarge { .. })));
        assert!(Announcement::decode(&vec![0; MAX_ANNOUNCEMENT + 1]).is_err());
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(announcement) = Announcement::decode(&bytes) {
                let _ = announcement.verify();
            }
        }
    }
}
