//! A pseudo-gradient payload: decoding returns an error on hostile bytes, never panics, never
//! allocates past the declared and allowed size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = neuroshard_compress::decode(bytes, 1 << 12);
});
