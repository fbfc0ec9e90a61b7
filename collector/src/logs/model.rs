//! The types every part of the log path shares.

use std::ops::ControlFlow;

use crate::model::{Labels, Matcher};

/// One log line of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Unix time in nanoseconds.
    pub ts_ns: i64,
    pub line: String,
    /// Loki's "structured metadata": per-line key/value pairs that are not part
    /// of the stream's label set (OTLP log record attributes, trace ids). Sorted by key.
    pub metadata: Vec<(String, String)>,
}

/// A stream (its label set) with entries, as pushed or as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamEntries {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

/// A stored stream found by a selector.
#[derive(Clone, Debug)]
pub struct StreamRef {
    /// The store's id for the stream; only meaningful to the store that returned it.
    pub id: u64,
    pub labels: Labels,
}

/// The order a scan visits entries in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default for log queries).
    Backward,
}

/// An error reading stored logs (I/O or corruption); the API answers 500.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LogReadError(pub String);

/// What LogQL reads from. The store implements it; tests use an in-memory one.
/// Time ranges are `[start_ns, end_ns)`.
pub trait LogSource: Send + Sync {
    /// Streams matching every matcher that may hold entries in the range.
    fn streams(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<StreamRef>, LogReadError>;

    /// Visits the stream's entries in the range in `direction` order (entries with
    /// equal timestamps in the order they were appended, reversed for backward)
    /// until `visit` breaks. Memory stays bounded by one chunk, whatever the range.
    fn scan(
        &self,
        stream: &StreamRef,
        start_ns: i64,
        end_ns: i64,
        direction: Direction,
        visit: &mut dyn FnMut(&LogEntry) -> ControlFlow<()>,
    ) -> Result<(), LogReadError>;

    /// Label names of streams with entries in the range, sorted.
    fn label_names(&self, start_ns: i64, end_ns: i64) -> Result<Vec<String>, LogReadError>;

    /// Values of `name` among streams matching `matchers` (all streams if empty) in the range, sorted.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, LogReadError>;
}
