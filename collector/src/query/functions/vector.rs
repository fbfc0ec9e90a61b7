//! Conversions and whole-vector functions: vector, scalar, sort, sort_desc
//! and absent.

use std::cmp::Ordering;

use super::FunctionCall;
use super::args;
use crate::model::Labels;
use crate::query::{InstantSample, QueryError, Value};

pub(super) fn call(c: &FunctionCall<'_>) -> Result<Option<Value>, QueryError> {
    let out = match c.name {
        "vector" => {
            args::arity(c, 1, 1)?;
            let v = args::scalar(c, 0)?;
            Value::Vector(vec![InstantSample {
                labels: Labels::default(),
                t: c.t,
                v,
            }])
        }
        "scalar" => {
            args::arity(c, 1, 1)?;
            // Anything but exactly one sample is NaN.
            let v = match args::vector(c, 0)? {
                [one] => one.v,
                _ => f64::NAN,
            };
            Value::Scalar { t: c.t, v }
        }
        "sort" | "sort_desc" => {
            args::arity(c, 1, 1)?;
            let mut out: Vec<InstantSample> = args::vector(c, 0)?
                .iter()
                .map(|s| InstantSample {
                    t: c.t,
                    ..s.clone()
                })
                .collect();
            let desc = c.name == "sort_desc";
            // NaN goes to the bottom either way, as in Prometheus.
            out.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) if desc => b.v.total_cmp(&a.v),
                (false, false) => a.v.total_cmp(&b.v),
            });
            Value::Vector(out)
        }
        "absent" => {
            args::arity(c, 1, 1)?;
            let out = if args::vector(c, 0)?.is_empty() {
                vec![InstantSample {
                    labels: c.absent_labels.clone(),
                    t: c.t,
                    v: 1.0,
                }]
            } else {
                Vec::new()
            };
            Value::Vector(out)
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::{FunctionCall, call};
    use crate::query::Value;

    #[test]
    fn vector_and_scalar() {
        assert_eq!(
            vec_of(run("vector", vec![scalar(5.0)], 5.0, None)),
            vec![(lbl(&[]), 5.0)]
        );
        let two = Value::Vector(vec![inst(&[("a", "1")], 1.0), inst(&[("a", "2")], 2.0)]);
        match run("scalar", vec![two], 0.0, None) {
            Ok(Value::Scalar { v, .. }) => assert!(v.is_nan()),
            other => panic!("{other:?}"),
        }
        match run(
            "scalar",
            vec![Value::Vector(vec![inst(&[("a", "1")], 7.0)])],
            0.0,
            None,
        ) {
            Ok(Value::Scalar { v, .. }) => assert_eq!(v, 7.0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sort_puts_nan_last_both_ways() {
        let v = Value::Vector(vec![
            inst(&[("__name__", "m"), ("i", "n")], f64::NAN),
            inst(&[("__name__", "m"), ("i", "2")], 2.0),
            inst(&[("__name__", "m"), ("i", "1")], 1.0),
            inst(&[("__name__", "m"), ("i", "3")], 3.0),
        ]);
        let order = |name: &str| match run(name, vec![v.clone()], 0.0, None) {
            Ok(Value::Vector(out)) => out
                .iter()
                .map(|s| s.labels.get("i").unwrap_or("").to_string())
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(order("sort"), ["1", "2", "3", "n"]);
        assert_eq!(order("sort_desc"), ["3", "2", "1", "n"]);
    }

    #[test]
    fn absent_uses_engine_labels() {
        let absent = |v: Value| {
            vec_of(call(FunctionCall {
                name: "absent",
                args: vec![v],
                t: 0,
                range: None,
                absent_labels: lbl(&[("job", "x")]),
            }))
        };
        assert_eq!(
            absent(Value::Vector(vec![])),
            vec![(lbl(&[("job", "x")]), 1.0)]
        );
        assert!(absent(Value::Vector(vec![inst(&[("a", "1")], 1.0)])).is_empty());
    }
}
