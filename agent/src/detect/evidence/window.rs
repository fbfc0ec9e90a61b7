//! One window between two probe readings: what changed in it, per cgroup and
//! per disk, and how to name a cgroup in a problem.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use sonde_probe_abi::{CgroupCounters, Hist};

use super::quantile::{add, delta};
use crate::{detect::problem::PodRef, enrich::workloads::Workload, probes::reader::Reading};

/// Block I/O operations judged for latency: reads and writes. Flushes and
/// discards are slow by nature on many devices and say little about health.
const JUDGED_OPS: [u32; 2] = [0, 1];

pub(super) struct Window<'a> {
    pub prev: &'a Reading,
    pub cur: &'a Reading,
    pub start: Instant,
    pub end: Instant,
}

impl Window<'_> {
    pub fn seconds(&self) -> f64 {
        self.end
            .saturating_duration_since(self.start)
            .as_secs_f64()
            .max(1e-3)
    }

    /// Per cgroup, how much a counter grew (only cgroups where it did). A cgroup
    /// new in this window counts from zero (its map entry appeared with its first
    /// event); a counter that went down was reset and counts from zero too.
    pub fn counter_deltas(&self, pick: fn(&CgroupCounters) -> u64) -> Vec<(u64, u64)> {
        self.cur
            .snapshot
            .cgroups
            .iter()
            .filter_map(|(id, d)| {
                let now = pick(d.counters.as_ref()?);
                let before = self
                    .prev
                    .snapshot
                    .cgroups
                    .get(id)
                    .and_then(|p| p.counters.as_ref())
                    .map(pick)
                    .filter(|&b| b <= now)
                    .unwrap_or(0);
                (now > before).then_some((*id, now - before))
            })
            .collect()
    }

    /// Per cgroup, the run-queue latency observed in this window.
    pub fn runqueue_deltas(&self) -> Vec<(u64, Hist)> {
        self.cur
            .snapshot
            .cgroups
            .iter()
            .filter_map(|(id, d)| {
                let prev = self
                    .prev
                    .snapshot
                    .cgroups
                    .get(id)
                    .and_then(|p| p.runqueue.as_ref());
                Some((*id, delta(d.runqueue.as_ref()?, prev)))
            })
            .collect()
    }

    /// Per disk (device number), the latency of its reads and writes in this window.
    pub fn disk_deltas(&self) -> BTreeMap<u32, Hist> {
        let prev: HashMap<_, _> = self
            .prev
            .snapshot
            .disks
            .iter()
            .map(|(k, s)| (*k, &s.latency))
            .collect();
        let mut out: BTreeMap<u32, Hist> = BTreeMap::new();
        for (key, stats) in &self.cur.snapshot.disks {
            if !JUDGED_OPS.contains(&key.op) {
                continue;
            }
            let d = delta(&stats.latency, prev.get(key).copied());
            add(out.entry(key.dev).or_insert(Hist::ZERO), &d);
        }
        out
    }

    /// Per cgroup, the bytes of block I/O it completed on `dev` in this window.
    pub fn io_bytes(&self, dev: u32) -> Vec<(u64, u64)> {
        let on_dev = |io: &[(sonde_probe_abi::DiskKey, sonde_probe_abi::CgroupIo)]| -> (u64, bool) {
            let mut bytes = 0;
            let mut any = false;
            for (_, v) in io.iter().filter(|(k, _)| k.dev == dev) {
                bytes += v.bytes;
                any = true;
            }
            (bytes, any)
        };
        self.cur
            .snapshot
            .cgroups
            .iter()
            .filter_map(|(id, d)| {
                let (now, any) = on_dev(&d.io);
                if !any {
                    return None;
                }
                let before = self
                    .prev
                    .snapshot
                    .cgroups
                    .get(id)
                    .map(|p| on_dev(&p.io).0)
                    .filter(|&b| b <= now)
                    .unwrap_or(0);
                (now > before).then_some((*id, now - before))
            })
            .collect()
    }

    pub fn disk_name(&self, dev: u32) -> String {
        self.cur.disk_names.get(&dev).cloned().unwrap_or_else(|| {
            let (major, minor) = crate::enrich::disks::split_dev(dev);
            format!("{major}:{minor}")
        })
    }

    /// How a message names the cgroup, and its pod if it is one.
    pub fn who(&self, id: u64) -> (String, Option<PodRef>) {
        match self.cur.workloads.get(&id) {
            Some(w) => describe(w),
            None => describe(&Workload::unnamed(id)),
        }
    }
}

/// "pod ns/name container c" (or "cgroup /path") and the pod reference.
pub(super) fn describe(w: &Workload) -> (String, Option<PodRef>) {
    if w.pod.is_empty() {
        return (format!("cgroup {}", w.cgroup), None);
    }
    let mut name = format!("pod {}/{}", w.namespace, w.pod);
    if !w.container.is_empty() {
        name.push_str(&format!(" container {}", w.container));
    }
    let pod = PodRef {
        namespace: w.namespace.clone(),
        pod: w.pod.clone(),
        container: w.container.clone(),
        uid: String::new(),
    };
    (name, Some(pod))
}

/// The first `n` of `ranked` (already ordered, worst first) as "name value"
/// joined by ", ", and their pods (without repeats).
pub(super) fn top<T>(
    w: &Window,
    ranked: &[(u64, T)],
    n: usize,
    show: impl Fn(&T) -> String,
) -> (String, Vec<PodRef>) {
    let mut names = Vec::new();
    let mut pods: Vec<PodRef> = Vec::new();
    for (id, v) in ranked.iter().take(n) {
        let (name, pod) = w.who(*id);
        names.push(format!("{name} {}", show(v)));
        if let Some(p) = pod
            && !pods.contains(&p)
        {
            pods.push(p);
        }
    }
    (names.join(", "), pods)
}

#[cfg(test)]
pub(super) mod testing {
    //! Synthetic readings for the detectors' tests.

    use std::{sync::Arc, time::Duration};

    use sonde_probe_abi::{CgroupIo, DiskKey, DiskStats};

    use super::*;
    use crate::probes::maps::CgroupData;

    pub fn workload(id: u64, pod: &str) -> Arc<Workload> {
        Arc::new(Workload {
            cgroup: Arc::from(format!("/kubepods/{id}").as_str()),
            namespace: if pod.is_empty() {
                String::new()
            } else {
                "default".into()
            },
            pod: pod.into(),
            container: if pod.is_empty() {
                String::new()
            } else {
                "app".into()
            },
            ..Workload::default()
        })
    }

    /// A histogram with `n` samples in the bucket holding `ns`.
    pub fn hist_at(ns: u64, n: u64) -> Hist {
        let mut h = Hist::ZERO;
        h.buckets[sonde_probe_abi::bucket_of(ns)] = n;
        h.sum_ns = ns * n;
        h
    }

    #[derive(Default)]
    pub struct Builder(pub Reading);

    impl Builder {
        fn cg(&mut self, id: u64, pod: &str) -> &mut CgroupData {
            self.0.workloads.insert(id, workload(id, pod));
            self.0.snapshot.cgroups.entry(id).or_default()
        }
        pub fn retransmits(mut self, id: u64, pod: &str, n: u64) -> Self {
            let c = self.cg(id, pod);
            c.counters = Some(CgroupCounters {
                tcp_retransmits: n,
                ..CgroupCounters::default()
            });
            self
        }
        pub fn runqueue(mut self, id: u64, pod: &str, h: Hist) -> Self {
            self.cg(id, pod).runqueue = Some(h);
            self
        }
        pub fn disk(mut self, dev: u32, name: &str, op: u32, h: Hist) -> Self {
            self.0.disk_names.insert(dev, name.into());
            let requests = h.buckets.iter().sum();
            self.0.snapshot.disks.push((
                DiskKey { dev, op },
                DiskStats {
                    latency: h,
                    requests,
                    bytes: 0,
                },
            ));
            self
        }
        pub fn io(mut self, id: u64, pod: &str, dev: u32, bytes: u64) -> Self {
            self.cg(id, pod)
                .io
                .push((DiskKey { dev, op: 1 }, CgroupIo { requests: 1, bytes }));
            self
        }
        pub fn build(self) -> Reading {
            self.0
        }
    }

    /// A window of `secs` seconds starting at `t0 + offset`.
    pub fn window<'a>(
        prev: &'a Reading,
        cur: &'a Reading,
        t0: Instant,
        offset: u64,
        secs: u64,
    ) -> Window<'a> {
        Window {
            prev,
            cur,
            start: t0 + Duration::from_secs(offset),
            end: t0 + Duration::from_secs(offset + secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{testing::*, *};

    #[test]
    fn deltas_per_cgroup_and_disk() {
        let prev = Builder::default()
            .retransmits(1, "a", 10)
            .retransmits(2, "b", 50)
            .disk(8, "sda", 0, hist_at(1000, 5))
            .disk(8, "sda", 2, hist_at(1000, 5))
            .io(1, "a", 8, 100)
            .build();
        let cur = Builder::default()
            .retransmits(1, "a", 40)
            .retransmits(2, "b", 20) // reset: counts from zero
            .retransmits(3, "", 7) // new
            .disk(8, "sda", 0, hist_at(1000, 9))
            .disk(8, "sda", 1, hist_at(1000, 1))
            .disk(8, "sda", 2, hist_at(1000, 100)) // flushes are not judged
            .io(1, "a", 8, 300)
            .io(3, "", 8, 50)
            .build();
        let t0 = Instant::now();
        let w = window(&prev, &cur, t0, 0, 30);
        assert_eq!(w.seconds(), 30.0);
        let mut r = w.counter_deltas(|c| c.tcp_retransmits);
        r.sort();
        assert_eq!(r, [(1, 30), (2, 20), (3, 7)]);
        let d = w.disk_deltas();
        assert_eq!(super::super::quantile::count(&d[&8]), 4 + 1);
        let mut io = w.io_bytes(8);
        io.sort();
        assert_eq!(io, [(1, 200), (3, 50)]);
        assert_eq!(w.disk_name(8), "sda");
        assert_eq!(w.who(1).0, "pod default/a container app");
        assert_eq!(w.who(3).0, "cgroup /kubepods/3");
        assert_eq!(w.who(99).0, "cgroup id:99");
    }
}
