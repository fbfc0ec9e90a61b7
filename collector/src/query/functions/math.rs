//! Element-wise math over an instant vector: abs, ceil, floor, exp, ln,
//! log2, log10, sqrt, sgn, round, clamp*, trigonometry, deg, rad, pi.
//! All of them drop the metric name, as Prometheus does.

use super::FunctionCall;
use super::args::{self, go_max, go_min};
use crate::query::{InstantSample, QueryError, Value};

/// The one-argument functions, as plain `f64 -> f64` maps.
fn simple(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => sgn,
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

/// -1, 1, or the value itself for zeros and NaN (Prometheus's funcSgn).
fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

pub(super) fn call(c: &FunctionCall<'_>) -> Result<Option<Value>, QueryError> {
    if let Some(f) = simple(c.name) {
        args::arity(c, 1, 1)?;
        return Ok(Some(map(c, f)?));
    }
    let out = match c.name {
        "pi" => {
            args::arity(c, 0, 0)?;
            Value::Scalar {
                t: c.t,
                v: std::f64::consts::PI,
            }
        }
        "round" => {
            args::arity(c, 1, 2)?;
            let to_nearest = if c.args.len() == 2 {
                args::scalar(c, 1)?
            } else {
                1.0
            };
            // Dividing by the inverse, as Prometheus does, gives fewer
            // floating point surprises (round(x, 0.1)); ties round up.
            let inv = 1.0 / to_nearest;
            map(c, |v| (v * inv + 0.5).floor() / inv)?
        }
        "clamp" => {
            args::arity(c, 3, 3)?;
            let (min, max) = (args::scalar(c, 1)?, args::scalar(c, 2)?);
            if max < min {
                args::vector(c, 0)?;
                Value::Vector(Vec::new())
            } else {
                map(c, |v| go_max(min, go_min(max, v)))?
            }
        }
        "clamp_max" => {
            args::arity(c, 2, 2)?;
            let max = args::scalar(c, 1)?;
            map(c, |v| go_min(max, v))?
        }
        "clamp_min" => {
            args::arity(c, 2, 2)?;
            let min = args::scalar(c, 1)?;
            map(c, |v| go_max(min, v))?
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn map(c: &FunctionCall<'_>, f: impl Fn(f64) -> f64) -> Result<Value, QueryError> {
    let out = args::vector(c, 0)?
        .iter()
        .map(|s| InstantSample {
            labels: args::drop_name(&s.labels),
            t: c.t,
            v: f(s.v),
        })
        .collect();
    Ok(Value::Vector(out))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use crate::query::Value;

    fn vec1(v: f64) -> Value {
        Value::Vector(vec![inst(&[("__name__", "m"), ("a", "b")], v)])
    }

    #[test]
    fn simple_functions_drop_the_name() {
        let out = vec_of(run("abs", vec![vec1(-3.0)], 0.0, None));
        assert_eq!(out, vec![(lbl(&[("a", "b")]), 3.0)]);
        assert_close(
            one(run("exp", vec![vec1(10.0)], 0.0, None)),
            22026.465794806718,
        );
        assert_eq!(
            one(run("ln", vec![vec1(0.0)], 0.0, None)),
            f64::NEG_INFINITY
        );
        assert!(one(run("log2", vec![vec1(-1.0)], 0.0, None)).is_nan());
        assert_close(
            one(run("deg", vec![vec1(std::f64::consts::PI)], 0.0, None)),
            180.0,
        );
        assert_close(
            one(run("rad", vec![vec1(180.0)], 0.0, None)),
            std::f64::consts::PI,
        );
    }

    #[test]
    fn sgn_keeps_nan_and_zero() {
        assert_eq!(
            one(run("sgn", vec![vec1(f64::NEG_INFINITY)], 0.0, None)),
            -1.0
        );
        assert_eq!(one(run("sgn", vec![vec1(50.0)], 0.0, None)), 1.0);
        assert_eq!(one(run("sgn", vec![vec1(0.0)], 0.0, None)), 0.0);
        assert!(one(run("sgn", vec![vec1(f64::NAN)], 0.0, None)).is_nan());
    }

    #[test]
    fn round_to_nearest_with_ties_up() {
        assert_eq!(one(run("round", vec![vec1(2.5)], 0.0, None)), 3.0);
        assert_eq!(one(run("round", vec![vec1(-2.5)], 0.0, None)), -2.0);
        assert_eq!(
            one(run("round", vec![vec1(12.0), scalar(5.0)], 0.0, None)),
            10.0
        );
        assert_eq!(
            one(run("round", vec![vec1(13.0), scalar(5.0)], 0.0, None)),
            15.0
        );
        assert_close(
            one(run("round", vec![vec1(1.2345), scalar(0.01)], 0.0, None)),
            1.23,
        );
    }

    #[test]
    fn clamp_bounds_nan_and_empty_when_inverted() {
        assert_eq!(
            one(run(
                "clamp",
                vec![vec1(100.0), scalar(-25.0), scalar(75.0)],
                0.0,
                None
            )),
            75.0
        );
        assert_eq!(
            one(run(
                "clamp",
                vec![vec1(-50.0), scalar(-25.0), scalar(75.0)],
                0.0,
                None
            )),
            -25.0
        );
        assert!(
            one(run(
                "clamp",
                vec![vec1(1.0), scalar(0.0), scalar(f64::NAN)],
                0.0,
                None
            ))
            .is_nan()
        );
        assert!(
            one(run(
                "clamp",
                vec![vec1(1.0), scalar(f64::NAN), scalar(0.0)],
                0.0,
                None
            ))
            .is_nan()
        );
        assert!(
            vec_of(run(
                "clamp",
                vec![vec1(1.0), scalar(5.0), scalar(-5.0)],
                0.0,
                None
            ))
            .is_empty()
        );
        assert_eq!(
            one(run("clamp_max", vec![vec1(100.0), scalar(75.0)], 0.0, None)),
            75.0
        );
        assert_eq!(
            one(run(
                "clamp_min",
                vec![vec1(-50.0), scalar(-25.0)],
                0.0,
                None
            )),
            -25.0
        );
    }

    #[test]
    fn pi_is_a_scalar() {
        match run("pi", vec![], 0.0, None) {
            Ok(Value::Scalar { v, .. }) => assert_eq!(v, std::f64::consts::PI),
            other => panic!("{other:?}"),
        }
    }
}
