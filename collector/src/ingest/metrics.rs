//! The collector's own counters about writes, served on its `/metrics`:
//! the metric write path's, and the ones the log and trace paths share.

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::IngestError;

type ByLabels = Family<Vec<(&'static str, String)>, Counter>;

/// Counters for every write path; cheap to clone (shared handles).
#[derive(Clone, Default)]
pub struct IngestMetrics {
    received: ByLabels,
    rejected: ByLabels,
    requests: ByLabels,
    exemplars_dropped: ByLabels,
}

impl IngestMetrics {
    pub fn new(registry: &mut Registry) -> IngestMetrics {
        let m = IngestMetrics::default();
        registry.register(
            "sonde_collector_samples_received",
            "Samples written durably, by protocol (remote_write, otlp_grpc, otlp_http)",
            m.received.clone(),
        );
        registry.register(
            "sonde_collector_samples_rejected",
            "Samples or data points refused, by protocol and reason; a refused request writes nothing",
            m.rejected.clone(),
        );
        registry.register(
            "sonde_collector_write_requests",
            "Write requests by protocol and outcome (ok, or the reason they were refused)",
            m.requests.clone(),
        );
        registry.register(
            "sonde_collector_exemplars_dropped",
            "Exemplars received and not stored (the store keeps samples only), by protocol",
            m.exemplars_dropped.clone(),
        );
        m
    }

    pub fn received(&self, protocol: &'static str, n: usize) {
        self.received
            .get_or_create(&vec![("protocol", protocol.to_string())])
            .inc_by(n as u64);
    }

    pub fn rejected(&self, protocol: &'static str, reason: &str, n: usize) {
        if n > 0 {
            self.rejected
                .get_or_create(&vec![
                    ("protocol", protocol.to_string()),
                    ("reason", reason.to_string()),
                ])
                .inc_by(n as u64);
        }
    }

    pub fn request(&self, protocol: &'static str, outcome: &str) {
        self.requests
            .get_or_create(&vec![
                ("protocol", protocol.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    pub fn exemplars_dropped(&self, protocol: &'static str, n: usize) {
        if n > 0 {
            self.exemplars_dropped
                .get_or_create(&vec![("protocol", protocol.to_string())])
                .inc_by(n as u64);
        }
    }
}

/// Name and help of each [`WriteCounters`] counter.
pub struct WriteCounterNames {
    pub rejected: (&'static str, &'static str),
    pub deduplicated: (&'static str, &'static str),
    pub requests: (&'static str, &'static str),
}

/// The counters the log and trace write paths share beside their own
/// received counters: items refused by reason, resends dropped as
/// duplicates, and requests by protocol and outcome. Cheap to clone.
#[derive(Clone)]
pub struct WriteCounters {
    /// "log", "trace": words the log lines of refusals.
    signal: &'static str,
    rejected: ByLabels,
    deduplicated: Counter,
    requests: ByLabels,
}

impl WriteCounters {
    pub fn register(
        registry: &mut Registry,
        signal: &'static str,
        names: WriteCounterNames,
    ) -> WriteCounters {
        let m = WriteCounters {
            signal,
            rejected: ByLabels::default(),
            deduplicated: Counter::default(),
            requests: ByLabels::default(),
        };
        let (name, help) = names.rejected;
        registry.register(name, help, m.rejected.clone());
        let (name, help) = names.deduplicated;
        registry.register(name, help, m.deduplicated.clone());
        let (name, help) = names.requests;
        registry.register(name, help, m.requests.clone());
        m
    }

    /// An accepted request that dropped `duplicates` resends.
    pub fn accepted(&self, protocol: &'static str, duplicates: u64) {
        self.deduplicated.inc_by(duplicates);
        self.request(protocol, "ok");
    }

    /// A refused request: its items (one if they could not be counted) by
    /// reason, the request by outcome, and a log line (an error for server
    /// faults).
    pub fn refused(&self, protocol: &'static str, e: &IngestError) {
        self.rejected
            .get_or_create(&vec![("reason", e.reason.to_string())])
            .inc_by(e.samples.max(1) as u64);
        self.request(protocol, e.reason);
        let signal = self.signal;
        if e.status >= 500 {
            tracing::error!(protocol, error = %e.message, "{signal} write failed");
        } else {
            tracing::debug!(protocol, error = %e.message, "{signal} write refused");
        }
    }

    fn request(&self, protocol: &'static str, outcome: &str) {
        self.requests
            .get_or_create(&vec![
                ("protocol", protocol.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }
}
