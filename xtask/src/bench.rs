//! `cargo xtask bench ...`: side-by-side benchmarks against the real peers.

use anyhow::Result;
use clap::Subcommand;

#[derive(Clone, Copy, Debug, Subcommand)]
pub enum Which {
    /// The agent against node_exporter: scrape CPU and wall time, RSS, series; probe ns/event.
    Agent,
}

pub fn run(which: Which) -> Result<()> {
    match which {
        Which::Agent => crate::bench_agent::run(),
    }
}
