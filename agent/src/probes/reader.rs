//! The reader thread: every `interval`, read the maps, resolve names, publish the
//! result for `/metrics`, and drop the map entries of cgroups that are gone.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use sonde_probe_abi::DiskKey;

use super::{cost::ProgramCost, load::Loaded, maps::Snapshot};
use crate::{
    config::Probe,
    enrich::{cgroups::CgroupPaths, disks::DiskNames},
};

/// One read of the probes with everything the metrics need to name it.
#[derive(Debug, Default)]
pub struct Reading {
    pub snapshot: Snapshot,
    /// cgroup id -> path, for the ids in `snapshot`.
    pub cgroup_paths: HashMap<u64, Arc<str>>,
    pub disk_names: HashMap<DiskKey, String>,
    pub costs: Vec<ProgramCost>,
    /// How long this read took (the agent's own cost, shown on /metrics).
    pub took: Duration,
}

impl Reading {
    /// The `cgroup` label for an id: its path, or `id:<n>` if the tree did not have it.
    pub fn cgroup_label(&self, id: u64) -> String {
        match self.cgroup_paths.get(&id) {
            Some(p) => p.to_string(),
            None => format!("id:{id}"),
        }
    }
}

pub type Latest = Arc<RwLock<Option<Arc<Reading>>>>;

/// Spawns the reader thread; it owns the loaded programs for the agent's lifetime.
pub fn spawn(
    loaded: Loaded,
    up: Vec<Probe>,
    interval: Duration,
    cgroups: Arc<Mutex<CgroupPaths>>,
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
                let (cgroup_paths, gone) = cgroups.lock().unwrap().resolve(snapshot.cgroups.keys().copied());
                if !gone.is_empty() {
                    tracing::debug!(count = gone.len(), "forgetting cgroups that are gone");
                    loaded.maps.forget(&gone);
                }
                let disk_names = snapshot.disks.iter().map(|(k, _)| (*k, disks.name(k.dev))).collect();
                let costs = super::cost::read(&loaded.ebpf, &up);
                let reading = Reading { snapshot, cgroup_paths, disk_names, costs, took: started.elapsed() };
                *latest.write().unwrap() = Some(Arc::new(reading));
                std::thread::sleep(interval.saturating_sub(started.elapsed()));
            }
        })
        .expect("spawning the probe reader thread");
}
