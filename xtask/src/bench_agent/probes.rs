//! Probe cost in the kernel: ns per event, i.e. run time over run count between two readings
//! taken around a workload (the kernel keeps both per program while BPF stats are on).
//!
//! - Sonde: from the agent's own `sonde_bpf_program_*` metrics (read again after the agent's
//!   next probe reading), under a pipe ping-pong (sched_switch, sched_wakeup), then under
//!   direct I/O on a loop device (block_rq_issue, block_rq_complete).
//! - bpftrace: the per-cgroup run-queue histogram Sonde replaces, and a near-empty program
//!   (this VM's floor cost per BPF run), each from `bpftool prog show` deltas of its own
//!   programs (found through bpftrace's fds) under the same ping-pong.
//!
//! The events in a window are the whole machine's, workload included: the cost per event is
//! an average over real events, whoever caused them.

use std::{
    collections::BTreeMap,
    fs,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{
    PROBE_INTERVAL,
    guard::{self, BpfStatsOn, LoopDevice, Running, TempDir},
    http, prom,
    stats::Samples,
};
use crate::step::say;

/// Two processes bouncing a byte over two pipes: two context switches and wakeups per trip.
/// Each side closes the ends it does not use, so the child sees EOF and exits if the parent
/// is stopped half-way.
const PING_PONG: &str = "\
import os, sys
n = int(sys.argv[1])
r1, w1 = os.pipe()
r2, w2 = os.pipe()
if os.fork() == 0:
    os.close(w1); os.close(r2)
    while os.read(r1, 1):
        os.write(w2, b'x')
    os._exit(0)
os.close(r1); os.close(w2)
for _ in range(n):
    os.write(w1, b'x'); os.read(r2, 1)
os.close(w1)
os.wait()
";
pub const ROUND_TRIPS: &str = "100000";
/// 4 KiB direct writes, then as many direct reads, on the loop device.
pub const DD_BLOCKS: &str = "20000";
const DISK_BYTES: u64 = 128 << 20;
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// bpftrace's per-cgroup run-queue latency histogram, what Sonde's runqueue probe replaces.
pub const HISTOGRAM: &str = "tracepoint:sched:sched_wakeup,tracepoint:sched:sched_wakeup_new { @qtime[args->pid] = nsecs; } tracepoint:sched:sched_switch { if (args->prev_state == 0) { @qtime[args->prev_pid] = nsecs; } $ns = @qtime[args->next_pid]; if ($ns) { @usecs[cgroup] = hist((nsecs - $ns) / 1000); } delete(@qtime[args->next_pid]); }";
/// A near-empty program on the same hook: the floor any BPF program pays per run here.
pub const FLOOR: &str = "tracepoint:sched:sched_switch { @c = count(); }";

pub const SCHED: [&str; 2] = ["sched_switch", "sched_wakeup"];
pub const BLOCK: [&str; 2] = ["block_rq_issue", "block_rq_complete"];

/// Samples keyed `<side>/<program>` (ns per event) and `<side>/<program>/events`, for the
/// sides `sonde`, `bpftrace` (the histogram) and `floor`.
pub fn bench(rounds: usize, dir: &TempDir) -> Result<Samples> {
    let disk = LoopDevice::over_sparse_file(&dir.path("disk.img"), DISK_BYTES)?;
    say(&format!(
        "probe cost: block I/O goes to {} (over a sparse file in {})",
        disk.dev,
        dir.path("").display()
    ));
    let mut samples = Samples::default();
    for round in 0..rounds {
        let progress =
            |what: &str| say(&format!("probe cost, round {}/{rounds}: {what}", round + 1));
        let sonde = |samples: &mut Samples| {
            progress("sonde-agent under ping-pong, then direct I/O");
            sonde_round(dir, &disk, samples)
        };
        let bpftrace = |samples: &mut Samples| {
            progress("bpftrace run-queue histogram under ping-pong");
            bpftrace_round(dir, "bpftrace", HISTOGRAM, &SCHED, samples)?;
            progress("bpftrace count() floor under ping-pong");
            bpftrace_round(dir, "floor", FLOOR, &SCHED[..1], samples)
        };
        if round % 2 == 0 {
            sonde(&mut samples)?;
            bpftrace(&mut samples)?;
        } else {
            bpftrace(&mut samples)?;
            sonde(&mut samples)?;
        }
    }
    Ok(samples)
}

fn sonde_round(dir: &TempDir, disk: &LoopDevice, samples: &mut Samples) -> Result<()> {
    let (_agent, port) = super::start_agent(dir, "agent-probes.log")?;
    let start = sonde_costs(port)?;
    ping_pong()?;
    let after_ping_pong = settled_sonde_costs(port)?;
    block_io(disk)?;
    let after_io = settled_sonde_costs(port)?;
    record(samples, "sonde", &start, &after_ping_pong, &SCHED)?;
    record(samples, "sonde", &after_ping_pong, &after_io, &BLOCK)
}

fn bpftrace_round(
    dir: &TempDir,
    side: &str,
    script: &str,
    programs: &[&str],
    samples: &mut Samples,
) -> Result<()> {
    // Declared first, dropped last: stats go back off only after bpftrace has stopped.
    let _stats = BpfStatsOn::enable()?;
    let log = format!("bpftrace-{side}.log");
    let mut cmd = Command::new("bpftrace");
    cmd.args(["-e", script])
        .stdout(Stdio::null())
        .stderr(dir.log(&log)?);
    let mut bpftrace = Running::spawn("bpftrace", cmd)?;
    let ids = wait_attached(&mut bpftrace, programs, || dir.tail(&log))?;
    let before = bpftool_costs(&ids)?;
    ping_pong()?;
    let after = bpftool_costs(&ids)?;
    record(samples, side, &before, &after, programs)
}

/// Run time (ns) and run count of one BPF program, as the kernel keeps them.
#[derive(Clone, Copy, Default)]
struct Cost {
    ns: f64,
    runs: f64,
}

type Costs = BTreeMap<String, Cost>;

fn record(
    samples: &mut Samples,
    side: &str,
    before: &Costs,
    after: &Costs,
    programs: &[&str],
) -> Result<()> {
    for program in programs {
        let (Some(a), Some(b)) = (before.get(*program), after.get(*program)) else {
            bail!("{side}: no cost numbers for {program}");
        };
        let runs = b.runs - a.runs;
        if runs <= 0.0 {
            bail!("{side}: {program} did not run during the workload");
        }
        samples.push(&format!("{side}/{program}"), (b.ns - a.ns) / runs);
        samples.push(&format!("{side}/{program}/events"), runs);
    }
    Ok(())
}

/// The agent's cost metrics once its next probe reading has happened.
fn settled_sonde_costs(port: u16) -> Result<Costs> {
    guard::sleep(PROBE_INTERVAL * 2)?;
    sonde_costs(port)
}

fn sonde_costs(port: u16) -> Result<Costs> {
    let body = http::get(port, "/metrics")?.body;
    let mut costs = Costs::new();
    for s in prom::samples(&body, "sonde_bpf_program_run_seconds_total") {
        if let Some(program) = prom::label(s.labels, "program") {
            costs.entry(program.to_string()).or_default().ns = s.value * 1e9;
        }
    }
    for s in prom::samples(&body, "sonde_bpf_program_runs_total") {
        if let Some(program) = prom::label(s.labels, "program") {
            costs.entry(program.to_string()).or_default().runs = s.value;
        }
    }
    Ok(costs)
}

/// Waits until bpftrace's programs are loaded and sched_switch has run (so it is attached),
/// then a second more for the rest; returns the program ids bpftrace holds.
fn wait_attached(
    bpftrace: &mut Running,
    programs: &[&str],
    log: impl Fn() -> String,
) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    guard::wait_until(
        "bpftrace to attach its programs",
        Duration::from_secs(60),
        || {
            if bpftrace.exited()? {
                bail!("bpftrace exited; its log ends:\n{}", log());
            }
            ids = prog_ids(bpftrace.pid());
            let Ok(costs) = bpftool_costs(&ids) else {
                return Ok(false);
            };
            Ok(programs.iter().all(|p| costs.contains_key(*p))
                && costs.get("sched_switch").is_some_and(|c| c.runs > 0.0))
        },
    )?;
    guard::sleep(Duration::from_secs(1))?;
    Ok(ids)
}

/// Ids of the BPF programs process `pid` holds fds to (from /proc/<pid>/fdinfo).
fn prog_ids(pid: u32) -> Vec<u32> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = fds
        .flatten()
        .filter_map(|fd| fs::read_to_string(fd.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `bpftool prog show id N -j` for each tracepoint program in `ids`, by program name.
fn bpftool_costs(ids: &[u32]) -> Result<Costs> {
    let mut costs = Costs::new();
    for id in ids {
        let out = Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string(), "-j"])
            .output()?;
        if !out.status.success() {
            bail!(
                "bpftool prog show id {id}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let json = String::from_utf8_lossy(&out.stdout);
        if json_field(&json, "type") != Some("tracepoint") {
            continue;
        }
        let number = |key: &str| -> Result<f64> {
            json_field(&json, key)
                .and_then(|v| v.parse().ok())
                .with_context(|| {
                    format!("bpftool shows no {key} for program {id} (are BPF stats on?)")
                })
        };
        let name = json_field(&json, "name").context("bpftool shows no name")?;
        costs.insert(
            name.to_string(),
            Cost {
                ns: number("run_time_ns")?,
                runs: number("run_cnt")?,
            },
        );
    }
    Ok(costs)
}

/// A scalar field of bpftool's one flat JSON object (the fields read here are never nested).
fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[start..].trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

fn ping_pong() -> Result<()> {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", PING_PONG, ROUND_TRIPS]);
    guard::run_bounded("python3 pipe ping-pong", cmd, WORKLOAD_TIMEOUT)?;
    Ok(())
}

fn block_io(disk: &LoopDevice) -> Result<()> {
    let dd = |from: &str, to: &str, flag: &str| -> Result<()> {
        let mut cmd = Command::new("dd");
        cmd.args([&format!("if={from}"), &format!("of={to}"), "bs=4k"])
            .args([&format!("count={DD_BLOCKS}"), flag, "status=none"]);
        guard::run_bounded("dd", cmd, WORKLOAD_TIMEOUT)?;
        Ok(())
    };
    dd("/dev/zero", &disk.dev, "oflag=direct")?;
    dd(&disk.dev, "/dev/null", "iflag=direct")
}

#[cfg(test)]
mod tests {
    use super::json_field;

    #[test]
    fn reads_bpftool_fields() {
        let json = r#"{"id":249,"type":"tracepoint","name":"sched_switch","run_time_ns":19485992,"run_cnt":14828,"map_ids":[188,189]}"#;
        assert_eq!(json_field(json, "type"), Some("tracepoint"));
        assert_eq!(json_field(json, "name"), Some("sched_switch"));
        assert_eq!(json_field(json, "run_cnt"), Some("14828"));
        assert_eq!(json_field(json, "bytes_jited"), None);
    }
}
