//! `netstat`: protocol counters from /proc/net/netstat, /proc/net/snmp and
//! /proc/net/snmp6, limited to node_exporter 1.5's default `--collector.netstat.fields`
//! regex and served untyped as `node_netstat_<Protocol>_<Field>`.
//!
//! Hand-parsed: procfs's `Snmp` is a fixed struct of /proc/net/snmp alone, and
//! node_exporter serves fields by name across all three files.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Netstat;

/// One served value: protocol, field, value.
type Stat<'a> = (&'a str, &'a str, f64);

impl Collect for Netstat {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let netstat = src.proc("net/netstat")?;
        let snmp = src.proc("net/snmp")?;
        // Absent when IPv6 is disabled.
        let snmp6 = src.proc_optional("net/snmp6")?;

        let mut stats = Vec::new();
        parse_pairs("/proc/net/netstat", &netstat, &mut stats)?;
        parse_pairs("/proc/net/snmp", &snmp, &mut stats)?;
        if let Some(snmp6) = &snmp6 {
            parse_snmp6(snmp6, &mut stats)?;
        }

        let (mut name, mut help) = (String::new(), String::new());
        for (protocol, key, value) in stats {
            name.clear();
            name.extend(["node_netstat_", protocol, "_", key]);
            help.clear();
            help.extend(["Statistic ", protocol, key, "."]);
            families::untyped(enc, &name, &help, [(NO_LABELS, value)])?;
        }
        Ok(())
    }
}

/// netstat and snmp come as line pairs: `Tcp: ActiveOpens PassiveOpens ...` then
/// `Tcp: 7 3 ...`.
fn parse_pairs<'a>(file: &str, text: &'a str, out: &mut Vec<Stat<'a>>) -> Result<(), Error> {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    while let Some(names) = lines.next() {
        let values = lines.next().unwrap_or("");
        let mut names = names.split_ascii_whitespace();
        let mut values = values.split_ascii_whitespace();
        let protocol = names.next().unwrap_or("").trim_end_matches(':');
        if values.next().map(|v| v.trim_end_matches(':')) != Some(protocol) {
            return Err(Error::parse(format!(
                "{file}: {protocol}: no line of values"
            )));
        }
        let (names, values): (Vec<_>, Vec<_>) = (names.collect(), values.collect());
        if names.len() != values.len() {
            return Err(Error::parse(format!(
                "{file}: {protocol}: {} names, {} values",
                names.len(),
                values.len()
            )));
        }
        for (key, value) in names.into_iter().zip(values) {
            push(out, protocol, key, value, file)?;
        }
    }
    Ok(())
}

/// snmp6 has one `Ip6InReceives 42` per line: the protocol ends at the first "6".
fn parse_snmp6<'a>(text: &'a str, out: &mut Vec<Stat<'a>>) -> Result<(), Error> {
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        let (Some(stat), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some(six) = stat.find('6') else { continue };
        let (protocol, key) = stat.split_at(six + 1);
        push(out, protocol, key, value, "/proc/net/snmp6")?;
    }
    Ok(())
}

fn push<'a>(
    out: &mut Vec<Stat<'a>>,
    protocol: &'a str,
    key: &'a str,
    value: &str,
    file: &str,
) -> Result<(), Error> {
    if !default_field(protocol, key) || out.iter().any(|&(p, k, _)| p == protocol && k == key) {
        return Ok(());
    }
    let parsed = value
        .parse()
        .map_err(|_| Error::parse(format!("{file}: bad value {protocol}{key} {value:?}")))?;
    out.push((protocol, key, parsed));
    Ok(())
}

/// node_exporter 1.5's default fields regex over `<Protocol>_<Field>`:
/// `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$`
/// (protocol names hold no `_`, so splitting the key there is exact).
fn default_field(protocol: &str, key: &str) -> bool {
    if matches!(key, "InErrors" | "InErrs") {
        return true;
    }
    match protocol {
        "Ip" => key == "Forwarding",
        "Ip6" | "IpExt" => matches!(key, "InOctets" | "OutOctets"),
        "Icmp" | "Icmp6" => matches!(key, "InMsgs" | "OutMsgs"),
        "TcpExt" => {
            key.starts_with("Listen")
                || key.starts_with("Syncookies")
                || matches!(key, "TCPSynRetrans" | "TCPTimeouts")
        }
        "Tcp" => matches!(
            key,
            "ActiveOpens"
                | "InSegs"
                | "OutSegs"
                | "OutRsts"
                | "PassiveOpens"
                | "RetransSegs"
                | "CurrEstab"
        ),
        "Udp" | "Udp6" => {
            matches!(
                key,
                "InDatagrams" | "OutDatagrams" | "NoPorts" | "RcvbufErrors" | "SndbufErrors"
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives\nIp: 1 64 6617\n\
Icmp: InMsgs InErrors InCsumErrors OutMsgs\nIcmp: 3 0 0 4\n\
Tcp: RtoAlgorithm ActiveOpens InErrs CurrEstab MaxConn\nTcp: 1 42 0 2 -1\n\
UdpLite: InDatagrams InErrors\nUdpLite: 0 0\n";
    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPTimeouts TCPLossProbes\n\
TcpExt: 0 1 2 3 4\nIpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 245640335 324201\n";
    const SNMP6: &str = "Ip6InReceives                   \t120\nIp6InOctets 9000\nIcmp6InMsgs 5\n\
Udp6InDatagrams 7\nUdpLite6InErrors 0\nIcmp6InType133 1\n";

    fn names(stats: &[Stat]) -> Vec<String> {
        stats.iter().map(|(p, k, _)| format!("{p}_{k}")).collect()
    }

    #[test]
    fn serves_the_default_fields() {
        let mut stats = Vec::new();
        parse_pairs("netstat", NETSTAT, &mut stats).unwrap();
        parse_pairs("snmp", SNMP, &mut stats).unwrap();
        parse_snmp6(SNMP6, &mut stats).unwrap();
        assert_eq!(
            names(&stats),
            [
                "TcpExt_SyncookiesSent",
                "TcpExt_ListenOverflows",
                "TcpExt_ListenDrops",
                "TcpExt_TCPTimeouts",
                "IpExt_InOctets",
                "IpExt_OutOctets",
                "Ip_Forwarding",
                "Icmp_InMsgs",
                "Icmp_InErrors",
                "Icmp_OutMsgs",
                "Tcp_ActiveOpens",
                "Tcp_InErrs",
                "Tcp_CurrEstab",
                "UdpLite_InErrors",
                "Ip6_InOctets",
                "Icmp6_InMsgs",
                "Udp6_InDatagrams",
                "UdpLite6_InErrors",
            ]
        );
        assert!(stats.contains(&("IpExt", "InOctets", 245640335.0)));
        assert!(stats.contains(&("Ip6", "InOctets", 9000.0)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut stats = Vec::new();
        assert!(parse_pairs("snmp", "Tcp: ActiveOpens InSegs\nTcp: 1\n", &mut stats).is_err());
        assert!(parse_pairs("snmp", "Tcp: ActiveOpens\n", &mut stats).is_err());
        assert!(parse_pairs("snmp", "Tcp: ActiveOpens\nTcp: many\n", &mut stats).is_err());
        assert!(parse_pairs("snmp", "Tcp: ActiveOpens\nUdp: 1\n", &mut stats).is_err());
        assert!(parse_snmp6("Ip6InOctets x\n", &mut stats).is_err());
        parse_snmp6("Ip6InOctets\n\n6\n", &mut stats).unwrap();
    }
}
