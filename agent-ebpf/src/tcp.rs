//! TCP per cgroup: retransmits, resets sent, and connect outcomes with latency.
//! The socket's own cgroup is used, because retransmits and resets usually fire
//! in softirq context where the current task is unrelated.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{bpf_get_current_cgroup_id, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map},
    maps::{HashMap, PerCpuHashMap},
    programs::BtfTracePointContext,
};
use sonde_probe_abi::{ConnectStart, Hist, Loss};

use crate::{
    counters::count,
    hist,
    kernel::{self, offset},
};

/// socket address -> connect in progress.
#[map]
static CONNECT_START: HashMap<u64, ConnectStart> = HashMap::with_max_entries(8192, 0);

/// cgroup id -> connect latency histogram (successful connects).
#[map]
static CONNECT_HIST: PerCpuHashMap<u64, Hist> =
    PerCpuHashMap::with_max_entries(1024, BPF_F_NO_PREALLOC);

const IPPROTO_TCP: u16 = 6;
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;

/// tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb, int err)
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    count(kernel::sock_cgroup_id(sk), |c| c.tcp_retransmits += 1);
    0
}

/// tcp_send_reset(const struct sock *sk, const struct sk_buff *skb, enum sk_rst_reason reason)
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    // A reset sent with no socket (say, to a closed port) is the host's.
    let cgroup = if sk.is_null() {
        kernel::ROOT_CGROUP_ID
    } else {
        kernel::sock_cgroup_id(sk)
    };
    count(cgroup, |c| c.tcp_resets_sent += 1);
    0
}

/// inet_sock_set_state(const struct sock *sk, const int oldstate, const int newstate)
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let old: i32 = ctx.arg(1);
    let new: i32 = ctx.arg(2);
    if old != TCP_SYN_SENT && new != TCP_SYN_SENT {
        return 0;
    }
    if kernel::load::<u16>(sk, offset!(sock_protocol)) != IPPROTO_TCP {
        return 0;
    }
    let key = sk as u64;
    let now = unsafe { bpf_ktime_get_ns() };
    if new == TCP_SYN_SENT {
        // connect(2) runs in the caller's context: remember whose connect this is.
        let start = ConnectStart {
            ts_ns: now,
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        };
        if CONNECT_START.insert(&key, &start, 0).is_err() {
            kernel::lose(Loss::ConnectStartMapFull);
        }
        return 0;
    }
    let Some(start) = (unsafe { CONNECT_START.get(&key) }).copied() else {
        return 0;
    };
    let _ = CONNECT_START.remove(&key);
    if new == TCP_ESTABLISHED {
        count(start.cgroup_id, |c| c.tcp_connects += 1);
        if let Some(h) = hist::entry(
            &CONNECT_HIST,
            &start.cgroup_id,
            &Hist::ZERO,
            Loss::ConnectHistMapFull,
        ) {
            hist::observe(h, now.saturating_sub(start.ts_ns));
        }
    } else {
        count(start.cgroup_id, |c| c.tcp_connect_failures += 1);
    }
    0
}
