//! `cargo xtask bench agent`: what the agent costs a node, next to the tools it replaces.
//!
//! Three benchmarks, in one run, in rounds that interleave the sides and alternate which
//! goes first (this VM is shared and noisy, so we report the median and min–max over rounds):
//!
//! 1. Scrape cost, Sonde agent (all probes on) vs node_exporter (default collectors plus
//!    tcpstat), each alone on its own 127.0.0.1 port: CPU time per `/metrics` scrape
//!    (utime+stime of the process over the scrapes, minus its idle CPU over the same wall
//!    time), wall time per scrape, RSS after scraping, series count. This is what a
//!    Prometheus scraping every node pays.
//! 2. Probe cost in the kernel, ns per event, while a workload runs: the agent's programs from
//!    its own `sonde_bpf_program_*` metrics; bpftrace's run-queue histogram and a near-empty
//!    bpftrace program (this VM's floor per BPF run) from `bpftool prog show` deltas.
//!    This is what every context switch and block request pays for always-on probes.
//! 3. Containers: the agent's scrape cost (as in 1) with 0, 100 and 200 kubelet-style
//!    container cgroups on the node, each with a process that keeps waking up, and what each
//!    container adds: scrape CPU, wall time, RSS, series. No peer: cAdvisor is not installable
//!    here.
//!
//! The tables go to stdout and, as the `bench:agent` and `bench:containers` sections, to
//! BENCHMARKS.md.

mod containers;
pub(crate) mod guard;
pub(crate) mod http;
mod kubepods;
mod probes;
mod prom;
pub(crate) mod report;
pub(crate) mod scrape;
pub(crate) mod stats;

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Result, bail};

use crate::step::{self, say};
use guard::{Running, TempDir};

/// Rounds per benchmark; each side runs once per round.
const ROUNDS: usize = 5;
/// The agent's probe map reading interval in this bench (its cost metrics move this often).
const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_INTERVAL_FLAG: &str = "1s";
const PEERS: [&str; 7] = [
    "prometheus-node-exporter",
    "bpftrace",
    "bpftool",
    "losetup",
    "dd",
    "python3",
    "bash",
];

pub fn run() -> Result<()> {
    let cgroups = preflight()?;
    crate::build::ebpf()?;
    say("building sonde-agent (release)");
    step::cargo(&["build", "--release", "-p", "sonde-agent"])?;

    guard::stop_on_interrupt();
    let machine = report::Machine::detect();
    let dir = TempDir::new()?;
    let scrape = scrape::bench(ROUNDS, &dir)?;
    let probes = probes::bench(ROUNDS, &dir)?;
    let containers = containers::bench(ROUNDS, &dir, &cgroups)?;

    let agent = report::render(&machine, ROUNDS, &scrape, &probes);
    let per_container =
        report::render_containers(&machine, ROUNDS, &cgroups.describe(), &containers);
    println!("{agent}\n{per_container}");
    report::write_section(report::AGENT, &agent)?;
    let path = report::write_section(report::CONTAINERS, &per_container)?;
    say(&format!("results written to {}", path.display()));
    Ok(())
}

/// Fails early, before the long builds, if this machine cannot run the bench; returns the
/// cgroup hierarchies the containers go in, and removes cgroups a killed run left behind.
fn preflight() -> Result<kubepods::Hierarchies> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "`cargo xtask bench agent` needs root: it loads eBPF probes, runs bpftrace and creates cgroups"
        );
    }
    let missing: Vec<&str> = PEERS.into_iter().filter(|p| !on_path(p)).collect();
    if !missing.is_empty() {
        bail!(
            "missing on PATH: {} (`cargo xtask setup` installs the peers)",
            missing.join(", ")
        );
    }
    let cgroups = kubepods::Hierarchies::detect()?;
    let swept = kubepods::sweep_stale();
    if swept > 0 {
        say(&format!(
            "removed {swept} empty cgroups an interrupted earlier run left behind"
        ));
    }
    Ok(cgroups)
}

fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

fn agent_binary() -> PathBuf {
    step::target_dir().join("release/sonde-agent")
}

/// Starts the release agent with every probe on, on a free 127.0.0.1 port, and waits until
/// every probe is up and its first probe reading (with the cost metrics) is on /metrics.
fn start_agent(dir: &TempDir, log_name: &str) -> Result<(Running, u16)> {
    let port = guard::free_port()?;
    let log = dir.log(log_name)?;
    let mut cmd = Command::new(agent_binary());
    // The kernel-metric probes (http needs spans, which need a collector: not this bench).
    cmd.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--probes",
        "runqueue,oom,tcp,blockio",
    ])
    .args([
        "--probe-interval",
        PROBE_INTERVAL_FLAG,
        "--log-format",
        "json",
    ])
    .stdout(log.try_clone()?)
    .stderr(log);
    let mut agent = Running::spawn("sonde-agent", cmd)?;
    guard::wait_until(
        "sonde-agent's first probe reading",
        Duration::from_secs(30),
        || {
            if agent.exited()? {
                bail!("sonde-agent exited; its log ends:\n{}", dir.tail(log_name));
            }
            let Ok(r) = http::get(port, "/metrics") else {
                return Ok(false);
            };
            let down: Vec<&str> = prom::samples(&r.body, "sonde_probe_up")
                .filter(|s| s.value != 1.0)
                .filter_map(|s| prom::label(s.labels, "probe"))
                .collect();
            if !down.is_empty() {
                bail!(
                    "sonde-agent probes down: {} (its log ends:\n{})",
                    down.join(", "),
                    dir.tail(log_name)
                );
            }
            Ok(r.status == 200
                && prom::samples(&r.body, "sonde_bpf_program_runs_total")
                    .next()
                    .is_some())
        },
    )?;
    Ok((agent, port))
}
