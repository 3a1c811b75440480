//! The block the engine orders: a [`Header`] and an opaque body, its canonical encoding and digest.

use crate::{Error, machine::Header};
use bytes::{Buf as _, BufMut};
use commonware_codec::{Buf, DecodeExt as _, Encode as _, EncodeSize, Read, Write};
use commonware_consensus::{Heightable, types::Height};
use commonware_cryptography::{Digestible, Hasher as _, Sha256, sha256};

/// The digest type of blocks (SHA-256).
pub type Digest = sha256::Digest;

/// The largest block body the engine accepts from a peer (and the largest a proposer builds), in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Bytes of an encoded header: height, epoch, parent, timestamp, proposer, state root.
const HEADER_BYTES: usize = 8 + 8 + 32 + 8 + 32 + 32;

/// A block: a header and the body the proposer's [`crate::Machine::build`] returned.
///
/// Encoded as the header's fields in order (integers big-endian, fixed width), then the body's
/// length (u32, big-endian) and the body. The encoding is canonical: every accepted byte string
/// re-encodes to itself, which marshal requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The body (opaque to the engine).
    pub body: Vec<u8>,
}

impl Block {
    /// The genesis block for a genesis state root: height 0, epoch 0, no parent, no proposer.
    pub fn genesis(state_root: [u8; 32]) -> Self {
        Self {
            header: Header {
                height: 0,
                epoch: 0,
                parent: [0; 32],
                timestamp_ms: 0,
                proposer: [0; 32],
                state_root,
            },
            body: Vec::new(),
        }
    }

    /// The canonical encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode().to_vec()
    }

    /// Decodes a block a peer sent; refuses trailing bytes and bodies over [`MAX_BODY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Self::decode(commonware_codec::Copying(bytes)).map_err(|e| Error::Decode {
            what: "block",
            reason: e.to_string(),
        })
    }

    /// The block digest: SHA-256 of the canonical encoding, so it commits to header and body.
    pub fn id(&self) -> [u8; 32] {
        self.digest().0
    }
}

impl Write for Block {
    fn write(&self, buf: &mut impl BufMut) {
        let h = &self.header;
        buf.put_u64(h.height);
        buf.put_u64(h.epoch);
        buf.put_slice(&h.parent);
        buf.put_u64(h.timestamp_ms);
        buf.put_slice(&h.proposer);
        buf.put_slice(&h.state_root);
        // The body never exceeds MAX_BODY_BYTES (checked on build and on read), so it fits a u32.
        buf.put_u32(self.body.len() as u32);
        buf.put_slice(&self.body);
    }
}

impl EncodeSize for Block {
    fn encode_size(&self) -> usize {
        HEADER_BYTES + 4 + self.body.len()
    }
}

fn take32(reader: &mut impl Buf) -> [u8; 32] {
    let mut out = [0u8; 32];
    reader.copy_to_slice(&mut out);
    out
}

impl Read for Block {
    type Cfg = ();

    fn read_cfg(reader: &mut impl Buf, _: &()) -> Result<Self, commonware_codec::Error> {
        if reader.remaining() < HEADER_BYTES + 4 {
            return Err(commonware_codec::Error::EndOfBuffer);
        }
        let height = reader.get_u64();
        let epoch = reader.get_u64();
        let parent = take32(reader);
        let timestamp_ms = reader.get_u64();
        let proposer = take32(reader);
        let state_root = take32(reader);
        let len = reader.get_u32() as usize;
        if len > MAX_BODY_BYTES {
            return Err(commonware_codec::Error::Invalid("Block", "body too large"));
        }
        if reader.remaining() < len {
            return Err(commonware_codec::Error::EndOfBuffer);
        }
        let mut body = vec![0u8; len];
        reader.copy_to_slice(&mut body);
        Ok(Self {
            header: Header {
                height,
                epoch,
                parent,
                timestamp_ms,
                proposer,
                state_root,
            },
            body,
        })
    }
}

impl Digestible for Block {
    type Digest = Digest;

    fn digest(&self) -> Digest {
        Sha256::hash(&[&self.encode()])
    }
}

impl Heightable for Block {
    fn height(&self) -> Height {
        Height::new(self.header.height)
    }
}

impl commonware_consensus::Block for Block {
    fn parent(&self) -> Digest {
        sha256::Digest(self.header.parent)
    }
}

impl commonware_consensus::BoundedBlock for Block {
    fn max_encode_size(_: &()) -> usize {
        HEADER_BYTES + 4 + MAX_BODY_BYTES
    }
}

/// Lower-case hex of 32 bytes, for error messages and logs.
pub(crate) fn hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Block {
        Block {
            header: Header {
                height: 7,
                epoch: 1,
                parent: [3; 32],
                timestamp_ms: 1234,
                proposer: [9; 32],
                state_root: [5; 32],
            },
            body: b"hello".to_vec(),
        }
    }

    #[test]
    fn encoding_round_trips_and_digest_covers_body() {
        let block = sample();
        let bytes = block.to_bytes();
        assert_eq!(Block::from_bytes(&bytes).unwrap(), block);
        let mut other = block.clone();
        other.body.push(0);
        assert_ne!(other.id(), block.id());
    }

    #[test]
    fn hostile_bytes_are_errors() {
        let bytes = sample().to_bytes();
        assert!(Block::from_bytes(&bytes[..10]).is_err());
        let mut trailing = bytes.clone();
        trailing.push(1);
        assert!(Block::from_bytes(&trailing).is_err());
        let mut huge = bytes[..HEADER_BYTES].to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Block::from_bytes(&huge).is_err());
    }
}
