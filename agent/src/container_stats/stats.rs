//! One container's numbers, and the reader that fetches them file by file.

use std::{
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use tracing::debug;

use super::parse::{IoCounts, Pressure};

/// What was read for one cgroup. `None`: not available here, or the read failed
/// (and was counted). Units are the kernel's where they differ between v1 and v2
/// only by scale: CPU in nanoseconds, pressure in microseconds.
#[derive(Debug, Default)]
pub struct Stats {
    pub processes: Option<u64>,
    pub threads: Option<u64>,
    pub cpu_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    pub cfs: Option<Cfs>,
    pub memory_usage: Option<u64>,
    pub memory: Option<MemoryStat>,
    pub oom_kills: Option<u64>,
    pub io: Vec<DeviceIo>,
    pub pressure_cpu: Option<Pressure>,
    pub pressure_memory: Option<Pressure>,
    pub pressure_io: Option<Pressure>,
}

/// CFS bandwidth control: elapsed and throttled periods, throttled time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cfs {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// The memory.stat values cAdvisor derives its memory series from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryStat {
    pub rss: u64,
    pub cache: u64,
    pub inactive_file: u64,
}

impl Stats {
    /// cAdvisor's working set: usage less the inactive file cache (reclaimable first),
    /// floored at 0.
    pub fn working_set(&self) -> Option<u64> {
        Some(
            self.memory_usage?
                .saturating_sub(self.memory?.inactive_file),
        )
    }
}

/// One disk's I/O. v1 reads bytes and operations from two files, so either may be
/// missing.
#[derive(Debug)]
pub struct DeviceIo {
    pub device: Arc<str>,
    pub bytes: Option<(u64, u64)>,
    pub ops: Option<(u64, u64)>,
}

impl DeviceIo {
    pub fn v2(device: Arc<str>, c: IoCounts) -> DeviceIo {
        DeviceIo {
            device,
            bytes: Some((c.read_bytes, c.write_bytes)),
            ops: Some((c.reads, c.writes)),
        }
    }
}

/// Reads cgroup files for one scrape with a reused path and text buffer, so a
/// container costs its file reads and little else.
pub struct Reader<'a> {
    errors: &'a AtomicU64,
    /// The hierarchy the cgroups were found in: whether a cgroup still exists.
    home: &'a Path,
    path: PathBuf,
    text: String,
    /// The current cgroup disappeared (its container stopped) during its reads.
    pub gone: bool,
}

impl<'a> Reader<'a> {
    pub fn new(home: &'a Path, errors: &'a AtomicU64) -> Reader<'a> {
        Reader {
            errors,
            home,
            path: PathBuf::with_capacity(256),
            text: String::with_capacity(8 * 1024),
            gone: false,
        }
    }

    /// Starts on the next cgroup.
    pub fn begin(&mut self) {
        self.gone = false;
    }

    /// Reads `<base>/<rel>/<file>` and parses it. A failed read or a parse that says
    /// `None` is counted and logged, and the value skipped. Once the cgroup is gone,
    /// its remaining reads are skipped without counting: one stop, one error.
    pub fn value<T>(
        &mut self,
        base: &Path,
        rel: &str,
        file: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        if self.gone {
            return None;
        }
        self.path.as_mut_os_string().clear();
        self.path.push(base);
        self.path.push(rel.trim_start_matches('/'));
        self.path.push(file);
        self.text.clear();
        // Through `take`: cgroup files report size 0, and `File::read_to_string`
        // would stat and seek for a size hint first. Into the reused buffer it is
        // one read for the data and one for the end.
        if let Err(e) =
            File::open(&self.path).and_then(|f| f.take(u64::MAX).read_to_string(&mut self.text))
        {
            if vanished(&e) && !self.home.join(rel.trim_start_matches('/')).exists() {
                self.gone = true;
            }
            self.failed(&e);
            return None;
        }
        let parsed = parse(&self.text);
        if parsed.is_none() {
            self.failed(&"not in the format the kernel writes");
        }
        parsed
    }

    fn failed(&self, why: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        debug!(file = %self.path.display(), error = %why, "container stats: skipped a value");
    }
}

/// Errors a file gives when its cgroup was removed: before the open (not found),
/// or between open and read (ENODEV).
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV)
}
