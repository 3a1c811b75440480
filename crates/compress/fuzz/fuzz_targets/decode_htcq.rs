//! Fuzzes the trellis-coded `htcq` decoder with sealed packets of hostile payload bytes.
#![no_main]

use neuroshard_compress::Codec;

libfuzzer_sys::fuzz_target!(|data: &[u8]| neuroshard_compress_fuzz::fuzz_codec(Codec::HTcq, data));
