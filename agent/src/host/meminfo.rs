//! `meminfo`: every /proc/meminfo field as a gauge, named as node_exporter names it:
//! `Active(anon)` becomes `node_memory_Active_anon_bytes`, kB values are multiplied
//! by 1024 and get `_bytes`, unit-less counts (`HugePages_Total`) keep their name.
//!
//! Hand-parsed: procfs's `Meminfo` is a fixed struct, and node_exporter serves
//! whichever fields the running kernel writes.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources, field};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Meminfo;

impl Collect for Meminfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let fields = parse(&src.proc("meminfo")?)?;
        let (mut name, mut help) = (String::new(), String::new());
        for (key, value) in fields {
            name.clear();
            name.push_str("node_memory_");
            name.push_str(&key);
            help.clear();
            help.push_str("Memory information field ");
            help.push_str(&key);
            help.push('.');
            families::gauge(enc, &name, &help, [(NO_LABELS, value)])?;
        }
        Ok(())
    }
}

/// `(metric key, value)` per line, e.g. `("Active_anon_bytes", 1048576.0)`.
fn parse(meminfo: &str) -> Result<Vec<(String, f64)>, Error> {
    let mut fields = Vec::with_capacity(64);
    for line in meminfo.lines() {
        let mut parts = line.split_ascii_whitespace();
        let Some(label) = parts.next() else { continue }; // blank lines occur on old kernels
        let mut value: f64 = field(parts.next(), "/proc/meminfo", line)?;
        let mut key = metric_key(label.strip_suffix(':').unwrap_or(label));
        match (parts.next(), parts.next()) {
            (None, _) => {}
            // The only unit the kernel writes is kB.
            (Some(_unit), None) => {
                value *= 1024.0;
                key.push_str("_bytes");
            }
            _ => return Err(Error::parse(format!("/proc/meminfo: bad line {line:?}"))),
        }
        // A repeated field must not repeat a family; the last one wins, as in node_exporter.
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some(seen) => seen.1 = value,
            None => fields.push((key, value)),
        }
    }
    Ok(fields)
}

/// node_exporter's rewrite of `\((.*)\)` to `_$1`: `Active(anon)` -> `Active_anon`.
fn metric_key(label: &str) -> String {
    match (label.find('('), label.rfind(')')) {
        (Some(open), Some(close)) if open < close => [
            &label[..open],
            "_",
            &label[open + 1..close],
            &label[close + 1..],
        ]
        .concat(),
        _ => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_units_follow_node_exporter() {
        let meminfo = "MemTotal:       24668984 kB\nActive(anon):     123 kB\n\nHugePages_Total:       0\n\
                       Hugepagesize:       2048 kB\nDirectMap4k:      1 kB\n";
        assert_eq!(
            parse(meminfo).unwrap(),
            vec![
                ("MemTotal_bytes".to_string(), 24668984.0 * 1024.0),
                ("Active_anon_bytes".to_string(), 123.0 * 1024.0),
                ("HugePages_Total".to_string(), 0.0),
                ("Hugepagesize_bytes".to_string(), 2048.0 * 1024.0),
                ("DirectMap4k_bytes".to_string(), 1024.0),
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "MemTotal:\n",
            "MemTotal: lots kB\n",
            "MemTotal: 1 kB extra\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(metric_key("a)b(c"), "a)b(c");
    }
}
