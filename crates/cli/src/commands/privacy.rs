//! `neuroshard privacy`: the ε that DP-SGD steps spend, from the RDP accountant.

use anyhow::{Context, Result};
use neuroshard_privacy::Accountant;

/// Arguments of `neuroshard privacy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Probability that an example is in a step's batch (batch size / examples drawn from).
    #[arg(long)]
    sampling_rate: f64,
    /// Noise multiplier σ: the noise's standard deviation over the clipping norm.
    #[arg(long)]
    noise: f64,
    /// Steps taken.
    #[arg(long)]
    steps: u64,
    /// The δ of the (ε, δ) guarantee.
    #[arg(long, default_value_t = 1e-5)]
    delta: f64,
    /// Print one JSON object instead of a sentence.
    #[arg(long)]
    json: bool,
}

/// Runs `neuroshard privacy`: prints ε and the RDP order that gave it.
pub(crate) fn run(args: Args) -> Result<()> {
    let spent = Accountant::new(args.sampling_rate, args.noise)
        .and_then(|accountant| accountant.epsilon(args.steps, args.delta))
        .context("computing the privacy spent")?;
    if args.json {
        let value = serde_json::json!({
            "sampling_rate": args.sampling_rate,
            "noise": args.noise,
            "steps": args.steps,
            "delta": args.delta,
            "epsilon": spent.epsilon.is_finite().then_some(spent.epsilon),
            "order": spent.order,
        });
        println!("{value}");
    } else {
        println!(
            "ε = {:.6} at δ = {} after {} steps (q = {}, σ = {}; best RDP order {})",
            spent.epsilon, args.delta, args.steps, args.sampling_rate, args.noise, spent.order
        );
    }
    Ok(())
}
