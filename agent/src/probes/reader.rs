//! The reader thread: every `interval`, read the maps, resolve names, publish the
//! result for `/metrics`, and drop the map entries of cgroups that are gone.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use prometheus_client::encoding::DescriptorEncoder;
use sonde_probe_abi::Hist;

use super::{
    cost::ProgramCost,
    load::Loaded,
    maps::{CgroupData, Snapshot, prometheus_buckets},
};
use crate::{
    config::Probe,
    enrich::{
        disks::DiskNames,
        workloads::{Workload, Workloads},
    },
    export::families::{self, HistogramSample, Labels},
};

/// One read of the probes with everything the metrics need to name it.
#[derive(Debug, Default)]
pub struct Reading {
    pub snapshot: Snapshot,
    /// cgroup id -> what ran there, for the ids in `snapshot`.
    pub workloads: HashMap<u64, Arc<Workload>>,
    /// Device number (kernel encoding) -> name, for every device in `snapshot`.
    pub disk_names: HashMap<u32, String>,
    pub costs: Vec<ProgramCost>,
    /// How long this read took (the agent's own cost, shown on /metrics).
    pub took: Duration,
}

impl Reading {
    /// One histogram family over every cgroup that has the histogram `pick` selects.
    pub fn encode_cgroup_histogram(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        pick: fn(&CgroupData) -> Option<&Hist>,
    ) -> fmt::Result {
        families::histogram(
            enc,
            name,
            help,
            self.snapshot.cgroups.iter().filter_map(|(id, d)| {
                let (sum, buckets) = prometheus_buckets(pick(d)?);
                Some(HistogramSample {
                    labels: self.labels(*id),
                    sum,
                    buckets,
                })
            }),
        )
    }

    /// The labels of a per-cgroup series: namespace, pod, container, container_id, cgroup.
    pub fn labels(&self, id: u64) -> Labels {
        match self.workloads.get(&id) {
            Some(w) => w.labels(),
            None => Workload::unnamed(id).labels(),
        }
    }
}

pub type Latest = Arc<RwLock<Option<Arc<Reading>>>>;

/// Spawns the reader thread; it owns the loaded programs for the agent's lifetime.
pub fn spawn(
    loaded: Loaded,
    up: Vec<Probe>,
    interval: Duration,
    workloads: Arc<Mutex<Workloads>>,
    mut disks: DiskNames,
    latest: Latest,
) {
    std::thread::Builder::new()
        .name("probe-reader".into())
        .spawn(move || {
            let mut loaded = loaded;
            loop {
                let started = Instant::now();
                let snapshot = loaded.maps.read();
                let (resolved, gone) = workloads
                    .lock()
                    .unwrap()
                    .resolve(snapshot.cgroups.keys().copied());
                if !gone.is_empty() {
                    tracing::debug!(
                        count = gone.len(),
                        "forgetting cgroups gone for longer than the grace period"
                    );
                    loaded.maps.forget(&gone);
                }
                let devs = snapshot.disks.iter().map(|(k, _)| k.dev);
                let cgroup_devs = snapshot
                    .cgroups
                    .values()
                    .flat_map(|d| d.io.iter().map(|(k, _)| k.dev));
                let disk_names = devs
                    .chain(cgroup_devs)
                    .map(|dev| (dev, disks.name(dev)))
                    .collect();
                let costs = super::cost::read(&loaded.ebpf, &up);
                let reading = Reading {
                    snapshot,
                    workloads: resolved,
                    disk_names,
                    costs,
                    took: started.elapsed(),
                };
                *latest.write().unwrap() = Some(Arc::new(reading));
                std::thread::sleep(interval.saturating_sub(started.elapsed()));
            }
        })
        .expect("spawning the probe reader thread");
}
