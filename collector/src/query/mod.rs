//! PromQL: parse with promql-parser, evaluate against `Storage`.
//!
//! Public surface used by `api` (and later `alert`): `Engine::instant`,
//! `Engine::range`, `QueryError`. `test_script` runs Prometheus's own
//! PromQL test files.
//!
//! Inside: `syntax` bridges the parser's AST; `eval` walks it once per query,
//! each node evaluated over all steps at once; `selector` reads storage once
//! per selector; `binary` and `aggregate` hold the operators; `memo` keeps
//! per-series work from repeating at every step; `functions` is the library.
//! Range-vector functions slide each series' window across the steps
//! (`windowed`), and an aggregation over one reads its per-series output
//! directly (`aggregate_fused`, with group ids from `groups`).

mod aggregate;
mod aggregate_fused;
mod binary;
#[cfg(test)]
mod engine_tests;
mod eval;
pub mod functions;
mod groups;
mod memo;
mod selector;
mod syntax;
pub mod test_script;
pub mod value;
mod windowed;

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
        EngineOptions {
            lookback: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
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

/// Steps (intervals) a range query may span, as Prometheus's API allows.
pub const MAX_RANGE_POINTS: i64 = 11_000;

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

    /// Evaluates `query` at time `t` (ms). Result: scalar, string, vector, or
    /// matrix for a bare range selector or subquery.
    pub fn instant(&self, query: &str, t: i64) -> Result<Value, QueryError> {
        let expr = syntax::parse(query)?;
        let mut ev = eval::Evaluator::new(&*self.storage, &self.opts, t, t);
        let steps = eval::Steps {
            start: t,
            end: t,
            step: 1,
        };
        Ok(match ev.eval(&expr, &steps)? {
            eval::Evaluated::Scalar(v) => Value::Scalar {
                t,
                v: v.first().copied().unwrap_or(f64::NAN),
            },
            eval::Evaluated::String(v) => Value::String { t, v },
            eval::Evaluated::Vector(mut v) => Value::Vector(v.pop().unwrap_or_default()),
            eval::Evaluated::Matrix(m) => Value::Matrix(m.slice(t)),
        })
    }

    /// Evaluates `query` at every `step` from `start` to `end` (ms, inclusive).
    /// Result: a matrix sorted by labels; a scalar expression becomes one
    /// series without labels; string and range-vector expressions are
    /// `bad_data`, as in Prometheus.
    pub fn range(&self, query: &str, start: i64, end: i64, step: i64) -> Result<Value, QueryError> {
        if step <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        // Prometheus's API bound; it also keeps per-step buffers small.
        if (end - start) / step > MAX_RANGE_POINTS {
            return Err(QueryError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .into(),
            ));
        }
        let expr = syntax::parse(query)?;
        match expr.value_type() {
            promql_parser::parser::value::ValueType::Scalar
            | promql_parser::parser::value::ValueType::Vector => {}
            other => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                    type_word(other)
                )));
            }
        }
        let mut ev = eval::Evaluator::new(&*self.storage, &self.opts, start, end);
        let steps = eval::Steps { start, end, step };
        Ok(match ev.eval(&expr, &steps)? {
            eval::Evaluated::Scalar(v) => Value::Matrix(vec![RangeSeries {
                labels: crate::model::Labels::default(),
                samples: steps
                    .iter()
                    .map(|(i, t)| crate::model::Sample { t, v: v[i] })
                    .collect(),
            }]),
            eval::Evaluated::Vector(v) => Value::Matrix(eval::vectors_to_series(v, &steps)),
            eval::Evaluated::String(_) | eval::Evaluated::Matrix(_) => {
                return Err(QueryError::BadData(
                    "range queries must evaluate to a scalar or an instant vector".into(),
                ));
            }
        })
    }
}

fn type_word(t: promql_parser::parser::value::ValueType) -> &'static str {
    use promql_parser::parser::value::ValueType;
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}
