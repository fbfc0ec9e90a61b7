//! The scrape: find the cgroups, name them, read them, write the families.

use std::{
    collections::HashSet,
    fmt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};
use tracing::warn;

use super::{
    devices::DeviceNames,
    encode::{self, Tracked},
    parse,
    stats::{Reader, Stats},
    v1, v2,
    walk::{self, Candidate, V1Roots},
};
use crate::{
    enrich::workloads::{Workload, Workloads},
    export::families::counter,
};

/// cAdvisor's per-container metrics, read from the cgroup files at scrape time.
pub struct ContainerStats {
    workloads: Arc<Mutex<Workloads>>,
    /// The cgroup v2 tree, if the host has one (pure v2, or hybrid's unified tree).
    v2_root: Option<PathBuf>,
    v1: V1Roots,
    max_containers: usize,
    devices: DeviceNames,
    /// cpuacct.stat's unit (USER_HZ) in nanoseconds.
    ns_per_tick: u64,
    /// The cgroups the last scrape served: over the cap, they keep their place.
    tracked: Mutex<HashSet<Arc<str>>>,
    read_errors: AtomicU64,
    refused: AtomicU64,
    unrecognized: AtomicU64,
    warned_cap: AtomicBool,
}

impl ContainerStats {
    /// `v1_root` holds the v1 hierarchies (`/sys/fs/cgroup`); the v2 tree is the one
    /// `workloads` resolves against. `sysfs` names block devices. At most
    /// `max_containers` pod and container cgroups are read per scrape.
    pub fn new(
        workloads: Arc<Mutex<Workloads>>,
        v1_root: PathBuf,
        sysfs: PathBuf,
        max_containers: usize,
    ) -> Self {
        let v2_root = lock(&workloads).cgroup_root().map(Path::to_path_buf);
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ns_per_tick = if ticks > 0 {
            1_000_000_000 / ticks as u64
        } else {
            10_000_000
        };
        ContainerStats {
            workloads,
            v2_root,
            v1: V1Roots::new(&v1_root),
            max_containers,
            devices: DeviceNames::new(sysfs),
            ns_per_tick,
            tracked: Mutex::new(HashSet::new()),
            read_errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            unrecognized: AtomicU64::new(0),
            warned_cap: AtomicBool::new(false),
        }
    }

    /// Every admitted cgroup's labels and values, now.
    fn scrape(&self) -> Vec<Tracked> {
        let Some((home, is_v2)) = walk::home(self.v2_root.as_deref(), &self.v1) else {
            return Vec::new();
        };
        let admitted = self.admit(walk::find(home, is_v2, &self.v1, &self.unrecognized));
        // Naming is in-memory lookups: one short hold for all, none across file reads.
        let workloads: Vec<Workload> = {
            let w = lock(&self.workloads);
            admitted.iter().map(|c| w.describe(c.rel.clone())).collect()
        };
        let mut reader = Reader::new(home, &self.read_errors);
        let mut out = Vec::with_capacity(admitted.len());
        for (c, workload) in admitted.iter().zip(workloads) {
            reader.begin();
            let mut stats = Stats {
                processes: reader.value(home, &c.rel, "cgroup.procs", parse::pids),
                ..Stats::default()
            };
            if is_v2 {
                v2::read(
                    &mut reader,
                    home,
                    &c.rel,
                    &c.layout,
                    &self.devices,
                    &mut stats,
                );
            }
            v1::read(
                &mut reader,
                &self.v1,
                &c.rel,
                &c.layout,
                &self.devices,
                self.ns_per_tick,
                &mut stats,
            );
            // Stopped while we read: left out, as if the scrape had come a moment later.
            if !reader.gone {
                out.push(Tracked { workload, stats });
            }
        }
        out
    }

    /// The candidates within the cap; counts the rest.
    fn admit(&self, found: Vec<Candidate>) -> Vec<Candidate> {
        let mut tracked = lock(&self.tracked);
        let admitted = if found.len() <= self.max_containers {
            found
        } else {
            let total = found.len();
            // Cgroups served before keep their place, so their series do not flap as
            // others come and go; newcomers get the room left, in path order.
            let (mut keep, new): (Vec<_>, Vec<_>) =
                found.into_iter().partition(|c| tracked.contains(&c.rel));
            keep.truncate(self.max_containers);
            let room = self.max_containers - keep.len();
            keep.extend(new.into_iter().take(room));
            keep.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
            self.refused
                .fetch_add((total - keep.len()) as u64, Ordering::Relaxed);
            if !self.warned_cap.swap(true, Ordering::Relaxed) {
                warn!(
                    max = self.max_containers,
                    found = total,
                    "more pod and container cgroups than --max-cgroups: the rest are left out of container_* \
                     metrics and counted in sonde_containers_refused_total"
                );
            }
            keep
        };
        tracked.clear();
        tracked.extend(admitted.iter().map(|c| c.rel.clone()));
        admitted
    }
}

impl Collector for ContainerStats {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let tracked = self.scrape();
        encode::families(&mut enc, &tracked)?;
        const NO_LABELS: [(&str, &str); 0] = [];
        counter(
            &mut enc,
            "sonde_container_stats_read_errors",
            "Container cgroup files that could not be read or parsed at scrape time; each skipped its values.",
            [(NO_LABELS, self.read_errors.load(Ordering::Relaxed) as f64)],
        )?;
        counter(
            &mut enc,
            "sonde_containers_refused",
            "Pod and container cgroups left out of container_* metrics by the cap on tracked cgroups, counted at every scrape.",
            [(NO_LABELS, self.refused.load(Ordering::Relaxed) as f64)],
        )?;
        counter(
            &mut enc,
            "sonde_cgroup_names_unrecognized",
            "Directories below kubepods whose names the kubelet does not write, skipped; counted at every scrape.",
            [(NO_LABELS, self.unrecognized.load(Ordering::Relaxed) as f64)],
        )
    }
}

impl fmt::Debug for ContainerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerStats")
            .field("v2_root", &self.v2_root)
            .field("v1", &self.v1)
            .field("max_containers", &self.max_containers)
            .field("read_errors", &self.read_errors)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock is used as is: a panic elsewhere cannot leave labels or the set
/// of served cgroups in a state worse than slightly stale.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
