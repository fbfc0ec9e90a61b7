//! CPU run-queue latency: the time from a task becoming runnable (woken, or
//! preempted while still runnable) to it getting a CPU, as a histogram per cgroup.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::bpf_ktime_get_ns,
    macros::{btf_map, btf_tracepoint, map},
    maps::PerCpuHashMap,
    programs::BtfTracePointContext,
};
use sonde_probe_abi::{Hist, Loss};

use crate::{hist, kernel, task_storage::TaskStorage};

/// Per task: when it became runnable (ns, CLOCK_MONOTONIC), 0 while it runs.
#[btf_map]
static RUNQ_START: TaskStorage<u64> = TaskStorage::new();

/// cgroup id -> latency histogram. The agent sets the size (`max_cgroups`); entries
/// are allocated on first use, so the bound costs nothing until cgroups exist.
#[map]
static RUNQ_HIST: PerCpuHashMap<u64, Hist> =
    PerCpuHashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

const TASK_RUNNING: u32 = 0;

#[inline(always)]
fn enqueue(task: *const u8) {
    let pid = kernel::task_pid(task);
    if pid == 0 {
        return; // the idle task is never queued
    }
    match RUNQ_START.get_or_create(task) {
        Some(ts) => unsafe { *ts = bpf_ktime_get_ns() },
        None => kernel::lose(Loss::RunqueueStartMapFull),
    }
}

#[btf_tracepoint(function = "sched_wakeup")]
pub fn sched_wakeup(ctx: BtfTracePointContext) -> i32 {
    enqueue(ctx.arg(0));
    0
}

#[btf_tracepoint(function = "sched_wakeup_new")]
pub fn sched_wakeup_new(ctx: BtfTracePointContext) -> i32 {
    enqueue(ctx.arg(0));
    0
}

/// sched_switch(bool preempt, task_struct *prev, task_struct *next, unsigned int prev_state)
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> i32 {
    let prev: *const u8 = ctx.arg(1);
    let next: *const u8 = ctx.arg(2);
    let prev_state: u32 = ctx.arg(3);
    // A preempted task is still runnable: its wait starts now.
    if prev_state == TASK_RUNNING {
        enqueue(prev);
    }
    let Some(slot) = RUNQ_START.get(next) else {
        return 0;
    };
    let start = unsafe { *slot };
    if start == 0 {
        return 0; // not queued since it last ran (or woken before the agent started)
    }
    unsafe { *slot = 0 };
    let now = unsafe { bpf_ktime_get_ns() };
    let cgroup = kernel::task_cgroup_id(next);
    if let Some(h) = hist::entry(&RUNQ_HIST, &cgroup, &Hist::ZERO, Loss::RunqueueHistMapFull) {
        hist::observe(h, now.saturating_sub(start));
    }
    0
}
