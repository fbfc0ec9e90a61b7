//! `loadavg`: the 1, 5 and 15 minute load averages from /proc/loadavg.
//!
//! Hand-parsed: procfs's `LoadAverage` holds f32, and 0.4 widened from f32 would be
//! served as 0.4000000059604645.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources, field};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Loadavg;

impl Collect for Loadavg {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let [one, five, fifteen] = parse(&src.proc("loadavg")?)?;
        families::gauge(enc, "node_load1", "1m load average.", [(NO_LABELS, one)])?;
        families::gauge(enc, "node_load5", "5m load average.", [(NO_LABELS, five)])?;
        families::gauge(
            enc,
            "node_load15",
            "15m load average.",
            [(NO_LABELS, fifteen)],
        )?;
        Ok(())
    }
}

fn parse(loadavg: &str) -> Result<[f64; 3], Error> {
    let mut fields = loadavg.split_ascii_whitespace();
    let mut load = [0.0; 3];
    for slot in &mut load {
        *slot = field(fields.next(), "/proc/loadavg", loadavg.trim_end())?;
    }
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_three_averages() {
        assert_eq!(
            parse("0.40 0.41 0.19 2/189 5880\n").unwrap(),
            [0.4, 0.41, 0.19]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("0.40 0.41\n").is_err());
        assert!(parse("a b c\n").is_err());
        assert!(parse("").is_err());
    }
}
