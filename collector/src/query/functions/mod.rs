//! PromQL's function library: every function Prometheus v2.42 evaluates for
//! float samples, one file per family.
//!
//! The engine evaluates the arguments and calls `call` once per evaluation
//! step; a function never reads storage.

mod args;
mod histogram;
mod labels;
mod math;
mod over_time;
mod rate;
mod time;
mod vector;
mod window;

use std::collections::HashSet;

use super::{InstantSample, QueryError, Value};
use crate::model::Labels;
pub(crate) use window::WindowFn;

/// One call at one evaluation step.
pub struct FunctionCall<'a> {
    pub name: &'a str,
    /// Evaluated arguments. A range-vector argument arrives as `Value::Matrix`
    /// holding each series' samples inside the window `range`; an instant
    /// vector as `Value::Vector`; number and string literals as `Scalar`/`String`.
    pub args: Vec<Value>,
    /// The evaluation time (ms).
    pub t: i64,
    /// For a range-vector argument: its window `[start, end]` in ms, after
    /// offset and @ are applied (rate() extrapolates to these bounds).
    pub range: Option<(i64, i64)>,
    /// For absent()/absent_over_time(): the labels taken from the argument's
    /// equality matchers (Prometheus's rule), computed by the engine.
    pub absent_labels: Labels,
}

/// Evaluates one call. Unknown names are a `BadData` error.
pub fn call(c: FunctionCall<'_>) -> Result<Value, QueryError> {
    let out = dispatch(&c)?;
    if let Value::Vector(v) = &out {
        // Prometheus checks every function's output vector this way (for
        // example a name-dropping function over two metrics with equal labels).
        check_unique_labelsets(v)?;
    }
    Ok(out)
}

fn dispatch(c: &FunctionCall<'_>) -> Result<Value, QueryError> {
    if let Some(v) = math::call(c)? {
        return Ok(v);
    }
    if let Some(v) = time::call(c)? {
        return Ok(v);
    }
    if let Some(v) = rate::call(c)? {
        return Ok(v);
    }
    if let Some(v) = over_time::call(c)? {
        return Ok(v);
    }
    if let Some(v) = histogram::call(c)? {
        return Ok(v);
    }
    if let Some(v) = labels::call(c)? {
        return Ok(v);
    }
    if let Some(v) = vector::call(c)? {
        return Ok(v);
    }
    Err(QueryError::BadData(format!(
        "unknown function with name {:?}",
        c.name
    )))
}

fn check_unique_labelsets(v: &[InstantSample]) -> Result<(), QueryError> {
    if v.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(v.len());
    for s in v {
        if !seen.insert(&s.labels) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use crate::model::Sample;
    use crate::query::RangeSeries;

    pub fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    pub fn inst(pairs: &[(&str, &str)], v: f64) -> InstantSample {
        InstantSample {
            labels: lbl(pairs),
            t: 0,
            v,
        }
    }

    /// One series for `matrix`: label pairs and (seconds, value) samples.
    pub type TestSeries<'a> = (&'a [(&'a str, &'a str)], &'a [(f64, f64)]);

    /// A matrix with one series per entry.
    pub fn matrix(series: &[TestSeries<'_>]) -> Value {
        Value::Matrix(
            series
                .iter()
                .map(|(l, pts)| RangeSeries {
                    labels: lbl(l),
                    samples: pts
                        .iter()
                        .map(|&(t, v)| Sample {
                            t: (t * 1000.0) as i64,
                            v,
                        })
                        .collect(),
                })
                .collect(),
        )
    }

    pub fn scalar(v: f64) -> Value {
        Value::Scalar { t: 0, v }
    }

    pub fn string(s: &str) -> Value {
        Value::String {
            t: 0,
            v: s.to_string(),
        }
    }

    /// Calls `name` at `t_secs` with a window of `range_secs` ending at the
    /// evaluation time.
    pub fn run(
        name: &str,
        args: Vec<Value>,
        t_secs: f64,
        range_secs: Option<f64>,
    ) -> Result<Value, QueryError> {
        let t = (t_secs * 1000.0) as i64;
        call(FunctionCall {
            name,
            args,
            t,
            range: range_secs.map(|r| (t - (r * 1000.0) as i64, t)),
            absent_labels: Labels::default(),
        })
    }

    /// The output vector as (labels, value), sorted by labels.
    pub fn vec_of(v: Result<Value, QueryError>) -> Vec<(Labels, f64)> {
        match v {
            Ok(Value::Vector(v)) => {
                let mut out: Vec<_> = v.into_iter().map(|s| (s.labels, s.v)).collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                out
            }
            other => panic!("expected a vector, got {other:?}"),
        }
    }

    /// The single value of a one-element output vector.
    pub fn one(v: Result<Value, QueryError>) -> f64 {
        let v = vec_of(v);
        assert_eq!(v.len(), 1, "expected one sample, got {v:?}");
        v[0].1
    }

    pub fn close(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
    }

    #[track_caller]
    pub fn assert_close(a: f64, b: f64) {
        assert!(close(a, b), "{a} != {b}");
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn unknown_function_is_bad_data() {
        let e = run("no_such_fn", vec![], 0.0, None).unwrap_err();
        assert_eq!(e.error_type(), "bad_data");
    }

    #[test]
    fn duplicate_output_labelsets_fail() {
        let v = Value::Vector(vec![
            inst(&[("__name__", "a"), ("x", "1")], 1.0),
            inst(&[("__name__", "b"), ("x", "1")], 2.0),
        ]);
        let e = run("abs", vec![v], 0.0, None).unwrap_err();
        assert!(e.to_string().contains("same labelset"), "{e}");
    }
}
