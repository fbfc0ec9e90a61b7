//! The cgroup files' text formats, v1 and v2 alike. Pure functions: `None` means
//! "not what the kernel writes", and the caller counts it and skips the value.

/// A single number (`memory.current`, `pids.current`, `cpuacct.usage`).
pub fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The values of `keys` in a flat keyed file of `key value` lines (`cpu.stat`,
/// `memory.stat`, `memory.events`, `memory.oom_control`, `cpuacct.stat`). Other
/// keys are ignored; every wanted key must be there with a number.
pub fn keyed<const N: usize>(text: &str, keys: [&str; N]) -> Option<[u64; N]> {
    let mut out = [None; N];
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        if let Some(i) = keys.iter().position(|k| *k == key) {
            out[i] = Some(value.trim().parse().ok()?);
        }
    }
    let mut values = [0; N];
    for (v, found) in values.iter_mut().zip(out) {
        *v = found?;
    }
    Some(values)
}

/// The number of processes in `cgroup.procs`: one PID per line.
pub fn pids(text: &str) -> Option<u64> {
    let mut n = 0;
    for line in text.lines() {
        line.parse::<u32>().ok()?;
        n += 1;
    }
    Some(n)
}

/// Stall totals from a `*.pressure` file, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pressure {
    pub some_us: u64,
    /// Older kernels have no `full` line for cpu.
    pub full_us: Option<u64>,
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` and an optional `full` line.
pub fn pressure(text: &str) -> Option<Pressure> {
    let (mut some, mut full) = (None, None);
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (kind, fields) = line.split_once(' ')?;
        let total = fields
            .split(' ')
            .find_map(|f| f.strip_prefix("total="))?
            .parse()
            .ok()?;
        match kind {
            "some" => some = Some(total),
            "full" => full = Some(total),
            _ => return None,
        }
    }
    Some(Pressure {
        some_us: some?,
        full_us: full,
    })
}

/// A block device as `major:minor`.
pub type Dev = (u32, u32);

fn dev(s: &str) -> Option<Dev> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Per-device I/O: bytes and operations, read and written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounts {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub reads: u64,
    pub writes: u64,
}

/// v2 `io.stat`: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0` per device.
/// Keys it does not know (discards, io.cost's) are ignored; a device line without
/// the four counters (io.stat can list a device with only io.cost fields) is skipped.
pub fn io_stat(text: &str) -> Option<Vec<(Dev, IoCounts)>> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = line.split(' ');
        let device = dev(fields.next()?)?;
        let mut seen = 0u8;
        let mut c = IoCounts::default();
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let slot = match key {
                "rbytes" => &mut c.read_bytes,
                "wbytes" => &mut c.write_bytes,
                "rios" => &mut c.reads,
                "wios" => &mut c.writes,
                _ => continue,
            };
            *slot = value.parse().ok()?;
            seen += 1;
        }
        if seen == 4 {
            out.push((device, c));
        }
    }
    Some(out)
}

/// v1 `blkio.throttle.io_service_bytes_recursive` or `..._io_serviced_recursive`:
/// `8:0 Read 123` lines (also Write, Sync, Async, Discard, Total) and a final
/// `Total 579`. Returns (device, read, write) per device.
pub fn blkio(text: &str) -> Option<Vec<(Dev, u64, u64)>> {
    let mut out: Vec<(Dev, u64, u64)> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = line.split(' ');
        let first = fields.next()?;
        let (Some(op), Some(value)) = (fields.next(), fields.next()) else {
            // Only the summary line has two fields.
            if first == "Total" {
                continue;
            }
            return None;
        };
        let device = dev(first)?;
        let value: u64 = value.parse().ok()?;
        let slot = match out.iter().position(|(d, ..)| *d == device) {
            Some(i) => i,
            None => {
                out.push((device, 0, 0));
                out.len() - 1
            }
        };
        match op {
            "Read" => out[slot].1 = value,
            "Write" => out[slot].2 = value,
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files() {
        let cpu =
            "usage_usec 2396158641\nuser_usec 1951279441\nsystem_usec 444879199\nnice_usec 0\n";
        assert_eq!(
            keyed(cpu, ["usage_usec", "system_usec"]),
            Some([2396158641, 444879199])
        );
        assert_eq!(
            keyed(cpu, ["usage_usec", "nr_periods"]),
            None,
            "a wanted key is missing"
        );
        // memory.stat has both `inactive_file` and `total_inactive_file` in v1.
        let v1 = "inactive_file 1\ntotal_inactive_file 2\n";
        assert_eq!(keyed(v1, ["total_inactive_file"]), Some([2]));
        for bad in [
            "usage_usec x\n",
            "usage_usec\n",
            "usage_usec -1\n",
            "",
            "\u{0}\u{ff}",
        ] {
            assert_eq!(keyed(bad, ["usage_usec"]), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_and_pids() {
        assert_eq!(number("123\n"), Some(123));
        assert_eq!(number("max\n"), None);
        assert_eq!(number(""), None);
        assert_eq!(pids("1\n22\n333\n"), Some(3));
        assert_eq!(pids(""), Some(0));
        assert_eq!(pids("1\nx\n"), None);
    }

    #[test]
    fn pressure_some_and_full() {
        let t = "some avg10=0.00 avg60=0.00 avg300=0.00 total=3863183\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=35\n";
        assert_eq!(
            pressure(t),
            Some(Pressure {
                some_us: 3863183,
                full_us: Some(35)
            })
        );
        assert_eq!(
            pressure("some total=7\n"),
            Some(Pressure {
                some_us: 7,
                full_us: None
            })
        );
        for bad in [
            "",
            "some\n",
            "full total=1\n",
            "some total=x\n",
            "some avg10=1\n",
            "other total=1\n",
        ] {
            assert_eq!(pressure(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn io_stat_lines() {
        let t =
            "254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n7:3 cost.vrate=100.00\n";
        let c = IoCounts {
            read_bytes: 4096,
            write_bytes: 8192,
            reads: 1,
            writes: 2,
        };
        assert_eq!(io_stat(t), Some(vec![((254, 0), c)]));
        assert_eq!(io_stat(""), Some(vec![]));
        for bad in [
            "x rbytes=1\n",
            "8:0 rbytes=x wbytes=1 rios=1 wios=1\n",
            "8 rbytes=1\n",
        ] {
            assert_eq!(io_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn blkio_lines() {
        let t = "8:0 Read 10\n8:0 Write 20\n8:0 Sync 30\n8:0 Total 30\n7:1 Write 5\nTotal 35\n";
        assert_eq!(blkio(t), Some(vec![((8, 0), 10, 20), ((7, 1), 0, 5)]));
        assert_eq!(blkio("Total 0\n"), Some(vec![]));
        for bad in ["8:0 Read x\n", "Read 1\n", "8:0\n", "x:0 Read 1\n"] {
            assert_eq!(blkio(bad), None, "{bad:?}");
        }
    }
}
