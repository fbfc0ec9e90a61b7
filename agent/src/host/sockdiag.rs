//! A NETLINK_SOCK_DIAG dump of TCP sockets: the state and queue sizes of every
//! socket in the agent's network namespace, as node_exporter 1.5's `tcpstat` reads
//! them. Far cheaper than /proc/net/tcp, which the kernel formats as text.
//!
//! Each dump walks every bucket of the kernel's TCP hash tables, which on a large
//! machine costs more than the sockets in them. node_exporter walks once per address
//! family; the older `TCPDIAG_GETSOCK` request answers for both families in one walk,
//! so we ask that first and fall back to one `SOCK_DIAG_BY_FAMILY` per family.

use std::{
    io, mem,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// linux/inet_diag.h: the original request, which dumps IPv4 and IPv6 together.
const TCPDIAG_GETSOCK: u16 = 18;
/// linux/sock_diag.h: the per-family request.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Every TCP state, 1 (established) to 11 (closing): node_exporter's `TCPFAll`.
const ALL_STATES: u32 = 0xfff;
const NLMSG_HDRLEN: usize = mem::size_of::<libc::nlmsghdr>();
/// `struct inet_diag_msg`: state at byte 1, rqueue and wqueue at 56 and 60.
const DIAG_MSG_LEN: usize = 72;

/// One TCP socket: state (linux/tcp_states.h numbering), receive and send queue.
pub(super) type Socket = (u8, u32, u32);

/// Calls `each` for every TCP socket; IPv6 ones too if `ipv6`.
pub(super) fn tcp_sockets(ipv6: bool, mut each: impl FnMut(Socket)) -> io::Result<()> {
    let mut delivered = false;
    let both = dump(&both_families_request(), &mut |s| {
        delivered = true;
        each(s)
    });
    match both {
        // A kernel without the old request refuses it before sending anything.
        Err(_) if !delivered => {
            dump(&family_request(libc::AF_INET as u8), &mut each)?;
            if ipv6 {
                dump(&family_request(libc::AF_INET6 as u8), &mut each)
            } else {
                Ok(())
            }
        }
        other => other,
    }
}

/// `struct inet_diag_req`: family (ignored: all), lengths and extensions 0, a zeroed
/// `inet_diag_sockid`, then the states and a zero `idiag_dbs`.
fn both_families_request() -> Vec<u8> {
    let mut body = vec![0u8; 4 + 48];
    body.extend(ALL_STATES.to_ne_bytes());
    body.extend(0u32.to_ne_bytes());
    netlink_message(TCPDIAG_GETSOCK, &body)
}

/// `struct inet_diag_req_v2`: family, protocol, no extensions, the states, a zeroed
/// `inet_diag_sockid`.
fn family_request(family: u8) -> Vec<u8> {
    let mut body = vec![family, libc::IPPROTO_TCP as u8, 0, 0];
    body.extend(ALL_STATES.to_ne_bytes());
    body.extend([0u8; 48]);
    netlink_message(SOCK_DIAG_BY_FAMILY, &body)
}

fn netlink_message(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDRLEN + body.len());
    m.extend(((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
    m.extend(kind.to_ne_bytes());
    m.extend(((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    m.extend(1u32.to_ne_bytes()); // sequence
    m.extend(0u32.to_ne_bytes()); // port id: the kernel fills it in
    m.extend(body);
    m
}

/// Sends one dump request and feeds every socket in the answer to `each`.
fn dump(request: &[u8], each: &mut impl FnMut(Socket)) -> io::Result<()> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_receive_timeout(&fd)?;
    send(&fd, request)?;

    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: buf is valid for writes of buf.len() bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if parse_messages(&buf[..n as usize], each)? {
            return Ok(());
        }
    }
}

/// Walks one datagram of netlink messages; true once the dump is done.
fn parse_messages(mut data: &[u8], each: &mut impl FnMut(Socket)) -> io::Result<bool> {
    if data.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "sock_diag: empty reply",
        ));
    }
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sock_diag: bad message length",
            ));
        }
        let payload = &data[NLMSG_HDRLEN..len];
        match kind as i32 {
            libc::NLMSG_DONE => return Ok(true),
            libc::NLMSG_ERROR => {
                let errno = if payload.len() >= 4 {
                    (u32_at(payload, 0) as i32).wrapping_neg()
                } else {
                    libc::EIO
                };
                return Err(io::Error::from_raw_os_error(errno));
            }
            _ if (kind == TCPDIAG_GETSOCK || kind == SOCK_DIAG_BY_FAMILY)
                && payload.len() >= DIAG_MSG_LEN =>
            {
                each((payload[1], u32_at(payload, 56), u32_at(payload, 60)));
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        data = data.get(aligned..).unwrap_or(&[]);
    }
    Ok(false)
}

fn send(fd: &OwnedFd, request: &[u8]) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_nl is valid; it addresses the kernel (pid 0).
    let mut kernel: libc::sockaddr_nl = unsafe { mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: request and kernel are live and correctly sized for the whole call.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The kernel answers a dump at once; the timeout only guards the scrape against
/// a kernel that never does.
fn set_receive_timeout(fd: &OwnedFd) -> io::Result<()> {
    let timeout = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: timeout is a live timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut m = Vec::new();
        m.extend((len as u32).to_ne_bytes());
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(payload);
        m.resize((len + 3) & !3, 0);
        m
    }

    fn diag(state: u8, rqueue: u32, wqueue: u32) -> Vec<u8> {
        let mut p = vec![0u8; DIAG_MSG_LEN];
        p[1] = state;
        p[56..60].copy_from_slice(&rqueue.to_ne_bytes());
        p[60..64].copy_from_slice(&wqueue.to_ne_bytes());
        p
    }

    #[test]
    fn walks_a_dump() {
        let mut data = message(SOCK_DIAG_BY_FAMILY, &diag(1, 0, 10));
        data.extend(message(SOCK_DIAG_BY_FAMILY, &diag(10, 2, 4096)));
        let mut seen = Vec::new();
        assert!(!parse_messages(&data, &mut |s| seen.push(s)).unwrap());
        assert_eq!(seen, [(1, 0, 10), (10, 2, 4096)]);
        assert!(parse_messages(&message(libc::NLMSG_DONE as u16, &[0; 4]), &mut |_| {}).unwrap());
    }

    #[test]
    fn errors_and_garbage_are_errors_not_panics() {
        let err = message(libc::NLMSG_ERROR as u16, &(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            parse_messages(&err, &mut |_| {})
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EPERM)
        );
        let mut truncated = message(SOCK_DIAG_BY_FAMILY, &diag(1, 0, 0));
        truncated.truncate(30);
        assert!(parse_messages(&truncated, &mut |_| {}).is_err());
        assert!(parse_messages(&[], &mut |_| {}).is_err());
        assert!(!parse_messages(&[1, 2, 3], &mut |_| {}).unwrap());
    }

    #[test]
    fn one_walk_sees_what_two_walks_see() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0");
        let count = |request: &[u8]| {
            let mut listening = 0;
            dump(request, &mut |(state, _, _)| {
                listening += u32::from(state == 10)
            })
            .map(|()| listening)
        };
        let both = count(&both_families_request()).unwrap();
        let inet = count(&family_request(libc::AF_INET as u8)).unwrap();
        let inet6 = count(&family_request(libc::AF_INET6 as u8)).unwrap_or(0);
        assert!(inet >= 1 && inet6 >= u32::from(v6.is_ok()));
        // Other tests may open listeners meanwhile; ours are in both answers.
        assert!(both >= 1 + u32::from(v6.is_ok()));
        let mut total = 0;
        tcp_sockets(true, |_| total += 1).unwrap();
        assert!(total >= 1);
        drop((v4, v6));
    }

    #[test]
    fn requests_have_the_kernels_layout() {
        assert_eq!(both_families_request().len(), 16 + 60);
        assert_eq!(family_request(2).len(), 16 + 56);
        assert_eq!(&family_request(10)[16..18], &[10, libc::IPPROTO_TCP as u8]);
        assert_eq!(
            &both_families_request()[16 + 52..16 + 56],
            &ALL_STATES.to_ne_bytes()
        );
    }
}
