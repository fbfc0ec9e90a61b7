//! Reading the kernel's per-CPU aggregates into a [`Snapshot`], on the agent's own
//! schedule, and forgetting cgroups that no longer exist.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap, RingBuf},
};
use sonde_probe_abi::{
    CgroupCounters, CgroupIo, CgroupIoKey, DiskKey, DiskStats, HIST_BUCKETS, Hist, LOSS_KINDS,
    bucket_upper_ns,
};

/// What one read of the maps found: totals since load, summed over CPUs.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub cgroups: BTreeMap<u64, CgroupData>,
    pub disks: Vec<(DiskKey, DiskStats)>,
    pub lost: [u64; LOSS_KINDS],
}

#[derive(Clone, Debug, Default)]
pub struct CgroupData {
    pub runqueue: Option<Hist>,
    pub connect: Option<Hist>,
    pub counters: Option<CgroupCounters>,
    /// Block I/O this cgroup submitted, by device and operation.
    pub io: Vec<(DiskKey, CgroupIo)>,
}

pub struct Maps {
    runqueue: PerCpuHashMap<MapData, u64, Hist>,
    connect: PerCpuHashMap<MapData, u64, Hist>,
    counters: PerCpuHashMap<MapData, u64, CgroupCounters>,
    disks: PerCpuHashMap<MapData, DiskKey, DiskStats>,
    cgroup_io: PerCpuHashMap<MapData, CgroupIoKey, CgroupIo>,
    lost: PerCpuArray<MapData, u64>,
    /// Taken once by the OOM event reader.
    pub events: Option<RingBuf<MapData>>,
}

impl Maps {
    pub fn take(ebpf: &mut Ebpf) -> Result<Maps> {
        fn map<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
            ebpf: &mut Ebpf,
            name: &str,
        ) -> Result<T> {
            let m = ebpf
                .take_map(name)
                .with_context(|| format!("map {name} missing from the eBPF object"))?;
            T::try_from(m).with_context(|| format!("map {name}"))
        }
        Ok(Maps {
            runqueue: map(ebpf, "RUNQ_HIST")?,
            connect: map(ebpf, "CONNECT_HIST")?,
            counters: map(ebpf, "CGROUP_COUNTERS")?,
            disks: map(ebpf, "DISK_STATS")?,
            cgroup_io: map(ebpf, "CGROUP_IO")?,
            lost: map(ebpf, "LOST")?,
            events: Some(map(ebpf, "EVENTS")?),
        })
    }

    pub fn read(&self) -> Snapshot {
        let mut snap = Snapshot::default();
        for (id, per_cpu) in self.runqueue.iter().filter_map(Result::ok) {
            snap.cgroups.entry(id).or_default().runqueue = Some(sum_hists(per_cpu.iter()));
        }
        for (id, per_cpu) in self.connect.iter().filter_map(Result::ok) {
            snap.cgroups.entry(id).or_default().connect = Some(sum_hists(per_cpu.iter()));
        }
        for (id, per_cpu) in self.counters.iter().filter_map(Result::ok) {
            let mut c = CgroupCounters::default();
            for x in per_cpu.iter() {
                c.oom_kills += x.oom_kills;
                c.tcp_retransmits += x.tcp_retransmits;
                c.tcp_resets_sent += x.tcp_resets_sent;
                c.tcp_connects += x.tcp_connects;
                c.tcp_connect_failures += x.tcp_connect_failures;
            }
            snap.cgroups.entry(id).or_default().counters = Some(c);
        }
        for (key, per_cpu) in self.cgroup_io.iter().filter_map(Result::ok) {
            let mut io = CgroupIo::default();
            for x in per_cpu.iter() {
                io.requests += x.requests;
                io.bytes += x.bytes;
            }
            snap.cgroups
                .entry(key.cgroup_id)
                .or_default()
                .io
                .push((key.disk, io));
        }
        for (key, per_cpu) in self.disks.iter().filter_map(Result::ok) {
            let mut d = DiskStats::ZERO;
            for x in per_cpu.iter() {
                add_hist(&mut d.latency, &x.latency);
                d.requests += x.requests;
                d.bytes += x.bytes;
            }
            snap.disks.push((key, d));
        }
        for (i, slot) in snap.lost.iter_mut().enumerate() {
            if let Ok(per_cpu) = self.lost.get(&(i as u32), 0) {
                *slot = per_cpu.iter().sum();
            }
        }
        snap
    }

    /// Drops the entries of cgroups that are gone, so the maps never fill with the dead.
    pub fn forget(&mut self, dead: &HashSet<u64>) {
        for id in dead {
            let _ = self.runqueue.remove(id);
            let _ = self.connect.remove(id);
            let _ = self.counters.remove(id);
        }
        let io_keys: Vec<CgroupIoKey> = self
            .cgroup_io
            .keys()
            .filter_map(Result::ok)
            .filter(|k| dead.contains(&k.cgroup_id))
            .collect();
        for key in &io_keys {
            let _ = self.cgroup_io.remove(key);
        }
    }
}

fn add_hist(into: &mut Hist, h: &Hist) {
    for (a, b) in into.buckets.iter_mut().zip(h.buckets.iter()) {
        *a += b;
    }
    into.sum_ns += h.sum_ns;
}

fn sum_hists<'a>(hists: impl Iterator<Item = &'a Hist>) -> Hist {
    let mut total = Hist::ZERO;
    hists.for_each(|h| add_hist(&mut total, h));
    total
}

/// Prometheus buckets for a kernel histogram: factor-4 steps from 1.024 µs to
/// 17.2 s (le = 2^10 .. 2^34 ns), then +Inf. Finer kernel buckets fold into the
/// next exported bound, so the counts stay exact at each `le`.
pub fn prometheus_buckets(h: &Hist) -> (f64, Vec<(f64, u64)>) {
    const FIRST: usize = 10;
    const LAST: usize = 34;
    const _: () = assert!(
        LAST + 1 < HIST_BUCKETS,
        "exported bounds must be closed kernel buckets"
    );
    let mut out = Vec::with_capacity((LAST - FIRST) / 2 + 2);
    let mut pending = 0u64;
    for (i, &n) in h.buckets.iter().enumerate() {
        pending += n;
        // Kernel bucket i holds values below its upper bound; flush it under that `le`.
        if (FIRST..=LAST).contains(&i) && (i - FIRST) % 2 == 0 {
            let upper_ns = bucket_upper_ns(i).expect("LAST is below the open last bucket");
            out.push((upper_ns as f64 / 1e9, pending));
            pending = 0;
        }
    }
    out.push((f64::INFINITY, pending));
    (h.sum_ns as f64 / 1e9, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_buckets_keep_every_count() {
        let mut h = Hist::ZERO;
        h.buckets[0] = 1; // 0 ns
        h.buckets[10] = 2; // < 1.024 µs
        h.buckets[11] = 3; // < 2.048 µs -> le 4.096 µs
        h.buckets[HIST_BUCKETS - 1] = 4; // very slow -> +Inf
        h.sum_ns = 5_000_000_000;
        let (sum, b) = prometheus_buckets(&h);
        assert_eq!(sum, 5.0);
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 10);
        assert_eq!(b[0], (1.024e-6, 3));
        assert_eq!(b[1], (4.096e-6, 3));
        assert_eq!(b.last().unwrap(), &(f64::INFINITY, 4));
        assert!(b.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
