//! Limits and retention for the log store, plus internal knobs tests shrink.

use std::time::Duration;

/// Limits and retention for [`super::LogStore`].
#[derive(Clone, Debug)]
pub struct LogStoreOptions {
    /// Entries older than `now - retention_time` are refused on append, and
    /// chunk files whose newest entry is older are deleted. Default 15 days.
    pub retention_time: Duration,
    /// Oldest chunk files are deleted while chunks plus WAL exceed this.
    pub retention_bytes: Option<u64>,
    /// Active streams cap (streams known to the store); default 100 000.
    pub max_streams: usize,
    /// Entries newer than `now + max_future` are refused; default 10 minutes.
    pub max_future: Duration,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions {
            retention_time: Duration::from_secs(15 * 24 * 3600),
            retention_bytes: None,
            max_streams: 100_000,
            max_future: Duration::from_secs(600),
        }
    }
}

/// Internal knobs (tests and benchmarks shrink them).
#[derive(Clone, Debug)]
pub struct Tuning {
    /// A stream's open chunk is cut once it holds this many raw bytes.
    pub chunk_target_bytes: usize,
    /// ... or once its first entry arrived this long ago.
    pub max_chunk_age: Duration,
    /// A WAL segment is closed once it reaches this size.
    pub wal_segment_bytes: u64,
    /// When the WAL holds more than this many segments, every stream still
    /// holding data from the older ones is cut so they can be deleted (bounds
    /// WAL disk and head memory under slow streams).
    pub max_wal_segments: usize,
    /// When the heads together hold more lines than this, the biggest are
    /// cut early (bounds memory with many slow streams).
    pub max_head_bytes: u64,
    /// How often the background thread cuts aged chunks and applies
    /// retention; `None` disables the thread (tests call `maintain`).
    pub maintenance_interval: Option<Duration>,
    /// Compress WAL records with zstd level 1. Off by default: measured on
    /// this 2-core VM, it halved append throughput (CPU-bound: ~160 vs ~390
    /// MiB/s encode) while the disk (~260 MB/s) has room for raw records,
    /// and WAL segments are short-lived.
    pub wal_zstd: bool,
    /// zstd level for chunks (the WAL uses level 1: it is on the ack path).
    /// 1 by default: level 3 took about a quarter of the collector's CPU in
    /// the end-to-end log bench on this 2-core VM, for ~10% smaller chunks.
    pub chunk_zstd_level: i32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            chunk_target_bytes: 1536 * 1024,
            max_chunk_age: Duration::from_secs(3600),
            wal_segment_bytes: 64 << 20,
            max_wal_segments: 8,
            max_head_bytes: 256 << 20,
            maintenance_interval: Some(Duration::from_secs(5)),
            wal_zstd: false,
            chunk_zstd_level: 1,
        }
    }
}
