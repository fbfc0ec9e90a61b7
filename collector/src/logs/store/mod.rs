//! The collector's durable log store. On-disk format: FORMAT.md.
//!
//! Layout of `<data-dir>/logs`:
//! - `wal/`: write-ahead log segments (the metric TSDB's WAL machinery with
//!   log records); every acknowledged push is here, fsynced with group
//!   commit, until its entries are in a chunk file.
//! - `chunks/`: immutable chunk files, one per cut cycle, each holding the
//!   zstd-compressed chunks of many streams plus an index of them.
//! - `lock`: `flock`ed while open so two processes never share the store.
//!
//! Each stream's head takes entries in any order (dropping exact duplicates);
//! the background thread cuts a head once it holds ~1.5 MiB of lines or its
//! first entry is an hour old (and all heads on [`LogStore::flush`]), sorts
//! it, and writes all cut chunks of the cycle into one file. WAL segments
//! whose batches are all in chunk files are then deleted. The same thread
//! applies retention (time and size) every `maintenance_interval`.
//!
//! Why hand-written: no embeddable Rust log store with Loki's stream model
//! exists; compression is `zstd`, framing/group commit the TSDB's WAL.

mod chunk;
mod chunk_file;
mod db;
mod error;
mod head;
mod index;
mod options;
mod retention;
mod scan;
mod validate;
mod wal_record;

#[cfg(test)]
mod tests;

use std::{ops::ControlFlow, path::Path, sync::Arc};

pub use error::{LogAppendError, LogAppendStats, LogStoreStats};
pub use options::{LogStoreOptions, Tuning};

use crate::{
    logs::model::{Direction, LogEntry, LogReadError, LogSource, StreamEntries, StreamRef},
    model::Matcher,
    store::maintenance::{self, Maintenance},
};

pub struct LogStore {
    // Held to be dropped (appends wake the thread through `inner`), and
    // first: dropping it stops and joins the thread before `inner` goes.
    _maintenance: Maintenance,
    inner: Arc<db::Inner>,
}

impl LogStore {
    /// Opens (or creates) the store in `dir` (`<data-dir>/logs`), replaying the WAL.
    pub fn open(dir: &Path, opts: LogStoreOptions) -> std::io::Result<LogStore> {
        LogStore::open_tuned(dir, opts, Tuning::default())
    }

    pub fn open_tuned(
        dir: &Path,
        opts: LogStoreOptions,
        tuning: Tuning,
    ) -> std::io::Result<LogStore> {
        if tuning.chunk_target_bytes == 0 || tuning.max_wal_segments < 2 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "log store tuning: chunk size must be positive and at least 2 WAL segments kept",
            ));
        }
        let interval = tuning.maintenance_interval;
        // Appends wake the thread themselves (through `Inner`) when a head is full.
        let (wake, rx) = maintenance::channel();
        let inner = Arc::new(db::Inner::open(dir, opts, tuning, wake.clone())?);
        let maintenance = Maintenance::start(&inner, "log", interval, (wake, rx))?;
        Ok(LogStore {
            _maintenance: maintenance,
            inner,
        })
    }

    /// Validates everything first; on error writes nothing. Returns once the
    /// entries are durable (WAL fsynced; concurrent appends share an fsync).
    /// Entries identical in (ts_ns, line, metadata) to one in the same
    /// stream's unflushed data are dropped and counted in `duplicates`.
    /// Entries are visible to queries once written to the WAL (just before
    /// the fsync); tail subscribers get them after it.
    pub fn append(&self, streams: Vec<StreamEntries>) -> Result<LogAppendStats, LogAppendError> {
        self.inner.append(streams)
    }

    /// Every successfully appended batch (after dedup), for `tail`. Lagging
    /// receivers lose batches (`RecvError::Lagged` tells them how many).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<StreamEntries>>> {
        self.inner.tail.subscribe()
    }

    pub fn stats(&self) -> LogStoreStats {
        let ix = self.inner.read();
        LogStoreStats {
            streams: ix.streams.len() as u64,
            entries: ix.entries,
            raw_bytes: ix.raw_bytes,
            disk_bytes: ix.file_bytes + self.inner.wal.size_bytes(),
        }
    }

    /// Cuts/flushes all open chunks to disk now (tests, shutdown).
    pub fn flush(&self) -> std::io::Result<()> {
        self.inner.cut(true)
    }

    /// One retention pass now (the background thread also runs it every
    /// maintenance interval). Returns the number of chunk files deleted.
    pub fn run_retention(&self) -> std::io::Result<usize> {
        self.inner.expire_active();
        self.inner.apply_retention()
    }

    /// Chunk files skipped at open because they could not be read.
    pub fn corrupt_files(&self) -> u64 {
        self.inner.corrupt_files
    }
}

impl LogSource for LogStore {
    fn streams(
        &self,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<StreamRef>, LogReadError> {
        Ok(self.inner.streams(matchers, start_ns, end_ns))
    }

    fn scan(
        &self,
        stream: &StreamRef,
        start_ns: i64,
        end_ns: i64,
        direction: Direction,
        visit: &mut dyn FnMut(&LogEntry) -> ControlFlow<()>,
    ) -> Result<(), LogReadError> {
        self.inner.scan(stream, start_ns, end_ns, direction, visit)
    }

    fn label_names(&self, start_ns: i64, end_ns: i64) -> Result<Vec<String>, LogReadError> {
        Ok(self.inner.label_index(None, &[], start_ns, end_ns))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Vec<String>, LogReadError> {
        Ok(self
            .inner
            .label_index(Some(name), matchers, start_ns, end_ns))
    }
}
