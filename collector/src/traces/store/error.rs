//! What an append reports: its counts, or why it was refused.

/// Counts for one successful [`super::TraceStore::append`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceAppendStats {
    /// Spans stored (after dropping duplicates).
    pub spans: u64,
    /// Spans dropped as identical (same trace and span id) to one held in
    /// memory: at-least-once resends.
    pub duplicates: u64,
}

/// Why an append was refused; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum TraceAppendError {
    #[error("span {span} of trace {trace} ended at {end_ns} ns, before the retention period")]
    TooOld {
        trace: String,
        span: String,
        end_ns: i64,
    },
    #[error("span {span} of trace {trace} starts at {start_ns} ns, too far in the future")]
    TooNew {
        trace: String,
        span: String,
        start_ns: i64,
    },
    #[error(
        "trace {trace} would hold {total} spans ({stored} stored, {adding} in this request), more than --traces-max-spans-per-trace ({limit}); the request was refused whole"
    )]
    TooManySpans {
        trace: String,
        stored: u64,
        adding: u64,
        total: u64,
        limit: usize,
    },
    #[error("trace store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl crate::ingest::AppendRefusal for TraceAppendError {
    /// A span limit is 400, not 413/429: retrying the same spans can never
    /// succeed, and OTLP clients retry RESOURCE_EXHAUSTED.
    fn http_status(&self) -> u16 {
        match self {
            TraceAppendError::Io(_) => 500,
            _ => 400,
        }
    }

    /// The `reason` label of the rejected-spans counter.
    fn reason(&self) -> &'static str {
        match self {
            TraceAppendError::TooOld { .. } => "too_old",
            TraceAppendError::TooNew { .. } => "too_new",
            TraceAppendError::TooManySpans { .. } => "span_limit",
            TraceAppendError::Io(_) => "io_error",
        }
    }
}

/// Sizes for the collector's own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceStoreStats {
    /// Spans held (segments plus memory).
    pub spans: u64,
    /// Traces in segments plus traces in memory (a trace split over several
    /// segments counts once per piece).
    pub traces: u64,
    pub segments: u64,
    /// Segment files plus WAL.
    pub disk_bytes: u64,
}
