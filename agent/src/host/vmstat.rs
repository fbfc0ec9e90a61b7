//! `vmstat`: the /proc/vmstat fields that node_exporter serves by default (its
//! `--collector.vmstat.fields` regex `^(oom_kill|pgpg|pswp|pg.*fault).*`), untyped.
//!
//! Hand-parsed: procfs's `VmStat` builds a map of all ~180 fields to serve about 7.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources, field};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Vmstat;

impl Collect for Vmstat {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let text = src.proc("vmstat")?;
        let fields = parse(&text)?;
        let (mut name, mut help) = (String::new(), String::new());
        for (key, value) in fields {
            name.clear();
            name.push_str("node_vmstat_");
            name.push_str(key);
            help.clear();
            help.push_str("/proc/vmstat information field ");
            help.push_str(key);
            help.push('.');
            families::untyped(enc, &name, &help, [(NO_LABELS, value)])?;
        }
        Ok(())
    }
}

fn parse(vmstat: &str) -> Result<Vec<(&str, f64)>, Error> {
    let mut fields: Vec<(&str, f64)> = Vec::new();
    for line in vmstat.lines() {
        let mut parts = line.split_ascii_whitespace();
        let Some(key) = parts.next() else { continue };
        if !default_field(key) || fields.iter().any(|(k, _)| *k == key) {
            continue;
        }
        fields.push((key, field(parts.next(), "/proc/vmstat", line)?));
    }
    Ok(fields)
}

/// node_exporter 1.5's default field regex, `^(oom_kill|pgpg|pswp|pg.*fault).*`.
fn default_field(key: &str) -> bool {
    key.starts_with("oom_kill")
        || key.starts_with("pgpg")
        || key.starts_with("pswp")
        || key
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_default_fields() {
        let vmstat = "nr_free_pages 5\npgpgin 2009785\npgpgout 7\npswpin 0\npswpout 0\npgfault 5095074\n\
                      pgmajfault 1383\nthp_fault_alloc 3\noom_kill 0\npgsteal_kswapd 9\n";
        let keys: Vec<_> = parse(vmstat).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "pgpgin",
                "pgpgout",
                "pswpin",
                "pswpout",
                "pgfault",
                "pgmajfault",
                "oom_kill"
            ]
        );
        assert_eq!(
            parse("pgfault 5095074\n").unwrap(),
            [("pgfault", 5095074.0)]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("pgfault\n").is_err());
        assert!(parse("pgfault x\n").is_err());
        assert!(
            parse("nr_free_pages x\n").unwrap().is_empty(),
            "unserved fields are not parsed"
        );
    }
}
