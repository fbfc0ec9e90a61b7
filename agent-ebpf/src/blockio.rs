//! Block I/O per device and operation: requests, bytes, and issue-to-complete latency.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::bpf_ktime_get_ns,
    macros::{btf_tracepoint, map},
    maps::{HashMap, PerCpuHashMap},
    programs::BtfTracePointContext,
};
use sonde_probe_abi::{DiskKey, DiskStart, DiskStats, Loss};

use crate::{
    hist,
    kernel::{self, offset},
};

/// request address -> when it was issued, and to which device and op.
#[map]
static DISK_START: HashMap<u64, DiskStart> = HashMap::with_max_entries(16384, 0);

#[map]
static DISK_STATS: PerCpuHashMap<DiskKey, DiskStats> = PerCpuHashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

const REQ_OP_MASK: u32 = 0xff;
const MINORBITS: u32 = 20;

#[inline(always)]
fn disk_key(rq: *const u8) -> DiskKey {
    let q: *const u8 = kernel::load(rq, offset!(request_q));
    let disk: *const u8 = kernel::load(q, offset!(request_queue_disk));
    let major: i32 = kernel::load(disk, offset!(gendisk_major));
    let minor: i32 = kernel::load(disk, offset!(gendisk_first_minor));
    let flags: u32 = kernel::load(rq, offset!(request_cmd_flags));
    DiskKey { dev: ((major as u32) << MINORBITS) | minor as u32, op: flags & REQ_OP_MASK }
}

/// block_rq_issue(struct request *rq)
#[btf_tracepoint(function = "block_rq_issue")]
pub fn block_rq_issue(ctx: BtfTracePointContext) -> i32 {
    let rq: *const u8 = ctx.arg(0);
    let start = DiskStart { ts_ns: unsafe { bpf_ktime_get_ns() }, key: disk_key(rq) };
    if DISK_START.insert(&(rq as u64), &start, 0).is_err() {
        kernel::lose(Loss::DiskStartMapFull);
    }
    0
}

/// block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes)
///
/// Fires once per completed chunk; the request is finished when the chunk covers
/// all that remains (`__data_len` is only decremented after the tracepoint).
#[btf_tracepoint(function = "block_rq_complete")]
pub fn block_rq_complete(ctx: BtfTracePointContext) -> i32 {
    let rq: *const u8 = ctx.arg(0);
    let nr_bytes: u32 = ctx.arg(2);
    let key = rq as u64;
    let Some(start) = (unsafe { DISK_START.get(&key) }).copied() else { return 0 };
    let remaining: u32 = kernel::load(rq, offset!(request_data_len));
    let done = nr_bytes >= remaining;
    let Some(s) = hist::entry(&DISK_STATS, &start.key, &DiskStats::ZERO, Loss::DiskStatsMapFull) else {
        return 0;
    };
    unsafe { (*s).bytes += nr_bytes as u64 };
    if done {
        let _ = DISK_START.remove(&key);
        unsafe { (*s).requests += 1 };
        let now = unsafe { bpf_ktime_get_ns() };
        hist::observe(unsafe { &raw mut (*s).latency }, now.saturating_sub(start.ts_ns));
    }
    0
}
