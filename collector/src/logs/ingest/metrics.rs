//! The collector's own counters about log writes, served on its `/metrics`
//! beside the metric write counters (same registry).

use prometheus_client::{metrics::counter::Counter, registry::Registry};

use crate::ingest::metrics::{WriteCounterNames, WriteCounters};

/// Cheap to clone (shared handles).
#[derive(Clone)]
pub struct LogIngestMetrics {
    entries: Counter,
    bytes: Counter,
    /// Refusals, duplicates and requests.
    pub writes: WriteCounters,
}

impl LogIngestMetrics {
    pub fn new(registry: &mut Registry) -> LogIngestMetrics {
        let (entries, bytes) = (Counter::default(), Counter::default());
        registry.register(
            "sonde_collector_log_entries_received",
            "Log entries written durably (all protocols)",
            entries.clone(),
        );
        registry.register(
            "sonde_collector_log_bytes_received",
            "Bytes of log lines written durably",
            bytes.clone(),
        );
        let writes = WriteCounters::register(
            registry,
            "log",
            WriteCounterNames {
                rejected: (
                    "sonde_collector_log_entries_rejected",
                    "Log entries refused, by reason; a refused request writes nothing. A request too \
                     malformed to count its entries counts as one",
                ),
                deduplicated: (
                    "sonde_collector_log_entries_deduplicated",
                    "Log entries dropped as identical to one already stored (at-least-once resends)",
                ),
                requests: (
                    "sonde_collector_log_write_requests",
                    "Log write requests by protocol (loki_push, otlp_http, otlp_grpc) and outcome (ok, or the refusal reason)",
                ),
            },
        );
        LogIngestMetrics {
            entries,
            bytes,
            writes,
        }
    }

    pub fn accepted(&self, protocol: &'static str, entries: u64, bytes: u64, duplicates: u64) {
        self.entries.inc_by(entries);
        self.bytes.inc_by(bytes);
        self.writes.accepted(protocol, duplicates);
    }
}
