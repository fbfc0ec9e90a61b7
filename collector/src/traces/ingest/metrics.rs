//! The collector's own counters about trace writes, served on its `/metrics`
//! beside the metric and log write counters (same registry).

use prometheus_client::{metrics::counter::Counter, registry::Registry};

use crate::ingest::metrics::{WriteCounterNames, WriteCounters};

/// Cheap to clone (shared handles).
#[derive(Clone)]
pub struct TraceIngestMetrics {
    spans: Counter,
    /// Refusals, duplicates and requests.
    pub writes: WriteCounters,
}

impl TraceIngestMetrics {
    pub fn new(registry: &mut Registry) -> TraceIngestMetrics {
        let spans = Counter::default();
        registry.register(
            "sonde_collector_spans_received",
            "Spans written durably (all protocols)",
            spans.clone(),
        );
        let writes = WriteCounters::register(
            registry,
            "trace",
            WriteCounterNames {
                rejected: (
                    "sonde_collector_spans_rejected",
                    "Spans refused, by reason; a refused request writes nothing. A request too \
                     malformed to count its spans counts as one",
                ),
                deduplicated: (
                    "sonde_collector_spans_deduplicated",
                    "Spans dropped as identical (trace and span id) to one already held (at-least-once resends)",
                ),
                requests: (
                    "sonde_collector_trace_write_requests",
                    "Trace write requests by protocol (otlp_http, otlp_grpc) and outcome (ok, or the refusal reason)",
                ),
            },
        );
        TraceIngestMetrics { spans, writes }
    }

    pub fn accepted(&self, protocol: &'static str, spans: u64, duplicates: u64) {
        self.spans.inc_by(spans);
        self.writes.accepted(protocol, duplicates);
    }
}
