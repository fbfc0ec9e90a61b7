//! HTTP/1.x exchanges of unmodified services, from their socket syscalls: for
//! processes in the cgroups the agent lists in `HTTP_CGROUPS` (containers), a
//! connection is followed from accept (server side) or connect (client side) to
//! close, keyed by (tgid, fd). On it a request head ("GET /x HTTP/1.1\r\n...")
//! read by a server or written by a client starts a request (its first
//! `HTTP_HEAD` bytes kept in `HTTP_REQUESTS`); the response head ("HTTP/1.1 200")
//! written by the server or read by the client ends it, and one `HttpEvent`
//! goes to the ring buffer. The agent parses method, path and `traceparent`.
//!
//! Classic syscall tracepoints (need tracefs), as the stdout/stderr tap: these
//! kernels have neither kprobes nor BPF trampolines. Every other syscall on the
//! machine costs a cgroup id and one hash lookup. State is bounded: a full map
//! is a counted loss, never an unbounded one; the agent removes the entries of
//! processes that exited without closing (the kernel closes their fds unseen).
//! Followed: accept, accept4, connect, read, recvfrom, write, sendto, close
//! (not readv/writev/sendmsg/recvmsg, nor sendfile bodies, which carry no heads
//! for the servers we know).

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
        bpf_probe_read_kernel_buf, bpf_probe_read_user, bpf_probe_read_user_buf,
        generated::bpf_get_current_cgroup_id,
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use sonde_probe_abi::{
    Conn, ConnKey, HTTP_CLIENT, HTTP_HEAD, HTTP_SERVER, HttpEvent, HttpRequest, Loss,
    PENDING_ACCEPT, PENDING_READ, Peer, Pending,
};

use crate::kernel;

/// 4 MiB: about seven thousand exchanges between two reads by the agent.
#[map]
static HTTP_EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

/// Cgroup ids to follow, kept by the agent; the value is unused.
#[map]
static HTTP_CGROUPS: HashMap<u64, u8> = HashMap::with_max_entries(4096, 0);

/// Open connections of followed processes: 16384 × 32 bytes.
#[map]
static HTTP_CONNS: HashMap<ConnKey, Conn> = HashMap::with_max_entries(16384, 0);

/// Requests in flight (head seen, response not yet): 2048 × 528 bytes.
#[map]
static HTTP_REQUESTS: HashMap<ConnKey, HttpRequest> = HashMap::with_max_entries(2048, 0);

/// Reads and accepts between entry and exit, by thread (pid_tgid).
#[map]
static HTTP_PENDING: HashMap<u64, Pending> = HashMap::with_max_entries(4096, 0);

/// Where a request is built before it is inserted: it is larger than the BPF stack.
#[map]
static HTTP_SCRATCH: PerCpuArray<HttpRequest> = PerCpuArray::with_max_entries(1, 0);

// Field offsets in the syscall tracepoints' records
// (/sys/kernel/tracing/events/syscalls/sys_{enter,exit}_*/format): every
// argument is 8 bytes wide from offset 16; an exit's `ret` is at 16.
const ARG0: usize = 16;
const ARG1: usize = 24;
const ARG2: usize = 32;
const RET: usize = 16;

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The current cgroup when it is followed.
#[inline(always)]
fn followed() -> Option<u64> {
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    unsafe { HTTP_CGROUPS.get(&cgroup_id) }.map(|_| cgroup_id)
}

#[inline(always)]
fn arg(ctx: &TracePointContext, at: usize) -> u64 {
    unsafe { ctx.read_at::<u64>(at) }.unwrap_or(0)
}

#[inline(always)]
fn key(fd: u64) -> ConnKey {
    ConnKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        fd: fd as u32,
    }
}

/// The address in a user `sockaddr` (IPv4 or IPv6); `None` for other families.
#[inline(always)]
fn read_peer(addr: u64) -> Option<Peer> {
    if addr == 0 {
        return Some(Peer::default());
    }
    // family (2), port (2, big endian), then the IPv4 address or the IPv6 flow info.
    let Ok(head) = (unsafe { bpf_probe_read_user(addr as *const [u8; 8]) }) else {
        kernel::lose(Loss::HttpReadFailed);
        return None;
    };
    let family = u16::from_ne_bytes([head[0], head[1]]);
    let mut peer = Peer {
        family,
        port: u16::from_be_bytes([head[2], head[3]]),
        _pad: 0,
        addr: [0; 16],
    };
    match family {
        AF_INET => peer.addr[..4].copy_from_slice(&head[4..8]),
        AF_INET6 => match unsafe { bpf_probe_read_user((addr + 8) as *const [u8; 16]) } {
            Ok(a) => peer.addr = a,
            Err(_) => {
                kernel::lose(Loss::HttpReadFailed);
                return None;
            }
        },
        _ => return None,
    }
    Some(peer)
}

fn follow(fd: u64, peer: Peer, side: u8) {
    let k = key(fd);
    let _ = HTTP_REQUESTS.remove(&k);
    let conn = Conn {
        peer,
        side,
        _pad: [0; 7],
    };
    if HTTP_CONNS.insert(&k, &conn, 0).is_err() {
        kernel::lose(Loss::HttpConnMapFull);
    }
}

/// Whether `b` starts like a request line: the agent checks the whole method.
#[inline(always)]
fn is_request(b: &[u8; 16]) -> bool {
    matches!(
        &[b[0], b[1], b[2], b[3]],
        b"GET " | b"PUT " | b"POST" | b"HEAD" | b"DELE" | b"PATC" | b"OPTI" | b"CONN" | b"TRAC"
    )
}

#[inline(always)]
fn is_response(b: &[u8; 16]) -> bool {
    // "HTTP/1.x NNN"; an interim 1xx (100 Continue) does not end the exchange.
    &b[..7] == b"HTTP/1." && b[8] == b' ' && b[9] != b'1'
}

/// Whether the head in `h` ends (a blank line) within it.
#[inline(always)]
fn head_ends(h: &[u8; HTTP_HEAD]) -> bool {
    let mut i = 0;
    while i + 3 < HTTP_HEAD {
        if h[i] == b'\r' && h[i + 1] == b'\n' && h[i + 2] == b'\r' && h[i + 3] == b'\n' {
            return true;
        }
        i += 1;
    }
    false
}

/// `len` bytes at `buf` went out (`outbound`) or came in on `fd`.
#[inline(always)]
fn on_data(cgroup_id: u64, fd: u64, buf: u64, len: u64, outbound: bool) {
    // The shortest request line, "GET / HTTP/1.0\r\n", and status line are 16 bytes.
    if len < 16 || buf == 0 {
        return;
    }
    let k = key(fd);
    let Some(conn) = (unsafe { HTTP_CONNS.get(&k) }) else {
        return;
    };
    let side = conn.side;
    let peer = conn.peer;
    let Ok(first) = (unsafe { bpf_probe_read_user(buf as *const [u8; 16]) }) else {
        kernel::lose(Loss::HttpReadFailed);
        return;
    };
    let request_dir = (side == HTTP_SERVER) != outbound;
    if request_dir {
        if unsafe { HTTP_REQUESTS.get(&k) }.is_some() || !is_request(&first) {
            return; // a body, or a request pipelined behind one in flight
        }
        start_request(&k, buf, len);
    } else if is_response(&first) {
        end_request(&k, cgroup_id, side, peer, first);
    }
}

#[inline(always)]
fn start_request(k: &ConnKey, buf: u64, len: u64) {
    let Some(req) = HTTP_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // Two constant-bounded sizes the verifier can check, as the tap does.
    let n = if len >= HTTP_HEAD as u64 {
        HTTP_HEAD
    } else {
        (len as usize) & (HTTP_HEAD - 1)
    };
    unsafe {
        (*req).start_ns = bpf_ktime_get_ns();
        (*req).truncated = 0;
        let read = match (*req).head.get_mut(..n) {
            Some(dst) => bpf_probe_read_user_buf(buf as *const u8, dst).is_ok(),
            None => false,
        };
        if !read {
            kernel::lose(Loss::HttpReadFailed);
            return;
        }
        (*req).head_len = n as u32;
        if len > HTTP_HEAD as u64 && !head_ends(&(*req).head) {
            (*req).truncated = 1;
            kernel::lose(Loss::HttpHeadTruncated);
        }
        if HTTP_REQUESTS.insert(k, &*req, 0).is_err() {
            kernel::lose(Loss::HttpRequestMapFull);
        }
    }
}

#[inline(always)]
fn end_request(k: &ConnKey, cgroup_id: u64, side: u8, peer: Peer, response: [u8; 16]) {
    let end_ns = unsafe { bpf_ktime_get_ns() };
    let Some(req) = HTTP_REQUESTS.get_ptr(k) else {
        return;
    };
    let Some(mut slot) = HTTP_EVENTS.reserve::<HttpEvent>(0) else {
        kernel::lose(Loss::HttpRingbufFull);
        let _ = HTTP_REQUESTS.remove(k);
        return;
    };
    let ev = slot.as_mut_ptr();
    unsafe {
        (*ev).start_ns = (*req).start_ns;
        (*ev).end_ns = end_ns;
        (*ev).cgroup_id = cgroup_id;
        (*ev).tgid = k.tgid;
        (*ev).side = side;
        (*ev)._pad = [0; 3];
        (*ev).peer = peer;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; 16]);
        (*ev).response = response;
        (*ev).head_truncated = (*req).truncated;
        (*ev).head_len = (*req).head_len;
        if bpf_probe_read_kernel_buf((*req).head.as_ptr(), &mut (*ev).head).is_err() {
            (*ev).head_len = 0;
        }
    }
    slot.submit(0);
    let _ = HTTP_REQUESTS.remove(k);
}

/// Remembers a read or accept's buffer until its exit.
#[inline(always)]
fn pend(fd: u64, buf: u64, kind: u32) {
    let p = Pending {
        buf,
        fd: fd as u32,
        kind,
    };
    if HTTP_PENDING
        .insert(&bpf_get_current_pid_tgid(), &p, 0)
        .is_err()
    {
        kernel::lose(Loss::HttpPendingMapFull);
    }
}

#[inline(always)]
fn take_pending(kind: u32) -> Option<Pending> {
    let id = bpf_get_current_pid_tgid();
    let p = unsafe { HTTP_PENDING.get(&id) }.copied()?;
    let _ = HTTP_PENDING.remove(&id);
    (p.kind == kind).then_some(p)
}

// ---------------------------------------------------------------- accept

#[inline(always)]
fn accept_enter(ctx: &TracePointContext) {
    if followed().is_some() {
        pend(arg(ctx, ARG0), arg(ctx, ARG1), PENDING_ACCEPT);
    }
}

#[inline(always)]
fn accept_exit(ctx: &TracePointContext) {
    let Some(p) = take_pending(PENDING_ACCEPT) else {
        return;
    };
    let ret = unsafe { ctx.read_at::<i64>(RET) }.unwrap_or(-1);
    if ret < 0 {
        return;
    }
    if let Some(peer) = read_peer(p.buf) {
        follow(ret as u64, peer, HTTP_SERVER);
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_accept4")]
pub fn http_enter_accept4(ctx: TracePointContext) -> i32 {
    accept_enter(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept4")]
pub fn http_exit_accept4(ctx: TracePointContext) -> i32 {
    accept_exit(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_accept")]
pub fn http_enter_accept(ctx: TracePointContext) -> i32 {
    accept_enter(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_accept")]
pub fn http_exit_accept(ctx: TracePointContext) -> i32 {
    accept_exit(&ctx);
    0
}

// ---------------------------------------------------------------- connect, close

#[tracepoint(category = "syscalls", name = "sys_enter_connect")]
pub fn http_enter_connect(ctx: TracePointContext) -> i32 {
    if followed().is_none() {
        return 0;
    }
    let addr = arg(&ctx, ARG1);
    if addr == 0 {
        return 0;
    }
    // Only IP sockets: a Unix socket's connect is not followed.
    if let Some(peer) = read_peer(addr) {
        follow(arg(&ctx, ARG0), peer, HTTP_CLIENT);
    }
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_close")]
pub fn http_enter_close(ctx: TracePointContext) -> i32 {
    if followed().is_none() {
        return 0;
    }
    let k = key(arg(&ctx, ARG0));
    let _ = HTTP_CONNS.remove(&k);
    let _ = HTTP_REQUESTS.remove(&k);
    0
}

// ---------------------------------------------------------------- read, recvfrom

#[inline(always)]
fn read_enter(ctx: &TracePointContext) {
    if followed().is_none() {
        return;
    }
    let fd = arg(ctx, ARG0);
    if unsafe { HTTP_CONNS.get(&key(fd)) }.is_some() {
        pend(fd, arg(ctx, ARG1), PENDING_READ);
    }
}

#[inline(always)]
fn read_exit(ctx: &TracePointContext) {
    let Some(p) = take_pending(PENDING_READ) else {
        return;
    };
    let ret = unsafe { ctx.read_at::<i64>(RET) }.unwrap_or(-1);
    let Some(cgroup_id) = followed() else {
        return;
    };
    if ret > 0 {
        on_data(cgroup_id, p.fd as u64, p.buf, ret as u64, false);
    }
}

#[tracepoint(category = "syscalls", name = "sys_enter_read")]
pub fn http_enter_read(ctx: TracePointContext) -> i32 {
    read_enter(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_read")]
pub fn http_exit_read(ctx: TracePointContext) -> i32 {
    read_exit(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_recvfrom")]
pub fn http_enter_recvfrom(ctx: TracePointContext) -> i32 {
    read_enter(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvfrom")]
pub fn http_exit_recvfrom(ctx: TracePointContext) -> i32 {
    read_exit(&ctx);
    0
}

// ---------------------------------------------------------------- write, sendto

#[inline(always)]
fn write_enter(ctx: &TracePointContext) {
    let Some(cgroup_id) = followed() else {
        return;
    };
    on_data(
        cgroup_id,
        arg(ctx, ARG0),
        arg(ctx, ARG1),
        arg(ctx, ARG2),
        true,
    );
}

#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn http_enter_write(ctx: TracePointContext) -> i32 {
    write_enter(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn http_enter_sendto(ctx: TracePointContext) -> i32 {
    write_enter(&ctx);
    0
}
