//! Fuzzes `decode` with raw bytes: the header, length and checksum checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| neuroshard_compress_fuzz::decode_checked(data));
