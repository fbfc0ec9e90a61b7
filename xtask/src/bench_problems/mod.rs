//! `cargo xtask bench problems`: what a kernel log storm costs the agent's problem
//! detector, beside rsyslog reading the same `/dev/kmsg` (release build; root).
//!
//! Per round, each side alone (order alternating): start it, let it read the kernel
//! log's backlog until its count stops moving, take its idle CPU rate over 2 s, then
//! write `--lines` OOM-kill lines into `/dev/kmsg` at `--per-minute` and stop the
//! clock when the side has matched every one. CPU per 1000 lines subtracts the idle
//! rate; RSS is VmRSS after the storm. No node-problem-detector is packaged for
//! Debian, so NPD's own figure (it saturates near 4,500 OOM kills a minute) is quoted
//! in the report for scale only.

mod report;
mod sides;

use std::{
    fs::OpenOptions,
    io::Write,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    bench_agent::{
        guard::{self, TempDir},
        stats::Samples,
    },
    step::{self, say},
};
use sides::Side;

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Kernel log lines written per side per round (CPU time is read in 10 ms
    /// ticks: enough lines that the storm takes many of them).
    #[arg(long, default_value_t = 2000)]
    pub lines: u64,
    /// The storm's rate, lines per minute (the storm: 5000).
    #[arg(long, default_value_t = 5000)]
    pub per_minute: u64,
    /// Rounds; the report gives the median and min–max.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Use the release agent already in the target dir instead of building it.
    #[arg(long)]
    pub no_build: bool,
}

/// One side's numbers for one round.
pub struct Measured {
    /// CPU seconds over the storm, less the idle rate over the same span.
    pub storm_cpu_s: f64,
    pub wall_s: f64,
    pub idle_cpu_per_s: f64,
    pub rss_bytes: u64,
    /// Kernel records the side reports it missed (Sonde only; rsyslog does not say).
    pub lost: Option<f64>,
}

pub fn run(opts: &Options) -> Result<()> {
    if opts.lines == 0 || opts.per_minute == 0 || opts.rounds == 0 {
        bail!("--lines, --per-minute and --rounds must be greater than zero");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("bench problems writes to /dev/kmsg and reads it: run it as root");
    }
    let rsyslog = crate::bench_logs::rsyslog_version()?;
    if opts.no_build {
        say("--no-build: using the release agent already built");
    } else {
        say("building sonde-agent (release)");
        step::cargo(&["build", "--release", "-p", "sonde-agent"])?;
    }
    guard::stop_on_interrupt();
    let machine = crate::bench_agent::report::Machine::detect();
    let dir = TempDir::with_prefix("sonde-bench-problems-")?;
    let mut samples = Samples::default();
    for r in 0..opts.rounds {
        let order = if r % 2 == 0 {
            [Side::Sonde, Side::Rsyslog]
        } else {
            [Side::Rsyslog, Side::Sonde]
        };
        for side in order {
            say(&format!(
                "round {} of {}: {}",
                r + 1,
                opts.rounds,
                side.name()
            ));
            let m = once(side, &dir, opts, r)?;
            say(&format!(
                "  {:.2} ms CPU per 1000 lines, {:.1}% of a core during the storm",
                m.storm_cpu_s / opts.lines as f64 * 1e6,
                (m.storm_cpu_s / m.wall_s) * 100.0
            ));
            report::push(&mut samples, side, &m, opts);
        }
    }
    let section = report::render(&machine, opts, &rsyslog, &samples);
    println!("{section}");
    let path = crate::bench_agent::report::write_section("problems", &section)?;
    say(&format!("results written to {}", path.display()));
    Ok(())
}

fn once(side: Side, dir: &TempDir, opts: &Options, round: usize) -> Result<Measured> {
    let s = side.start(dir, round)?;
    // The backlog: both read what the kernel still holds when they start.
    let mut last = -1.0;
    guard::wait_until(
        &format!("{} to finish the kernel log's backlog", side.name()),
        Duration::from_secs(120),
        || {
            std::thread::sleep(Duration::from_millis(700));
            let now = s.matched()?;
            let settled = now == last;
            last = now;
            Ok(settled)
        },
    )?;
    let (idle0, t0) = (s.cpu_s()?, Instant::now());
    guard::sleep(Duration::from_secs(2))?;
    let idle_cpu_per_s = (s.cpu_s()? - idle0) / t0.elapsed().as_secs_f64();

    let (base, lost0, cpu0, start) = (s.matched()?, s.lost()?, s.cpu_s()?, Instant::now());
    let gap = Duration::from_secs_f64(60.0 / opts.per_minute as f64);
    let tag = format!("bench{}r{round}", std::process::id());
    for i in 0..opts.lines {
        guard::check_interrupt()?;
        if let Some(wait) = (start + gap * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        write_kmsg(&oom_line(100_000 + i, &tag))?;
    }
    let want = base + opts.lines as f64;
    guard::wait_until(
        &format!("{} to match all {} lines", side.name(), opts.lines),
        Duration::from_secs(60),
        || Ok(s.matched()? >= want),
    )?;
    let wall_s = start.elapsed().as_secs_f64();
    let storm_cpu_s = s.cpu_s()? - cpu0 - idle_cpu_per_s * wall_s;
    let lost = match (s.lost()?, lost0) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    Ok(Measured {
        storm_cpu_s: storm_cpu_s.max(0.0),
        wall_s,
        idle_cpu_per_s,
        rss_bytes: s.rss_bytes()?,
        lost,
    })
}

/// What the kernel prints for a memory cgroup OOM kill (NPD's OOMKilling rule matches it).
fn oom_line(pid: u64, comm: &str) -> String {
    format!(
        "Memory cgroup out of memory: Killed process {pid} ({comm}) total-vm:1024kB, anon-rss:512kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0\n"
    )
}

/// One record: one open (the kernel rate limits writes per open file) and one write
/// (each write(2) is a record of its own).
fn write_kmsg(line: &str) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .context("writing /dev/kmsg")
}
