//! One OOM kill, one event: joining the kernel log's `OOMKilling` line with the
//! eBPF probe's record of the same kill.
//!
//! The kernel log says it NPD's way ("Killed process 1234 (java) total-vm:...");
//! the probe knows the victim's cgroup, hence its pod. Both name the pid, after
//! the words `Killed process`. Whichever arrives first waits up to `hold` for
//! the other; a pair becomes one event with the kernel's text and the probe's
//! pods; a lone one goes out as it is when its wait is over. Both sources read
//! within milliseconds of the kill, so a short hold (2 s) joins nearly all,
//! and a kernel line the kernel's rate limit never printed still leaves the
//! probe's event.

use std::{
    collections::HashMap,
    sync::LazyLock,
    time::{Duration, Instant},
};

use regex::Regex;

use super::problem::ProblemEvent;

/// The reason both the NPD rule and the probe use.
pub const REASON: &str = "OOMKilling";
/// The `source` of the probe's OOM events (`detect::evidence`).
pub const PROBE_SOURCE: &str = super::evidence::SOURCE;

static PID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"Killed process (\d+)").expect("a valid pattern"));

pub struct OomJoin {
    hold: Duration,
    waiting: HashMap<u32, (ProblemEvent, Instant)>,
}

impl OomJoin {
    pub fn new(hold: Duration) -> OomJoin {
        OomJoin {
            hold,
            waiting: HashMap::new(),
        }
    }

    /// Takes an event; returns what should go out now (the event itself when it
    /// is no OOM kill or nothing joins, the joined event for a pair).
    pub fn offer(&mut self, event: ProblemEvent, now: Instant) -> Option<ProblemEvent> {
        if self.hold.is_zero() || event.reason != REASON {
            return Some(event);
        }
        let Some(pid) = PID
            .captures(&event.message)
            .and_then(|c| c[1].parse::<u32>().ok())
        else {
            return Some(event);
        };
        match self.waiting.remove(&pid) {
            Some((other, _)) if is_probe(&other) != is_probe(&event) => {
                let (kernel, probe) = if is_probe(&event) {
                    (other, event)
                } else {
                    (event, other)
                };
                Some(join(kernel, probe))
            }
            Some((same_side, _)) => {
                // The same pid again from the same side (a reused pid, or a burst
                // of identical lines): the older one goes out alone.
                self.waiting.insert(pid, (event, now));
                Some(same_side)
            }
            None => {
                self.waiting.insert(pid, (event, now));
                None
            }
        }
    }

    /// Events whose wait is over at `now`, oldest first.
    pub fn expired(&mut self, now: Instant) -> Vec<ProblemEvent> {
        let hold = self.hold;
        let mut out: Vec<(Instant, ProblemEvent)> = Vec::new();
        self.waiting.retain(|_, (event, since)| {
            if now.duration_since(*since) >= hold {
                out.push((*since, event.clone()));
                false
            } else {
                true
            }
        });
        out.sort_by_key(|(since, _)| *since);
        out.into_iter().map(|(_, e)| e).collect()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting
            .values()
            .map(|(_, since)| *since + self.hold)
            .min()
    }
}

fn is_probe(e: &ProblemEvent) -> bool {
    e.source == PROBE_SOURCE
}

/// The kernel's words, then where the probe says the victim ran.
fn join(kernel: ProblemEvent, probe: ProblemEvent) -> ProblemEvent {
    let place = probe
        .message
        .find(" in pod ")
        .or_else(|| probe.message.find(" in cgroup "))
        .map(|i| probe.message[i..].trim_start());
    let message = match place {
        Some(p) => format!("{}; {p}", kernel.message.trim_end()),
        None => kernel.message,
    };
    ProblemEvent {
        message,
        pods: probe.pods,
        ..kernel
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::detect::problem::{PodRef, Severity};

    fn kernel(pid: u32) -> ProblemEvent {
        ProblemEvent {
            source: "kernel-monitor".into(),
            reason: REASON.into(),
            message: format!(
                "Memory cgroup out of memory: Killed process {pid} (stress) total-vm:10kB, anon-rss:5kB, file-rss:0kB"
            ),
            time: SystemTime::now(),
            severity: Severity::Warning,
            pods: vec![],
        }
    }

    fn probe(pid: u32) -> ProblemEvent {
        ProblemEvent {
            source: PROBE_SOURCE.into(),
            reason: REASON.into(),
            message: format!("Killed process {pid} (stress) in pod shop/cart-1 container app"),
            time: SystemTime::now(),
            severity: Severity::Warning,
            pods: vec![PodRef {
                namespace: "shop".into(),
                pod: "cart-1".into(),
                container: "app".into(),
                uid: String::new(),
            }],
        }
    }

    #[test]
    fn a_pair_becomes_one_event_with_the_kernel_text_and_the_pod() {
        let t = Instant::now();
        let mut j = OomJoin::new(Duration::from_secs(2));
        assert!(j.offer(probe(42), t).is_none());
        let joined = j.offer(kernel(42), t).expect("joined at once");
        assert!(
            joined
                .message
                .starts_with("Memory cgroup out of memory: Killed process 42")
        );
        assert!(
            joined
                .message
                .ends_with("; in pod shop/cart-1 container app"),
            "{}",
            joined.message
        );
        assert_eq!(joined.pods.len(), 1);
        assert_eq!(joined.source, "kernel-monitor");
        assert!(j.expired(t + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn a_lone_event_goes_out_after_the_hold() {
        let t = Instant::now();
        let mut j = OomJoin::new(Duration::from_secs(2));
        assert!(j.offer(kernel(7), t).is_none());
        assert!(j.offer(probe(8), t).is_none());
        assert_eq!(j.next_deadline(), Some(t + Duration::from_secs(2)));
        assert!(j.expired(t + Duration::from_secs(1)).is_empty());
        let out = j.expired(t + Duration::from_secs(2));
        assert_eq!(out.len(), 2);
        assert!(j.next_deadline().is_none());
    }

    #[test]
    fn other_events_and_unparsable_ones_pass_straight_through() {
        let t = Instant::now();
        let mut j = OomJoin::new(Duration::from_secs(2));
        let mut e = kernel(1);
        e.reason = "TaskHung".into();
        assert!(j.offer(e, t).is_some());
        let mut e = kernel(1);
        e.message = "Killed process ?".into();
        assert!(j.offer(e, t).is_some());
        assert!(OomJoin::new(Duration::ZERO).offer(kernel(3), t).is_some());
    }

    #[test]
    fn the_same_pid_twice_from_one_side_releases_the_first() {
        let t = Instant::now();
        let mut j = OomJoin::new(Duration::from_secs(2));
        assert!(j.offer(kernel(9), t).is_none());
        assert!(j.offer(kernel(9), t).is_some());
        assert_eq!(j.expired(t + Duration::from_secs(5)).len(), 1);
    }
}
