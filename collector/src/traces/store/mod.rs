//! The collector's durable trace store. On-disk format: FORMAT.md.
//!
//! Layout of `<data-dir>/traces`:
//! - `wal/`: write-ahead log segments (the metric TSDB's WAL machinery with
//!   trace records); every acknowledged write is here, fsynced with group
//!   commit, until its spans are in a segment file.
//! - `segments/`: immutable segment files, one per cut, each holding the
//!   cut's spans grouped by trace in zstd blocks plus an index by trace id
//!   and by (service, operation, kind).
//! - `lock`: `flock`ed while open so two processes never share the store.
//!
//! Appends go to the WAL and the in-memory head. The background thread cuts
//! the whole head into one segment once it is big or old (and on
//! [`TraceStore::flush`]), then deletes the WAL segments that covered it,
//! and applies retention by deleting whole segments.
//!
//! Why hand-written: no embeddable Rust trace store exists (Jaeger's and
//! Tempo's are Go services); the WAL is the TSDB's, compression `zstd`.

mod codec;
mod db;
mod error;
mod head;
pub mod metrics;
mod options;
mod query;
mod retention;
mod segment;
mod wal_record;

#[cfg(test)]
mod tests;

use std::{path::Path, sync::Arc};

pub use error::{TraceAppendError, TraceAppendStats, TraceStoreStats};
pub use options::{TraceStoreOptions, Tuning};
pub use query::TraceQuery;

use crate::{
    store::maintenance::{self, Maintenance},
    traces::model::{Span, TraceId},
};

pub struct TraceStore {
    // First: dropping it stops and joins the thread before `inner` goes.
    maintenance: Maintenance,
    inner: Arc<db::Inner>,
}

impl TraceStore {
    /// Opens (or creates) the store in `dir` (`<data-dir>/traces`), replaying the WAL.
    pub fn open(dir: &Path, opts: TraceStoreOptions) -> std::io::Result<TraceStore> {
        TraceStore::open_tuned(dir, opts, Tuning::default())
    }

    pub fn open_tuned(
        dir: &Path,
        opts: TraceStoreOptions,
        tuning: Tuning,
    ) -> std::io::Result<TraceStore> {
        let interval = tuning.maintenance_interval;
        let inner = Arc::new(db::Inner::open(dir, opts, tuning)?);
        let maintenance = Maintenance::start(&inner, "trace", interval, maintenance::channel())?;
        Ok(TraceStore { maintenance, inner })
    }

    /// Checks every span and `max_spans_per_trace` first; on error writes
    /// nothing. Returns once the spans are durable (WAL fsynced; concurrent
    /// appends share an fsync). Spans whose trace and span id are already
    /// held in memory are dropped and counted in `duplicates`.
    pub fn append(&self, spans: Vec<Span>) -> Result<TraceAppendStats, TraceAppendError> {
        let (stats, wants_cut) = self.inner.append(spans)?;
        if wants_cut {
            self.maintenance.wake();
        }
        Ok(stats)
    }

    /// Every span of the trace, oldest first; empty when unknown.
    pub fn trace(&self, id: &TraceId) -> std::io::Result<Vec<Span>> {
        self.inner.trace(id)
    }

    /// Whole traces with a span matching `q`, newest first.
    pub fn search(&self, q: &TraceQuery) -> std::io::Result<Vec<Vec<Span>>> {
        self.inner.search(q)
    }

    pub fn services(&self) -> Vec<String> {
        self.inner.services()
    }

    /// (operation, span kind as OTLP numbers it) pairs of a service.
    pub fn operations(&self, service: &str) -> Vec<(String, u8)> {
        self.inner.operations(service)
    }

    /// (parent service, child service, calls) in `[start_ns, end_ns]`.
    pub fn dependencies(&self, start_ns: i64, end_ns: i64) -> Vec<(String, String, u64)> {
        self.inner.dependencies(start_ns, end_ns)
    }

    /// Writes the head to a segment now (tests, shutdown).
    pub fn flush(&self) -> std::io::Result<()> {
        self.inner.cut(true)
    }

    /// One retention pass now; returns the number of segments deleted.
    pub fn run_retention(&self) -> std::io::Result<usize> {
        self.inner.apply_retention()
    }

    pub fn stats(&self) -> TraceStoreStats {
        let st = self.inner.read();
        let heads = st.sealed.iter().map(|h| &**h).chain([&st.head]);
        let (mut spans, mut traces) = (0u64, 0u64);
        for h in heads {
            spans += h.spans;
            traces += h.traces.len() as u64;
        }
        let mut disk = self.inner.wal.size_bytes();
        for s in st.segments.values() {
            spans += s.span_count;
            traces += s.traces.len() as u64;
            disk += s.size;
        }
        TraceStoreStats {
            spans,
            traces,
            segments: st.segments.len() as u64,
            disk_bytes: disk,
        }
    }

    /// Segment files skipped at open because they could not be read.
    pub fn corrupt_files(&self) -> u64 {
        self.inner.corrupt_files
    }
}
