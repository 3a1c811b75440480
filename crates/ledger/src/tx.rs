//! Transactions: what an account signs, bound to the network id and a nonce, and their wire form.

use std::net::SocketAddr;

use neuroshard_primitives::{Hash, Keypair, NodeId, Signed};
use serde::{Deserialize, Serialize};

use crate::{Amount, Part, Refused, Round};

/// The namespace every transaction signature covers.
pub const TX_NAMESPACE: &[u8] = b"_NEUROSHARD_LEDGER_TX";

/// The largest encoded transaction (a conviction carries the accused's signed announcement, a
/// few hundred bytes; the rest are smaller).
pub const MAX_TX_BYTES: usize = 16 * 1024;

/// What a transaction does. Rewards are not here: the state transition mints them itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Moves `amount` from the signer's balance to `to`'s.
    Transfer {
        /// The recipient.
        to: NodeId,
        /// How much.
        amount: Amount,
    },
    /// Bonds `amount` of the signer's balance as stake.
    Stake {
        /// How much.
        amount: Amount,
    },
    /// Starts unbonding `amount` of the signer's stake; it stays slashable until it is released
    /// [`crate::Rules::unbonding_blocks`] later.
    Unstake {
        /// How much.
        amount: Amount,
    },
    /// Moves every released unbonding entry back to the balance.
    Withdraw,
    /// Records where the signer's consensus engine listens, so the committee can reach it once
    /// it is elected. Only a bonded account (stake at or above the validator bond) may register,
    /// which bounds the table by capital; an account without an address is never elected.
    Register {
        /// The TCP address the signer's validator listens on (a specific IP, a non-zero port).
        consensus: SocketAddr,
    },
    /// The signer's work claim for a round: the hash of its Δ and the root of its training
    /// chain (its Proof of Neural Work commitment), for the part of the model it trained. The
    /// claims of a round for one part, in ledger order, are that part's inclusion list.
    Claim {
        /// The training round.
        round: Round,
        /// The hash of the compressed Δ the signer announced.
        delta: Hash,
        /// The root of the training chain the Δ came from.
        root: Hash,
        /// The pipeline stage it trained ([`Part::WHOLE`] for the whole model); refused when
        /// the stage is not one of its pipeline's.
        part: Part,
    },
    /// The signer audited `contributor`'s contribution to `round`.
    Verdict {
        /// The round audited.
        round: Round,
        /// Whose contribution.
        contributor: NodeId,
        /// The signer's audit ticket: its signature over the ticket payload of (round, root,
        /// contributor), which must select it as an auditor.
        ticket: Vec<u8>,
        /// Whether the replay matched the commitment.
        passed: bool,
        /// The held-out loss gain of the Δ alone, in micro-nats (negative when it hurt).
        gain: i64,
    },
    /// The signer checked a fraud proof against `contributor`'s contribution to `round` and
    /// replayed it: the work does not match the commitment. `evidence` is the contributor's own
    /// signed announcement, so a conviction names work the contributor committed to.
    Convict {
        /// The round.
        round: Round,
        /// The accused.
        contributor: NodeId,
        /// The accused's signed announcement frame.
        evidence: Vec<u8>,
    },
    /// The signer's capacity record for the pipeline's layer pool (the figures of
    /// `neuroshard-pool`'s `CapacityRecord`): it replaces the signer's entry on the pool roll
    /// ([`crate::State::pool_roll`]). Free and open to any account, bonded or not (a joining node
    /// holds no NEURO); refused when a figure is 0, or when the roll holds [`crate::MAX_POOL`]
    /// entries and none is the signer's.
    Pool {
        /// Bytes the signer gives to training.
        memory_budget: u64,
        /// Its measured training speed, in parameter-tokens per second.
        work_per_sec: u64,
    },
    /// The signer leaves the pool: its entry is dropped at the next plan boundary, as an expired
    /// one is (a node that stops cleanly is planned out within a boundary, not a TTL). Free;
    /// refused when the roll holds no entry of the signer's. A `Pool` record before that
    /// boundary stays.
    PoolLeave,
}

/// The signed part of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    /// The network id (the genesis hash); a transaction for another network is refused.
    pub network: Hash,
    /// The signer account's next nonce.
    pub nonce: u64,
    /// What it does.
    pub action: Action,
}

/// A transaction with its signer, checked: the signature verified and the payload decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// The signing account.
    pub signer: NodeId,
    /// What it signed.
    pub tx: Tx,
    /// The wire bytes, as signed and sent.
    pub bytes: Vec<u8>,
}

impl SignedTx {
    /// Signs `tx` with `key`.
    pub fn sign(key: &Keypair, tx: Tx) -> Self {
        let payload = postcard::to_allocvec(&tx).expect("a transaction always encodes");
        let signed = key.sign(TX_NAMESPACE, &payload);
        let bytes = postcard::to_allocvec(&signed).expect("a signed envelope always encodes");
        Self {
            signer: signed.signer,
            tx,
            bytes,
        }
    }

    /// Decodes and checks hostile bytes: size, envelope, signature, payload.
    pub fn decode(bytes: &[u8]) -> Result<Self, Refused> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(Refused::Malformed(format!(
                "{} bytes, more than the {MAX_TX_BYTES} allowed",
                bytes.len()
            )));
        }
        let signed: Signed = postcard::from_bytes(bytes)
            .map_err(|err| Refused::Malformed(format!("envelope: {err}")))?;
        signed
            .verify(TX_NAMESPACE)
            .map_err(|_| Refused::BadSignature(signed.signer))?;
        let tx: Tx = postcard::from_bytes(&signed.payload)
            .map_err(|err| Refused::Malformed(format!("payload: {err}")))?;
        Ok(Self {
            signer: signed.signer,
            tx,
            bytes: bytes.to_vec(),
        })
    }

    /// The transaction's id: the hash of its wire bytes.
    pub fn id(&self) -> Hash {
        Hash::of(&self.bytes)
    }
}
