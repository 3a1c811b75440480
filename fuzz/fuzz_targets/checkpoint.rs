//! A served checkpoint's wire form, for models of a few sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for n in [0, 1, 3, 64] {
        let _ = neuroshard_verify::Checkpoint::from_bytes(bytes, n);
    }
});
