//! The embedded, durable time-series store. On-disk formats: FORMAT.md.
//!
//! Layout of the data directory:
//! - `wal/`: write-ahead log segments; every acknowledged write is here
//!   (fsynced, group commit) until its samples are in a block.
//! - `blocks/`: immutable, compressed blocks with their own postings index.
//! - `metadata.json`: metric metadata saved before WAL segments are deleted.
//!
//! An append is validated as a whole against the head (memory), logged to
//! the WAL, and becomes visible to readers only once its fsync (shared with
//! concurrent appends) succeeded. A background thread cuts old head data
//! into blocks, merges small blocks and applies retention.
//!
//! Why hand-written rather than a library: no maintained embeddable Rust
//! TSDB with Prometheus semantics (staleness NaNs, out-of-order window,
//! postings matchers) exists; compression itself is delegated to `pco`.

mod block;
mod column;
mod compact;
mod db;
pub(crate) mod encoding;
mod head;
mod metadata;
pub(crate) mod postings;
pub(crate) mod wal;

#[cfg(test)]
mod testgen;
#[cfg(test)]
mod tests;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, mpsc},
    thread::JoinHandle,
    time::Duration,
};

use super::{AppendError, AppendStats, SeriesData, Storage};
use crate::model::{Labels, Matcher, MetricMetadata, TimeSeries};

/// Limits and retention for [`Tsdb`].
#[derive(Clone, Debug)]
pub struct TsdbOptions {
    /// Blocks whose newest sample is older than this (relative to the newest
    /// sample stored) are deleted.
    pub retention_time: Duration,
    /// Oldest blocks are deleted while blocks plus WAL exceed this.
    pub retention_bytes: Option<u64>,
    /// Active-series cap.
    pub max_series: usize,
    /// How far behind its series' newest sample a sample may arrive.
    pub ooo_window: Duration,
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            retention_time: Duration::from_secs(15 * 24 * 3600),
            retention_bytes: None,
            max_series: 1_000_000,
            ooo_window: Duration::from_secs(600),
        }
    }
}

/// Internal knobs (tests and benchmarks shrink them).
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Time range of a level-0 block, milliseconds.
    pub block_range_ms: i64,
    /// A WAL segment is closed once it reaches this size.
    pub wal_segment_bytes: u64,
    /// How often the background thread compacts; `None` disables it.
    pub maintenance_interval: Option<Duration>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            block_range_ms: 2 * 3600 * 1000,
            wal_segment_bytes: 128 << 20,
            maintenance_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// One block on disk, as reported by [`Tsdb::blocks`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub file: String,
    pub mint: i64,
    pub maxt: i64,
    pub level: u32,
    pub series: usize,
    pub samples: u64,
    pub bytes: u64,
}

/// What [`Tsdb::stats`] reports. Counters are since open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TsdbStats {
    pub head_series: usize,
    pub blocks: usize,
    pub block_bytes: u64,
    pub block_samples: u64,
    pub wal_bytes: u64,
    pub wal_records: u64,
    /// Fewer than `wal_records` when group commit shared fsyncs.
    pub wal_fsyncs: u64,
}

pub struct Tsdb {
    inner: Arc<db::Inner>,
    stop: Option<mpsc::Sender<()>>,
    worker: Option<JoinHandle<()>>,
}

impl Tsdb {
    /// Opens (or creates) the store in `dir`, replaying the WAL.
    pub fn open(dir: &Path, opts: TsdbOptions) -> std::io::Result<Tsdb> {
        Tsdb::open_tuned(dir, opts, Tuning::default())
    }

    pub fn open_tuned(dir: &Path, opts: TsdbOptions, tuning: Tuning) -> std::io::Result<Tsdb> {
        if tuning.block_range_ms <= 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "tsdb block range must be positive",
            ));
        }
        let interval = tuning.maintenance_interval;
        let inner = Arc::new(db::Inner::open(dir, opts, tuning)?);
        let (stop, worker) = match interval {
            None => (None, None),
            Some(every) => {
                let (tx, rx) = mpsc::channel::<()>();
                let weak = Arc::downgrade(&inner);
                let worker = std::thread::Builder::new().name("tsdb-maintenance".into()).spawn(move || {
                    // Any message or a dropped sender means shutdown.
                    while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                        let Some(inner) = weak.upgrade() else { break };
                        if let Err(e) = inner.maintain(false) {
                            tracing::error!(error = %e, "tsdb compaction/retention failed; will retry");
                        }
                    }
                })?;
                (Some(tx), Some(worker))
            }
        };
        Ok(Tsdb {
            inner,
            stop,
            worker,
        })
    }

    /// Runs one compaction + retention pass now. With `force_head`, every
    /// head sample goes into blocks (and later samples at or before the
    /// newest one become out of order).
    pub fn compact(&self, force_head: bool) -> std::io::Result<()> {
        self.inner.maintain(force_head)
    }

    /// Counters and sizes for the collector's own metrics.
    pub fn stats(&self) -> TsdbStats {
        let blocks = self.inner.blocks();
        let (wal_records, wal_fsyncs) = self.inner.wal.counters();
        TsdbStats {
            head_series: self.inner.head.num_series(),
            blocks: blocks.len(),
            block_bytes: blocks.iter().map(|b| b.size).sum(),
            block_samples: blocks.iter().map(|b| b.meta.num_samples).sum(),
            wal_bytes: self.inner.wal.size_bytes(),
            wal_records,
            wal_fsyncs,
        }
    }

    /// The blocks on disk, oldest first.
    pub fn blocks(&self) -> Vec<BlockInfo> {
        self.inner
            .blocks()
            .iter()
            .map(|b| BlockInfo {
                file: b.name.clone(),
                mint: b.meta.mint,
                maxt: b.meta.maxt,
                level: b.meta.level,
                series: b.num_series(),
                samples: b.meta.num_samples,
                bytes: b.size,
            })
            .collect()
    }
}

impl Drop for Tsdb {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl Storage for Tsdb {
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError> {
        self.inner.append(batch)
    }

    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<SeriesData>> {
        self.inner.select(matchers, mint, maxt)
    }

    fn series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<Labels>> {
        self.inner.series(matcher_sets, mint, maxt)
    }

    fn label_names(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<String>> {
        self.inner.label_index(None, matcher_sets, mint, maxt)
    }

    fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<String>> {
        self.inner.label_index(Some(name), matcher_sets, mint, maxt)
    }

    fn set_metadata(&self, metadata: &[(String, MetricMetadata)]) -> std::io::Result<()> {
        self.inner.set_metadata(metadata)
    }

    fn metadata(&self) -> std::io::Result<BTreeMap<String, Vec<MetricMetadata>>> {
        Ok(self.inner.metadata())
    }

    fn active_series(&self) -> usize {
        self.inner.head.num_series()
    }
}
