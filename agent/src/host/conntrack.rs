//! `conntrack`: the netfilter connection-tracking table's size and limit, and its
//! per-CPU statistics summed, from /proc/sys/net/netfilter and
//! /proc/net/stat/nf_conntrack. Without the nf_conntrack module the files are
//! absent and the collector reports failure, as node_exporter does.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources, field};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Conntrack;

/// Statistics node_exporter serves: column in /proc/net/stat/nf_conntrack, help.
const STATS: [(&str, &str); 8] = [
    ("found", "Number of searched entries which were successful."),
    (
        "invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        "ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    ("insert", "Number of entries inserted into the list."),
    (
        "insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        "drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        "early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        "search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

impl Collect for Conntrack {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let count = src.proc("sys/net/netfilter/nf_conntrack_count")?;
        let max = src.proc("sys/net/netfilter/nf_conntrack_max")?;
        let stats = parse_stats(&src.proc("net/stat/nf_conntrack")?)?;
        let number =
            |text: &str, file| field::<u64>(Some(text.trim()), file, text.trim()).map(|v| v as f64);
        let entries = number(&count, "nf_conntrack_count")?;
        let limit = number(&max, "nf_conntrack_max")?;

        families::gauge(
            enc,
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            [(NO_LABELS, entries)],
        )?;
        families::gauge(
            enc,
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            [(NO_LABELS, limit)],
        )?;
        let mut name = String::new();
        for ((column, help), value) in STATS.iter().zip(stats) {
            name.clear();
            name.extend(["node_nf_conntrack_stat_", column]);
            families::gauge(enc, &name, help, [(NO_LABELS, value)])?;
        }
        Ok(())
    }
}

/// Sums the per-CPU rows (hex) of the [`STATS`] columns, found by the header's names.
fn parse_stats(text: &str) -> Result<[f64; STATS.len()], Error> {
    let bad = |what: &str| Error::parse(format!("/proc/net/stat/nf_conntrack: {what}"));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| bad("empty"))?
        .split_ascii_whitespace()
        .collect();
    let mut columns = [0usize; STATS.len()];
    for (slot, (name, _)) in columns.iter_mut().zip(STATS) {
        *slot = header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| bad(&format!("no column {name}")))?;
    }
    let mut sums = [0.0; STATS.len()];
    for line in lines {
        let row: Vec<&str> = line.split_ascii_whitespace().collect();
        if row.len() != header.len() {
            return Err(bad(&format!("bad row {line:?}")));
        }
        for (sum, &column) in sums.iter_mut().zip(&columns) {
            *sum += u64::from_str_radix(row[column], 16)
                .map_err(|_| bad(&format!("bad row {line:?}")))? as f64;
        }
    }
    Ok(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000021  00000000 00000001 00000000 00000002 00000003 00000000 00000000 00000004 00000005 00000006 00000007 00000000  00000000 00000000 00000000 00000008
00000021  00000000 0000000a 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000010
";

    #[test]
    fn sums_cpus_by_column_name() {
        assert_eq!(
            parse_stats(STAT).unwrap(),
            [11.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 24.0]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            "",
            "entries found\n",
            "found invalid ignore insert insert_failed drop early_drop search_restart\n1 2\n",
        ] {
            assert!(parse_stats(bad).is_err(), "{bad:?}");
        }
        let header = "found invalid ignore insert insert_failed drop early_drop search_restart\n";
        assert!(parse_stats(&format!("{header}1 2 3 4 5 6 7 zz\n")).is_err());
        assert_eq!(parse_stats(header).unwrap(), [0.0; 8]);
    }
}
