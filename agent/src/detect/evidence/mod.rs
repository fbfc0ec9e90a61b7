//! Problems from kernel evidence: what the eBPF probes measure, judged over
//! windows of `interval` between the probe reader's published readings.
//!
//! | evidence | finding | reason | file |
//! |---|---|---|---|
//! | OOM kill (ring buffer) | Event | `OOMKilling` | [`oom`] |
//! | TCP retransmits/s, node total | condition `FrequentTCPRetransmits` | `FrequentTCPRetransmits` | [`retransmits`] |
//! | block I/O latency p99 per disk | condition `SlowBlockIO` | `BlockIOLatencyHigh` | [`blockio`] |
//! | run-queue latency p99, node-wide | condition `CPURunQueueLatencyHigh` | `RunQueueLatencyHigh` | [`runqueue`] |
//!
//! Conditions turn True only after every window for `sustain` was over the
//! bound, and back to False only after as long below it (hysteresis), and are
//! reported after every window (the hub ignores unchanged reports). They name
//! the pods involved (or the cgroup, outside pods).
//!
//! Readings carry no timestamp, so the sampler polls the published reading
//! every second and dates a new one by when it first saw it: window lengths
//! (and so rates) are right to about a second.

mod blockio;
mod oom;
mod quantile;
mod retransmits;
mod runqueue;
mod sustain;
mod window;

use std::{
    sync::{Arc, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use tokio::sync::mpsc::Receiver;
use tracing::debug;

use super::problem::{ConditionDefault, Finding, FindingTx, PodRef, Status};
use crate::{enrich::workloads::Workload, probes::reader::Latest};

/// The source name of everything found here.
pub const SOURCE: &str = "kernel-evidence";

/// When kernel evidence becomes a problem.
#[derive(Clone, Debug)]
pub struct EvidenceConfig {
    /// Length of one judged window (at least the probe reader's interval; a
    /// window ends at the first new reading after this long). Default 30 s.
    pub interval: Duration,
    /// How long every window must be over a bound before its condition turns
    /// True, and under it before it turns False again. Default 2 min: long
    /// enough that a burst (a deploy, a backup) does not flap a condition.
    pub sustain: Duration,
    /// Node-wide TCP retransmits per second above which a window is bad.
    /// Default 50/s: a healthy node retransmits a few a second at most; 50/s for
    /// two minutes is 6,000 retransmits, real loss or an unreachable peer.
    pub tcp_retransmits_per_second: f64,
    /// A disk's read/write latency p99 above this makes a window bad. Default
    /// 500 ms: SSDs and cloud block volumes answer in milliseconds, spinning
    /// disks in tens; half a second at p99 is a failing or throttled device,
    /// and well past what etcd or databases tolerate.
    pub blockio_p99: Duration,
    /// Node-wide run-queue latency p99 above this makes a window bad. Default
    /// 50 ms: about two CFS scheduling periods (`sched_latency` is 24 ms on
    /// multi-core machines) of waiting for a CPU, i.e. CPU saturation.
    pub runqueue_p99: Duration,
    /// Fewer samples than this in a window (requests on one disk, wakeups on the
    /// node) say nothing about its p99: the window counts as not bad. Default 100.
    pub min_samples: u64,
    /// How many pods (or cgroups) a problem's message names. Default 3.
    pub top: usize,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            interval: Duration::from_secs(30),
            sustain: Duration::from_secs(120),
            tcp_retransmits_per_second: 50.0,
            blockio_p99: Duration::from_millis(500),
            runqueue_p99: Duration::from_millis(50),
            min_samples: 100,
            top: 3,
        }
    }
}

/// One OOM kill the probe saw, named as far as the agent knows.
#[derive(Clone, Debug)]
pub struct OomKill {
    /// The victim task's pid, as the kernel's "Killed process <pid>" line has it.
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub cgroup_id: u64,
    pub workload: Arc<Workload>,
    /// When the agent received it.
    pub time: SystemTime,
}

/// Starts the window sampler (and the OOM forwarder when `ooms` is given) on
/// the tokio runtime. Returns the defaults of the conditions owned here; they
/// stay at their defaults while no readings arrive (probes off). Call inside
/// the runtime.
pub fn start(
    cfg: EvidenceConfig,
    latest: Latest,
    ooms: Option<Receiver<OomKill>>,
    tx: FindingTx,
) -> Vec<ConditionDefault> {
    if let Some(rx) = ooms {
        tokio::spawn(forward_ooms(rx, tx.clone()));
    }
    tokio::spawn(sample(cfg, latest, tx));
    defaults()
}

fn defaults() -> Vec<ConditionDefault> {
    [
        (
            retransmits::KIND,
            retransmits::DEFAULT_REASON,
            retransmits::DEFAULT_MESSAGE,
            retransmits::PROBLEM,
        ),
        (
            blockio::KIND,
            blockio::DEFAULT_REASON,
            blockio::DEFAULT_MESSAGE,
            blockio::PROBLEM,
        ),
        (
            runqueue::KIND,
            runqueue::DEFAULT_REASON,
            runqueue::DEFAULT_MESSAGE,
            runqueue::PROBLEM,
        ),
    ]
    .into_iter()
    .map(|(kind, reason, message, problem)| ConditionDefault {
        source: SOURCE.to_string(),
        kind: kind.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        problem_reasons: vec![problem.to_string()],
    })
    .collect()
}

async fn forward_ooms(mut rx: Receiver<OomKill>, tx: FindingTx) {
    while let Some(kill) = rx.recv().await {
        debug!(
            pid = kill.pid,
            tgid = kill.tgid,
            cgroup_id = kill.cgroup_id,
            "OOM kill evidence"
        );
        if tx.send(oom::finding(&kill)).await.is_err() {
            return;
        }
    }
}

/// What a detector concluded about its condition after a window.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Verdict {
    Healthy,
    Problem {
        reason: String,
        message: String,
        /// Most involved first.
        pods: Vec<PodRef>,
    },
}

impl Verdict {
    /// While `active`, a problem told by the last bad window (message, pods).
    fn sustained(active: bool, reason: &str, last: &Option<(String, Vec<PodRef>)>) -> Verdict {
        if !active {
            return Verdict::Healthy;
        }
        let (message, pods) = last.clone().unwrap_or_default();
        Verdict::Problem {
            reason: reason.to_string(),
            message,
            pods,
        }
    }
}

/// The three condition detectors, fed the same windows.
struct Detectors {
    retransmits: retransmits::Retransmits,
    blockio: blockio::BlockIo,
    runqueue: runqueue::RunQueue,
}

impl Detectors {
    fn new(cfg: &EvidenceConfig) -> Detectors {
        Detectors {
            retransmits: retransmits::Retransmits::new(
                cfg.tcp_retransmits_per_second,
                cfg.sustain,
                cfg.top,
            ),
            blockio: blockio::BlockIo::new(cfg.blockio_p99, cfg.sustain, cfg.min_samples, cfg.top),
            runqueue: runqueue::RunQueue::new(
                cfg.runqueue_p99,
                cfg.sustain,
                cfg.min_samples,
                cfg.top,
            ),
        }
    }

    fn observe(&mut self, w: &window::Window) -> [(&'static str, Verdict); 3] {
        [
            (retransmits::KIND, self.retransmits.observe(w)),
            (blockio::KIND, self.blockio.observe(w)),
            (runqueue::KIND, self.runqueue.observe(w)),
        ]
    }
}

async fn sample(cfg: EvidenceConfig, latest: Latest, tx: FindingTx) {
    let mut detectors = Detectors::new(&cfg);
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(cfg.interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Readings arrive on the reader's schedule; a window ends at the first new
    // one at least (about) `interval` after its start. 10% slack keeps a reader
    // running at exactly `interval` from stretching windows to twice that.
    let min_window = cfg.interval.mul_f64(0.9);
    let mut base: Option<(Arc<crate::probes::reader::Reading>, Instant)> = None;
    loop {
        tick.tick().await;
        let Some(cur) = latest
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        else {
            continue;
        };
        let now = Instant::now();
        let Some((prev, start)) = &base else {
            base = Some((cur, now));
            continue;
        };
        if Arc::ptr_eq(prev, &cur) || now.duration_since(*start) < min_window {
            continue;
        }
        let w = window::Window {
            prev,
            cur: &cur,
            start: *start,
            end: now,
        };
        for (kind, verdict) in detectors.observe(&w) {
            debug!(kind, ?verdict, "kernel evidence");
            if tx.send(condition(kind, verdict)).await.is_err() {
                return; // the hub is gone: shutting down
            }
        }
        base = Some((cur, now));
    }
}

fn condition(kind: &str, verdict: Verdict) -> Finding {
    let (status, reason, message, pods) = match verdict {
        // An empty reason: back to the default reason and message.
        Verdict::Healthy => (Status::False, String::new(), String::new(), Vec::new()),
        Verdict::Problem {
            reason,
            message,
            pods,
        } => (Status::True, reason, message, pods),
    };
    Finding::Condition {
        source: SOURCE.to_string(),
        kind: kind.to_string(),
        status,
        reason,
        message,
        time: SystemTime::now(),
        pods,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use super::{window::testing::Builder, *};

    #[test]
    fn defaults_name_every_condition() {
        let kinds: Vec<_> = defaults().into_iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [
                "FrequentTCPRetransmits",
                "SlowBlockIO",
                "CPURunQueueLatencyHigh"
            ]
        );
    }

    #[tokio::test]
    async fn sampler_reports_each_window_and_forwards_ooms() {
        let latest: Latest = Arc::new(RwLock::new(None));
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let (oom_tx, oom_rx) = tokio::sync::mpsc::channel(4);
        let cfg = EvidenceConfig {
            interval: Duration::from_millis(300),
            sustain: Duration::ZERO,
            ..EvidenceConfig::default()
        };
        let defaults = start(cfg, latest.clone(), Some(oom_rx), tx);
        assert_eq!(defaults.len(), 3);

        oom_tx
            .send(OomKill {
                pid: 9,
                tgid: 9,
                comm: "x".into(),
                cgroup_id: 1,
                workload: Arc::new(Workload::unnamed(1)),
                time: SystemTime::now(),
            })
            .await
            .unwrap();
        let Some(Finding::Event { message, .. }) = rx.recv().await else {
            panic!("an OOM event");
        };
        assert_eq!(message, "Killed process 9 (x) in cgroup id:1");

        *latest.write().unwrap() = Some(Arc::new(Builder::default().build()));
        tokio::time::sleep(Duration::from_millis(400)).await;
        // 1000 retransmits in well under 10 s: above 50/s; sustain 0 fires at once.
        *latest.write().unwrap() = Some(Arc::new(
            Builder::default().retransmits(1, "a", 1000).build(),
        ));
        let mut got = Vec::new();
        for _ in 0..3 {
            match rx.recv().await {
                Some(Finding::Condition { kind, status, .. }) => got.push((kind, status)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            got,
            [
                ("FrequentTCPRetransmits".to_string(), Status::True),
                ("SlowBlockIO".to_string(), Status::False),
                ("CPURunQueueLatencyHigh".to_string(), Status::False),
            ]
        );
    }
}
