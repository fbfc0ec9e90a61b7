//! The `container_*` families with cAdvisor's names, types, HELP texts and labels.

use std::fmt;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder,
};

use super::stats::{Cfs, DeviceIo, Stats};
use crate::{
    enrich::workloads::Workload,
    export::families::{counter, gauge},
};

/// A cgroup served this scrape: who it is and what was read.
#[derive(Debug)]
pub struct Tracked {
    pub workload: Workload,
    pub stats: Stats,
}

/// cAdvisor's labels, borrowed from the workload: writing a sample allocates nothing.
/// Go's client sorts label names, so this is the order kubelet's /metrics/cadvisor
/// has; the per-series label (`cpu`, `device`) sorts right after `container`.
struct Series<'a> {
    w: &'a Workload,
    extra: Option<(&'static str, &'a str)>,
}

impl EncodeLabelSet for Series<'_> {
    fn encode(&self, enc: &mut LabelSetEncoder) -> fmt::Result {
        let w = self.w;
        ("container", w.container.as_str()).encode(enc.encode_label())?;
        if let Some(extra) = self.extra {
            extra.encode(enc.encode_label())?;
        }
        for label in [
            ("id", &*w.cgroup),
            ("image", w.image.as_str()),
            // cAdvisor's `name` is the runtime's name for the container; under
            // containerd and CRI-O (and here) that is its ID.
            ("name", w.container_id.as_str()),
            ("namespace", w.namespace.as_str()),
            ("pod", w.pod.as_str()),
        ] {
            label.encode(enc.encode_label())?;
        }
        for (key, value) in &w.pod_labels {
            (*key, value.as_str()).encode(enc.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}
use Kind::{Counter, Gauge};

/// One family with a sample per cgroup that has the value: (type, name without
/// `_total`, extra label, value, HELP).
type Family = (
    Kind,
    &'static str,
    Option<(&'static str, &'static str)>,
    fn(&Stats) -> Option<f64>,
    &'static str,
);

#[rustfmt::skip]
const PER_CGROUP: &[Family] = &[
    (Counter, "container_cpu_user_seconds", None, |s| seconds(s.cpu_user_ns),
        "Cumulative user cpu time consumed in seconds."),
    (Counter, "container_cpu_system_seconds", None, |s| seconds(s.cpu_system_ns),
        "Cumulative system cpu time consumed in seconds."),
    // The kubelet serves the total only (no per-CPU usage), labelled cpu="total".
    (Counter, "container_cpu_usage_seconds", Some(("cpu", "total")), |s| seconds(s.cpu_ns),
        "Cumulative cpu time consumed in seconds."),
    (Counter, "container_cpu_cfs_periods", None, |s| Some(cfs(s)?.periods as f64),
        "Number of elapsed enforcement period intervals."),
    (Counter, "container_cpu_cfs_throttled_periods", None, |s| Some(cfs(s)?.throttled_periods as f64),
        "Number of throttled period intervals."),
    (Counter, "container_cpu_cfs_throttled_seconds", None, |s| seconds(Some(cfs(s)?.throttled_ns)),
        "Total time duration the container has been throttled."),
    (Gauge, "container_memory_cache", None, |s| Some(s.memory?.cache as f64),
        "Number of bytes of page cache memory."),
    (Gauge, "container_memory_rss", None, |s| Some(s.memory?.rss as f64),
        "Size of RSS in bytes."),
    (Gauge, "container_memory_usage_bytes", None, |s| Some(s.memory_usage? as f64),
        "Current memory usage in bytes, including all memory regardless of when it was accessed"),
    (Gauge, "container_memory_working_set_bytes", None, |s| Some(s.working_set()? as f64),
        "Current working set in bytes."),
    (Gauge, "container_processes", None, |s| Some(s.processes? as f64),
        "Number of processes running inside the container."),
    (Gauge, "container_threads", None, |s| Some(s.threads? as f64),
        "Number of threads running inside the container"),
    (Counter, "container_oom_events", None, |s| Some(s.oom_kills? as f64),
        "Count of out of memory events observed for the container"),
    (Counter, "container_pressure_cpu_stalled_seconds", None, |s| micros(s.pressure_cpu?.full_us),
        "Total time duration no tasks in the container could make progress due to CPU congestion."),
    (Counter, "container_pressure_cpu_waiting_seconds", None, |s| micros(Some(s.pressure_cpu?.some_us)),
        "Total time duration tasks in the container have waited due to CPU congestion."),
    (Counter, "container_pressure_memory_stalled_seconds", None, |s| micros(s.pressure_memory?.full_us),
        "Total time duration no tasks in the container could make progress due to memory congestion."),
    (Counter, "container_pressure_memory_waiting_seconds", None, |s| micros(Some(s.pressure_memory?.some_us)),
        "Total time duration tasks in the container have waited due to memory congestion."),
    (Counter, "container_pressure_io_stalled_seconds", None, |s| micros(s.pressure_io?.full_us),
        "Total time duration no tasks in the container could make progress due to IO congestion."),
    (Counter, "container_pressure_io_waiting_seconds", None, |s| micros(Some(s.pressure_io?.some_us)),
        "Total time duration tasks in the container have waited due to IO congestion."),
];

/// (name without `_total`, value, HELP) of the per-disk counters, labelled `device`.
type DiskFamily = (&'static str, fn(&DeviceIo) -> Option<f64>, &'static str);

#[rustfmt::skip]
const PER_DISK: &[DiskFamily] = &[
    ("container_fs_reads_bytes", |d| Some(d.bytes?.0 as f64), "Cumulative count of bytes read"),
    ("container_fs_reads", |d| Some(d.ops?.0 as f64), "Cumulative count of reads completed"),
    ("container_fs_writes_bytes", |d| Some(d.bytes?.1 as f64), "Cumulative count of bytes written"),
    ("container_fs_writes", |d| Some(d.ops?.1 as f64), "Cumulative count of writes completed"),
];

pub fn families(enc: &mut DescriptorEncoder, all: &[Tracked]) -> fmt::Result {
    for &(kind, name, extra, value, help) in PER_CGROUP {
        let samples = all.iter().filter_map(|t| {
            Some((
                Series {
                    w: &t.workload,
                    extra,
                },
                value(&t.stats)?,
            ))
        });
        match kind {
            Counter => counter(enc, name, help, samples)?,
            Gauge => gauge(enc, name, help, samples)?,
        }
    }
    for &(name, value, help) in PER_DISK {
        let samples = all.iter().flat_map(|t| {
            t.stats.io.iter().filter_map(|d| {
                Some((
                    Series {
                        w: &t.workload,
                        extra: Some(("device", &d.device)),
                    },
                    value(d)?,
                ))
            })
        });
        counter(enc, name, help, samples)?;
    }
    Ok(())
}

/// cAdvisor serves CFS counters only for containers with a CPU quota. Periods only
/// elapse under a quota, so a count above zero says so without reading the quota.
fn cfs(s: &Stats) -> Option<Cfs> {
    s.cfs.filter(|c| c.periods > 0)
}

fn seconds(ns: Option<u64>) -> Option<f64> {
    Some(ns? as f64 / 1e9)
}

fn micros(us: Option<u64>) -> Option<f64> {
    Some(us? as f64 / 1e6)
}
