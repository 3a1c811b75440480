//! One module per subcommand, each with `Args` and `run`.

pub(crate) mod bench;
pub(crate) mod export;
pub(crate) mod generate;
pub(crate) mod genesis;
pub(crate) mod import;
pub(crate) mod node;
pub(crate) mod privacy;
pub(crate) mod sim;
pub(crate) mod train;
pub(crate) mod up;
pub(crate) mod wallet;

use anyhow::Context;

/// Sizes the global rayon pool (used by the kernels and by gemm) to `threads` and tells candle
/// the same count through `RAYON_NUM_THREADS`, which it reads per matrix product; without a
/// count, the defaults stand (`RAYON_NUM_THREADS`, else every core). Returns the pool's size.
/// Must run before any parallel work creates the default pool.
pub(crate) fn set_threads(threads: Option<usize>) -> anyhow::Result<usize> {
    let Some(n) = threads else {
        return Ok(rayon::current_num_threads());
    };
    anyhow::ensure!(n > 0, "--threads must be at least 1");
    // SAFETY: called at start-up, before this process starts threads that read the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .context("building the thread pool")?;
    Ok(n)
}
