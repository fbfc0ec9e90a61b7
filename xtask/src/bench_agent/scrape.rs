//! Scrape cost: the agent and node_exporter, each started fresh and alone on its own
//! 127.0.0.1 port per round (so neither pays for the other's presence, e.g. Sonde's probes
//! firing on node_exporter's context switches).
//!
//! Per round and peer: the process's CPU over an idle window (no scrapes), a few warm-up
//! scrapes, then at least `MIN_SCRAPES` scrapes and at least `MIN_SCRAPE_TIME` of scraping.
//! CPU per scrape = (utime+stime delta - idle rate x scraping time) / scrapes; utime+stime
//! come in clock ticks (10 ms), hence the minimum scraping time.

use std::{
    fs,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{
    guard::{self, Running, TempDir},
    http, prom,
    stats::{Samples, median},
};
use crate::step::say;

const IDLE_WINDOW: Duration = Duration::from_secs(3);
const WARM_UP_SCRAPES: usize = 3;
const MIN_SCRAPES: usize = 200;
const MIN_SCRAPE_TIME: Duration = Duration::from_secs(3);
const MAX_SCRAPES: usize = 3000;
const MAX_SCRAPE_TIME: Duration = Duration::from_secs(40);

pub const SONDE: &str = "sonde";
pub const NODE_EXPORTER: &str = "node_exporter";

/// Samples keyed `<peer>/<measure>`: cpu_ms, wall_ms, rss_mib, series, idle_ms_per_s, scrapes.
pub fn bench(rounds: usize, dir: &TempDir) -> Result<Samples> {
    let mut samples = Samples::default();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [SONDE, NODE_EXPORTER]
        } else {
            [NODE_EXPORTER, SONDE]
        };
        for peer in order {
            say(&format!(
                "scrape cost, round {}/{rounds}: {peer}",
                round + 1
            ));
            let (process, port) = start(peer, dir)?;
            measure(&process, port, peer, &mut samples)?;
        }
    }
    Ok(samples)
}

fn start(peer: &str, dir: &TempDir) -> Result<(Running, u16)> {
    match peer {
        SONDE => super::start_agent(dir, "agent-scrape.log"),
        _ => start_node_exporter(dir),
    }
}

/// node_exporter 1.5 as packaged: its default collectors plus tcpstat.
fn start_node_exporter(dir: &TempDir) -> Result<(Running, u16)> {
    let port = guard::free_port()?;
    let log = dir.log("node_exporter.log")?;
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--collector.tcpstat")
        .stdout(log.try_clone()?)
        .stderr(log);
    let mut ne = Running::spawn("node_exporter", cmd)?;
    guard::wait_until(
        "node_exporter to serve /metrics",
        Duration::from_secs(20),
        || {
            if ne.exited()? {
                bail!(
                    "node_exporter exited; its log ends:\n{}",
                    dir.tail("node_exporter.log")
                );
            }
            Ok(http::get(port, "/metrics").is_ok_and(|r| r.status == 200))
        },
    )?;
    Ok((ne, port))
}

/// Measures one started process into `samples` under `<peer>/...`; returns the last scrape.
pub fn measure(process: &Running, port: u16, peer: &str, samples: &mut Samples) -> Result<String> {
    let pid = process.pid();
    let idle = idle_cpu_rate(pid)?;
    for _ in 0..WARM_UP_SCRAPES {
        scrape(port)?;
    }
    let cpu_before = cpu_seconds(pid)?;
    let start = Instant::now();
    let mut walls = Vec::with_capacity(MIN_SCRAPES);
    let mut body = String::new();
    while walls.len() < MAX_SCRAPES
        && start.elapsed() < MAX_SCRAPE_TIME
        && (walls.len() < MIN_SCRAPES || start.elapsed() < MIN_SCRAPE_TIME)
    {
        guard::check_interrupt()?;
        let t = Instant::now();
        body = scrape(port)?;
        walls.push(t.elapsed().as_secs_f64());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let busy = (cpu_seconds(pid)? - cpu_before - idle * elapsed).max(0.0);
    let n = walls.len() as f64;

    samples.push(&format!("{peer}/cpu_ms"), busy / n * 1e3);
    samples.push(&format!("{peer}/wall_ms"), median(&walls) * 1e3);
    samples.push(
        &format!("{peer}/rss_mib"),
        status_bytes(pid, "VmRSS:")? as f64 / (1024.0 * 1024.0),
    );
    samples.push(
        &format!("{peer}/series"),
        prom::sample_lines(&body).count() as f64,
    );
    samples.push(&format!("{peer}/idle_ms_per_s"), idle * 1e3);
    samples.push(&format!("{peer}/scrapes"), n);
    Ok(body)
}

fn scrape(port: u16) -> Result<String> {
    let r = http::get(port, "/metrics")?;
    if r.status != 200 {
        bail!(
            "/metrics answered {}: {}",
            r.status,
            r.body.lines().next().unwrap_or("")
        );
    }
    Ok(r.body)
}

/// CPU seconds per wall second the process uses with nobody scraping it.
fn idle_cpu_rate(pid: u32) -> Result<f64> {
    let before = cpu_seconds(pid)?;
    let start = Instant::now();
    guard::sleep(IDLE_WINDOW)?;
    Ok((cpu_seconds(pid)? - before) / start.elapsed().as_secs_f64())
}

/// utime + stime of the whole process (all threads, live or exited), from /proc/<pid>/stat.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: state is the 3rd field, utime the 14th.
    let after_comm = stat.rsplit_once(')').context("odd /proc/<pid>/stat")?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / ticks_per_second)
}

/// A memory field of `/proc/<pid>/status` (`"VmRSS:"`, `"VmHWM:"`) in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(kib * 1024)
}
