//! TCP per cgroup: retransmits, resets sent, connects and their latency.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use sonde_probe_abi::CgroupCounters;

use super::reader::Reading;
use crate::export::families::{self, Labels};

pub fn encode(enc: &mut DescriptorEncoder, r: &Reading) -> fmt::Result {
    let counters: Vec<(Labels, CgroupCounters)> = r
        .snapshot
        .cgroups
        .iter()
        .filter_map(|(id, d)| Some((r.labels(*id), d.counters?)))
        .filter(|(_, c)| {
            c.tcp_retransmits + c.tcp_resets_sent + c.tcp_connects + c.tcp_connect_failures > 0
        })
        .collect();
    let family = |enc: &mut DescriptorEncoder, name, help, f: fn(&CgroupCounters) -> u64| {
        families::counter(
            enc,
            name,
            help,
            counters.iter().map(|(l, c)| (l.clone(), f(c) as f64)),
        )
    };
    family(
        enc,
        "cgroup_tcp_retransmits",
        "TCP segments retransmitted, by the socket's cgroup.",
        |c| c.tcp_retransmits,
    )?;
    family(
        enc,
        "cgroup_tcp_resets_sent",
        "TCP resets sent, by the socket's cgroup (no socket: \"/\").",
        |c| c.tcp_resets_sent,
    )?;
    family(
        enc,
        "cgroup_tcp_connects",
        "Outgoing TCP connects that were established, by the caller's cgroup.",
        |c| c.tcp_connects,
    )?;
    family(
        enc,
        "cgroup_tcp_connect_failures",
        "Outgoing TCP connects that failed (refused, reset or timed out), by the caller's cgroup.",
        |c| c.tcp_connect_failures,
    )?;
    r.encode_cgroup_histogram(
        enc,
        "cgroup_tcp_connect_latency_seconds",
        "Time from SYN sent to connection established, by the caller's cgroup.",
        |d| d.connect.as_ref(),
    )
}
