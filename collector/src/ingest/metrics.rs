//! The collector's own counters about writes, served on its `/metrics`.

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

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
