//! Node problems on `/metrics`, named as node-problem-detector names them, so
//! dashboards and alerts written for NPD keep working:
//! - `problem_counter{reason}`: temporary problems, and conditions turning True;
//! - `problem_gauge{type,reason}`: 1 while condition `type` is True with
//!   `reason`, 0 for its other known reasons.
//!
//! Both are written untyped: NPD serves `problem_counter` without the `_total`
//! suffix, and prometheus-client would add one to a counter. Queries such as
//! `increase(problem_counter[1h])` work the same on an untyped series.
//!
//! Also `sonde_problem_events_dropped_total{output}`: events the hub could not
//! hand to a reporter whose queue was full.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder};

use super::families;
use crate::detect::problem::{ConditionDefault, ProblemEvent, Status};

/// Shared by the hub (the writer) and `/metrics`; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct ProblemMetrics {
    inner: Arc<Mutex<Values>>,
}

#[derive(Debug, Default)]
struct Values {
    counter: BTreeMap<String, f64>,
    gauge: BTreeMap<(String, String), f64>,
    dropped: BTreeMap<&'static str, f64>,
}

impl ProblemMetrics {
    fn values(&self) -> std::sync::MutexGuard<'_, Values> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A condition's known reasons start at 0, as NPD starts them.
    pub fn declare(&self, d: &ConditionDefault) {
        let mut v = self.values();
        for reason in &d.problem_reasons {
            v.gauge
                .entry((d.kind.clone(), reason.clone()))
                .or_insert(0.0);
        }
    }

    pub fn count(&self, reason: &str) {
        *self.values().counter.entry(reason.to_string()).or_default() += 1.0;
    }

    pub fn condition_changed(&self, kind: &str, old_reason: &str, reason: &str, status: Status) {
        let mut v = self.values();
        if let Some(old) = v.gauge.get_mut(&(kind.to_string(), old_reason.to_string())) {
            *old = 0.0;
        }
        if status == Status::True {
            v.gauge.insert((kind.to_string(), reason.to_string()), 1.0);
            *v.counter.entry(reason.to_string()).or_default() += 1.0;
        }
    }

    pub fn dropped(&self, output: &'static str) {
        *self.values().dropped.entry(output).or_default() += 1.0;
    }

    #[cfg(test)]
    pub fn counter(&self, reason: &str) -> f64 {
        self.values().counter.get(reason).copied().unwrap_or(0.0)
    }

    #[cfg(test)]
    pub fn gauge(&self, kind: &str, reason: &str) -> Option<f64> {
        self.values()
            .gauge
            .get(&(kind.to_string(), reason.to_string()))
            .copied()
    }

    #[cfg(test)]
    pub fn dropped_count(&self, output: &str) -> f64 {
        self.values().dropped.get(output).copied().unwrap_or(0.0)
    }
}

impl Collector for ProblemMetrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let v = self.values();
        families::untyped(
            &mut enc,
            "problem_counter",
            "Number of times a specific type of problem have occurred.",
            v.counter
                .iter()
                .map(|(r, n)| (crate::labels!("reason" => r), *n)),
        )?;
        families::untyped(
            &mut enc,
            "problem_gauge",
            "Whether a specific type of problem is affecting the node or not.",
            v.gauge
                .iter()
                .map(|((t, r), n)| (crate::labels!("type" => t, "reason" => r), *n)),
        )?;
        families::counter(
            &mut enc,
            "sonde_problem_events_dropped",
            "Problem events not handed to a reporter because its queue was full, by output.",
            v.dropped
                .iter()
                .map(|(o, n)| (crate::labels!("output" => o), *n)),
        )
    }
}

/// A problem as the collector gets it: the event, and for a condition change
/// the condition's type and new status.
#[derive(Clone, Debug)]
pub struct ProblemRecord {
    pub event: ProblemEvent,
    pub condition: Option<(String, Status)>,
}
