//! Any frame a peer sends: announcements with commitments, challenges, openings, verdicts,
//! fraud proofs, votes, states. Opening never panics and never allocates past the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = neuroshard_node::Message::open(frame, 1 << 20);
});
