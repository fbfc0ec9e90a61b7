//! Run-queue latency per cgroup, as a Prometheus histogram.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;

use super::reader::Reading;

pub fn encode(enc: &mut DescriptorEncoder, r: &Reading) -> fmt::Result {
    r.encode_cgroup_histogram(
        enc,
        "cgroup_runqueue_latency_seconds",
        "Time tasks waited on a CPU run queue between becoming runnable and running, by cgroup.",
        |d| d.runqueue.as_ref(),
    )
}
