//! `CPURunQueueLatencyHigh`: the node-wide run-queue latency p99 (time from
//! wakeup to running, all cgroups' histograms summed over the window) above
//! `runqueue_p99` for `sustain`. Names the cgroups with the worst p99 (among
//! those with enough samples to have one).

use std::time::Duration;

use sonde_probe_abi::Hist;

use super::{
    Verdict,
    blockio::ms,
    quantile::{add, count, quantile},
    sustain::Sustain,
    window::{Window, top},
};
use crate::detect::problem::PodRef;

pub(super) const KIND: &str = "CPURunQueueLatencyHigh";
pub(super) const DEFAULT_REASON: &str = "RunQueueLatencyIsNormal";
pub(super) const DEFAULT_MESSAGE: &str = "tasks on the node get a CPU promptly";
pub(super) const PROBLEM: &str = "RunQueueLatencyHigh";

/// A cgroup needs this many wakeups in a window for its own p99 to name it
/// (one slow wakeup of an idle cgroup is not "the worst").
const MIN_CGROUP_SAMPLES: u64 = 20;

pub(super) struct RunQueue {
    limit: Duration,
    min_samples: u64,
    top: usize,
    state: Sustain,
    last: Option<(String, Vec<PodRef>)>,
}

impl RunQueue {
    pub fn new(limit: Duration, sustain: Duration, min_samples: u64, top: usize) -> RunQueue {
        RunQueue {
            limit,
            min_samples,
            top,
            state: Sustain::new(sustain),
            last: None,
        }
    }

    pub fn observe(&mut self, w: &Window) -> Verdict {
        let per_cgroup = w.runqueue_deltas();
        let mut node = Hist::ZERO;
        for (_, h) in &per_cgroup {
            add(&mut node, h);
        }
        let p99 = (count(&node) >= self.min_samples)
            .then(|| quantile(&node, 0.99))
            .flatten();
        let bad = p99.is_some_and(|p| p > self.limit);
        if let (true, Some(p99)) = (bad, p99) {
            let mut worst: Vec<(u64, Duration)> = per_cgroup
                .iter()
                .filter(|(_, h)| count(h) >= MIN_CGROUP_SAMPLES)
                .filter_map(|(id, h)| Some((*id, quantile(h, 0.99)?)))
                .collect();
            worst.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let (most, pods) = top(w, &worst, self.top, |d| format!("p99 {}", ms(*d)));
            let mut message = format!(
                "run-queue latency p99 {} on the node (above {})",
                ms(p99),
                ms(self.limit)
            );
            if !most.is_empty() {
                message.push_str(&format!("; worst: {most}"));
            }
            self.last = Some((message, pods));
        }
        Verdict::sustained(self.state.observe(w.start, w.end, bad), PROBLEM, &self.last)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::{super::window::testing::*, *};

    fn reading(i: u64, slow_ns: u64) -> crate::probes::reader::Reading {
        // 'batch' waits `slow_ns` on 10% of its wakeups; 'api' always ~2 µs;
        // 'idle' had one very slow wakeup (too few samples to be named).
        let mut batch = hist_at(2_000, 900 * i);
        batch.buckets[sonde_probe_abi::bucket_of(slow_ns)] += 100 * i;
        Builder::default()
            .runqueue(1, "batch", batch)
            .runqueue(2, "api", hist_at(2_000, 1000 * i))
            .runqueue(3, "idle", hist_at(5_000_000_000, i))
            .build()
    }

    #[test]
    fn sustained_high_p99_names_the_worst_pods() {
        let mut d = RunQueue::new(Duration::from_millis(50), Duration::from_secs(90), 100, 3);
        let t0 = Instant::now();
        let rs: Vec<_> = (0..4).map(|i| reading(i, 200_000_000)).collect();
        let v: Vec<Verdict> = rs
            .windows(2)
            .enumerate()
            .map(|(i, r)| d.observe(&window(&r[0], &r[1], t0, 30 * i as u64, 30)))
            .collect();
        assert_eq!(&v[..2], [Verdict::Healthy, Verdict::Healthy]);
        let Verdict::Problem { message, pods, .. } = &v[2] else {
            panic!("{:?}", v[2]);
        };
        // 10% of 'batch' (5% of all) sits in [134, 268) ms: p99 is inside that bucket.
        assert!(message.starts_with("run-queue latency p99 2"), "{message}");
        assert!(
            message.contains("(above 50.0ms); worst: pod default/batch container app p99 "),
            "{message}"
        );
        assert!(!message.contains("idle"), "{message}");
        assert_eq!(pods[0].pod, "batch");
    }

    #[test]
    fn fast_run_queues_stay_healthy() {
        let mut d = RunQueue::new(Duration::from_millis(50), Duration::from_secs(0), 100, 3);
        let t0 = Instant::now();
        let (a, b) = (reading(0, 10_000), reading(1, 10_000));
        assert_eq!(d.observe(&window(&a, &b, t0, 0, 30)), Verdict::Healthy);
    }
}
