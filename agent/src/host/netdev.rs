//! `netdev`: per-interface traffic counters from /proc/net/dev, as
//! `node_network_{receive,transmit}_<field>_total{device}`.
//!
//! node_exporter 1.5 reads these over rtnetlink and folds the detailed error
//! counters into the /proc/net/dev columns, so the values are the same.
//! `receive_nohandler` has no /proc/net/dev column; it comes from
//! /sys/class/net/<dev>/statistics/rx_nohandler.
//!
//! Hand-parsed: procfs's `InterfaceDeviceStatus` splits on whitespace, which breaks
//! on kernels that print `eth0:123` with no space after a long name, and builds a
//! map keyed by cloned names.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, Sources, field, read};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Netdev;

/// The /proc/net/dev columns, in order.
const FIELDS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

type Device<'a> = (&'a str, [f64; 16]);

impl Collect for Netdev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let text = src.proc("net/dev")?;
        let devices = parse(&text)?;
        let (mut name, mut help) = (String::new(), String::new());
        for (i, field) in FIELDS.iter().enumerate() {
            name.clear();
            name.extend(["node_network_", field]);
            help.clear();
            help.extend(["Network device statistic ", field, "."]);
            families::counter(
                enc,
                &name,
                &help,
                devices.iter().map(|(dev, v)| ([("device", *dev)], v[i])),
            )?;
        }
        let nohandler: Vec<(&str, f64)> = devices
            .iter()
            .filter_map(|(dev, _)| {
                let path = src.sys_path(&format!("class/net/{dev}/statistics/rx_nohandler"));
                Some((*dev, read(&path).ok()?.trim().parse().ok()?))
            })
            .collect();
        families::counter(
            enc,
            "node_network_receive_nohandler",
            "Network device statistic receive_nohandler.",
            nohandler.iter().map(|(dev, v)| ([("device", *dev)], *v)),
        )?;
        Ok(())
    }
}

fn parse(text: &str) -> Result<Vec<Device<'_>>, Error> {
    let mut devices = Vec::new();
    for line in text.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let bad = || Error::parse(format!("/proc/net/dev: bad line {line:?}"));
        let (name, counters) = line.rsplit_once(':').ok_or_else(bad)?;
        let name = name.trim();
        let mut values = [0.0; 16];
        let mut counters = counters.split_ascii_whitespace();
        for slot in &mut values {
            *slot = field::<u64>(counters.next(), "/proc/net/dev", line)? as f64;
        }
        if name.is_empty() || devices.iter().any(|(d, _)| *d == name) {
            return Err(bad());
        }
        devices.push((name, values));
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   63444      64    0    0    0     0          0         0    63444      64    0    0    0     0       0          0
  eth0:245640335    6324    1    2    3     4          5         6   324201    3706    7    8    9    10      11         12
";

    #[test]
    fn reads_every_column() {
        let devices = parse(DEV).unwrap();
        assert_eq!(devices.len(), 2);
        assert_eq!(devices[0].0, "lo");
        assert_eq!(devices[1].0, "eth0");
        assert_eq!(devices[1].1[0], 245640335.0);
        assert_eq!(devices[1].1[7], 6.0);
        assert_eq!(devices[1].1[15], 12.0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let header = "h1\nh2\n";
        for bad in [
            "eth0 1 2 3\n",
            "eth0: 1 2 3\n",
            ": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
            "eth0: x\n",
        ] {
            assert!(parse(&format!("{header}{bad}")).is_err(), "{bad:?}");
        }
        assert!(parse("").unwrap().is_empty());
    }
}
