//! The stdout/stderr tap: `write(2)` to fd 1 or 2 by processes in the cgroups
//! the agent lists in `STDIO_CGROUPS` (containers with no log file), copied into
//! a ring buffer. Off unless the agent loads it. A classic tracepoint
//! (`syscalls:sys_enter_write`, needs tracefs) because fentry needs BPF
//! trampolines, which kernels built without ftrace (these VMs') lack; every other
//! write on the machine costs a compare and at most a hash lookup.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user_buf,
        generated::bpf_get_current_cgroup_id,
    },
    macros::{map, tracepoint},
    maps::{HashMap, RingBuf},
    programs::TracePointContext,
};
use sonde_probe_abi::{Loss, STDIO_CHUNK, StdioEvent};

use crate::kernel;

/// 8 MiB: about two thousand full-size writes between two reads by the agent.
#[map]
static STDIO_EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Cgroup ids to tap, kept by the agent; the value is unused.
#[map]
static STDIO_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(4096, 0);

/// The agent's own process: never tapped, so its logging cannot feed itself.
#[unsafe(no_mangle)]
static STDIO_SKIP_TGID: u32 = 0;

/// Field offsets in the tracepoint's record (`/sys/kernel/tracing/events/syscalls/sys_enter_write/format`).
const FD_AT: usize = 16;
const BUF_AT: usize = 24;
const COUNT_AT: usize = 32;

#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn sys_enter_write(ctx: TracePointContext) -> i32 {
    let Ok(fd) = (unsafe { ctx.read_at::<u64>(FD_AT) }) else {
        return 0;
    };
    if fd != 1 && fd != 2 {
        return 0;
    }
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    if unsafe { STDIO_CGROUPS.get(&cgroup_id) }.is_none() {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == unsafe { core::ptr::read_volatile(&raw const STDIO_SKIP_TGID) } {
        return 0;
    }
    let (Ok(buf), Ok(count)) = (unsafe { ctx.read_at::<u64>(BUF_AT) }, unsafe {
        ctx.read_at::<u64>(COUNT_AT)
    }) else {
        kernel::lose(Loss::StdioReadFailed);
        return 0;
    };
    let (buf, count) = (buf as *const u8, count as usize);
    let Some(mut slot) = STDIO_EVENTS.reserve::<StdioEvent>(0) else {
        kernel::lose(Loss::StdioRingbufFull);
        return 0;
    };
    let ev = slot.as_mut_ptr();
    // Two constant-bounded sizes the verifier can check: a full chunk, or the
    // count masked below the chunk size.
    let len = if count >= STDIO_CHUNK {
        if count > STDIO_CHUNK {
            kernel::lose(Loss::StdioTruncated);
        }
        STDIO_CHUNK
    } else {
        count & (STDIO_CHUNK - 1)
    };
    unsafe {
        (*ev).ts_ns = bpf_ktime_get_ns();
        (*ev).cgroup_id = cgroup_id;
        (*ev).tgid = tgid;
        (*ev).fd = fd as u32;
        (*ev).requested = count as u32;
        let data = &mut (*ev).data;
        let read = match data.get_mut(..len) {
            Some(dst) => bpf_probe_read_user_buf(buf, dst).is_ok(),
            None => false,
        };
        if read {
            (*ev).len = len as u32;
        } else {
            kernel::lose(Loss::StdioReadFailed);
            (*ev).len = 0;
        }
    }
    slot.submit(0);
    0
}
