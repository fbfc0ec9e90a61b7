//! The collector's own counters about trace writes, served on its `/metrics`
//! beside the metric and log write counters (same registry).

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

type ByLabels = Family<Vec<(&'static str, String)>, Counter>;

/// Cheap to clone (shared handles).
#[derive(Clone, Default)]
pub struct TraceIngestMetrics {
    spans: Counter,
    rejected: ByLabels,
    deduplicated: Counter,
    requests: ByLabels,
}

impl TraceIngestMetrics {
    pub fn new(registry: &mut Registry) -> TraceIngestMetrics {
        let m = TraceIngestMetrics::default();
        registry.register(
            "sonde_collector_spans_received",
            "Spans written durably (all protocols)",
            m.spans.clone(),
        );
        registry.register(
            "sonde_collector_spans_rejected",
            "Spans refused, by reason; a refused request writes nothing. A request too \
             malformed to count its spans counts as one",
            m.rejected.clone(),
        );
        registry.register(
            "sonde_collector_spans_deduplicated",
            "Spans dropped as identical (trace and span id) to one already held (at-least-once resends)",
            m.deduplicated.clone(),
        );
        registry.register(
            "sonde_collector_trace_write_requests",
            "Trace write requests by protocol (otlp_http, otlp_grpc) and outcome (ok, or the refusal reason)",
            m.requests.clone(),
        );
        m
    }

    pub fn accepted(&self, protocol: &'static str, spans: u64, duplicates: u64) {
        self.spans.inc_by(spans);
        self.deduplicated.inc_by(duplicates);
        self.request(protocol, "ok");
    }

    /// A refused request of `spans` spans (0 if they could not be counted).
    pub fn refused(&self, protocol: &'static str, reason: &str, spans: usize) {
        self.rejected
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc_by(spans.max(1) as u64);
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
