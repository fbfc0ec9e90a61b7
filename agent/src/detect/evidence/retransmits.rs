//! `FrequentTCPRetransmits`: the node's TCP retransmits per second (summed over
//! cgroups from the probes' per-cgroup counters) above
//! `tcp_retransmits_per_second` in every window for `sustain`; back to normal
//! after it stays below for as long. Names the cgroups that retransmitted most.

use super::{
    Verdict,
    sustain::Sustain,
    window::{Window, top},
};
use crate::detect::problem::PodRef;

pub(super) const KIND: &str = "FrequentTCPRetransmits";
pub(super) const DEFAULT_REASON: &str = "TCPRetransmitsAreNormal";
pub(super) const DEFAULT_MESSAGE: &str = "TCP retransmits on the node are at a normal rate";
pub(super) const PROBLEM: &str = "FrequentTCPRetransmits";

pub(super) struct Retransmits {
    limit: f64,
    top: usize,
    state: Sustain,
    /// The last bad window's message and pods, reported while the condition holds.
    last: Option<(String, Vec<PodRef>)>,
}

impl Retransmits {
    pub fn new(limit: f64, sustain: std::time::Duration, top: usize) -> Retransmits {
        Retransmits {
            limit,
            top,
            state: Sustain::new(sustain),
            last: None,
        }
    }

    pub fn observe(&mut self, w: &Window) -> Verdict {
        let secs = w.seconds();
        let mut per_cgroup: Vec<(u64, f64)> = w
            .counter_deltas(|c| c.tcp_retransmits)
            .into_iter()
            .map(|(id, n)| (id, n as f64 / secs))
            .collect();
        let rate: f64 = per_cgroup.iter().map(|(_, r)| r).sum();
        let bad = rate > self.limit;
        if bad {
            per_cgroup.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let (most, pods) = top(w, &per_cgroup, self.top, |r| format!("{r:.1}/s"));
            let message = format!(
                "{rate:.1} TCP retransmits/s on the node (above {}/s); most from: {most}",
                self.limit
            );
            self.last = Some((message, pods));
        }
        Verdict::sustained(self.state.observe(w.start, w.end, bad), PROBLEM, &self.last)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{super::window::testing::*, *};

    #[test]
    fn sustained_rate_raises_and_clears_with_hysteresis() {
        let mut d = Retransmits::new(50.0, Duration::from_secs(60), 3);
        let t0 = Instant::now();
        // Cumulative counters: 'a' retransmits 60/s, 'b' 30/s, a host cgroup 3/s
        // for 4 windows of 30 s; then nothing.
        let mut readings = vec![Builder::default().build()];
        for i in 1..=4u64 {
            readings.push(
                Builder::default()
                    .retransmits(1, "a", 1800 * i)
                    .retransmits(2, "b", 900 * i)
                    .retransmits(3, "", 90 * i)
                    .retransmits(4, "c", 1)
                    .build(),
            );
        }
        for _ in 0..2 {
            readings.push(
                Builder::default()
                    .retransmits(1, "a", 7200)
                    .retransmits(2, "b", 3600)
                    .retransmits(3, "", 360)
                    .retransmits(4, "c", 1)
                    .build(),
            );
        }
        let verdicts: Vec<Verdict> = readings
            .windows(2)
            .enumerate()
            .map(|(i, r)| d.observe(&window(&r[0], &r[1], t0, 30 * i as u64, 30)))
            .collect();
        let active: Vec<bool> = verdicts
            .iter()
            .map(|v| matches!(v, Verdict::Problem { .. }))
            .collect();
        assert_eq!(active, [false, true, true, true, true, false]);
        let Verdict::Problem {
            reason,
            message,
            pods,
        } = &verdicts[1]
        else {
            unreachable!()
        };
        assert_eq!(reason, PROBLEM);
        assert_eq!(
            message,
            "93.0 TCP retransmits/s on the node (above 50/s); most from: \
             pod default/a container app 60.0/s, pod default/b container app 30.0/s, cgroup /kubepods/3 3.0/s"
        );
        assert_eq!(
            pods.iter().map(|p| p.pod.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        // While it clears, the condition keeps the last bad window's message.
        assert_eq!(&verdicts[4], &verdicts[3]);
    }

    #[test]
    fn below_the_limit_never_fires() {
        let mut d = Retransmits::new(50.0, Duration::from_secs(30), 3);
        let t0 = Instant::now();
        let prev = Builder::default().build();
        let cur = Builder::default().retransmits(1, "a", 1500).build(); // exactly 50/s
        assert_eq!(d.observe(&window(&prev, &cur, t0, 0, 30)), Verdict::Healthy);
    }
}
