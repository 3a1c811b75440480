//! Epochs: which heights belong to which epoch, the committee each epoch's certificates are
//! checked against, and the signing schemes the engine's marshal verifies them with.
//!
//! Epoch `e` holds heights `e·L ..= (e+1)·L − 1` for the machine's [`Machine::epoch_length`] `L`
//! (commonware's `FixedEpocher`; epoch 0 holds genesis). The committee of epoch `e+1` is
//! [`Machine::committee`] of the state after the last block of epoch `e`, the *boundary block*:
//! so every node that applied the boundary block knows the next committee, and a follower learns
//! each epoch's keys from the chain itself, starting at the genesis committee.

use crate::{
    Error, Machine,
    certificate::{NAMESPACE, Scheme, committee_set},
};
use commonware_consensus::types::Epoch;
use commonware_cryptography::{
    certificate::{Provider, Scoped},
    ed25519::PrivateKey,
};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

/// An epoch and its committee's keys.
pub type EpochCommittee = (u64, Vec<[u8; 32]>);

/// The epoch the block at `height` belongs to.
pub fn epoch_of(length: u64, height: u64) -> u64 {
    height / length.max(2)
}

/// The last height of `epoch` (saturating for the last representable epoch).
pub fn last_height(length: u64, epoch: u64) -> u64 {
    epoch
        .saturating_add(1)
        .saturating_mul(length.max(2))
        .saturating_sub(1)
}

/// If the block at `height` is the last of its epoch, the epoch that starts after it.
pub fn ends_epoch(length: u64, height: u64) -> Option<u64> {
    (last_height(length, epoch_of(length, height)) == height)
        .then(|| epoch_of(length, height).saturating_add(1))
}

/// The committee a boundary block hands over to: `(next epoch, keys)` when `height` ends an
/// epoch, from the machine's state after that block.
pub(crate) fn handover<M: Machine>(
    machine: &M,
    height: u64,
    after: &M::State,
) -> Option<EpochCommittee> {
    ends_epoch(machine.epoch_length(), height).map(|epoch| (epoch, machine.committee(after)))
}

/// The signing scheme of every epoch this node knows the committee of: marshal's provider (it
/// checks the certificates of backfilled blocks with the scheme of their epoch) and the source
/// of each epoch's simplex scheme.
#[derive(Clone)]
pub(crate) struct Schemes {
    key: PrivateKey,
    known: Arc<Mutex<BTreeMap<u64, Scoped<Scheme>>>>,
}

impl Schemes {
    /// Schemes for `committees` (epoch, keys); this node signs in those it belongs to.
    pub(crate) fn new(key: PrivateKey, committees: Vec<EpochCommittee>) -> Result<Self, Error> {
        let schemes = Self {
            key,
            known: Arc::new(Mutex::new(BTreeMap::new())),
        };
        for (epoch, committee) in committees {
            schemes.insert(epoch, &committee)?;
        }
        Ok(schemes)
    }

    /// Learns the committee of `epoch`.
    pub(crate) fn insert(&self, epoch: u64, committee: &[[u8; 32]]) -> Result<(), Error> {
        let set = committee_set(committee)?;
        let scoped = match Scheme::signer(NAMESPACE, set.clone(), self.key.clone()) {
            Some(signer) => Scoped::scheme(Arc::new(signer)),
            None => Scoped::verifier(Arc::new(Scheme::verifier(NAMESPACE, set))),
        };
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(epoch, scoped);
        Ok(())
    }

    /// This node's signing scheme for `epoch`, if it is in that epoch's committee.
    pub(crate) fn signer(&self, epoch: u64) -> Option<Scheme> {
        self.scoped(Epoch::new(epoch))
            .and_then(Scoped::into_scheme)
            .map(|scheme| (*scheme).clone())
    }
}

impl Provider for Schemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, epoch: Epoch) -> Option<Scoped<Scheme>> {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&epoch.get())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heights_map_to_epochs_like_fixed_epocher() {
        use commonware_consensus::types::{Epocher as _, FixedEpocher, Height};
        let epocher = FixedEpocher::new(commonware_utils::NZU64!(10));
        for height in 0..45 {
            let info = epocher.containing(Height::new(height)).unwrap();
            assert_eq!(epoch_of(10, height), info.epoch().get());
            assert_eq!(last_height(10, epoch_of(10, height)), info.last().get());
            let last = info.last().get() == height;
            assert_eq!(ends_epoch(10, height), last.then(|| info.epoch().get() + 1));
        }
        assert_eq!(ends_epoch(u64::MAX, 12), None);
        assert_eq!(last_height(u64::MAX, 0), u64::MAX - 1);
    }
}
