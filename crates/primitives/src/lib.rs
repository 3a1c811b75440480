//! Shared vocabulary: hashes, Merkle proofs, ids, signed envelopes, token batches.
//!
//! # Bird's Eye View
//!
//! Every other crate speaks in these types. They are plain data with no I/O, so they compile
//! in seconds and can be used from the pure cores (compression, aggregation, ledger) and from
//! the network edge alike.
//!
//! ```
//! use neuroshard_primitives::{Hash, Keypair};
//! let key = Keypair::from_seed([7; 32]);
//! let signed = key.sign(b"_NEUROSHARD_EXAMPLE", b"hello");
//! assert!(signed.verify(b"_NEUROSHARD_EXAMPLE").is_ok());
//! assert_eq!(Hash::of(b"abc"), Hash::of(b"abc"));
//! ```

mod batch;
mod error;
mod hash;
mod merkle;
mod signed;

pub use batch::{Batch, BatchSource};
pub use error::{Error, Result};
pub use hash::Hash;
pub use merkle::{MerkleProof, merkle_root};
pub use signed::{Keypair, NodeId, Signed};
