//! LogQL over any [`LogSource`]: log queries (selector, line filters, json /
//! logfmt / regexp parsers, label filters, line_format / label_format,
//! drop / keep) and metric queries (range aggregations, vector aggregations,
//! binary operators), with Loki's semantics for windows, `limit`, direction
//! and pipeline errors. `parser` builds an `ast`; `log_query` and
//! `metric_query` run it; `pipeline` applies the stages to one entry.
//!
//! The query functions are synchronous and CPU-bound (they read through
//! `LogSource::scan`): async callers should run them in `spawn_blocking`.

mod aggregate;
mod ast;
mod error;
mod json;
mod label_filter;
mod label_state;
mod lexer;
mod log_query;
mod logfmt;
pub mod memory;
mod metric_query;
mod parse_pipeline;
mod parser;
mod pattern;
mod pipeline;
mod range_agg;
mod tail;
mod template;
mod template_funcs;
pub(crate) mod units;

use std::collections::HashMap;
use std::time::Instant;

use crate::logs::model::{Direction, LogSource, StreamEntries};
use crate::model::Labels;

pub use error::LogQlError;
pub use tail::{TailQuery, compile_tail};

use ast::Expr;
use metric_query::Value;

/// Bounds on what one query may read and return.
#[derive(Clone, Debug)]
pub struct LogQlLimits {
    /// Largest `limit` a log query may ask for (Loki's max_entries_limit_per_query).
    pub max_lines: usize,
    /// Most series a metric query may return.
    pub max_series: usize,
    /// Most bytes of log lines one query may read (before filtering).
    pub max_bytes: usize,
}

impl Default for LogQlLimits {
    fn default() -> Self {
        LogQlLimits {
            max_lines: 5000,
            max_series: 500,
            max_bytes: 100 << 20,
        }
    }
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryData {
    /// Log query: entries grouped by their labels after parsers/label_format.
    Streams(Vec<StreamEntries>),
    /// Instant metric query: one value per series at the query time.
    Vector(Vec<(Labels, f64)>),
    /// Range metric query: `(ts_ns, value)` points per series.
    Matrix(Vec<(Labels, Vec<(i64, f64)>)>),
}

/// Checks that `query` is a LogQL metric query (what a log rule's `expr` must
/// be); the error is the parser's, or says it is a log query.
pub fn check_metric_query(query: &str) -> Result<(), String> {
    match parser::parse(query).map_err(|e| e.to_string())? {
        Expr::Metric(_) => Ok(()),
        Expr::Log(_) => Err(
            "a log query selects lines; a rule needs a metric query such as count_over_time({...}[5m])"
                .into(),
        ),
    }
}

/// Loki refuses range queries with more points per series than this.
const MAX_POINTS: i64 = 11_000;

/// Runs a query at one instant: a metric query is evaluated at `at_ns`
/// (windows end at `at_ns`, inclusive); a log query returns lines with
/// timestamps up to and including `at_ns`.
pub fn query_instant(
    src: &dyn LogSource,
    query: &str,
    at_ns: i64,
    limit: usize,
    direction: Direction,
    limits: &LogQlLimits,
) -> Result<QueryData, LogQlError> {
    let started = Instant::now();
    let expr = parser::parse(query)?;
    let mut budget = Budget::new(limits.max_bytes);
    let out = match expr {
        Expr::Log(l) => {
            let limit = log_query::check_limit(limit, limits)?;
            QueryData::Streams(log_query::run(
                src,
                &l,
                i64::MIN,
                at_ns.saturating_add(1),
                limit,
                direction,
                &mut budget,
            )?)
        }
        Expr::Metric(m) => {
            let steps = Steps {
                start: at_ns,
                end: at_ns,
                step: 1,
            };
            let v = match metric_query::eval(src, &m, &steps, &mut budget)? {
                Value::Scalar(s) => vec![(Labels::default(), s)],
                Value::Vector(mut v) => {
                    let mut v = v.pop().unwrap_or_default();
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                    v
                }
            };
            check_series(v.len(), limits)?;
            QueryData::Vector(v)
        }
    };
    tracing::debug!(query, bytes_read = budget.used, elapsed = ?started.elapsed(), "logql instant query");
    Ok(out)
}

/// Runs a query over `[start_ns, end_ns]`: a log query returns lines in
/// `[start_ns, end_ns)`; a metric query is evaluated at `start_ns`,
/// `start_ns + step_ns`, ... up to `end_ns`.
#[allow(clippy::too_many_arguments)]
pub fn query_range(
    src: &dyn LogSource,
    query: &str,
    start_ns: i64,
    end_ns: i64,
    step_ns: i64,
    limit: usize,
    direction: Direction,
    limits: &LogQlLimits,
) -> Result<QueryData, LogQlError> {
    let started = Instant::now();
    if end_ns < start_ns {
        return Err(LogQlError::bad(
            "end timestamp must not be before start time",
        ));
    }
    let expr = parser::parse(query)?;
    let mut budget = Budget::new(limits.max_bytes);
    let out = match expr {
        Expr::Log(l) => {
            let limit = log_query::check_limit(limit, limits)?;
            QueryData::Streams(log_query::run(
                src,
                &l,
                start_ns,
                end_ns,
                limit,
                direction,
                &mut budget,
            )?)
        }
        Expr::Metric(m) => {
            if step_ns <= 0 {
                return Err(LogQlError::bad(
                    "zero or negative query resolution step widths are not accepted. Try a positive integer",
                ));
            }
            if (end_ns - start_ns) / step_ns >= MAX_POINTS {
                return Err(LogQlError::bad(format!(
                    "exceeded maximum resolution of {MAX_POINTS} points per timeseries. Try decreasing the query resolution (?step=XX)"
                )));
            }
            let steps = Steps {
                start: start_ns,
                end: end_ns,
                step: step_ns,
            };
            let series: Vec<(Labels, Vec<(i64, f64)>)> =
                match metric_query::eval(src, &m, &steps, &mut budget)? {
                    Value::Scalar(s) => {
                        vec![(Labels::default(), steps.iter().map(|t| (t, s)).collect())]
                    }
                    Value::Vector(per_step) => {
                        let mut map: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
                        for (t, v) in steps.iter().zip(per_step) {
                            for (labels, value) in v {
                                map.entry(labels).or_default().push((t, value));
                            }
                            check_series(map.len(), limits)?;
                        }
                        let mut out: Vec<_> = map.into_iter().collect();
                        out.sort_by(|a, b| a.0.cmp(&b.0));
                        out
                    }
                };
            check_series(series.len(), limits)?;
            QueryData::Matrix(series)
        }
    };
    tracing::debug!(query, bytes_read = budget.used, elapsed = ?started.elapsed(), "logql range query");
    Ok(out)
}

fn check_series(n: usize, limits: &LogQlLimits) -> Result<(), LogQlError> {
    if n > limits.max_series {
        return Err(LogQlError::limit(format!(
            "maximum of series ({}) reached for a single query (max_series); aggregate with sum by (...), use a more specific selector or filters, or raise the collector's logs max_series limit",
            limits.max_series
        )));
    }
    Ok(())
}

/// The steps a metric query is evaluated at: `start`, `start + step`, ... `<= end`.
pub(crate) struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub(crate) fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        let n = self.count();
        (0..n).map(move |i| self.start + i as i64 * self.step)
    }

    pub(crate) fn count(&self) -> usize {
        if self.end < self.start || self.step <= 0 {
            0
        } else {
            ((self.end - self.start) / self.step + 1) as usize
        }
    }
}

/// One step's vector: series labels and values.
pub(crate) type StepVec = Vec<(Labels, f64)>;

/// Counts the bytes of log lines a query reads, against `max_bytes`.
pub(crate) struct Budget {
    used: usize,
    max: usize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Budget {
        Budget { used: 0, max }
    }

    pub(crate) fn read(&mut self, n: usize) -> Result<(), LogQlError> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max {
            return Err(LogQlError::limit(format!(
                "the query would read more than {} bytes of log lines (max_bytes); narrow the time range or the stream selector, or raise the collector's logs max_bytes limit",
                self.max
            )));
        }
        Ok(())
    }
}
