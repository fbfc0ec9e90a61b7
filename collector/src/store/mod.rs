//! Storage: where ingested series become durable and where queries read them.
//!
//! `Storage` is the one seam between `ingest` (writes), `query` (reads) and
//! `api` (metadata lookups). `tsdb` is the embedded, durable implementation;
//! `memory` is a plain in-memory one for the PromQL test-script runner and
//! unit tests. `clock`, `data_files`, `maintenance` and `record_wal` are the
//! pieces the log and trace stores share (they reuse the TSDB's WAL).

pub(crate) mod clock;
pub(crate) mod data_files;
pub(crate) mod dir_lock;
pub(crate) mod maintenance;
pub mod memory;
pub(crate) mod record_wal;
pub mod tsdb;

use std::collections::BTreeMap;

use crate::model::{Labels, Matcher, MetricMetadata, Sample, TimeSeries};

/// Why a write was refused. Every variant maps to a 4xx (or 5xx for `Io`) in
/// the API with the message as the body; a refused write changes nothing it
/// reports as rejected.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The active-series cap would be exceeded by new series.
    #[error(
        "too many active series: limit is {limit}, this write would create {new_series} new series"
    )]
    SeriesLimit { limit: usize, new_series: usize },
    /// Samples older than what the store can still accept for their series.
    #[error(
        "{count} samples too far out of order (first: series {series}, timestamp {t} is older than {min_t})"
    )]
    OutOfOrder {
        count: usize,
        series: String,
        t: i64,
        min_t: i64,
    },
    #[error("invalid series: {0}")]
    Invalid(String),
    /// Durable storage failed: the write is not acknowledged.
    #[error("storage failure: {0}")]
    Io(#[from] std::io::Error),
}

/// What an accepted write did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    pub samples: usize,
    pub new_series: usize,
    /// Exact duplicates (same series, timestamp and value) are accepted and
    /// dropped, as Prometheus does for a retried write.
    pub duplicates: usize,
}

/// One selected series with its samples in `[mint, maxt]`, ascending.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// The storage contract. Calls are synchronous (callers in async code use
/// `spawn_blocking`); implementations are internally synchronized.
pub trait Storage: Send + Sync + 'static {
    /// Appends a batch. Returns only once the batch would survive `kill -9`
    /// (for durable implementations). All-or-nothing per call: on error no
    /// sample of the batch is visible.
    fn append(&self, batch: &[TimeSeries]) -> Result<AppendStats, AppendError>;

    /// Series matching all matchers with samples in `[mint, maxt]` (inclusive,
    /// milliseconds), sorted by labels. Series without samples in the range
    /// are left out.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<SeriesData>>;

    /// Label sets of series matching any of the matcher sets (all series if
    /// `matcher_sets` is empty) that have samples in `[mint, maxt]`, sorted.
    fn series(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<Labels>>;

    /// Sorted, unique label names over the series `series()` would return.
    fn label_names(
        &self,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = Vec::new();
        for l in self.series(matcher_sets, mint, maxt)? {
            names.extend(l.iter().map(|(k, _)| k.to_string()));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Sorted, unique values of `name` over the series `series()` would return.
    fn label_values(
        &self,
        name: &str,
        matcher_sets: &[Vec<Matcher>],
        mint: i64,
        maxt: i64,
    ) -> std::io::Result<Vec<String>> {
        let mut values: Vec<String> = Vec::new();
        for l in self.series(matcher_sets, mint, maxt)? {
            if let Some(v) = l.get(name) {
                values.push(v.to_string());
            }
        }
        values.sort();
        values.dedup();
        Ok(values)
    }

    /// Records metric metadata (type, help, unit) from a write; durable like samples.
    fn set_metadata(&self, metadata: &[(String, MetricMetadata)]) -> std::io::Result<()>;

    /// Known metadata by metric name.
    fn metadata(&self) -> std::io::Result<BTreeMap<String, Vec<MetricMetadata>>>;

    /// Series currently counted against the active-series limit.
    fn active_series(&self) -> usize;
}
