//! SystemTime to the API's `Time`.

use std::time::SystemTime;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

/// The API's second-precision time. A time jiff cannot represent (before year -9999 or
/// after 9999: a broken clock) becomes now, so one bad reading never blocks a report.
pub(super) fn api_time(t: SystemTime) -> Time {
    Time(Timestamp::try_from(t).unwrap_or_else(|_| Timestamp::now()))
}
