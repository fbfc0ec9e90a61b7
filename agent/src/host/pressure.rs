//! `pressure`: total stall time from /proc/pressure/{cpu,io,memory} (PSI, Linux
//! 4.20+ with CONFIG_PSI). Without PSI the collector reports failure, as
//! node_exporter does.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Pressure;

/// Stall totals in seconds: the `some` line, then the `full` line if present.
type Totals = (f64, Option<f64>);

impl Collect for Pressure {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let (cpu, _) = parse("cpu", &src.proc("pressure/cpu")?)?;
        let (io, io_full) = parse("io", &src.proc("pressure/io")?)?;
        let (memory, memory_full) = parse("memory", &src.proc("pressure/memory")?)?;
        let one = |v: f64| [(NO_LABELS, v)];
        families::counter(
            enc,
            "node_pressure_cpu_waiting_seconds",
            "Total time in seconds that processes have waited for CPU time",
            one(cpu),
        )?;
        families::counter(
            enc,
            "node_pressure_io_waiting_seconds",
            "Total time in seconds that processes have waited due to IO congestion",
            one(io),
        )?;
        families::counter(
            enc,
            "node_pressure_io_stalled_seconds",
            "Total time in seconds no process could make progress due to IO congestion",
            io_full.map(|v| (NO_LABELS, v)),
        )?;
        families::counter(
            enc,
            "node_pressure_memory_waiting_seconds",
            "Total time in seconds that processes have waited for memory",
            one(memory),
        )?;
        families::counter(
            enc,
            "node_pressure_memory_stalled_seconds",
            "Total time in seconds no process could make progress due to memory congestion",
            memory_full.map(|v| (NO_LABELS, v)),
        )?;
        Ok(())
    }
}

/// procfs's record parser does the line; the file layout (a `full` line that older
/// kernels leave out for cpu) is ours to handle.
fn parse(resource: &str, text: &str) -> Result<Totals, Error> {
    let (mut some, mut full) = (None, None);
    let bad = |line: &str| Error::parse(format!("/proc/pressure/{resource}: bad line {line:?}"));
    for line in text.lines().filter(|l| !l.is_empty()) {
        // procfs slices past "some "/"full " unchecked: a bare "some" would panic there.
        if !(line.starts_with("some ") || line.starts_with("full ")) {
            return Err(bad(line));
        }
        let record = procfs::parse_pressure_record(line).map_err(|_| bad(line))?;
        // microseconds; divided as node_exporter divides, so values match to the bit
        let seconds = record.total as f64 / 1000.0 / 1000.0;
        if line.starts_with("some") {
            some = Some(seconds);
        } else {
            full = Some(seconds);
        }
    }
    let some =
        some.ok_or_else(|| Error::parse(format!("/proc/pressure/{resource}: no \"some\" line")))?;
    Ok((some, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_some_and_full_totals() {
        let io = "some avg10=0.00 avg60=0.00 avg300=0.00 total=3863183\n\
                  full avg10=0.00 avg60=0.00 avg300=0.00 total=3534411\n";
        assert_eq!(parse("io", io).unwrap(), (3.863183, Some(3.534411)));
        let old_cpu = "some avg10=0.00 avg60=0.00 avg300=0.00 total=13726593\n";
        assert_eq!(
            parse("cpu", old_cpu).unwrap(),
            (13726593.0 / 1000.0 / 1000.0, None)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "some total=x\n",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
            "nonsense\n",
            "some",
            "full\n",
        ] {
            assert!(parse("io", bad).is_err(), "{bad:?}");
        }
    }
}
