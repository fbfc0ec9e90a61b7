//! OOM kills: one event per victim (rare by nature), and a counter per cgroup.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, map},
    maps::RingBuf,
    programs::BtfTracePointContext,
};
use sonde_probe_abi::{Loss, OomEvent, TASK_COMM_LEN};

use crate::{
    counters::count,
    kernel::{self, offset},
};

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024, 0);

/// mark_victim(struct task_struct *task, uid_t uid)
#[btf_tracepoint(function = "mark_victim")]
pub fn mark_victim(ctx: BtfTracePointContext) -> i32 {
    let task: *const u8 = ctx.arg(0);
    let cgroup_id = kernel::task_cgroup_id(task);
    count(cgroup_id, |c| c.oom_kills += 1);
    let Some(mut slot) = EVENTS.reserve::<OomEvent>(0) else {
        kernel::lose(Loss::OomRingbufFull);
        return 0;
    };
    let event = OomEvent {
        ts_ns: unsafe { bpf_ktime_get_ns() },
        cgroup_id,
        pid: kernel::task_pid(task),
        tgid: kernel::load(task, offset!(task_tgid)),
        comm: kernel::read::<[u8; TASK_COMM_LEN]>(task, offset!(task_comm))
            .unwrap_or([0; TASK_COMM_LEN]),
    };
    slot.write(event);
    slot.submit(0);
    0
}
