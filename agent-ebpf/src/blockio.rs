//! Block I/O per device and operation: requests, bytes, and issue-to-complete
//! latency; and per submitting cgroup, device and operation: requests and bytes.
//!
//! The submitter is only reliably the current task where a bio enters the block
//! layer (`block_bio_queue`); requests are issued later, often from another
//! context. So the submitter's cgroup is remembered per bio and picked up at issue
//! from the request's first bio. Buffered writes are submitted by the flusher
//! threads and so count to the root cgroup, as in every tool that attributes by
//! submitter.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map},
    maps::{HashMap, LruHashMap, PerCpuHashMap},
    programs::BtfTracePointContext,
};
use sonde_probe_abi::{CgroupIo, CgroupIoKey, DiskKey, DiskStart, DiskStats, Loss};

use crate::{
    hist,
    kernel::{self, offset},
};

/// request address -> when it was issued, and to which device and op.
#[map]
static DISK_START: HashMap<u64, DiskStart> = HashMap::with_max_entries(16384, 0);

/// bio address -> submitting cgroup. LRU: bios merged into a request other than
/// its first are never looked up again, and age out instead of filling the map.
#[map]
static BIO_CGROUP: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16384, 0);

#[map]
static CGROUP_IO: PerCpuHashMap<CgroupIoKey, CgroupIo> =
    PerCpuHashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

#[map]
static DISK_STATS: PerCpuHashMap<DiskKey, DiskStats> =
    PerCpuHashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

const REQ_OP_MASK: u32 = 0xff;
const MINORBITS: u32 = 20;

#[inline(always)]
fn disk_key(rq: *const u8) -> DiskKey {
    let q: *const u8 = kernel::load(rq, offset!(request_q));
    let disk: *const u8 = kernel::load(q, offset!(request_queue_disk));
    let major: i32 = kernel::load(disk, offset!(gendisk_major));
    let minor: i32 = kernel::load(disk, offset!(gendisk_first_minor));
    let flags: u32 = kernel::load(rq, offset!(request_cmd_flags));
    DiskKey {
        dev: ((major as u32) << MINORBITS) | minor as u32,
        op: flags & REQ_OP_MASK,
    }
}

/// block_bio_queue(struct bio *bio): runs in the submitter's context.
#[btf_tracepoint(function = "block_bio_queue")]
pub fn block_bio_queue(ctx: BtfTracePointContext) -> i32 {
    let bio: *const u8 = ctx.arg(0);
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let _ = BIO_CGROUP.insert(&(bio as u64), &cgroup, 0);
    0
}

/// block_rq_issue(struct request *rq)
#[btf_tracepoint(function = "block_rq_issue")]
pub fn block_rq_issue(ctx: BtfTracePointContext) -> i32 {
    let rq: *const u8 = ctx.arg(0);
    let bio: *const u8 = kernel::load(rq, offset!(request_bio));
    let bio_key = bio as u64;
    let cgroup_id = match unsafe { BIO_CGROUP.get(&bio_key) } {
        Some(c) => *c,
        None => kernel::ROOT_CGROUP_ID, // submitter unknown: the host's
    };
    let _ = BIO_CGROUP.remove(&bio_key);
    let start = DiskStart {
        ts_ns: unsafe { bpf_ktime_get_ns() },
        key: disk_key(rq),
        cgroup_id,
    };
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
    let Some(start) = (unsafe { DISK_START.get(&key) }).copied() else {
        return 0;
    };
    let remaining: u32 = kernel::load(rq, offset!(request_data_len));
    let done = nr_bytes >= remaining;
    let Some(s) = hist::entry(
        &DISK_STATS,
        &start.key,
        &DiskStats::ZERO,
        Loss::DiskStatsMapFull,
    ) else {
        return 0;
    };
    unsafe { (*s).bytes += nr_bytes as u64 };
    let io_key = CgroupIoKey {
        cgroup_id: start.cgroup_id,
        disk: start.key,
    };
    let io = hist::entry(
        &CGROUP_IO,
        &io_key,
        &CgroupIo {
            requests: 0,
            bytes: 0,
        },
        Loss::CgroupIoMapFull,
    );
    if let Some(io) = io {
        unsafe {
            (*io).bytes += nr_bytes as u64;
            if done {
                (*io).requests += 1;
            }
        }
    }
    if done {
        let _ = DISK_START.remove(&key);
        unsafe { (*s).requests += 1 };
        let now = unsafe { bpf_ktime_get_ns() };
        hist::observe(
            unsafe { &raw mut (*s).latency },
            now.saturating_sub(start.ts_ns),
        );
    }
    0
}
