//! What the detectors find and what the reporters report: the one vocabulary the
//! `detect` stage and the `export` stage share.
//!
//! Sources (kernel log rules, health checks, kernel evidence) send [`Finding`]s to
//! the hub (`detect::hub`), which keeps the node's conditions with NPD's semantics
//! and hands [`NodeCondition`]s and [`ProblemEvent`]s to the reporters.

use std::time::SystemTime;

/// A pod (and container) a problem concerns, as far as the agent knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub pod: String,
    /// Empty when the problem concerns the pod as a whole or the container is unknown.
    pub container: String,
    /// The pod's UID when known (the API needs it to reference the pod), else empty.
    pub uid: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    /// The spelling of the Kubernetes API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }
}

/// A condition a source owns, with its "all is well" reason and message (an entry
/// of NPD's `conditions`), and the reasons it may be set True with (for
/// `problem_gauge`, which NPD starts at 0 for each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionDefault {
    /// The source's name (NPD's `source`, e.g. `kernel-monitor`).
    pub source: String,
    /// The condition type, e.g. `KernelDeadlock`.
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub problem_reasons: Vec<String>,
}

/// What a source found.
#[derive(Clone, Debug)]
pub enum Finding {
    /// One occurrence of a temporary problem (NPD's `temporary` rule): a Warning Event.
    Event {
        source: String,
        reason: String,
        message: String,
        time: SystemTime,
        pods: Vec<PodRef>,
    },
    /// What the source now says about one of its conditions. The hub records a
    /// transition only when status or reason changes (NPD's rule). `Status::False`
    /// with an empty reason means "back to the default reason and message".
    Condition {
        source: String,
        kind: String,
        status: Status,
        reason: String,
        message: String,
        time: SystemTime,
        pods: Vec<PodRef>,
    },
}

/// How the sources hand findings to the hub. Blocking sources (threads) use
/// `blocking_send`; the hub never blocks on its outputs, so this only waits
/// while the hub is busy.
pub type FindingTx = tokio::sync::mpsc::Sender<Finding>;

/// A node condition as the hub currently holds it (the reporter adds heartbeats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCondition {
    pub kind: String,
    pub status: Status,
    pub reason: String,
    pub message: String,
    /// When status or reason last changed.
    pub last_transition: SystemTime,
    pub pods: Vec<PodRef>,
}

/// Normal (informational, e.g. a condition changed) or Warning (a problem), as
/// Kubernetes Events have them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    Normal,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "Normal",
            Severity::Warning => "Warning",
        }
    }
}

/// An Event to report: a temporary problem, or a condition change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProblemEvent {
    pub source: String,
    pub reason: String,
    pub message: String,
    pub time: SystemTime,
    pub severity: Severity,
    /// Pods involved, most affected first; the Event references the Node and
    /// (as `related`) the first pod.
    pub pods: Vec<PodRef>,
}
