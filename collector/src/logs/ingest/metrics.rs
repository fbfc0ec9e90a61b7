//! The collector's own counters about log writes, served on its `/metrics`
//! beside the metric write counters (same registry).

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

type ByLabels = Family<Vec<(&'static str, String)>, Counter>;

/// Cheap to clone (shared handles).
#[derive(Clone, Default)]
pub struct LogIngestMetrics {
    entries: Counter,
    bytes: Counter,
    rejected: ByLabels,
    deduplicated: Counter,
    requests: ByLabels,
}

impl LogIngestMetrics {
    pub fn new(registry: &mut Registry) -> LogIngestMetrics {
        let m = LogIngestMetrics::default();
        registry.register(
            "sonde_collector_log_entries_received",
            "Log entries written durably (all protocols)",
            m.entries.clone(),
        );
        registry.register(
            "sonde_collector_log_bytes_received",
            "Bytes of log lines written durably",
            m.bytes.clone(),
        );
        registry.register(
            "sonde_collector_log_entries_rejected",
            "Log entries refused, by reason; a refused request writes nothing. A request too \
             malformed to count its entries counts as one",
            m.rejected.clone(),
        );
        registry.register(
            "sonde_collector_log_entries_deduplicated",
            "Log entries dropped as identical to one already stored (at-least-once resends)",
            m.deduplicated.clone(),
        );
        registry.register(
            "sonde_collector_log_write_requests",
            "Log write requests by protocol (loki_push, otlp_http, otlp_grpc) and outcome (ok, or the refusal reason)",
            m.requests.clone(),
        );
        m
    }

    pub fn accepted(&self, protocol: &'static str, entries: u64, bytes: u64, duplicates: u64) {
        self.entries.inc_by(entries);
        self.bytes.inc_by(bytes);
        self.deduplicated.inc_by(duplicates);
        self.request(protocol, "ok");
    }

    /// A refused request of `entries` entries (0 if they could not be counted).
    pub fn refused(&self, protocol: &'static str, reason: &str, entries: usize) {
        self.rejected
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(entries.max(1) as u64);
        self.request(protocol, reason);
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
