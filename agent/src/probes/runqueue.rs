//! Run-queue latency per cgroup, as a Prometheus histogram.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::{maps::prometheus_buckets, reader::Reading};
use crate::export::families::{self, HistogramSample};

pub fn encode(enc: &mut DescriptorEncoder, r: &Reading) -> fmt::Result {
    families::histogram(
        enc,
        "cgroup_runqueue_latency_seconds",
        "Time tasks waited on a CPU run queue between becoming runnable and running, by cgroup.",
        r.snapshot.cgroups.iter().filter_map(|(id, d)| {
            let (sum, buckets) = prometheus_buckets(d.runqueue.as_ref()?);
            Some(HistogramSample { labels: r.labels(*id), sum, buckets })
        }),
    )
}
