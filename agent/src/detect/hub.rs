//! The hub: every source's findings in, the node's conditions and problem
//! events out, with node-problem-detector's semantics.
//!
//! - Conditions start False with their default reason and message.
//! - A condition changes (new `lastTransitionTime`, new message, and a Normal
//!   "Node condition X is now: ..." event) only when its status or reason
//!   changes; a report that repeats status and reason changes nothing, so a
//!   health check may report every interval without churning the Node object.
//! - A temporary problem becomes a Warning event.
//! - `problem_counter{reason}` counts temporary problems and conditions turning
//!   True; `problem_gauge{type,reason}` is 1 for the reason a condition is True
//!   with and 0 for its other known reasons (see `export::problems`).
//!
//! One more thing NPD cannot do: an OOM kill is seen twice, by the kernel log
//! rule (`OOMKilling`, NPD's text) and by the eBPF probe (which knows the pod).
//! The hub joins the two by pid (see [`oom_join`](super::oom_join)), so one kill is
//! one event that carries the kernel's words and the pod's name.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::{
    oom_join::OomJoin,
    problem::{ConditionDefault, Finding, NodeCondition, PodRef, ProblemEvent, Severity, Status},
};
use crate::export::problems::{ProblemMetrics, ProblemRecord};

/// Where the hub's results go. Event outputs are bounded and never block the
/// hub: when one is full the event is counted as dropped for that output.
pub struct Outputs {
    /// The full condition set, republished on every change.
    pub conditions: watch::Sender<Vec<NodeCondition>>,
    /// Events for the Kubernetes reporter, when there is one.
    pub kube_events: Option<mpsc::Sender<ProblemEvent>>,
    /// Events and condition changes for the collector, when there is one.
    pub records: Option<mpsc::Sender<ProblemRecord>>,
}

pub struct Hub {
    conditions: BTreeMap<String, Entry>,
    outputs: Outputs,
    metrics: ProblemMetrics,
    oom: OomJoin,
}

struct Entry {
    default: ConditionDefault,
    current: NodeCondition,
}

impl Hub {
    /// `oom_hold`: how long an OOM kill seen by one source waits for the other
    /// (zero when only one of them runs).
    pub fn new(
        defaults: Vec<ConditionDefault>,
        outputs: Outputs,
        metrics: ProblemMetrics,
        oom_hold: Duration,
    ) -> Hub {
        let now = std::time::SystemTime::now();
        let mut conditions = BTreeMap::new();
        for d in defaults {
            metrics.declare(&d);
            if let Some(prev) = conditions.get(&d.kind).map(|e: &Entry| &e.default) {
                // Two monitors declaring one condition (NPD allows it): first wins.
                if prev != &d {
                    warn!(condition = %d.kind, source = %d.source, first = %prev.source,
                        "condition declared twice; keeping the first declaration's defaults");
                }
                continue;
            }
            let current = NodeCondition {
                kind: d.kind.clone(),
                status: Status::False,
                reason: d.reason.clone(),
                message: d.message.clone(),
                last_transition: now,
                pods: Vec::new(),
            };
            conditions.insert(
                d.kind.clone(),
                Entry {
                    default: d,
                    current,
                },
            );
        }
        let hub = Hub {
            conditions,
            outputs,
            metrics,
            oom: OomJoin::new(oom_hold),
        };
        hub.publish_conditions();
        hub
    }

    /// Runs until every source has hung up.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Finding>) {
        loop {
            let deadline = self.oom.next_deadline();
            let finding = match deadline {
                Some(at) => tokio::select! {
                    f = rx.recv() => f,
                    _ = tokio::time::sleep_until(at.into()) => {
                        self.flush_oom(Instant::now());
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(finding) = finding else {
                self.flush_oom(Instant::now() + Duration::from_secs(3600));
                return;
            };
            self.handle(finding, Instant::now());
        }
    }

    pub fn handle(&mut self, finding: Finding, now: Instant) {
        match finding {
            Finding::Event {
                source,
                reason,
                message,
                time,
                pods,
            } => {
                let event = ProblemEvent {
                    source,
                    reason,
                    message,
                    time,
                    severity: Severity::Warning,
                    pods,
                };
                if let Some(event) = self.oom.offer(event, now) {
                    self.emit_problem(event);
                }
                self.flush_oom(now);
            }
            Finding::Condition {
                source,
                kind,
                status,
                reason,
                message,
                time,
                pods,
            } => self.condition(source, kind, status, reason, message, time, pods),
        }
    }

    fn flush_oom(&mut self, now: Instant) {
        for event in self.oom.expired(now) {
            self.emit_problem(event);
        }
    }

    fn emit_problem(&mut self, event: ProblemEvent) {
        self.metrics.count(&event.reason);
        self.send(event, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn condition(
        &mut self,
        source: String,
        kind: String,
        status: Status,
        mut reason: String,
        mut message: String,
        time: std::time::SystemTime,
        pods: Vec<PodRef>,
    ) {
        let entry = self.conditions.entry(kind.clone()).or_insert_with(|| {
            // A source reported a condition it did not declare: keep it, with
            // its first report as nothing more than a starting point.
            warn!(condition = %kind, source = %source, "condition was not declared; tracking it from now");
            let default = ConditionDefault {
                source: source.clone(),
                kind: kind.clone(),
                reason: String::new(),
                message: String::new(),
                problem_reasons: Vec::new(),
            };
            Entry {
                current: NodeCondition {
                    kind: kind.clone(),
                    status: Status::Unknown,
                    reason: String::new(),
                    message: String::new(),
                    last_transition: time,
                    pods: Vec::new(),
                },
                default,
            }
        });
        if status == Status::False && reason.is_empty() {
            reason = entry.default.reason.clone();
            message = entry.default.message.clone();
        }
        let cur = &mut entry.current;
        if cur.status == status && cur.reason == reason {
            return; // NPD: same status and reason is no change, message and all.
        }
        let old_reason = std::mem::replace(&mut cur.reason, reason.clone());
        cur.status = status;
        cur.message = message.clone();
        cur.last_transition = time;
        cur.pods = pods.clone();
        debug!(condition = %kind, status = status.as_str(), reason = %reason, "condition changed");
        self.metrics
            .condition_changed(&kind, &old_reason, &reason, status);
        let event = ProblemEvent {
            source,
            message: format!(
                "Node condition {kind} is now: {}, reason: {reason}, message: {message:?}",
                status.as_str()
            ),
            reason,
            time,
            severity: Severity::Normal,
            pods,
        };
        self.send(event, Some((kind, status)));
        self.publish_conditions();
    }

    fn send(&self, event: ProblemEvent, condition: Option<(String, Status)>) {
        if let Some(tx) = &self.outputs.kube_events
            && tx.try_send(event.clone()).is_err()
        {
            self.metrics.dropped("kube_queue_full");
        }
        if let Some(tx) = &self.outputs.records
            && tx.try_send(ProblemRecord { event, condition }).is_err()
        {
            self.metrics.dropped("export_queue_full");
        }
    }

    fn publish_conditions(&self) {
        let all = self
            .conditions
            .values()
            .map(|e| e.current.clone())
            .collect();
        self.outputs.conditions.send_replace(all);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn default(kind: &str) -> ConditionDefault {
        ConditionDefault {
            source: "kernel-monitor".into(),
            kind: kind.into(),
            reason: format!("No{kind}"),
            message: "all is well".into(),
            problem_reasons: vec![format!("Has{kind}")],
        }
    }

    fn hub() -> (
        Hub,
        watch::Receiver<Vec<NodeCondition>>,
        mpsc::Receiver<ProblemEvent>,
        ProblemMetrics,
    ) {
        let (ctx, crx) = watch::channel(Vec::new());
        let (etx, erx) = mpsc::channel(16);
        let metrics = ProblemMetrics::default();
        let hub = Hub::new(
            vec![default("KernelDeadlock")],
            Outputs {
                conditions: ctx,
                kube_events: Some(etx),
                records: None,
            },
            metrics.clone(),
            Duration::from_secs(2),
        );
        (hub, crx, erx, metrics)
    }

    fn cond(status: Status, reason: &str, message: &str, time: SystemTime) -> Finding {
        Finding::Condition {
            source: "kernel-monitor".into(),
            kind: "KernelDeadlock".into(),
            status,
            reason: reason.into(),
            message: message.into(),
            time,
            pods: vec![],
        }
    }

    #[test]
    fn conditions_start_false_and_change_only_on_status_or_reason() {
        let (mut hub, crx, mut erx, metrics) = hub();
        let c = crx.borrow().clone();
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].status, c[0].reason.as_str()),
            (Status::False, "NoKernelDeadlock")
        );
        assert_eq!(
            metrics.gauge("KernelDeadlock", "HasKernelDeadlock"),
            Some(0.0)
        );

        let t1 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        hub.handle(
            cond(Status::True, "HasKernelDeadlock", "task hung", t1),
            Instant::now(),
        );
        let c = crx.borrow().clone();
        assert_eq!((c[0].status, c[0].last_transition), (Status::True, t1));
        let ev = erx.try_recv().expect("a condition change event");
        assert_eq!(ev.severity, Severity::Normal);
        assert!(
            ev.message.contains("KernelDeadlock is now: True"),
            "{}",
            ev.message
        );
        assert_eq!(metrics.counter("HasKernelDeadlock"), 1.0);
        assert_eq!(
            metrics.gauge("KernelDeadlock", "HasKernelDeadlock"),
            Some(1.0)
        );

        // Same status and reason, new message: nothing changes, no event.
        let t2 = t1 + Duration::from_secs(10);
        hub.handle(
            cond(Status::True, "HasKernelDeadlock", "again", t2),
            Instant::now(),
        );
        assert_eq!(crx.borrow()[0].last_transition, t1);
        assert_eq!(crx.borrow()[0].message, "task hung");
        assert!(erx.try_recv().is_err());
        assert_eq!(metrics.counter("HasKernelDeadlock"), 1.0);

        // Back to default: empty reason takes the default reason and message.
        hub.handle(cond(Status::False, "", "", t2), Instant::now());
        let c = crx.borrow().clone();
        assert_eq!(
            (c[0].reason.as_str(), c[0].message.as_str()),
            ("NoKernelDeadlock", "all is well")
        );
        assert_eq!(c[0].last_transition, t2);
        assert_eq!(
            metrics.gauge("KernelDeadlock", "HasKernelDeadlock"),
            Some(0.0)
        );
        assert!(erx.try_recv().is_ok());
    }

    #[test]
    fn temporary_problems_are_warning_events_and_counted() {
        let (mut hub, _crx, mut erx, metrics) = hub();
        for _ in 0..3 {
            hub.handle(
                Finding::Event {
                    source: "kernel-monitor".into(),
                    reason: "TaskHung".into(),
                    message: "task x:1 blocked for more than 120 seconds.".into(),
                    time: SystemTime::now(),
                    pods: vec![],
                },
                Instant::now(),
            );
        }
        assert_eq!(metrics.counter("TaskHung"), 3.0);
        let ev = erx.try_recv().unwrap();
        assert_eq!(
            (ev.severity, ev.reason.as_str()),
            (Severity::Warning, "TaskHung")
        );
    }

    #[test]
    fn a_full_output_drops_and_counts_instead_of_blocking() {
        let (ctx, _crx) = watch::channel(Vec::new());
        let (etx, _erx) = mpsc::channel(1);
        let metrics = ProblemMetrics::default();
        let mut hub = Hub::new(
            vec![],
            Outputs {
                conditions: ctx,
                kube_events: Some(etx),
                records: None,
            },
            metrics.clone(),
            Duration::ZERO,
        );
        for i in 0..5 {
            hub.handle(
                Finding::Event {
                    source: "s".into(),
                    reason: "IOError".into(),
                    message: format!("Buffer I/O error {i}"),
                    time: SystemTime::now(),
                    pods: vec![],
                },
                Instant::now(),
            );
        }
        assert_eq!(metrics.counter("IOError"), 5.0);
        assert_eq!(metrics.dropped_count("kube_queue_full"), 4.0);
    }
}
