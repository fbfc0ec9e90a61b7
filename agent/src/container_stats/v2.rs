//! The values cgroup v2 serves, for the groups the layout gives it.

use std::path::Path;

use super::{
    devices::DeviceNames,
    parse::{self, keyed},
    stats::{Cfs, DeviceIo, MemoryStat, Reader, Stats},
    walk::{Layout, Src},
};

pub fn read(
    r: &mut Reader,
    root: &Path,
    rel: &str,
    layout: &Layout,
    devices: &DeviceNames,
    s: &mut Stats,
) {
    if layout.cpu == Src::V2 {
        cpu(r, root, rel, layout.cfs == Src::V2, s);
    }
    if layout.memory == Src::V2 {
        s.memory_usage = r.value(root, rel, "memory.current", parse::number);
        s.memory = r.value(root, rel, "memory.stat", |t| {
            let [rss, cache, inactive_file] = keyed(t, ["anon", "file", "inactive_file"])?;
            Some(MemoryStat {
                rss,
                cache,
                inactive_file,
            })
        });
        // Hierarchical (memory.events.local is the cgroup alone), as a pod's total should be.
        s.oom_kills = r.value(root, rel, "memory.events", |t| {
            Some(keyed(t, ["oom_kill"])?[0])
        });
    }
    if layout.io == Src::V2
        && let Some(found) = r.value(root, rel, "io.stat", parse::io_stat)
    {
        s.io = found
            .into_iter()
            .map(|(dev, c)| DeviceIo::v2(devices.name(dev), c))
            .collect();
    }
    if layout.pids == Src::V2 {
        s.threads = r.value(root, rel, "pids.current", parse::number);
    }
    if layout.psi {
        s.pressure_cpu = r.value(root, rel, "cpu.pressure", parse::pressure);
        s.pressure_memory = r.value(root, rel, "memory.pressure", parse::pressure);
        s.pressure_io = r.value(root, rel, "io.pressure", parse::pressure);
    }
}

/// `cpu.stat`, read once for the totals and, with the cpu controller, CFS too.
fn cpu(r: &mut Reader, root: &Path, rel: &str, with_cfs: bool, s: &mut Stats) {
    const US: u64 = 1_000;
    let totals = ["usage_usec", "user_usec", "system_usec"];
    let read = if with_cfs {
        r.value(root, rel, "cpu.stat", |t| {
            let [
                usage,
                user,
                system,
                periods,
                throttled_periods,
                throttled_us,
            ] = keyed(
                t,
                [
                    totals[0],
                    totals[1],
                    totals[2],
                    "nr_periods",
                    "nr_throttled",
                    "throttled_usec",
                ],
            )?;
            Some((
                [usage, user, system],
                Some(Cfs {
                    periods,
                    throttled_periods,
                    throttled_ns: throttled_us.saturating_mul(US),
                }),
            ))
        })
    } else {
        r.value(root, rel, "cpu.stat", |t| Some((keyed(t, totals)?, None)))
    };
    if let Some(([usage, user, system], cfs)) = read {
        (s.cpu_ns, s.cpu_user_ns, s.cpu_system_ns) = (
            Some(usage.saturating_mul(US)),
            Some(user.saturating_mul(US)),
            Some(system.saturating_mul(US)),
        );
        s.cfs = cfs;
    }
}
