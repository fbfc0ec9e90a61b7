//! Which process on this host holds the other end of a TCP connection: the
//! socket's inode from the kernel's TCP table, then the process with a file
//! descriptor on that inode. What a span sent over loopback or from a
//! hostNetwork pod has instead of a pod IP.
//!
//! The fd scan touches every process's fd directory, so callers cache the
//! answer per connection (an SDK keeps its connection open).

use std::{net::SocketAddr, path::Path};

use procfs::process::FDTarget;

/// The pid of a process that holds the socket whose local end is `peer` and
/// remote end is `ours` (the receiver's side of the accepted connection).
pub fn pid_of_peer(procfs: &Path, peer: SocketAddr, ours: SocketAddr) -> Option<i32> {
    let inode = socket_inode(peer, ours)?;
    let procs = procfs::process::all_processes_with_root(procfs).ok()?;
    procs.flatten().find_map(|p| {
        let holds = p
            .fd()
            .ok()?
            .flatten()
            .any(|fd| matches!(fd.target, FDTarget::Socket(i) if i == inode));
        holds.then_some(p.pid)
    })
}

/// The inode of the socket `peer -> ours` in the agent's network namespace
/// (the host's, in a DaemonSet with hostNetwork). IPv4 peers of a dual-stack
/// listener appear as v4-mapped v6 addresses on one side: compare canonical forms.
fn socket_inode(peer: SocketAddr, ours: SocketAddr) -> Option<u64> {
    let same = |a: SocketAddr, b: SocketAddr| {
        a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
    };
    let v4 = procfs::net::tcp().unwrap_or_default();
    let v6 = procfs::net::tcp6().unwrap_or_default();
    v4.into_iter()
        .chain(v6)
        .find(|e| same(e.local_address, peer) && same(e.remote_address, ours) && e.inode != 0)
        .map(|e| e.inode)
}

/// The process's cgroup v2 path (`0::/kubepods.slice/...`), relative to the v2 root.
pub fn cgroup_v2_path(procfs: &Path, pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(procfs.join(pid.to_string()).join("cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn finds_this_process_behind_a_loopback_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let ours = listener.local_addr().unwrap();
        let pid = pid_of_peer(Path::new("/proc"), peer, ours);
        assert_eq!(pid, Some(std::process::id() as i32));
        // A connection that does not exist has no owner.
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(pid_of_peer(Path::new("/proc"), nobody, ours), None);
    }

    #[test]
    fn reads_the_v2_path() {
        let p = cgroup_v2_path(Path::new("/proc"), std::process::id() as i32);
        assert!(p.is_some_and(|p| p.starts_with('/')));
    }
}
