//! `cargo xtask bench logs`: container logs end to end, agent -> collector, release builds.
//!
//! 1. Write a CRI corpus (default 1 GiB over 8 containers, 100-300 B lines of JSON, logfmt
//!    and plain text; see `corpus`) before anything starts.
//! 2. Per repeat: a fresh collector and agent (new data dir, positions file and buffer); the
//!    agent's `--log-dir` starts empty and the pod directories are moved in at once (a
//!    rename), which starts the clock: every line is new to the agent whatever it does
//!    with files it finds at startup.
//! 3. The clock stops when the collector's `sonde_collector_log_entries_received_total`
//!    (entries stored, duplicates left out) reaches the corpus's line count. CPU from
//!    /proc/<pid>/stat of both, the agent's VmHWM, then a LogQL count of every container
//!    over time windows (lines lost = written - counted), then a clean stop of the
//!    collector and the bytes under `<data-dir>/logs`.
//!
//! Published anchors (other hardware, quoted for scale only) and the bar are in `report`.

mod corpus;
mod procs;
mod report;
mod rsyslog;
mod run;

pub use procs::metric_sum;
pub use rsyslog::version as rsyslog_version;

use anyhow::{Result, bail};

use crate::{
    bench_agent::guard::{self, TempDir},
    step::{self, say},
};

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Size of the corpus in MiB.
    #[arg(long, default_value_t = 1024)]
    pub mib: u64,
    /// Containers (one log file each) the corpus is spread over.
    #[arg(long, default_value_t = 8)]
    pub containers: usize,
    /// Runs over the same corpus; the report gives the median and min–max.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// What to run, comma separated: sonde, rsyslog (imfile -> omfwd TCP, side by side).
    #[arg(long, default_value = "sonde,rsyslog", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Use the release binaries already in the target dir (profiling, or while
    /// the tree does not build) instead of building them first.
    #[arg(long)]
    pub no_build: bool,
}

pub fn run(opts: &Options) -> Result<()> {
    if opts.mib == 0 || opts.containers == 0 || opts.repeats == 0 {
        bail!("--mib, --containers and --repeats must be greater than zero");
    }
    let (mut sonde, mut with_rsyslog) = (false, false);
    for p in &opts.peers {
        match p.trim() {
            "sonde" => sonde = true,
            "rsyslog" => with_rsyslog = true,
            other => bail!("--peers: unknown {other:?} (sonde, rsyslog)"),
        }
    }
    if !sonde {
        bail!("--peers must include sonde: the bench measures it");
    }
    let rsyslog_version = if with_rsyslog {
        Some(rsyslog::version()?)
    } else {
        None
    };
    if opts.no_build {
        say("--no-build: using the release binaries already built");
    } else {
        say("building sonde-collector and sonde-agent (release)");
        step::cargo(&[
            "build",
            "--release",
            "-p",
            "sonde-collector",
            "-p",
            "sonde-agent",
        ])?;
    }
    guard::stop_on_interrupt();
    let machine = crate::bench_agent::report::Machine::detect();
    let dir = TempDir::with_prefix("sonde-bench-logs-")?;
    say(&format!(
        "writing a {} MiB CRI corpus over {} containers",
        opts.mib, opts.containers
    ));
    let corpus = corpus::generate(&dir.path("corpus"), opts.mib, opts.containers)?;
    say(&format!(
        "{} lines, {:.1} MiB",
        corpus.lines(),
        corpus.bytes() as f64 / (1 << 20) as f64
    ));
    let (mut runs, mut peer_runs) = (Vec::new(), Vec::new());
    for r in 0..opts.repeats {
        say(&format!("run {} of {}", r + 1, opts.repeats));
        let m = run::once(&dir, &corpus, r)?;
        say(&format!(
            "run {}: {:.1} MiB/s, {:.0} lines/s, agent {:.2} cores, {} lines lost",
            r + 1,
            m.mib_per_s(&corpus),
            m.lines_per_s(&corpus),
            m.agent_cpu_s / m.wall_s,
            m.lost
        ));
        runs.push(m);
        if with_rsyslog {
            let p = rsyslog::once(&dir, &corpus, r)?;
            say(&format!(
                "run {} rsyslog: {:.1} MiB/s, {:.2} cores",
                r + 1,
                corpus.bytes() as f64 / (1 << 20) as f64 / p.wall_s,
                p.cpu_s / p.wall_s
            ));
            peer_runs.push(p);
        }
    }
    let peer = rsyslog_version.map(|v| (v, peer_runs));
    let section = report::render(&machine, opts, &corpus, &runs, peer.as_ref());
    println!("{section}");
    let path = crate::bench_agent::report::write_section("logs", &section)?;
    say(&format!("results written to {}", path.display()));
    Ok(())
}
