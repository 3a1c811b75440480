//! The node's ed25519 key as a libp2p identity, and the PeerId ↔ NodeId mapping.
//!
//! A NeuroShard node has one key. Its [`NodeId`] (the raw ed25519 public key) and its libp2p
//! [`PeerId`] (a multihash of the same key) name the same node, so a signature checked against the
//! `NodeId` binds to the peer that sent it.

use libp2p::PeerId;
use libp2p::identity::{self, PublicKey};
use neuroshard_primitives::{Keypair, NodeId};

use crate::{Error, Result};

/// The libp2p identity for `key`: same secret, so the same node always gets the same [`PeerId`].
pub fn libp2p_keypair(key: &Keypair) -> Result<identity::Keypair> {
    identity::Keypair::ed25519_from_bytes(key.secret_bytes())
        .map_err(|err| Error::Identity(err.to_string()))
}

/// The [`PeerId`] of the node with public key `node`.
pub fn peer_id(node: &NodeId) -> Result<PeerId> {
    let key = identity::ed25519::PublicKey::try_from_bytes(&node.0)
        .map_err(|err| Error::Identity(err.to_string()))?;
    Ok(PeerId::from_public_key(&PublicKey::from(key)))
}

/// The [`NodeId`] inside `peer`, if it is an ed25519 peer id (the only kind NeuroShard accepts).
pub fn node_id(peer: &PeerId) -> Result<NodeId> {
    let not_a_node = || Error::NotANode(peer.to_string());
    let multihash = peer.as_ref();
    // Ed25519 peer ids inline the protobuf-encoded key under the identity hash (code 0).
    if multihash.code() != 0 {
        return Err(not_a_node());
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest()).map_err(|_| not_a_node())?;
    let ed25519 = public.try_into_ed25519().map_err(|_| not_a_node())?;
    Ok(NodeId(ed25519.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_peer_and_round_trip() {
        let key = Keypair::from_seed([9; 32]);
        let libp2p_key = libp2p_keypair(&key).unwrap();
        let peer = libp2p_key.public().to_peer_id();
        assert_eq!(peer, peer_id(&key.node_id()).unwrap());
        assert_eq!(node_id(&peer).unwrap(), key.node_id());
        let again = libp2p_keypair(&Keypair::from_seed([9; 32])).unwrap();
        assert_eq!(again.public().to_peer_id(), peer);
    }

    #[test]
    fn non_ed25519_peer_is_not_a_node() {
        let hashed =
            PeerId::from_multihash(libp2p::multihash::Multihash::wrap(0x12, &[0u8; 32]).unwrap())
                .unwrap();
        assert!(node_id(&hashed).is_err());
    }
}
