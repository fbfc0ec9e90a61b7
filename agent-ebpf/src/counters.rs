//! Per-cgroup event counters, shared by the OOM and TCP probes.

use aya_ebpf::{bindings::BPF_F_NO_PREALLOC, macros::map, maps::PerCpuHashMap};
use sonde_probe_abi::{CgroupCounters, Loss};

use crate::hist;

/// cgroup id -> counters. The agent sets the size (`max_cgroups`).
#[map]
static CGROUP_COUNTERS: PerCpuHashMap<u64, CgroupCounters> =
    PerCpuHashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

const ZERO: CgroupCounters = CgroupCounters {
    oom_kills: 0,
    tcp_retransmits: 0,
    tcp_resets_sent: 0,
    tcp_connects: 0,
    tcp_connect_failures: 0,
};

/// Applies `f` to this CPU's counters of `cgroup_id`.
#[inline(always)]
pub fn count(cgroup_id: u64, f: impl FnOnce(&mut CgroupCounters)) {
    if let Some(c) = hist::entry(
        &CGROUP_COUNTERS,
        &cgroup_id,
        &ZERO,
        Loss::CgroupCountersMapFull,
    ) {
        f(unsafe { &mut *c });
    }
}
