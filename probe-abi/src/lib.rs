//! The ABI between Sonde's kernel programs (`agent-ebpf`) and the agent.
//!
//! Every type here is `#[repr(C)]` plain data that one side writes into a BPF map,
//! a ring buffer or a global, and the other side reads. Change a layout here and
//! both sides change with it; nothing else is shared.
//!
//! Wire format summary (all little-endian, native alignment):
//! - maps keyed by a cgroup v2 id (`u64`, the cgroup directory's inode number);
//! - histograms are [`Hist`]: `HIST_BUCKETS` log2 buckets of nanoseconds plus a sum;
//! - rare events travel in one ring buffer as [`OomEvent`]; tapped stdout/stderr
//!   writes in their own as [`StdioEvent`]; HTTP exchanges in theirs as [`HttpEvent`];
//! - losses are counted per CPU in the `LOST` array, indexed by [`Loss`].
#![no_std]

/// Number of log2 latency buckets. Bucket `i` counts values `v` (in ns) with
/// `2^(i-1) <= v < 2^i` (bucket 0 holds `v == 0`); the last bucket also takes
/// everything larger, so nothing is ever dropped for being slow.
pub const HIST_BUCKETS: usize = 40;

/// A latency histogram, aggregated per CPU in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Hist {
    pub buckets: [u64; HIST_BUCKETS],
    /// Sum of all observed values, in nanoseconds.
    pub sum_ns: u64,
}

impl Hist {
    pub const ZERO: Hist = Hist {
        buckets: [0; HIST_BUCKETS],
        sum_ns: 0,
    };
}

/// Bucket index for a value in nanoseconds: its bit length, clamped.
#[inline(always)]
pub fn bucket_of(ns: u64) -> usize {
    let bits = (64 - ns.leading_zeros()) as usize;
    if bits < HIST_BUCKETS {
        bits
    } else {
        HIST_BUCKETS - 1
    }
}

/// Upper bound (exclusive) of bucket `i` in nanoseconds; `None` for the last, open bucket.
pub fn bucket_upper_ns(i: usize) -> Option<u64> {
    if i + 1 < HIST_BUCKETS {
        Some(1u64 << i)
    } else {
        None
    }
}

/// Per-cgroup event counters (`CGROUP_COUNTERS`, per-CPU hash keyed by cgroup id).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CgroupCounters {
    pub oom_kills: u64,
    pub tcp_retransmits: u64,
    pub tcp_resets_sent: u64,
    pub tcp_connects: u64,
    pub tcp_connect_failures: u64,
}

/// Key of the block I/O maps: a device and an operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DiskKey {
    /// Device number as the kernel encodes it internally: `major << 20 | minor`.
    pub dev: u32,
    /// `REQ_OP_*` from the request's `cmd_flags` (0 read, 1 write, 2 flush, 3 discard, ...).
    pub op: u32,
}

/// Per-device, per-operation I/O totals and latency (issue -> complete).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DiskStats {
    pub latency: Hist,
    /// Requests completed.
    pub requests: u64,
    /// Bytes completed.
    pub bytes: u64,
}

impl DiskStats {
    pub const ZERO: DiskStats = DiskStats {
        latency: Hist::ZERO,
        requests: 0,
        bytes: 0,
    };
}

/// What an in-flight block request remembers between issue and completion.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DiskStart {
    pub ts_ns: u64,
    pub key: DiskKey,
    /// The cgroup that submitted the request's first bio.
    pub cgroup_id: u64,
}

/// Key of `CGROUP_IO`: block I/O by the submitting cgroup, device and operation.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CgroupIoKey {
    pub cgroup_id: u64,
    pub disk: DiskKey,
}

/// Per-cgroup block I/O totals (completed requests and bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CgroupIo {
    pub requests: u64,
    pub bytes: u64,
}

/// What an in-progress TCP connect remembers between SYN_SENT and its outcome.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnectStart {
    pub ts_ns: u64,
    /// The connecting task's cgroup: the outcome arrives in softirq context.
    pub cgroup_id: u64,
}

pub const TASK_COMM_LEN: usize = 16;

/// An OOM kill, sent through the `EVENTS` ring buffer (rare by nature).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomEvent {
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tgid: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// Why an event was lost; index into the per-CPU `LOST` array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// A wakeup could not be remembered: the start-time map was full.
    RunqueueStartMapFull = 0,
    /// A cgroup's run-queue histogram could not be created: the map was full.
    RunqueueHistMapFull = 1,
    /// An OOM event did not fit in the ring buffer.
    OomRingbufFull = 2,
    /// A cgroup's counters could not be created: the map was full.
    CgroupCountersMapFull = 3,
    /// A connect in progress could not be remembered: the map was full.
    ConnectStartMapFull = 4,
    /// A cgroup's connect latency histogram could not be created: the map was full.
    ConnectHistMapFull = 5,
    /// An issued block request could not be remembered: the map was full.
    DiskStartMapFull = 6,
    /// A device's stats could not be created: the map was full.
    DiskStatsMapFull = 7,
    /// A kernel structure could not be read (offsets wrong or memory gone).
    KernelReadFailed = 8,
    /// A cgroup's block I/O totals could not be created: the map was full.
    CgroupIoMapFull = 9,
    /// A tapped stdout/stderr write did not fit in the ring buffer.
    StdioRingbufFull = 10,
    /// A tapped write was longer than [`STDIO_CHUNK`]: its first bytes were kept, the rest lost.
    StdioTruncated = 11,
    /// A tapped write's buffer could not be read from user memory.
    StdioReadFailed = 12,
    /// A finished HTTP exchange did not fit in the `HTTP_EVENTS` ring buffer.
    HttpRingbufFull = 13,
    /// A new connection could not be remembered: `HTTP_CONNS` was full.
    HttpConnMapFull = 14,
    /// A request in flight could not be remembered: `HTTP_REQUESTS` was full.
    HttpRequestMapFull = 15,
    /// A request head was longer than [`HTTP_HEAD`]: headers past it (a late
    /// `traceparent`) are not seen.
    HttpHeadTruncated = 16,
    /// A socket buffer or address could not be read from user memory.
    HttpReadFailed = 17,
    /// A read or accept in progress could not be remembered: `HTTP_PENDING` was full.
    HttpPendingMapFull = 18,
}

pub const LOSS_KINDS: usize = 19;

impl Loss {
    pub const ALL: [Loss; LOSS_KINDS] = [
        Loss::RunqueueStartMapFull,
        Loss::RunqueueHistMapFull,
        Loss::OomRingbufFull,
        Loss::CgroupCountersMapFull,
        Loss::ConnectStartMapFull,
        Loss::ConnectHistMapFull,
        Loss::DiskStartMapFull,
        Loss::DiskStatsMapFull,
        Loss::KernelReadFailed,
        Loss::CgroupIoMapFull,
        Loss::StdioRingbufFull,
        Loss::StdioTruncated,
        Loss::StdioReadFailed,
        Loss::HttpRingbufFull,
        Loss::HttpConnMapFull,
        Loss::HttpRequestMapFull,
        Loss::HttpHeadTruncated,
        Loss::HttpReadFailed,
        Loss::HttpPendingMapFull,
    ];

    /// (probe, reason) labels for `sonde_probe_events_lost_total`.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Loss::RunqueueStartMapFull => ("runqueue", "start_map_full"),
            Loss::RunqueueHistMapFull => ("runqueue", "histogram_map_full"),
            Loss::OomRingbufFull => ("oom", "ringbuf_full"),
            Loss::CgroupCountersMapFull => ("tcp", "counters_map_full"),
            Loss::ConnectStartMapFull => ("tcp", "connect_map_full"),
            Loss::ConnectHistMapFull => ("tcp", "histogram_map_full"),
            Loss::DiskStartMapFull => ("blockio", "start_map_full"),
            Loss::DiskStatsMapFull => ("blockio", "stats_map_full"),
            Loss::KernelReadFailed => ("all", "kernel_read_failed"),
            Loss::CgroupIoMapFull => ("blockio", "cgroup_map_full"),
            Loss::StdioRingbufFull => ("stdio", "ringbuf_full"),
            Loss::StdioTruncated => ("stdio", "write_truncated"),
            Loss::StdioReadFailed => ("stdio", "user_read_failed"),
            Loss::HttpRingbufFull => ("http", "ringbuf_full"),
            Loss::HttpConnMapFull => ("http", "conn_map_full"),
            Loss::HttpRequestMapFull => ("http", "request_map_full"),
            Loss::HttpHeadTruncated => ("http", "head_truncated"),
            Loss::HttpReadFailed => ("http", "user_read_failed"),
            Loss::HttpPendingMapFull => ("http", "pending_map_full"),
        }
    }
}

/// Bytes of one tapped write kept: the ring buffer record has a fixed size, and
/// a container's log writes are almost always shorter.
pub const STDIO_CHUNK: usize = 4096;

/// A `write(2)` to fd 1 or 2 by a process in a tapped cgroup (`STDIO_EVENTS` ring
/// buffer). Writes are not lines: the agent joins and splits them per process and fd.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StdioEvent {
    /// `bpf_ktime_get_ns` (monotonic) when the write was entered.
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    /// 1 (stdout) or 2 (stderr).
    pub fd: u32,
    /// Bytes of `data` that hold the write (at most [`STDIO_CHUNK`]).
    pub len: u32,
    /// Bytes the write asked for; more than `len` when it was truncated.
    pub requested: u32,
    pub data: [u8; STDIO_CHUNK],
}

/// Bytes of an HTTP request head kept: request line and headers up to here
/// (method, path, `traceparent`); the ring buffer record has a fixed size.
pub const HTTP_HEAD: usize = 512;
/// [`Conn::side`]: the connection was accepted (we are the server).
pub const HTTP_SERVER: u8 = 1;
/// [`Conn::side`]: the connection was connected (we are the client).
pub const HTTP_CLIENT: u8 = 2;

/// A socket of one process: key of `HTTP_CONNS` and `HTTP_REQUESTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: u32,
}

/// The other end of a connection, from the `sockaddr` of accept or connect.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// `AF_INET` (2), `AF_INET6` (10), or 0 when accept was given no address buffer.
    pub family: u16,
    /// Host byte order.
    pub port: u16,
    pub _pad: u32,
    /// IPv4 in the first 4 bytes, or IPv6; network byte order.
    pub addr: [u8; 16],
}

/// A connection being followed (`HTTP_CONNS`, from accept/connect to close).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    pub peer: Peer,
    /// [`HTTP_SERVER`] or [`HTTP_CLIENT`].
    pub side: u8,
    pub _pad: [u8; 7],
}

/// A request in flight on a connection (`HTTP_REQUESTS`): from its head read
/// (server) or written (client) to the response head.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest {
    /// `bpf_ktime_get_ns` when the request head was read (server) or written (client).
    pub start_ns: u64,
    pub head_len: u32,
    /// 1 when the head went on past [`HTTP_HEAD`] bytes.
    pub truncated: u32,
    pub head: [u8; HTTP_HEAD],
}

/// A read or accept between its syscall's entry and exit (`HTTP_PENDING`, by thread).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    /// The user buffer (read) or `sockaddr` (accept); 0 for none.
    pub buf: u64,
    pub fd: u32,
    /// [`PENDING_READ`] or [`PENDING_ACCEPT`].
    pub kind: u32,
}

pub const PENDING_READ: u32 = 1;
pub const PENDING_ACCEPT: u32 = 2;

/// One HTTP/1.x exchange as seen from one side (`HTTP_EVENTS` ring buffer).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HttpEvent {
    /// `bpf_ktime_get_ns` (monotonic): request head in, or out (client).
    pub start_ns: u64,
    /// Response head out (server), or in (client).
    pub end_ns: u64,
    pub cgroup_id: u64,
    pub tgid: u32,
    /// [`HTTP_SERVER`] or [`HTTP_CLIENT`].
    pub side: u8,
    pub _pad: [u8; 3],
    pub peer: Peer,
    pub comm: [u8; TASK_COMM_LEN],
    /// The first bytes of the response: `HTTP/1.x NNN ...`.
    pub response: [u8; 16],
    /// Bytes of `head` that hold the request head (at most [`HTTP_HEAD`]).
    pub head_len: u32,
    /// 1 when the head went on past `head`.
    pub head_truncated: u32,
    pub head: [u8; HTTP_HEAD],
}

/// Byte offsets of the kernel struct fields the programs read.
///
/// Rust has no CO-RE relocations, so the agent resolves these from the running
/// kernel's BTF (`/sys/kernel/btf/vmlinux`) at load time and writes them into the
/// programs' read-only global `OFFSETS` before loading. One object then runs on
/// any kernel whose BTF names these fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    pub sock_cgroup: u32,
    pub sock_protocol: u32,
    pub request_q: u32,
    pub request_bio: u32,
    pub request_cmd_flags: u32,
    pub request_data_len: u32,
    pub request_queue_disk: u32,
    pub gendisk_major: u32,
    pub gendisk_first_minor: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are repr(C) plain integers and arrays of them.
    unsafe impl aya::Pod for super::Hist {}
    unsafe impl aya::Pod for super::CgroupCounters {}
    unsafe impl aya::Pod for super::DiskKey {}
    unsafe impl aya::Pod for super::DiskStats {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::CgroupIoKey {}
    unsafe impl aya::Pod for super::CgroupIo {}
    unsafe impl aya::Pod for super::ConnKey {}
    unsafe impl aya::Pod for super::Conn {}
    unsafe impl aya::Pod for super::HttpRequest {}
    unsafe impl aya::Pod for super::Pending {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_bit_lengths() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(2), 2);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(1023), 10);
        assert_eq!(bucket_of(1024), 11);
        assert_eq!(bucket_of(u64::MAX), HIST_BUCKETS - 1);
        // Every value lands below its bucket's upper bound.
        for v in [0u64, 1, 5, 999, 1 << 20, (1 << 38) - 1] {
            let b = bucket_of(v);
            assert!(v < bucket_upper_ns(b).unwrap(), "{v} in bucket {b}");
        }
    }
}
