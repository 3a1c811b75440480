//! `neuroshard bench pipeline` for the end-to-end test: run it into a directory and read back the
//! batches it trained on and the gradients its stage processes wrote.

use std::path::Path;

use crate::nodes::run_ok;

/// Runs `neuroshard bench pipeline --dir <dir>` with `args` (on random tokens, one process per
/// stage on 127.0.0.1), failing the test if it fails.
pub fn run_bench_pipeline(exe: &Path, dir: &Path, args: &[&str]) {
    let dir = dir.to_str().expect("a UTF-8 temporary path");
    run_ok(
        exe,
        &[&["bench", "pipeline", "--dir", dir][..], args].concat(),
    );
}

/// The little-endian u32 values of `path` (the batches' tokens, `batches.u32`).
pub fn read_u32s(path: &Path) -> Vec<u32> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The little-endian f32 values of `path` (a stage's gradient, `stage-<s>.grads`).
pub fn read_f32s(path: &Path) -> Vec<f32> {
    read_u32s(path).into_iter().map(f32::from_bits).collect()
}
