//! `tcpstat`: TCP sockets by state, plus the bytes queued in their receive and send
//! queues, as `node_tcp_connection_states{state}`. Off by default in node_exporter,
//! served by default here.
//!
//! Read over netlink sock_diag like node_exporter 1.5, so listening sockets count
//! their backlog limit as `tx_queued_bytes` as they do there. Where sock_diag is
//! unavailable (no inet_diag module), /proc/net/tcp{,6} is read instead; it reports
//! 0 as a listening socket's send queue, so `tx_queued_bytes` is smaller then.

use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::DescriptorEncoder;
use tracing::debug;

use super::{
    sockdiag::{self, Socket},
    source::{Collect, Error, Sources},
};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Tcpstat;

/// State names by linux/tcp_states.h number (index 0 is unused).
const STATES: [&str; 12] = [
    "unknown",
    "established",
    "syn_sent",
    "syn_recv",
    "fin_wait1",
    "fin_wait2",
    "time_wait",
    "close",
    "close_wait",
    "last_ack",
    "listen",
    "closing",
];

/// Socket counts by state, and queued bytes. A state no socket is in is not served,
/// and the queue totals only when there is a socket at all, as in node_exporter.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    by_state: [u64; STATES.len()],
    rx_queued: u64,
    tx_queued: u64,
    sockets: u64,
}

impl Counts {
    fn add(&mut self, (state, rqueue, wqueue): Socket) {
        if let Some(n) = self.by_state.get_mut(state as usize) {
            *n += 1;
        }
        self.rx_queued += u64::from(rqueue);
        self.tx_queued += u64::from(wqueue);
        self.sockets += 1;
    }
}

impl Collect for Tcpstat {
    fn name(&self) -> &'static str {
        "tcpstat"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let mut counts = Counts::default();
        // node_exporter's test for IPv6: /proc/net/tcp6 exists.
        let ipv6 = src.proc_path("net/tcp6").exists();
        let netlink = sockdiag::tcp_sockets(ipv6, |s| counts.add(s));
        if let Err(e) = netlink {
            static NOTED: AtomicBool = AtomicBool::new(false);
            if !NOTED.swap(true, Ordering::Relaxed) {
                debug!("sock_diag unavailable ({e}); reading /proc/net/tcp instead");
            }
            counts = Counts::default();
            parse_proc(&src.proc("net/tcp")?, &mut counts)?;
            if let Some(v6) = src.proc_optional("net/tcp6")? {
                parse_proc(&v6, &mut counts)?;
            }
        }

        let states = STATES
            .iter()
            .zip(counts.by_state)
            .skip(1)
            .filter(|&(_, n)| n > 0)
            .map(|(s, n)| (*s, n as f64));
        let queues = [
            ("rx_queued_bytes", counts.rx_queued as f64),
            ("tx_queued_bytes", counts.tx_queued as f64),
        ];
        let queues = queues.into_iter().filter(|_| counts.sockets > 0);
        families::gauge(
            enc,
            "node_tcp_connection_states",
            "Number of connection states.",
            states
                .chain(queues)
                .map(|(state, v)| ([("state", state)], v)),
        )?;
        Ok(())
    }
}

/// /proc/net/tcp: `sl local remote st tx_queue:rx_queue ...`, numbers in hex.
fn parse_proc(text: &str, counts: &mut Counts) -> Result<(), Error> {
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let bad = || Error::parse(format!("/proc/net/tcp: bad line {line:?}"));
        let mut fields = line.split_ascii_whitespace().skip(3);
        let state = fields
            .next()
            .and_then(|s| u8::from_str_radix(s, 16).ok())
            .ok_or_else(bad)?;
        let (tx, rx) = fields
            .next()
            .and_then(|q| q.split_once(':'))
            .ok_or_else(bad)?;
        let hex = |s: &str| u32::from_str_radix(s, 16).map_err(|_| bad());
        counts.add((state, hex(rx)?, hex(tx)?));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4A38 00000000:0000 0A 00000000:00000003 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:4A38 0100007F:B2A4 01 00000010:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";

    #[test]
    fn counts_proc_lines() {
        let mut counts = Counts::default();
        parse_proc(TCP, &mut counts).unwrap();
        assert_eq!(counts.by_state[10], 1);
        assert_eq!(counts.by_state[1], 1);
        assert_eq!(
            (counts.rx_queued, counts.tx_queued, counts.sockets),
            (3, 16, 2)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "h\n 0: a b ZZ 0:0\n",
            "h\n 0: a b 01\n",
            "h\n 0: a b 01 00000000\n",
            "h\n 0: a b 01 x:y\n",
        ] {
            assert!(parse_proc(bad, &mut Counts::default()).is_err(), "{bad:?}");
        }
        let mut counts = Counts::default();
        counts.add((200, 1, 1));
        assert_eq!(
            counts.sockets, 1,
            "an unknown state is counted in the queues only"
        );
    }
}
