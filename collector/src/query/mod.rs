//! PromQL: parse with promql-parser, evaluate against `Storage`.
//!
//! Public surface used by `api` (and later `alert`): `Engine::instant`,
//! `Engine::range`, `QueryError`. `test_script` runs Prometheus's own
//! PromQL test files.

pub mod functions;
pub mod value;

use std::{sync::Arc, time::Duration};

use crate::store::Storage;
pub use value::{InstantSample, RangeSeries, Value};

/// Limits and defaults, as Prometheus's flags name them.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// `--query.lookback-delta`, 5m by default.
    pub lookback: Duration,
    /// `--query.max-samples`: samples a query may hold in memory at once.
    pub max_samples: usize,
    /// `--query.timeout`.
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { lookback: Duration::from_secs(300), max_samples: 50_000_000, timeout: Duration::from_secs(120) }
    }
}

/// Why a query failed, with Prometheus's `errorType` for each.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Unparsable query or bad parameter: HTTP 400, errorType `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (for example many-to-many matching): HTTP 422, `execution`.
    #[error("{0}")]
    Execution(String),
    /// `--query.max-samples` exceeded: HTTP 422, `execution`, Prometheus's wording.
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// `--query.timeout` exceeded: HTTP 503, `timeout`.
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// Storage failed: HTTP 500, `internal`.
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
}

impl QueryError {
    /// Prometheus's `errorType` string.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Storage(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Execution(_) | QueryError::TooManySamples => 422,
            QueryError::Timeout(_) => 503,
            QueryError::Storage(_) => 500,
        }
    }
}

pub struct Engine {
    storage: Arc<dyn Storage>,
    opts: EngineOptions,
}

impl Engine {
    pub fn new(storage: Arc<dyn Storage>, opts: EngineOptions) -> Engine {
        Engine { storage, opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at time `t` (ms). Result: scalar, string or vector.
    pub fn instant(&self, query: &str, t: i64) -> Result<Value, QueryError> {
        let _ = (&self.storage, query, t);
        Err(QueryError::Execution("the PromQL engine is being built".into()))
    }

    /// Evaluates `query` at every `step` from `start` to `end` (ms, inclusive).
    /// Result: a matrix (Prometheus rejects scalar/string-typed... no: scalars
    /// become a one-series matrix without labels; strings are an error).
    pub fn range(&self, query: &str, start: i64, end: i64, step: i64) -> Result<Value, QueryError> {
        let _ = (&self.storage, query, start, end, step);
        Err(QueryError::Execution("the PromQL engine is being built".into()))
    }
}
