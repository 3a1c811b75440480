//! Node identity (ed25519) and namespaced signatures over byte payloads.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A node's public identity: its ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub [u8; 32]);

impl NodeId {
    /// Lowercase hex of the key.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    fn verifying_key(&self) -> Result<VerifyingKey> {
        VerifyingKey::from_bytes(&self.0).map_err(|_| Error::BadPublicKey(self.to_hex()))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0[..6]))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// A node's secret signing key. Never serialised except to the node's own key file.
pub struct Keypair(SigningKey);

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.node_id())
    }
}

impl Keypair {
    /// A key from 32 secret bytes (a key file, or a seed in simulation).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|err| Error::Randomness(err.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// The 32 secret bytes, for writing the key file.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// This key's public identity.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// Signs `payload` under `namespace`, so a signature for one message type can never be
    /// replayed as another.
    pub fn sign(&self, namespace: &[u8], payload: &[u8]) -> Signed {
        let signature = self.0.sign(&signing_bytes(namespace, payload));
        Signed {
            signer: self.node_id(),
            payload: payload.to_vec(),
            signature: signature.to_bytes().to_vec(),
        }
    }
}

/// A payload with its signer and an ed25519 signature over `namespace || payload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// Who signed.
    pub signer: NodeId,
    /// The signed bytes.
    pub payload: Vec<u8>,
    /// 64 signature bytes (a `Vec` so hostile input of the wrong length decodes, then fails here).
    pub signature: Vec<u8>,
}

impl Signed {
    /// Checks the signature under `namespace`.
    pub fn verify(&self, namespace: &[u8]) -> Result<()> {
        let bad = || Error::BadSignature {
            signer: self.signer.to_hex(),
            namespace: String::from_utf8_lossy(namespace).into_owned(),
        };
        let bytes: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| bad())?;
        let key = self.signer.verifying_key()?;
        key.verify(
            &signing_bytes(namespace, &self.payload),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| bad())
    }
}

/// `len(namespace) || namespace || payload`: the length prefix keeps namespaces unambiguous.
fn signing_bytes(namespace: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + namespace.len() + payload.len());
    bytes.extend_from_slice(&(namespace.len() as u64).to_le_bytes());
    bytes.extend_from_slice(namespace);
    bytes.extend_from_slice(payload);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_binds_namespace_payload_and_signer() {
        let key = Keypair::from_seed([1; 32]);
        let signed = key.sign(b"_NS_A", b"payload");
        assert!(signed.verify(b"_NS_A").is_ok());
        assert!(signed.verify(b"_NS_B").is_err());

        let mut tampered = signed.clone();
        tampered.payload[0] ^= 1;
        assert!(tampered.verify(b"_NS_A").is_err());

        let mut impostor = signed.clone();
        impostor.signer = Keypair::from_seed([2; 32]).node_id();
        assert!(impostor.verify(b"_NS_A").is_err());

        let mut short = signed;
        short.signature.truncate(10);
        assert!(short.verify(b"_NS_A").is_err());
    }

    #[test]
    fn same_seed_same_identity() {
        assert_eq!(
            Keypair::from_seed([3; 32]).node_id(),
            Keypair::from_seed([3; 32]).node_id()
        );
    }
}
