//! What an append reports: its counts, or why it was refused.

/// Counts for one successful [`super::LogStore::append`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogAppendStats {
    /// Entries stored (after dropping duplicates).
    pub entries: u64,
    /// Bytes of log lines stored.
    pub bytes: u64,
    /// Entries dropped as identical to one in the stream's unflushed data.
    pub duplicates: u64,
}

/// Why an append was refused; nothing of it was stored.
/// `Display` is the message for the HTTP answer (status from `http_status`).
#[derive(Debug, thiserror::Error)]
pub enum LogAppendError {
    #[error("stream has no labels; at least one label is required")]
    EmptyLabels,
    #[error("invalid label name {0:?}: must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName(String),
    #[error("duplicate label name {0:?} in a stream's label set")]
    DuplicateLabel(String),
    #[error("entry for stream {labels} has timestamp {ts_ns} ns, older than the retention period")]
    TooOld { labels: String, ts_ns: i64 },
    #[error("entry for stream {labels} has timestamp {ts_ns} ns, too far in the future")]
    TooNew { labels: String, ts_ns: i64 },
    #[error("too many streams: the limit of {limit} active streams is reached")]
    TooManyStreams { limit: usize },
    #[error("log store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl crate::ingest::AppendRefusal for LogAppendError {
    fn http_status(&self) -> u16 {
        match self {
            LogAppendError::TooManyStreams { .. } => 429,
            LogAppendError::Io(_) => 500,
            _ => 400,
        }
    }

    /// A short, stable reason for the `reason` label of the rejected-entries counter.
    fn reason(&self) -> &'static str {
        match self {
            LogAppendError::EmptyLabels => "empty_labels",
            LogAppendError::InvalidLabelName(_) => "invalid_label_name",
            LogAppendError::DuplicateLabel(_) => "duplicate_label",
            LogAppendError::TooOld { .. } => "too_old",
            LogAppendError::TooNew { .. } => "too_new",
            LogAppendError::TooManyStreams { .. } => "stream_limit",
            LogAppendError::Io(_) => "io_error",
        }
    }
}

/// Sizes for the collector's own metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStoreStats {
    /// Streams known to the store (in memory or on disk).
    pub streams: u64,
    /// Entries stored (chunk files plus unflushed).
    pub entries: u64,
    /// Bytes of log lines stored (chunk files plus unflushed).
    pub raw_bytes: u64,
    /// Bytes on disk: chunk files plus WAL segments.
    pub disk_bytes: u64,
}
