//! `sockstat`: socket counts per protocol from /proc/net/sockstat and
//! /proc/net/sockstat6, as `node_sockstat_<PROTO>_<state>` gauges, plus
//! `_mem_bytes` for protocols whose `mem` is counted in pages.
//!
//! Hand-parsed: procfs has no sockstat parser.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Sockstat {
    page_size: f64,
}

/// The keys node_exporter serves, in its order; it ignores any others.
const KEYS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

/// One served value: protocol, key, value.
type Stat<'a> = (&'a str, &'a str, f64);

impl Sockstat {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Sockstat {
            page_size: if page_size > 0 {
                page_size as f64
            } else {
                4096.0
            },
        }
    }
}

impl Collect for Sockstat {
    fn name(&self) -> &'static str {
        "sockstat"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        // Either file is absent when its IP version is disabled; that is not a failure.
        let v4 = src.proc_optional("net/sockstat")?;
        let v6 = src.proc_optional("net/sockstat6")?;
        let mut used = None;
        let mut stats = Vec::new();
        if let Some(v4) = &v4 {
            used = parse("/proc/net/sockstat", v4, &mut stats)?;
        }
        if let Some(v6) = &v6 {
            parse("/proc/net/sockstat6", v6, &mut stats)?;
        }

        families::gauge(
            enc,
            "node_sockstat_sockets_used",
            "Number of IPv4 sockets in use.",
            used.map(|u| (NO_LABELS, u)),
        )?;
        let (mut name, mut help) = (String::new(), String::new());
        for (protocol, key, value) in stats {
            let mut serve = |key: &str, value: f64| {
                name.clear();
                name.extend(["node_sockstat_", protocol, "_", key]);
                help.clear();
                help.extend(["Number of ", protocol, " sockets in state ", key, "."]);
                families::gauge(enc, &name, &help, [(NO_LABELS, value)])
            };
            serve(key, value)?;
            if key == "mem" {
                serve("mem_bytes", value * self.page_size)?;
            }
        }
        Ok(())
    }
}

/// Appends the served keys of each `TCP: inuse 4 orphan 0 ...` line, in node_exporter's
/// key order; returns `sockets: used N` if present.
fn parse<'a>(file: &str, text: &'a str, out: &mut Vec<Stat<'a>>) -> Result<Option<f64>, Error> {
    let mut used = None;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let bad = || Error::parse(format!("{file}: bad line {line:?}"));
        let mut fields = line.split_ascii_whitespace();
        let protocol = fields.next().unwrap_or("").trim_end_matches(':');
        let pairs: Vec<&str> = fields.collect();
        if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
            return Err(bad());
        }
        let value = |key: &str| -> Result<Option<f64>, Error> {
            match pairs.chunks(2).find(|kv| kv[0] == key) {
                Some(kv) => kv[1]
                    .parse::<i64>()
                    .map(|v| Some(v as f64))
                    .map_err(|_| bad()),
                None => Ok(None),
            }
        };
        if protocol == "sockets" {
            used = Some(value("used")?.unwrap_or(0.0));
            continue;
        }
        if out.iter().any(|&(p, _, _)| p == protocol) {
            continue; // a repeated protocol must not repeat families
        }
        // node_exporter always serves inuse, the rest only when the kernel writes them.
        out.push((protocol, "inuse", value("inuse")?.unwrap_or(0.0)));
        for key in &KEYS[1..] {
            if let Some(v) = value(key)? {
                out.push((protocol, key, v));
            }
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_v4_and_v6() {
        let v4 = "sockets: used 18\nTCP: inuse 4 orphan 0 tw 1 alloc 5 mem 79\nUDP: inuse 0 mem 2\n\
                  UDPLITE: inuse 0\nRAW: inuse 0\nFRAG: inuse 0 memory 0\n";
        let v6 = "TCP6: inuse 2\nFRAG6: inuse 0 memory 0\n";
        let mut stats = Vec::new();
        assert_eq!(parse("v4", v4, &mut stats).unwrap(), Some(18.0));
        assert_eq!(parse("v6", v6, &mut stats).unwrap(), None);
        let names: Vec<String> = stats.iter().map(|(p, k, _)| format!("{p}_{k}")).collect();
        assert_eq!(
            names,
            [
                "TCP_inuse",
                "TCP_orphan",
                "TCP_tw",
                "TCP_alloc",
                "TCP_mem",
                "UDP_inuse",
                "UDP_mem",
                "UDPLITE_inuse",
                "RAW_inuse",
                "FRAG_inuse",
                "FRAG_memory",
                "TCP6_inuse",
                "FRAG6_inuse",
                "FRAG6_memory",
            ]
        );
        assert!(stats.contains(&("TCP", "mem", 79.0)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "TCP: inuse\n",
            "TCP:\n",
            "TCP: inuse x\n",
            "sockets: used\n",
        ] {
            assert!(parse("v4", bad, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }
}
