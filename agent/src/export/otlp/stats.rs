//! `sonde_export_*` (metrics) and `sonde_logs_export_*` (logs): what the OTLP push
//! did, on `/metrics` (and in the pushed snapshots themselves). Every batch or point
//! that never reaches the collector is counted under `dropped`, with the reason; for
//! logs the per-record count is `sonde_logs_lines_dropped_total{reason}`, which the
//! log tailer shares for the lines it cannot keep.

use prometheus_client::{
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Why a batch or points were dropped: the `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The disk buffer reached `--buffer-max-bytes`; the oldest batch went.
    BufferFull,
    /// The collector refused the batch with a code that retrying cannot fix.
    Rejected,
    /// The collector accepted the batch but refused some of its points (partial success).
    PartiallyRejected,
    /// A buffered file was torn or corrupt (points unknown, counted as 0).
    Corrupt,
    /// The snapshot could not be written to the buffer directory.
    WriteError,
    /// A log line with nothing in it, not even a timestamp or stream.
    Empty,
}

impl DropReason {
    pub fn label(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::Rejected => "rejected",
            DropReason::PartiallyRejected => "partially_rejected",
            DropReason::Corrupt => "corrupt",
            DropReason::WriteError => "write_error",
            DropReason::Empty => "empty",
        }
    }
}

type ReasonLabel = [(&'static str, &'static str); 1];
type CodeLabel = [(&'static str, String); 1];

/// Shared by the snapshot task, the buffer and the sender. Clones share the values.
#[derive(Clone, Debug)]
pub struct ExportStats {
    snapshots: Counter,
    sent_batches: Counter,
    sent_points: Counter,
    failed_requests: Family<CodeLabel, Counter>,
    dropped_batches: Family<ReasonLabel, Counter>,
    dropped_points: Family<ReasonLabel, Counter>,
    buffered_bytes: Gauge,
    buffered_batches: Gauge,
    request_duration: Histogram,
}

impl Default for ExportStats {
    fn default() -> Self {
        ExportStats {
            snapshots: Counter::default(),
            sent_batches: Counter::default(),
            sent_points: Counter::default(),
            failed_requests: Family::default(),
            dropped_batches: Family::default(),
            dropped_points: Family::default(),
            buffered_bytes: Gauge::default(),
            buffered_batches: Gauge::default(),
            // 5 ms .. ~20 s.
            request_duration: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
        }
    }
}

impl ExportStats {
    /// Registers the metrics queue's stats as `sonde_export_*`, the logs queue's as
    /// `sonde_logs_export_*` (records dropped: `sonde_logs_lines_dropped_total`).
    pub fn register(&self, registry: &mut Registry, kind: super::buffer::Kind) {
        if kind == super::buffer::Kind::Logs {
            self.register_logs(registry);
            return;
        }
        registry.register(
            "sonde_export_snapshots",
            "Snapshots of the agent's metrics taken for the collector (each is one batch).",
            self.snapshots.clone(),
        );
        registry.register(
            "sonde_export_sent_batches",
            "Batches the collector acknowledged.",
            self.sent_batches.clone(),
        );
        registry.register(
            "sonde_export_sent_points",
            "Data points in batches the collector acknowledged.",
            self.sent_points.clone(),
        );
        registry.register(
            "sonde_export_failed_requests",
            "Export requests that failed, by gRPC code; retryable ones are sent again.",
            self.failed_requests.clone(),
        );
        registry.register(
            "sonde_export_dropped_batches",
            "Batches that will never reach the collector, by reason.",
            self.dropped_batches.clone(),
        );
        registry.register(
            "sonde_export_dropped_points",
            "Data points that will never reach the collector, by reason.",
            self.dropped_points.clone(),
        );
        registry.register(
            "sonde_export_buffered_bytes",
            "Bytes of unsent batches in the disk buffer.",
            self.buffered_bytes.clone(),
        );
        registry.register(
            "sonde_export_buffered_batches",
            "Unsent batches in the disk buffer.",
            self.buffered_batches.clone(),
        );
        registry.register(
            "sonde_export_request_duration_seconds",
            "Time an export request to the collector took, answered or failed.",
            self.request_duration.clone(),
        );
    }

    fn register_logs(&self, registry: &mut Registry) {
        self.register_records(
            registry,
            "sonde_logs_export",
            "sonde_logs_lines_dropped",
            "Log",
        );
    }

    /// The problem records' queue (`export::problems`): `sonde_problems_export_*`.
    pub fn register_problems(&self, registry: &mut Registry) {
        self.register_records(
            registry,
            "sonde_problems_export",
            "sonde_problems_export_dropped_records",
            "Problem",
        );
    }

    /// The span queue (`spans`): `sonde_spans_export_*`, "records" being spans.
    pub fn register_spans(&self, registry: &mut Registry) {
        self.register_records(
            registry,
            "sonde_spans_export",
            "sonde_spans_export_dropped_spans",
            "Span",
        );
    }

    /// A queue of log records: `<p>_sent_batches`, `<p>_sent_records`, ... and
    /// the records it dropped as `dropped`.
    fn register_records(&self, registry: &mut Registry, p: &str, dropped: &str, what: &str) {
        registry.register(
            format!("{p}_sent_batches"),
            format!("{what} batches the collector acknowledged."),
            self.sent_batches.clone(),
        );
        registry.register(
            format!("{p}_sent_records"),
            format!("{what} records in batches the collector acknowledged."),
            self.sent_points.clone(),
        );
        registry.register(
            format!("{p}_failed_requests"),
            format!(
                "{what} export requests that failed, by gRPC code; retryable ones are sent again."
            ),
            self.failed_requests.clone(),
        );
        registry.register(
            format!("{p}_dropped_batches"),
            format!("{what} batches that will never reach the collector, by reason."),
            self.dropped_batches.clone(),
        );
        registry.register(
            dropped,
            format!("{what} records that will never reach the collector, by reason."),
            self.dropped_points.clone(),
        );
        registry.register(
            format!("{p}_buffered_bytes"),
            format!(
                "Bytes of unsent {} batches in the disk buffer.",
                what.to_lowercase()
            ),
            self.buffered_bytes.clone(),
        );
        registry.register(
            format!("{p}_buffered_batches"),
            format!("Unsent {} batches in the disk buffer.", what.to_lowercase()),
            self.buffered_batches.clone(),
        );
        registry.register(
            format!("{p}_request_duration_seconds"),
            format!(
                "Time a {} export request to the collector took, answered or failed.",
                what.to_lowercase()
            ),
            self.request_duration.clone(),
        );
    }

    pub fn snapshot_taken(&self) {
        self.snapshots.inc();
    }

    pub fn sent(&self, points: u64) {
        self.sent_batches.inc();
        self.sent_points.inc_by(points);
    }

    pub fn failed_request(&self, code: tonic::Code) {
        self.failed_requests
            .get_or_create(&[("code", format!("{code:?}"))])
            .inc();
    }

    pub fn dropped(&self, reason: DropReason, batches: u64, points: u64) {
        let label = [("reason", reason.label())];
        if batches > 0 {
            self.dropped_batches.get_or_create(&label).inc_by(batches);
        }
        self.dropped_points.get_or_create(&label).inc_by(points);
    }

    pub fn buffered(&self, batches: usize, bytes: u64) {
        self.buffered_batches
            .set(i64::try_from(batches).unwrap_or(i64::MAX));
        self.buffered_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn request_took(&self, seconds: f64) {
        self.request_duration.observe(seconds);
    }

    #[cfg(test)]
    pub fn dropped_batches(&self, reason: DropReason) -> u64 {
        self.dropped_batches
            .get_or_create(&[("reason", reason.label())])
            .get()
    }

    #[cfg(test)]
    pub fn dropped_points(&self, reason: DropReason) -> u64 {
        self.dropped_points
            .get_or_create(&[("reason", reason.label())])
            .get()
    }

    #[cfg(test)]
    pub fn sent_batches(&self) -> u64 {
        self.sent_batches.get()
    }
}
