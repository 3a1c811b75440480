//! Committees, the ed25519 signing scheme, and the follower's pure check of a finalized block.

use crate::{
    Error,
    block::{Block, Digest, hex32},
};
use commonware_codec::{Decode as _, DecodeExt as _, Encode as _};
use commonware_consensus::{
    Epochable as _, simplex::scheme::ed25519, simplex::types::Finalization,
};
use commonware_cryptography::{Digestible as _, Hasher as _, Sha256, ed25519::PublicKey};
use commonware_parallel::Sequential;
use commonware_utils::{TryCollect as _, ordered::Set};
use rand_core::SeedableRng as _;

/// The namespace every consensus signature covers, so a vote for the ledger never verifies as
/// any other signed message of the project.
pub const NAMESPACE: &[u8] = b"neuroshard-ledger-consensus-v1";

/// The simplex signing scheme: ed25519, attributable (a certificate lists its signers).
pub type Scheme = ed25519::Scheme;

/// The most validators a committee may hold (the ledger's `committee_size`, 16, must not exceed
/// it): it sizes the network's messages, peer sets and inbound queues.
pub const MAX_COMMITTEE: usize = 16;

/// A finalization certificate for a block digest.
pub type Certificate = Finalization<Scheme, Digest>;

/// Decodes 32-byte keys into the committee's ordered key set (sorted by key; simplex indexes
/// signers by this order). Refuses an empty committee, a repeated key, or a non-point.
pub fn committee_set(committee: &[[u8; 32]]) -> Result<Set<PublicKey>, Error> {
    if committee.is_empty() || committee.len() > MAX_COMMITTEE {
        return Err(Error::Committee(format!(
            "{} validators, not 1 to {MAX_COMMITTEE}",
            committee.len()
        )));
    }
    let keys = committee
        .iter()
        .map(|k| {
            PublicKey::decode(commonware_codec::Copying(k.as_slice()))
                .map_err(|e| Error::Committee(format!("key {} is not ed25519: {e}", hex32(k))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    keys.into_iter()
        .try_collect()
        .map_err(|_| Error::Committee("a validator key appears twice".into()))
}

/// Decodes a finalization certificate for a committee of `participants` validators.
pub(crate) fn decode_certificate(bytes: &[u8], verifier: &Scheme) -> Result<Certificate, Error> {
    use commonware_cryptography::certificate::Verifier as _;
    Certificate::decode_cfg(
        commonware_codec::Copying(bytes),
        &verifier.certificate_codec_config(),
    )
    .map_err(|e| Error::Decode {
        what: "certificate",
        reason: e.to_string(),
    })
}

/// Checks a finalization certificate's signatures against `verifier`'s committee.
///
/// Batch verification draws random coefficients; they come from a ChaCha seeded with the hash of
/// everything checked (namespace, committee, certificate), so the check is a pure function and the
/// coefficients are fixed only after the signer chose its signatures (Fiat–Shamir).
pub(crate) fn certificate_verifies(
    certificate: &Certificate,
    verifier: &Scheme,
    committee: &Set<PublicKey>,
) -> bool {
    let seed = Sha256::hash(&[NAMESPACE, &committee.encode(), &certificate.encode()]);
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed.0);
    certificate.verify(&mut rng, verifier, &Sequential)
}

/// Checks a finalized block as a follower receives it: the certificate decodes, is for `epoch`,
/// is signed by a quorum of `committee`, and finalizes exactly this block (its payload is the
/// block's digest). Returns the decoded block.
///
/// Pure: no I/O, no clock, no global randomness.
pub fn verify_finalized(
    committee: &[[u8; 32]],
    epoch: u64,
    block: &[u8],
    certificate: &[u8],
) -> Result<Block, Error> {
    let set = committee_set(committee)?;
    let verifier = Scheme::verifier(NAMESPACE, set.clone());
    let block = Block::from_bytes(block)?;
    let certificate = decode_certificate(certificate, &verifier)?;
    let got = certificate.epoch().get();
    if got != epoch {
        return Err(Error::WrongEpoch {
            expected: epoch,
            got,
        });
    }
    if block.header.epoch != got {
        return Err(Error::EpochMismatch {
            header: block.header.epoch,
            certificate: got,
        });
    }
    if !certificate_verifies(&certificate, &verifier, &set) {
        return Err(Error::BadCertificate { epoch });
    }
    let digest = block.digest();
    if certificate.proposal.payload != digest {
        return Err(Error::PayloadMismatch {
            certified: hex32(&certificate.proposal.payload.0),
            block: hex32(&digest.0),
        });
    }
    Ok(block)
}
