//! A wallet's request to its own node: an action signed with the node's key, so the node puts
//! it on the ledger (through its outbox, which owns the account's nonces). Whoever can reach the
//! node's HTTP port but does not hold its key file cannot spend; a request is good for
//! [`REQUEST_TTL_MS`] and the node takes each one once.

use neuroshard_primitives::{Hash, Keypair, NodeId, Signed};
use serde::{Deserialize, Serialize};

use crate::{Action, Refused};

/// The namespace every wallet request signature covers.
pub const WALLET_NAMESPACE: &[u8] = b"_NEUROSHARD_WALLET_REQUEST";

/// How long a request stays good, either side of the node's clock.
pub const REQUEST_TTL_MS: u64 = 120_000;

/// What a wallet asks its node to put on the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletRequest {
    /// The network id.
    pub network: Hash,
    /// The action.
    pub action: Action,
    /// When the wallet signed it, ms since the Unix epoch.
    pub issued_ms: u64,
}

impl WalletRequest {
    /// Signs the request with the account's key; the wire bytes.
    pub fn seal(&self, key: &Keypair) -> Vec<u8> {
        let payload = postcard::to_allocvec(self).expect("a request always encodes");
        postcard::to_allocvec(&key.sign(WALLET_NAMESPACE, &payload))
            .expect("a signed envelope always encodes")
    }

    /// Opens hostile bytes for the node `owner` of `network` at `now_ms`: the signature must be
    /// the owner's, the network this one, the time within [`REQUEST_TTL_MS`]. Returns the
    /// request and its hash (for the node's once-only check).
    pub fn open(
        bytes: &[u8],
        owner: &NodeId,
        network: &Hash,
        now_ms: u64,
    ) -> Result<(Self, Hash), Refused> {
        if bytes.len() > crate::MAX_TX_BYTES {
            return Err(Refused::Malformed("wallet request too large".into()));
        }
        let signed: Signed = postcard::from_bytes(bytes)
            .map_err(|err| Refused::Malformed(format!("wallet request: {err}")))?;
        if signed.signer != *owner {
            return Err(Refused::BadSignature(signed.signer));
        }
        signed
            .verify(WALLET_NAMESPACE)
            .map_err(|_| Refused::BadSignature(signed.signer))?;
        let request: Self = postcard::from_bytes(&signed.payload)
            .map_err(|err| Refused::Malformed(format!("wallet request: {err}")))?;
        if request.network != *network {
            return Err(Refused::WrongNetwork);
        }
        if request.issued_ms.abs_diff(now_ms) > REQUEST_TTL_MS {
            return Err(Refused::Malformed(format!(
                "wallet request signed {} s from the node's clock; sign it again",
                request.issued_ms.abs_diff(now_ms) / 1000
            )));
        }
        Ok((request, Hash::of(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NEURO;

    #[test]
    fn only_the_owner_on_this_network_and_in_time() {
        let (owner, other) = (Keypair::from_seed([1; 32]), Keypair::from_seed([2; 32]));
        let network = Hash([3; 32]);
        let request = WalletRequest {
            network,
            action: Action::Stake { amount: NEURO },
            issued_ms: 1_000_000,
        };
        let id = owner.node_id();
        let bytes = request.seal(&owner);
        let (opened, _) = WalletRequest::open(&bytes, &id, &network, 1_050_000).unwrap();
        assert_eq!(opened, request);
        let stranger = request.seal(&other);
        assert!(WalletRequest::open(&stranger, &id, &network, 1_000_000).is_err());
        assert!(WalletRequest::open(&bytes, &id, &Hash([4; 32]), 1_000_000).is_err());
        assert!(
            WalletRequest::open(&bytes, &id, &network, 1_000_000 + REQUEST_TTL_MS + 1).is_err()
        );
        assert!(WalletRequest::open(&[0xff; 30], &id, &network, 1_000_000).is_err());
    }
}
