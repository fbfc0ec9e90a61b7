//! `SlowBlockIO`: a disk whose read/write latency p99 (issue to completion, from
//! the change of its kernel histogram over the window) stays above
//! `blockio_p99` for `sustain`. Each disk has its own hysteresis; the condition
//! holds while any disk is slow and names each slow disk with the cgroups that
//! did the most I/O on it. A window with fewer than `min_samples` requests on
//! a disk says nothing about it (counts as not slow).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use super::{
    Verdict,
    quantile::{count, quantile},
    sustain::Sustain,
    window::{Window, top},
};
use crate::detect::problem::PodRef;

pub(super) const KIND: &str = "SlowBlockIO";
pub(super) const DEFAULT_REASON: &str = "BlockIOLatencyIsNormal";
pub(super) const DEFAULT_MESSAGE: &str = "block I/O latency on the node's disks is normal";
pub(super) const PROBLEM: &str = "BlockIOLatencyHigh";

struct DiskState {
    state: Sustain,
    last: Option<(String, Vec<PodRef>)>,
}

pub(super) struct BlockIo {
    limit: Duration,
    sustain: Duration,
    min_samples: u64,
    top: usize,
    disks: BTreeMap<u32, DiskState>,
}

impl BlockIo {
    pub fn new(limit: Duration, sustain: Duration, min_samples: u64, top: usize) -> BlockIo {
        BlockIo {
            limit,
            sustain,
            min_samples,
            top,
            disks: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, w: &Window) -> Verdict {
        let deltas = w.disk_deltas();
        let devs: BTreeSet<u32> = deltas.keys().chain(self.disks.keys()).copied().collect();
        for dev in devs {
            let p99 = deltas
                .get(&dev)
                .filter(|h| count(h) >= self.min_samples)
                .and_then(|h| quantile(h, 0.99));
            let bad = p99.is_some_and(|p| p > self.limit);
            let disk = self.disks.entry(dev).or_insert_with(|| DiskState {
                state: Sustain::new(self.sustain),
                last: None,
            });
            if let (true, Some(p99)) = (bad, p99) {
                let mut by_bytes = w.io_bytes(dev);
                by_bytes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let (most, pods) = top(w, &by_bytes, self.top, |b| human_bytes(*b));
                let mut message = format!(
                    "disk {} I/O latency p99 {} (above {})",
                    w.disk_name(dev),
                    ms(p99),
                    ms(self.limit)
                );
                if !most.is_empty() {
                    message.push_str(&format!("; most I/O from: {most}"));
                }
                disk.last = Some((message, pods));
            }
            disk.state.observe(w.start, w.end, bad);
        }
        // Disks with nothing pending are forgotten (devices come and go).
        self.disks.retain(|_, d| !d.state.idle());
        let mut messages = Vec::new();
        let mut pods: Vec<PodRef> = Vec::new();
        for d in self.disks.values().filter(|d| d.state.active()) {
            if let Some((m, p)) = &d.last {
                messages.push(m.clone());
                for p in p {
                    if !pods.contains(p) {
                        pods.push(p.clone());
                    }
                }
            }
        }
        if messages.is_empty() {
            Verdict::Healthy
        } else {
            Verdict::Problem {
                reason: PROBLEM.to_string(),
                message: messages.join("; "),
                pods,
            }
        }
    }
}

pub(super) fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

fn human_bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    format!("{:.1} MiB", b as f64 / MIB)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{super::window::testing::*, *};

    const SDA: u32 = 8 << 20;
    const SDB: u32 = (8 << 20) | 16;

    /// Cumulative reading after `i` windows: sda's reads take ~700 ms, sdb's ~1 ms.
    fn reading(i: u64, slow: bool) -> crate::probes::reader::Reading {
        let slow_ns = if slow { 700_000_000 } else { 1_000_000 };
        let mut sda = hist_at(1_000_000, 1000 * i);
        sda.buckets[sonde_probe_abi::bucket_of(slow_ns)] += 50 * i;
        Builder::default()
            .disk(SDA, "sda", 0, sda)
            .disk(SDB, "sdb", 1, hist_at(1_000_000, 1000 * i))
            .io(1, "db", SDA, 300 * 1024 * 1024 * i)
            .io(2, "", SDA, 10 * 1024 * 1024 * i)
            .io(3, "web", SDB, 1024 * i)
            .build()
    }

    #[test]
    fn slow_disk_sustained_names_disk_and_pods() {
        let mut d = BlockIo::new(Duration::from_millis(500), Duration::from_secs(60), 100, 3);
        let t0 = Instant::now();
        let rs: Vec<_> = (0..5).map(|i| reading(i, true)).collect();
        let v: Vec<Verdict> = rs
            .windows(2)
            .enumerate()
            .map(|(i, r)| d.observe(&window(&r[0], &r[1], t0, 30 * i as u64, 30)))
            .collect();
        assert_eq!(v[0], Verdict::Healthy, "one window is not sustained");
        let Verdict::Problem {
            reason,
            message,
            pods,
        } = &v[1]
        else {
            panic!("{:?}", v[1]);
        };
        assert_eq!(reason, PROBLEM);
        assert!(
            message.starts_with("disk sda I/O latency p99 ") && message.ends_with(
                "ms (above 500.0ms); most I/O from: pod default/db container app 300.0 MiB, cgroup /kubepods/2 10.0 MiB"
            ),
            "{message}"
        );
        assert!(!message.contains("sdb"));
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].pod, "db");
    }

    #[test]
    fn few_requests_or_fast_disks_are_fine() {
        let mut d = BlockIo::new(Duration::from_millis(500), Duration::from_secs(30), 100, 3);
        let t0 = Instant::now();
        let (a, b) = (reading(0, false), reading(1, false));
        assert_eq!(d.observe(&window(&a, &b, t0, 0, 30)), Verdict::Healthy);
        // 10 slow requests only: below min_samples.
        let prev = Builder::default().build();
        let cur = Builder::default()
            .disk(SDA, "sda", 0, hist_at(900_000_000, 10))
            .build();
        let mut d = BlockIo::new(Duration::from_millis(500), Duration::from_secs(30), 100, 3);
        assert_eq!(d.observe(&window(&prev, &cur, t0, 0, 30)), Verdict::Healthy);
        assert!(d.disks.is_empty(), "nothing pending is kept");
    }
}
