//! Fuzzes `encode` then `decode` on arbitrary finite vectors: round trip and mass conservation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| neuroshard_compress_fuzz::round_trip(data));
