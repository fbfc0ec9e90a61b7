//! `cargo xtask bench ...`: side-by-side benchmarks against the real peers.

use anyhow::Result;
use clap::Subcommand;

#[derive(Clone, Debug, Subcommand)]
pub enum Which {
    /// The agent against node_exporter: scrape CPU and wall time, RSS, series; probe ns/event.
    Agent,
    /// The collector against Prometheus 2.42 and VictoriaMetrics 1.79: remote_write ingest
    /// rate, bytes per sample on disk, RSS, range-query latency.
    Collector(crate::bench_collector::Options),
    /// Container logs end to end, agent -> collector (release): MiB/s and lines/s, CPU per
    /// MiB, agent peak RSS, bytes on disk per raw MiB, lines lost (must be 0).
    Logs(crate::bench_logs::Options),
    /// Node problem detection in a kernel log storm, beside rsyslog reading /dev/kmsg:
    /// CPU per 1000 lines and share of a core at 5000 lines a minute, RSS, records lost.
    Problems(crate::bench_problems::Options),
    /// Traces into the collector (release): spans/s per collector core, bytes on disk per
    /// span, spans lost (must be 0); against the OpenTelemetry Collector's published figure.
    Traces(crate::bench_traces::Options),
}

pub fn run(which: Which) -> Result<()> {
    match which {
        Which::Agent => crate::bench_agent::run(),
        Which::Collector(opts) => crate::bench_collector::run(&opts),
        Which::Logs(opts) => crate::bench_logs::run(&opts),
        Which::Problems(opts) => crate::bench_problems::run(&opts),
        Which::Traces(opts) => crate::bench_traces::run(&opts),
    }
}
