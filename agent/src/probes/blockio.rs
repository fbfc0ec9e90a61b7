//! Block I/O per device and operation, measured from request issue to completion.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use sonde_probe_abi::{CgroupIo, DiskKey};

use super::{maps::prometheus_buckets, reader::Reading};
use crate::export::families::{self, HistogramSample, Labels};

/// `REQ_OP_*` names, as in the kernel's `blk_types.h`.
pub fn op_name(op: u32) -> String {
    match op {
        0 => "read".into(),
        1 => "write".into(),
        2 => "flush".into(),
        3 => "discard".into(),
        5 => "secure_erase".into(),
        9 => "write_zeroes".into(),
        n => format!("op{n}"),
    }
}

fn labels(r: &Reading, key: &DiskKey) -> Labels {
    let device = r.disk_names.get(&key.dev).cloned().unwrap_or_default();
    crate::labels!("device" => device, "op" => op_name(key.op))
}

/// Per-cgroup series: the workload's labels, then device and op.
fn cgroup_io<'a>(
    r: &'a Reading,
    pick: fn(&CgroupIo) -> u64,
) -> impl Iterator<Item = (Labels, f64)> + 'a {
    r.snapshot.cgroups.iter().flat_map(move |(id, d)| {
        d.io.iter().map(move |(disk, io)| {
            let mut l = r.labels(*id);
            l.extend(labels(r, disk));
            (l, pick(io) as f64)
        })
    })
}

pub fn encode(enc: &mut DescriptorEncoder, r: &Reading) -> fmt::Result {
    let disks = &r.snapshot.disks;
    families::counter(
        enc,
        "disk_io_requests",
        "Block I/O requests completed, by device and operation.",
        disks.iter().map(|(k, s)| (labels(r, k), s.requests as f64)),
    )?;
    families::counter(
        enc,
        "disk_io_bytes",
        "Bytes of block I/O completed, by device and operation.",
        disks.iter().map(|(k, s)| (labels(r, k), s.bytes as f64)),
    )?;
    families::counter(
        enc,
        "cgroup_disk_io_requests",
        "Block I/O requests completed, by the cgroup that submitted them, device and operation.",
        cgroup_io(r, |io| io.requests),
    )?;
    families::counter(
        enc,
        "cgroup_disk_io_bytes",
        "Bytes of block I/O completed, by the cgroup that submitted them, device and operation.",
        cgroup_io(r, |io| io.bytes),
    )?;
    families::histogram(
        enc,
        "disk_io_latency_seconds",
        "Block I/O latency from issue to the device until completion, by device and operation.",
        disks.iter().map(|(k, s)| {
            let (sum, buckets) = prometheus_buckets(&s.latency);
            HistogramSample {
                labels: labels(r, k),
                sum,
                buckets,
            }
        }),
    )
}
