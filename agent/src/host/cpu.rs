//! `cpu`: seconds each CPU spent in each mode, from the `cpuN` lines of /proc/stat.
//!
//! Hand-parsed: procfs's `KernelStats` drops the number of each `cpuN` line, so an
//! offline CPU would shift the `cpu` label of every CPU after it.
//! Not served: node_cpu_{core,package}_throttles_total (thermal_throttle in sysfs, a
//! few files per CPU per scrape) and node_cpu_info (off by default in node_exporter).

use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::DescriptorEncoder;
use tracing::debug;

use super::source::{Collect, Error, Sources, field};
use crate::export::families;

/// Seconds per mode in /proc/stat's order: user nice system idle iowait irq softirq
/// steal guest guest_nice.
type Times = [f64; 10];

const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
const IDLE: usize = 3;
const GUEST: usize = 8;
/// An idle counter that drops by this much means the CPU was hot-plugged
/// (node_exporter's rule): start that CPU afresh.
const JUMP_BACK_SECONDS: f64 = 3.0;
/// More CPUs than Linux supports: a garbage line, not a reason to allocate.
const MAX_CPUS: usize = 1 << 16;

#[derive(Debug)]
pub(super) struct Cpu {
    user_hz: f64,
    /// What the last scrape served, by CPU number. Counters must not go backwards,
    /// and iowait does on some kernels; like node_exporter we hold the old value.
    served: Mutex<Vec<Times>>,
}

impl Cpu {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Cpu {
            user_hz: if hz > 0 { hz as f64 } else { 100.0 },
            served: Mutex::new(Vec::new()),
        }
    }
}

impl Collect for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let now = parse(&src.proc("stat")?, self.user_hz)?;
        let mut served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        hold_monotonic(&mut served, &now);

        let ids: Vec<String> = (0..served.len()).map(|i| i.to_string()).collect();
        let per_cpu = || served.iter().zip(&ids);
        families::counter(
            enc,
            "node_cpu_seconds",
            "Seconds the CPUs spent in each mode.",
            per_cpu().flat_map(|(t, id)| {
                MODES
                    .iter()
                    .zip(t)
                    .map(move |(mode, v)| ([("cpu", id.as_str()), ("mode", *mode)], *v))
            }),
        )?;
        // Guest time is also counted in user and nice; node_exporter serves it apart.
        families::counter(
            enc,
            "node_cpu_guest_seconds",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            per_cpu().flat_map(|(t, id)| {
                ["user", "nice"]
                    .into_iter()
                    .zip(&t[GUEST..])
                    .map(move |(mode, v)| ([("cpu", id.as_str()), ("mode", mode)], *v))
            }),
        )?;
        Ok(())
    }
}

/// The `cpuN` lines, indexed by N. A CPU missing from the file (offline) is all
/// zeros, as in node_exporter.
fn parse(stat: &str, user_hz: f64) -> Result<Vec<Times>, Error> {
    let mut cpus: Vec<Times> = Vec::new();
    for line in stat.lines() {
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        let mut fields = rest.split_ascii_whitespace();
        if rest.starts_with([' ', '\t']) {
            continue; // the "cpu" line: all CPUs together
        }
        let id: usize = field(fields.next(), "/proc/stat", line)?;
        if id >= MAX_CPUS {
            return Err(Error::parse(format!("/proc/stat: bad line {line:?}")));
        }
        let mut times = [0.0; 10];
        let mut parsed = 0;
        for (slot, value) in times.iter_mut().zip(fields) {
            *slot = field::<u64>(Some(value), "/proc/stat", line)? as f64 / user_hz;
            parsed += 1;
        }
        if parsed == 0 {
            return Err(Error::parse(format!("/proc/stat: bad line {line:?}")));
        }
        if cpus.len() <= id {
            cpus.resize(id + 1, [0.0; 10]);
        }
        cpus[id] = times;
    }
    Ok(cpus)
}

/// Moves `served` to `now`, never backwards (node_exporter's `updateCPUStats`).
fn hold_monotonic(served: &mut Vec<Times>, now: &[Times]) {
    if served.len() != now.len() {
        *served = vec![[0.0; 10]; now.len()];
    }
    for (cpu, (old, new)) in served.iter_mut().zip(now).enumerate() {
        if old[IDLE] - new[IDLE] >= JUMP_BACK_SECONDS {
            debug!(
                cpu,
                old = old[IDLE],
                new = new[IDLE],
                "CPU idle counter jumped backwards, possible hotplug; resetting"
            );
            *old = [0.0; 10];
        }
        for (mode, (o, n)) in old.iter_mut().zip(new).enumerate() {
            if *n >= *o {
                *o = *n;
            } else {
                debug!(
                    cpu,
                    mode,
                    old = *o,
                    new = *n,
                    "CPU counter jumped backwards"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  7549 0 4191 40710 447 0 46 38 0 0
cpu0 3784 0 1783 20817 62 0 4 15 0 0
cpu2 3765 1 2408 19893 385 0 42 23 7 3
intr 205214 0 9
ctxt 387497
";

    #[test]
    fn parses_per_cpu_lines_by_number() {
        let cpus = parse(STAT, 100.0).unwrap();
        assert_eq!(cpus.len(), 3);
        assert_eq!(cpus[0][0], 37.84);
        assert_eq!(cpus[0][IDLE], 208.17);
        assert_eq!(
            cpus[1], [0.0; 10],
            "offline cpu1 is zeros, cpu2 keeps its label"
        );
        assert_eq!(cpus[2][GUEST], 0.07);
        assert_eq!(cpus[2][GUEST + 1], 0.03);
    }

    #[test]
    fn short_lines_fill_with_zero() {
        let cpus = parse("cpu0 1 2 3 4\n", 100.0).unwrap();
        assert_eq!(
            cpus[0],
            [0.01, 0.02, 0.03, 0.04, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "cpu0 x 2\n",
            "cpu0\n",
            "cpuX 1 2\n",
            "cpu99999999999 1\n",
            "cpu1000000 1\n",
        ] {
            assert!(parse(bad, 100.0).is_err(), "{bad:?}");
        }
        assert!(parse("", 100.0).unwrap().is_empty());
    }

    #[test]
    fn counters_never_go_backwards() {
        let mut served = Vec::new();
        let mut t = [0.0; 10];
        t[IDLE] = 100.0;
        t[4] = 5.0;
        hold_monotonic(&mut served, &[t]);
        let mut dip = t;
        dip[4] = 4.0; // iowait went back a little
        dip[IDLE] = 99.0;
        hold_monotonic(&mut served, &[dip]);
        assert_eq!(served[0][4], 5.0);
        assert_eq!(served[0][IDLE], 100.0);
        let mut hotplug = [0.0; 10];
        hotplug[IDLE] = 1.0;
        hold_monotonic(&mut served, &[hotplug]);
        assert_eq!(served[0], hotplug, "idle dropped by >= 3s: start afresh");
    }
}
