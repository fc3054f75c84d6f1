//! `azwi-bench`: time evaluations of the compiled module per scenario, beside the reference
//! points, in one run, and print a table with the ratios (`make bench`).

mod scenarios;

use std::path::PathBuf;

use anyhow::Result;
use azwi_policy_runner::Policy;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Time evaluations of the module per scenario and print a table")]
struct Cli {
    #[arg(long, default_value = "policy.wasm")]
    policy: PathBuf,
    /// The decode-only module to compare the fast path with.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// The SDK-style context-aware mutating policy to compare opted-in pods with.
    #[arg(long)]
    peer: Option<PathBuf>,
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let policy = Policy::load(&cli.policy)?;
    let baseline = cli.baseline.map(Policy::load).transpose()?;
    let peer = cli.peer.map(Policy::load).transpose()?;
    let rows = scenarios::run(&policy, baseline.as_ref(), peer.as_ref(), cli.iterations)?;
    scenarios::print(&rows);
    Ok(())
}
