//! The values cgroup v1 hierarchies serve, for the groups the layout gives them
//! (all of them on v1-only hosts; what the v2 tree lacks on hybrid ones).

use super::{
    devices::DeviceNames,
    parse::{self, keyed},
    stats::{Cfs, DeviceIo, MemoryStat, Reader, Stats},
    walk::{BFQ_BYTES, Layout, Src, V1Roots},
};

pub fn read(
    r: &mut Reader,
    v1: &V1Roots,
    rel: &str,
    layout: &Layout,
    devices: &DeviceNames,
    ns_per_tick: u64,
    s: &mut Stats,
) {
    if layout.cpu == Src::V1 {
        s.cpu_ns = r.value(&v1.cpuacct, rel, "cpuacct.usage", parse::number);
        // User and system time only in clock ticks here; runc (and so cAdvisor) reads the same.
        if let Some([user, system]) = r.value(&v1.cpuacct, rel, "cpuacct.stat", |t| {
            keyed(t, ["user", "system"])
        }) {
            (s.cpu_user_ns, s.cpu_system_ns) = (
                Some(user.saturating_mul(ns_per_tick)),
                Some(system.saturating_mul(ns_per_tick)),
            );
        }
    }
    if layout.cfs == Src::V1 {
        s.cfs = r.value(&v1.cpu, rel, "cpu.stat", |t| {
            let [periods, throttled_periods, throttled_ns] =
                keyed(t, ["nr_periods", "nr_throttled", "throttled_time"])?;
            Some(Cfs {
                periods,
                throttled_periods,
                throttled_ns,
            })
        });
    }
    if layout.memory == Src::V1 {
        s.memory_usage = r.value(&v1.memory, rel, "memory.usage_in_bytes", parse::number);
        // The `total_` keys include descendants, like v2's memory.stat.
        s.memory = r.value(&v1.memory, rel, "memory.stat", |t| {
            let [rss, cache, inactive_file] =
                keyed(t, ["total_rss", "total_cache", "total_inactive_file"])?;
            Some(MemoryStat {
                rss,
                cache,
                inactive_file,
            })
        });
        s.oom_kills = r.value(&v1.memory, rel, "memory.oom_control", |t| {
            Some(keyed(t, ["oom_kill"])?[0])
        });
    }
    if layout.io == Src::V1 {
        io(r, v1, rel, layout.bfq, devices, s);
    }
    if layout.pids == Src::V1 {
        s.threads = r.value(&v1.pids, rel, "pids.current", parse::number);
    }
}

/// Bytes and operations per disk, from BFQ's stats when it has them, else the
/// throttle stats: runc's order, so cAdvisor's numbers. The `_recursive` files
/// include descendants, like v2's io.stat: a pod's I/O is its containers'.
fn io(r: &mut Reader, v1: &V1Roots, rel: &str, bfq: bool, devices: &DeviceNames, s: &mut Stats) {
    let (bytes_file, ops_file) = if bfq {
        (BFQ_BYTES, "blkio.bfq.io_serviced_recursive")
    } else {
        (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_serviced_recursive",
        )
    };
    let bytes = r.value(&v1.blkio, rel, bytes_file, parse::blkio);
    let ops = r.value(&v1.blkio, rel, ops_file, parse::blkio);
    for (dev, read, write) in bytes.unwrap_or_default() {
        s.io.push(DeviceIo {
            device: devices.name(dev),
            bytes: Some((read, write)),
            ops: None,
        });
    }
    for (dev, read, write) in ops.unwrap_or_default() {
        let name = devices.name(dev);
        match s.io.iter_mut().find(|d| d.device == name) {
            Some(d) => d.ops = Some((read, write)),
            None => s.io.push(DeviceIo {
                device: name,
                bytes: None,
                ops: Some((read, write)),
            }),
        }
    }
}
