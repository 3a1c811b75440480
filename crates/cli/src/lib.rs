//! The neuroshard command line: clap commands, config loading, progress.
//!
//! # Bird's Eye View
//!
//! Each subcommand lives in its own module under `commands/` with an `Args` struct and a
//! `run(args) -> anyhow::Result<()>`. This is the only library crate that uses `anyhow`: errors
//! from the libraries arrive typed and leave here with context for a person to read.

mod commands;
mod http;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

/// NeuroShard: train one transformer across many untrusted machines.
#[derive(Debug, Parser)]
#[command(name = "neuroshard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure training speed (compare with bench/pytorch_train.py).
    Bench(commands::bench::Args),
    /// Fetch, build, verify and initialise the Genesis dataset and genesis file.
    Genesis(commands::genesis::Args),
    /// Run a node: train with peers over libp2p, serve the dashboard.
    Node(commands::node::Args),
    /// Start a whole local network of nodes (the main job): `neuroshard up --nodes 3`.
    Up(commands::up::Args),
    /// Train NeuroLLM locally on the Genesis data (builds it when missing).
    Train(commands::train::Args),
    /// Continue a prompt with a trained checkpoint.
    Generate(commands::generate::Args),
    /// Write a checkpoint as a Hugging Face Llama directory (transformers loads it).
    Export(commands::export::Args),
    /// Read a Hugging Face Llama directory into a training checkpoint, or (--init) a network's
    /// initial weights.
    Import(commands::import::Args),
    /// The ε that DP-SGD steps spend (Rényi DP accountant of the subsampled Gaussian).
    Privacy(commands::privacy::Args),
    /// Simulate a network of nodes training together, with attackers and baselines.
    Sim(Box<commands::sim::Args>),
    /// This node's NEURO account: address, balance, history; send, stake, unstake, withdraw.
    Wallet(commands::wallet::Args),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<()> {
    keep_freed_memory();
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Bench(args) => commands::bench::run(args),
        Command::Genesis(args) => commands::genesis::run(args),
        Command::Node(args) => commands::node::run(args),
        Command::Up(args) => commands::up::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Import(args) => commands::import::run(args),
        Command::Privacy(args) => commands::privacy::run(args),
        Command::Sim(args) => commands::sim::run(*args),
        Command::Wallet(args) => commands::wallet::run(args),
    }
}

/// Tells mimalloc (the binary's allocator) never to return freed memory to the OS. A training
/// step frees and re-allocates the same few hundred MiB of activations and gradients; returned
/// pages come back as fresh page faults that the kernel must zero, which cost about a fifth of
/// the step. Harmless where mimalloc is linked but not the global allocator.
fn keep_freed_memory() {
    /// `mi_option_purge_delay` in `mimalloc.h` (the same index in mimalloc v2 and v3).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide option; mimalloc reads it with atomics, at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), so stdout stays for `--json` output.
/// Colours only when stderr is a terminal: a log redirected to a file (`neuroshard up` writes
/// each node's to `node-N.log`) or a pipe stays plain text.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
