//! `filefd`: allocated and maximum file handles from /proc/sys/fs/file-nr, which
//! the usual "file descriptors nearly exhausted" alert divides.

use prometheus_client::encoding::DescriptorEncoder;

use super::source::{Collect, Error, NO_LABELS, Sources, field};
use crate::export::families;

#[derive(Debug)]
pub(super) struct Filefd;

impl Collect for Filefd {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn collect(&self, src: &Sources, enc: &mut DescriptorEncoder) -> Result<(), Error> {
        let (allocated, maximum) = parse(&src.proc("sys/fs/file-nr")?)?;
        families::gauge(
            enc,
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            [(NO_LABELS, allocated)],
        )?;
        families::gauge(
            enc,
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            [(NO_LABELS, maximum)],
        )?;
        Ok(())
    }
}

/// `allocated  free(always 0)  maximum`.
fn parse(file_nr: &str) -> Result<(f64, f64), Error> {
    let mut fields = file_nr.split_ascii_whitespace();
    let line = file_nr.trim_end();
    let allocated = field::<u64>(fields.next(), "/proc/sys/fs/file-nr", line)?;
    let maximum = field::<u64>(fields.nth(1), "/proc/sys/fs/file-nr", line)?;
    Ok((allocated as f64, maximum as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_allocated_and_maximum() {
        assert_eq!(parse("477\t0\t2466177\n").unwrap(), (477.0, 2466177.0));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in ["", "477 0\n", "x 0 1\n", "1 0 y\n"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
