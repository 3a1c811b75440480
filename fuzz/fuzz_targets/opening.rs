//! An opening as a peer could send it (postcard), checked against a commitment: decoding and
//! every check before a replay return errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use neuroshard_primitives::Hash;
use neuroshard_verify::{Claim, Commitment, Opening, Segments};

fuzz_target!(|bytes: &[u8]| {
    let Ok(opening) = postcard::from_bytes::<Opening>(bytes) else {
        return;
    };
    let commitment = Commitment {
        segments: Segments { steps: 7, len: 3 },
        root: Hash::of(bytes),
        residual_before: Hash::default(),
        residual_after: Hash::default(),
    };
    let claim = Claim {
        commitment: &commitment,
        base: &Hash::default(),
        first_step: u64::MAX - 2,
        n_params: 4,
    };
    let _ = opening.check(&claim);
});
