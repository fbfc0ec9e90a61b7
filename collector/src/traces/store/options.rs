//! Limits and retention for the trace store, plus internal knobs tests shrink.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct TraceStoreOptions {
    /// Spans that ended before `now - retention_time` are refused, and
    /// segments whose newest span ended before it are deleted. Default 15 days.
    pub retention_time: Duration,
    /// Most spans one trace may hold (`--traces-max-spans-per-trace`).
    pub max_spans_per_trace: usize,
    /// Spans starting after `now + max_future` are refused; default 10 minutes.
    pub max_future: Duration,
}

impl Default for TraceStoreOptions {
    fn default() -> Self {
        TraceStoreOptions {
            retention_time: Duration::from_secs(15 * 24 * 3600),
            max_spans_per_trace: 10_000,
            max_future: Duration::from_secs(600),
        }
    }
}

/// Internal knobs (tests and benchmarks shrink them).
#[derive(Clone, Debug)]
pub struct Tuning {
    /// The head is cut into a segment once its spans take about this many bytes ...
    pub head_max_bytes: u64,
    /// ... or once its first span arrived this long ago. Short enough that
    /// a restart replays little; long enough that most traces (seconds)
    /// land whole in one segment.
    pub max_head_age: Duration,
    /// A WAL segment is closed once it reaches this size.
    pub wal_segment_bytes: u64,
    /// Encoded spans per compressed block in a segment (a trace lookup
    /// decompresses one block).
    pub block_bytes: usize,
    pub zstd_level: i32,
    /// How often the background thread cuts an aged head and applies
    /// retention; `None` disables the thread (tests call `flush`).
    pub maintenance_interval: Option<Duration>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            head_max_bytes: 64 << 20,
            max_head_age: Duration::from_secs(600),
            wal_segment_bytes: 64 << 20,
            block_bytes: 256 << 10,
            zstd_level: 3,
            maintenance_interval: Some(Duration::from_secs(5)),
        }
    }
}
