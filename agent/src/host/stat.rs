//! `stat`: boot time, context switches, forks, interrupts and process counts from
//! /proc/stat.
//!
//! Hand-parsed: procfs's `KernelStats` has no interrupt total, and parses every CPU
//! line, which this collector does not need.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources, field};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Stat;

/// The values node_exporter serves. A line the kernel does not write stays 0, as in
/// node_exporter.
#[derive(Debug, Default, PartialEq)]
struct Values {
    boot_time: f64,
    context_switches: f64,
    forks: f64,
    interrupts: f64,
    procs_running: f64,
    procs_blocked: f64,
}

impl Collect for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let v = parse(&src.proc("stat")?)?;
        let one = |v: f64| [(NO_LABELS, v)];
        families::counter(
            enc,
            "node_intr",
            "Total number of interrupts serviced.",
            one(v.interrupts),
        )?;
        families::counter(
            enc,
            "node_context_switches",
            "Total number of context switches.",
            one(v.context_switches),
        )?;
        families::counter(enc, "node_forks", "Total number of forks.", one(v.forks))?;
        families::gauge(
            enc,
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            one(v.boot_time),
        )?;
        families::gauge(
            enc,
            "node_procs_running",
            "Number of processes in runnable state.",
            one(v.procs_running),
        )?;
        families::gauge(
            enc,
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            one(v.procs_blocked),
        )?;
        Ok(())
    }
}

fn parse(stat: &str) -> Result<Values, Error> {
    let mut v = Values::default();
    for line in stat.lines() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("btime") => &mut v.boot_time,
            Some("ctxt") => &mut v.context_switches,
            Some("processes") => &mut v.forks,
            // The first number is the total; per-IRQ counts follow.
            Some("intr") => &mut v.interrupts,
            Some("procs_running") => &mut v.procs_running,
            Some("procs_blocked") => &mut v.procs_blocked,
            _ => continue,
        };
        *slot = field::<u64>(fields.next(), "/proc/stat", line)? as f64;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_totals() {
        let stat = "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 205214 0 9 0\nctxt 387497\nbtime 1795299116\n\
                    processes 5878\nprocs_running 4\nprocs_blocked 1\nsoftirq 1 2 3\n";
        assert_eq!(
            parse(stat).unwrap(),
            Values {
                boot_time: 1795299116.0,
                context_switches: 387497.0,
                forks: 5878.0,
                interrupts: 205214.0,
                procs_running: 4.0,
                procs_blocked: 1.0,
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("ctxt many\n").is_err());
        assert!(parse("btime\n").is_err());
        assert_eq!(parse("").unwrap(), Values::default());
    }
}
