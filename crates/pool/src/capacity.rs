//! Capacity records: what a node announces about itself (memory budget, measured throughput),
//! signed with its key, bound to the network id and numbered by epoch.

use neuroshard_primitives::{Hash, Keypair, NodeId, Signed};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The signing namespace of capacity records.
pub const CAPACITY_NAMESPACE: &[u8] = b"_NEUROSHARD_POOL_CAPACITY";

/// The longest capacity frame an honest node sends (a record is about 140 bytes sealed).
pub const MAX_CAPACITY_FRAME: usize = 256;

/// A node's announcement of what it can hold and how fast it trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityRecord {
    /// The network the record is for: a record never counts on another network.
    pub network_id: Hash,
    /// Increases with each new record of the same node; the highest one counts.
    pub epoch: u64,
    /// Bytes the node gives to training (`--memory-budget`, or detected by the daemon).
    pub memory_budget: u64,
    /// Measured training speed in parameter-tokens per second: tokens per second of training
    /// steps times the parameters each token passes through in matrix products
    /// ([`crate::Footprint::work`] of what it trained), so nodes that measured on different
    /// stages compare.
    pub work_per_sec: u64,
}

impl CapacityRecord {
    /// Signs and encodes the record for the wire.
    pub fn seal(&self, key: &Keypair) -> Vec<u8> {
        let payload = postcard::to_allocvec(self).expect("records always serialise");
        let signed = key.sign(CAPACITY_NAMESPACE, &payload);
        postcard::to_allocvec(&signed).expect("envelopes always serialise")
    }

    /// Decodes and verifies a frame: who signed it and the record, which must be for
    /// `network_id`. Hostile bytes give an error, never a panic.
    pub fn open(frame: &[u8], network_id: &Hash) -> Result<(NodeId, Self)> {
        if frame.len() > MAX_CAPACITY_FRAME {
            return Err(Error::FrameTooLarge {
                len: frame.len(),
                max: MAX_CAPACITY_FRAME,
            });
        }
        let signed: Signed = postcard::from_bytes(frame)?;
        let record: Self = postcard::from_bytes(&signed.payload)?;
        signed.verify(CAPACITY_NAMESPACE)?;
        if record.network_id != *network_id {
            return Err(Error::WrongNetwork {
                expected: *network_id,
                got: record.network_id,
            });
        }
        Ok((signed.signer, record))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn record() -> CapacityRecord {
        CapacityRecord {
            network_id: Hash::of(b"net"),
            epoch: 3,
            memory_budget: 8 << 30,
            work_per_sec: 1_000_000_000,
        }
    }

    #[test]
    fn a_sealed_record_opens_to_its_signer_and_itself() {
        let key = Keypair::from_seed([4; 32]);
        let frame = record().seal(&key);
        assert!(frame.len() <= MAX_CAPACITY_FRAME, "{}", frame.len());
        let (signer, back) = CapacityRecord::open(&frame, &Hash::of(b"net")).unwrap();
        assert_eq!((signer, back), (key.node_id(), record()));
        let member = crate::Member::from_record(signer, &back);
        assert_eq!(
            (member.memory_budget, member.work_per_sec),
            (8 << 30, 1_000_000_000)
        );
    }

    #[test]
    fn another_network_a_forged_signer_or_a_long_frame_is_refused() {
        let key = Keypair::from_seed([4; 32]);
        let frame = record().seal(&key);
        assert!(matches!(
            CapacityRecord::open(&frame, &Hash::of(b"other")),
            Err(Error::WrongNetwork { .. })
        ));
        let mut signed: Signed = postcard::from_bytes(&frame).unwrap();
        signed.signer = Keypair::from_seed([5; 32]).node_id();
        let forged = postcard::to_allocvec(&signed).unwrap();
        assert!(matches!(
            CapacityRecord::open(&forged, &Hash::of(b"net")),
            Err(Error::Signature(_))
        ));
        let long = vec![0; MAX_CAPACITY_FRAME + 1];
        assert!(matches!(
            CapacityRecord::open(&long, &Hash::of(b"net")),
            Err(Error::FrameTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn hostile_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert!(CapacityRecord::open(&bytes, &Hash::of(b"net")).is_err());
        }

        #[test]
        fn any_flipped_bit_is_refused(bit in 0usize..8 * 140) {
            let mut frame = record().seal(&Keypair::from_seed([4; 32]));
            let bit = bit % (8 * frame.len());
            frame[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(CapacityRecord::open(&frame, &Hash::of(b"net")).is_err());
        }
    }
}
