//! The evaluator: walks the AST once per query, evaluating every node over
//! all steps of the query at once (a column per step). Selectors read storage
//! once for the whole span and slice in memory; binary operators,
//! aggregations and functions then work step by step, as Prometheus's
//! `rangeEval` does.

use std::time::Instant;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr, SubqueryExpr};

use super::functions::{self, FunctionCall};
use super::groups::AddrMap;
use super::memo::{Derive, Interner, check_unique_canonical, identity};
use super::syntax::{self, at_ms, duration_ms, offset_ms, unwrap_parens};
use super::{EngineOptions, InstantSample, QueryError, RangeSeries, Value};
use crate::model::{Labels, METRIC_NAME, Sample, is_stale_nan};
use crate::store::Storage;

/// Step width of a subquery without one (`x[5m:]`): Prometheus uses the global
/// evaluation interval, 1m by default.
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// The evaluation timestamps of a node: `start`, `start+step`, ... `<= end`.
/// Empty when `end < start` (a subquery whose aligned start passed its end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub fn len(&self) -> usize {
        if self.end < self.start || self.step <= 0 {
            0
        } else {
            ((self.end - self.start) / self.step) as usize + 1
        }
    }

    pub fn at(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        (0..self.len()).map(|i| (i, self.at(i)))
    }
}

/// A node's value over all steps of its evaluation.
pub(crate) enum Evaluated {
    Scalar(Vec<f64>),
    String(String),
    /// One instant vector per step.
    Vector(Vec<Vec<InstantSample>>),
    Matrix(MatrixEval),
}

impl Evaluated {
    pub(crate) fn sample_count(&self) -> usize {
        match self {
            Evaluated::Scalar(v) => v.len(),
            Evaluated::String(_) => 0,
            Evaluated::Vector(v) => v.iter().map(Vec::len).sum(),
            Evaluated::Matrix(m) => m.series.iter().map(|s| s.samples.len()).sum(),
        }
    }
}

/// A range vector (matrix selector or subquery): every sample it can show over
/// the whole evaluation, plus how to cut the window for one step.
pub(crate) struct MatrixEval {
    /// Sorted by labels, staleness markers removed.
    pub series: Vec<RangeSeries>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl MatrixEval {
    /// The inclusive window `[maxt - range, maxt]` seen at evaluation time `t`.
    pub fn window(&self, t: i64) -> (i64, i64) {
        let maxt = self.at.unwrap_or(t) - self.offset;
        (maxt - self.range, maxt)
    }

    /// The series with at least one sample in the window at `t`.
    pub fn slice(&self, t: i64) -> Vec<RangeSeries> {
        let (mint, maxt) = self.window(t);
        self.series
            .iter()
            .filter_map(|s| {
                let lo = s.samples.partition_point(|x| x.t < mint);
                let hi = s.samples.partition_point(|x| x.t <= maxt);
                (lo < hi).then(|| RangeSeries {
                    labels: s.labels.clone(),
                    samples: s.samples[lo..hi].to_vec(),
                })
            })
            .collect()
    }
}

pub(crate) struct Evaluator<'a> {
    pub(crate) storage: &'a dyn Storage,
    pub(crate) lookback: i64,
    max_samples: usize,
    deadline: Instant,
    timeout: std::time::Duration,
    /// The outermost query's bounds, what `@ start()` / `@ end()` mean.
    query_start: i64,
    query_end: i64,
    /// Samples currently held (loaded from storage or produced by nodes).
    samples: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        storage: &'a dyn Storage,
        opts: &EngineOptions,
        query_start: i64,
        query_end: i64,
    ) -> Evaluator<'a> {
        Evaluator {
            storage,
            lookback: duration_ms(&opts.lookback),
            max_samples: opts.max_samples,
            deadline: Instant::now() + opts.timeout,
            timeout: opts.timeout,
            query_start,
            query_end,
            samples: 0,
        }
    }

    pub(crate) fn check_deadline(&self) -> Result<(), QueryError> {
        if Instant::now() >= self.deadline {
            tracing::debug!(timeout = ?self.timeout, "query timed out");
            return Err(QueryError::Timeout("query execution"));
        }
        Ok(())
    }

    pub(crate) fn track(&mut self, n: usize) -> Result<(), QueryError> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.max_samples {
            return Err(QueryError::TooManySamples);
        }
        Ok(())
    }

    pub(crate) fn untrack(&mut self, n: usize) {
        self.samples = self.samples.saturating_sub(n);
    }

    pub(crate) fn at_ms(&self, at: &Option<promql_parser::parser::AtModifier>) -> Option<i64> {
        at_ms(at, self.query_start, self.query_end)
    }

    /// Evaluates `expr` at every step. Children are released from the sample
    /// count by the node that consumed them.
    pub fn eval(&mut self, expr: &Expr, steps: &Steps) -> Result<Evaluated, QueryError> {
        self.check_deadline()?;
        let out = match expr {
            Expr::NumberLiteral(n) => Evaluated::Scalar(vec![n.val; steps.len()]),
            Expr::StringLiteral(s) => {
                Evaluated::String(syntax::unescape(&s.val).map_err(QueryError::BadData)?)
            }
            Expr::Paren(p) => return self.eval(&p.expr, steps),
            Expr::Unary(u) => {
                let inner = self.eval(&u.expr, steps)?;
                self.untrack(inner.sample_count());
                negate(inner)?
            }
            Expr::VectorSelector(vs) => self.vector_selector(vs, steps, false)?,
            Expr::MatrixSelector(ms) => self.matrix_selector(ms, steps)?,
            Expr::Subquery(sq) => self.subquery(sq, steps)?,
            Expr::Binary(b) => self.binary(b, steps)?,
            Expr::Aggregate(a) => self.aggregate(a, steps)?,
            Expr::Call(c) => self.call(c, steps)?,
            Expr::Extension(_) => {
                return Err(QueryError::BadData(
                    "extension expressions are not supported".into(),
                ));
            }
        };
        self.track(out.sample_count())?;
        Ok(out)
    }

    /// Evaluates an expression that must be a scalar (aggregation parameters).
    pub(crate) fn eval_scalar(
        &mut self,
        expr: &Expr,
        steps: &Steps,
        what: &str,
    ) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr, steps)? {
            Evaluated::Scalar(v) => {
                self.untrack(v.len());
                Ok(v)
            }
            other => {
                self.untrack(other.sample_count());
                Err(QueryError::BadData(format!("expected a scalar for {what}")))
            }
        }
    }

    /// A subquery: evaluate the inner expression at its own aligned steps over
    /// everything any outer step can see, then hand it on as a range vector.
    fn subquery(&mut self, sq: &SubqueryExpr, steps: &Steps) -> Result<Evaluated, QueryError> {
        let range = duration_ms(&sq.range);
        let offset = offset_ms(&sq.offset);
        let at = self.at_ms(&sq.at);
        let step = sq
            .step
            .as_ref()
            .map(duration_ms)
            .unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
        if step <= 0 {
            return Err(QueryError::BadData("subquery step must be positive".into()));
        }
        let (outer_start, outer_end) = match at {
            Some(a) => (a, a),
            None => (steps.start, steps.end),
        };
        let inner = if steps.len() == 0 {
            Steps {
                start: 0,
                end: -1,
                step,
            }
        } else {
            Steps {
                start: align_up(outer_start - offset - range, step),
                end: outer_end - offset,
                step,
            }
        };
        // Every step costs memory here even when empty; a subquery with more
        // steps than the sample limit can never be answered.
        if inner.len() > self.max_samples {
            return Err(QueryError::TooManySamples);
        }
        let res = self.eval(&sq.expr, &inner)?;
        let count = res.sample_count();
        let series = match res {
            Evaluated::Vector(per_step) => vectors_to_series(per_step, &inner),
            Evaluated::Scalar(_) | Evaluated::String(_) | Evaluated::Matrix(_) => {
                return Err(QueryError::BadData(
                    "subquery is only allowed on instant vector expressions".into(),
                ));
            }
        };
        self.untrack(count);
        Ok(Evaluated::Matrix(MatrixEval {
            series,
            range,
            offset,
            at,
        }))
    }

    fn call(&mut self, c: &Call, steps: &Steps) -> Result<Evaluated, QueryError> {
        let (args, held) = self.call_args(c, steps)?;
        self.call_with_args(c, args, held, steps)
    }

    /// A call's evaluated arguments and the samples they hold (tracked until
    /// `call_with_args` releases them).
    pub(crate) fn call_args(
        &mut self,
        c: &Call,
        steps: &Steps,
    ) -> Result<(Vec<Evaluated>, usize), QueryError> {
        let name = c.func.name;
        let arg_exprs: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
        let mut args = Vec::with_capacity(arg_exprs.len());
        for (i, a) in arg_exprs.iter().enumerate() {
            // timestamp() of a plain selector reports each sample's own time, so
            // the selector keeps sample times instead of the evaluation time.
            let v = match a {
                Expr::VectorSelector(vs) if name == "timestamp" && i == 0 => {
                    let v = self.vector_selector(vs, steps, true)?;
                    self.track(v.sample_count())?;
                    v
                }
                _ => self.eval(a, steps)?,
            };
            args.push(v);
        }
        let held: usize = args.iter().map(Evaluated::sample_count).sum();
        Ok((args, held))
    }

    pub(crate) fn call_with_args(
        &mut self,
        c: &Call,
        mut args: Vec<Evaluated>,
        held: usize,
        steps: &Steps,
    ) -> Result<Evaluated, QueryError> {
        let name = c.func.name;
        let absent_labels = match (name, c.args.args.first()) {
            ("absent" | "absent_over_time", Some(a)) => syntax::absent_labels(unwrap_parens(a)),
            _ => Labels::default(),
        };
        if let Some(out) = self.windowed_call(name, &args, steps)? {
            self.untrack(held);
            return Ok(out);
        }
        let returns_scalar = c.func.return_type == ValueType::Scalar;

        // Move the per-step vectors out so each step's vector is handed over once.
        let mut columns: Vec<Option<std::vec::IntoIter<Vec<InstantSample>>>> =
            Vec::with_capacity(args.len());
        for a in &mut args {
            columns.push(match a {
                Evaluated::Vector(v) => Some(std::mem::take(v).into_iter()),
                _ => None,
            });
        }
        let mut vectors = Vec::with_capacity(if returns_scalar { 0 } else { steps.len() });
        let mut interner = Interner::default();
        let mut scalars = Vec::with_capacity(if returns_scalar { steps.len() } else { 0 });
        for (i, t) in steps.iter() {
            self.check_deadline()?;
            let mut values = Vec::with_capacity(args.len());
            let mut range = None;
            for (a, col) in args.iter().zip(columns.iter_mut()) {
                values.push(match a {
                    Evaluated::Scalar(v) => Value::Scalar { t, v: v[i] },
                    Evaluated::String(s) => Value::String { t, v: s.clone() },
                    Evaluated::Vector(_) => {
                        Value::Vector(col.as_mut().and_then(Iterator::next).unwrap_or_default())
                    }
                    Evaluated::Matrix(m) => {
                        range = Some(m.window(t));
                        Value::Matrix(m.slice(t))
                    }
                });
            }
            let out = functions::call(FunctionCall {
                name,
                args: values,
                t,
                range,
                absent_labels: absent_labels.clone(),
            })?;
            match out {
                Value::Scalar { v, .. } if returns_scalar => scalars.push(v),
                Value::Vector(mut v) if !returns_scalar => {
                    for s in &mut v {
                        s.t = t;
                    }
                    // Functions make fresh label sets; interning shares them
                    // across steps and catches duplicates (e.g. a dropped name).
                    interner.step(i, &mut v)?;
                    vectors.push(v);
                }
                other => {
                    return Err(QueryError::Execution(format!(
                        "function {name} returned a {} where a {} was expected",
                        other.type_name(),
                        if returns_scalar { "scalar" } else { "vector" }
                    )));
                }
            }
        }
        self.untrack(held);
        Ok(if returns_scalar {
            Evaluated::Scalar(scalars)
        } else {
            Evaluated::Vector(vectors)
        })
    }
}

/// The first multiple of `step` at or after `t` (Prometheus's subquery alignment).
pub(crate) fn align_up(t: i64, step: i64) -> i64 {
    let m = t.div_euclid(step) * step;
    if m < t { m + step } else { m }
}

/// Regroups per-step vectors into series sorted by labels; staleness markers
/// are dropped as range selection in Prometheus drops them.
pub(crate) fn vectors_to_series(
    per_step: Vec<Vec<InstantSample>>,
    steps: &Steps,
) -> Vec<RangeSeries> {
    // Group by label-set identity first (cheap); equal label sets in
    // different allocations are merged after sorting.
    let mut index: AddrMap<(usize, usize), usize> = AddrMap::default();
    let mut groups: Vec<RangeSeries> = Vec::new();
    for (i, vec) in per_step.into_iter().enumerate() {
        let t = steps.at(i);
        for s in vec {
            if is_stale_nan(s.v) {
                continue;
            }
            let g = *index.entry(identity(&s.labels)).or_insert_with(|| {
                groups.push(RangeSeries {
                    labels: s.labels.clone(),
                    samples: Vec::new(),
                });
                groups.len() - 1
            });
            groups[g].samples.push(Sample { t, v: s.v });
        }
    }
    groups.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<RangeSeries> = Vec::with_capacity(groups.len());
    for g in groups {
        match out.last_mut() {
            Some(last) if last.labels == g.labels => {
                last.samples.extend(g.samples);
                last.samples.sort_by_key(|p| p.t);
            }
            _ => out.push(g),
        }
    }
    out
}

fn negate(v: Evaluated) -> Result<Evaluated, QueryError> {
    match v {
        Evaluated::Scalar(v) => Ok(Evaluated::Scalar(v.into_iter().map(|x| -x).collect())),
        Evaluated::Vector(mut per_step) => {
            let mut names = Derive::new();
            for vec in &mut per_step {
                names.fit(vec.len());
                for s in vec.iter_mut() {
                    s.labels = names.get(&s.labels, |l| l.without(&[METRIC_NAME]));
                    s.v = -s.v;
                }
                check_unique_canonical(vec)?;
            }
            Ok(Evaluated::Vector(per_step))
        }
        Evaluated::String(_) | Evaluated::Matrix(_) => Err(QueryError::BadData(
            "unary expression only allowed on expressions of type scalar or instant vector".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_matches_prometheus_for_negative_and_positive() {
        assert_eq!(align_up(-150, 100), -100);
        assert_eq!(align_up(-200, 100), -200);
        assert_eq!(align_up(150, 100), 200);
        assert_eq!(align_up(200, 100), 200);
        assert_eq!(align_up(0, 60_000), 0);
    }

    #[test]
    fn steps_count_inclusive_and_empty() {
        assert_eq!(
            Steps {
                start: 0,
                end: 120,
                step: 60
            }
            .len(),
            3
        );
        assert_eq!(
            Steps {
                start: 10,
                end: 0,
                step: 60
            }
            .len(),
            0
        );
        assert_eq!(
            Steps {
                start: 5,
                end: 5,
                step: 1
            }
            .len(),
            1
        );
    }
}
