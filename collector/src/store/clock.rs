//! Wall-clock time in nanoseconds, as the log and trace stores keep it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A duration in nanoseconds, saturating.
pub(crate) fn dur_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
